import { Code, ConnectError, type Interceptor } from "@connectrpc/connect";
import type { Logger } from "pino";
import { DomainError, type ErrorCode } from "../core/errors.js";

const CODES: Record<ErrorCode, Code> = {
  invalid_argument: Code.InvalidArgument,
  not_found: Code.NotFound,
  already_exists: Code.AlreadyExists,
  permission_denied: Code.PermissionDenied,
  failed_precondition: Code.FailedPrecondition,
  aborted: Code.Aborted,
  unauthenticated: Code.Unauthenticated,
  resource_exhausted: Code.ResourceExhausted,
  deadline_exceeded: Code.DeadlineExceeded,
  unimplemented: Code.Unimplemented,
  unavailable: Code.Unavailable,
  data_loss: Code.DataLoss,
  internal: Code.Internal,
};

/** The Connect code a domain error code becomes. */
export function connectCode(code: ErrorCode): Code {
  return CODES[code];
}

/**
 * Turns any error into the ConnectError the caller sees. Domain errors keep
 * their (secret-free) message; anything else becomes a bare "internal error"
 * and is logged with its cause, so a library message that might quote input
 * never reaches the wire.
 */
export function toConnectError(err: unknown, log: Logger, procedure: string): ConnectError {
  if (err instanceof ConnectError) return err;
  if (err instanceof DomainError) {
    if (err.code === "internal" || err.code === "data_loss" || err.code === "unavailable") {
      log.error({ err, procedure }, err.message);
    }
    return new ConnectError(err.message, connectCode(err.code), undefined, undefined, err);
  }
  log.error({ err, procedure }, "unexpected error");
  return new ConnectError("internal error", Code.Internal, undefined, undefined, err);
}

/** Outermost interceptor: every error leaves through toConnectError. */
export function errorInterceptor(log: Logger): Interceptor {
  return (next) => async (req) => {
    try {
      return await next(req);
    } catch (err) {
      throw toConnectError(err, log, `/${req.service.typeName}/${req.method.name}`);
    }
  };
}
