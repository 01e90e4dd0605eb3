import { Code, ConnectError, type Interceptor } from "@connectrpc/connect";
import { codeToString } from "@connectrpc/connect/protocol-connect";
import type { Logger } from "pino";

/**
 * One line per RPC: procedure, code and duration; never a message body or a
 * header value (bodies carry secrets, headers carry tokens). Successful calls
 * log at debug, failures at info.
 */
export function accessLogInterceptor(log: Logger): Interceptor {
  return (next) => async (req) => {
    const started = performance.now();
    const line = (code: string) => ({
      procedure: `/${req.service.typeName}/${req.method.name}`,
      code,
      ms: Math.round((performance.now() - started) * 10) / 10,
    });
    try {
      const res = await next(req);
      // Built only when it is written: this runs on every call.
      if (log.isLevelEnabled("debug")) log.debug(line("ok"), "rpc");
      return res;
    } catch (err) {
      log.info(line(codeToString(err instanceof ConnectError ? err.code : Code.Unknown)), "rpc");
      throw err;
    }
  };
}
