import {
  create,
  type DescMessage,
  type DescMethod,
  type DescService,
  isMessage,
  type Message,
} from "@bufbuild/protobuf";
import type {
  ContextValues,
  HandlerContext,
  Interceptor,
  UnaryRequest,
  UnaryResponse,
} from "@connectrpc/connect";
import { HeaderMap } from "./header-map.js";

type UnaryMethod = DescMethod & { methodKind: "unary" };

export type UnaryImpl = (request: Message, context: HandlerContext) => unknown;

/**
 * One call's HandlerContext. Its AbortSignal is made only when something
 * reads it (nothing on the hot path does): a call nobody watches costs no
 * AbortController. `abort` (client gone, deadline passed) aborts it then or
 * when it is made. Classes rather than object literals, so no per-call
 * getter closures.
 */
export class CallContext implements HandlerContext {
  readonly service: DescService;
  readonly requestMethod = "POST";
  readonly responseHeader = new HeaderMap();
  readonly responseTrailer = new HeaderMap();
  private aborter: AbortController | undefined;
  private abortReason: Error | undefined;

  constructor(
    readonly method: UnaryMethod,
    readonly protocolName: string,
    readonly url: string,
    readonly requestHeader: Headers,
    readonly values: ContextValues,
    contentType: string,
    private readonly deadline: number | undefined,
  ) {
    this.service = method.parent;
    this.responseHeader.set("content-type", contentType);
  }

  get signal(): AbortSignal {
    if (this.aborter === undefined) {
      this.aborter = new AbortController();
      if (this.abortReason !== undefined) this.aborter.abort(this.abortReason);
    }
    return this.aborter.signal;
  }

  readonly timeoutMs = (): number | undefined =>
    this.deadline === undefined ? undefined : this.deadline - Date.now();

  abort(reason: Error): void {
    this.abortReason ??= reason;
    this.aborter?.abort(reason);
  }
}

/** The request the interceptors see. */
class ChainRequest implements UnaryRequest {
  readonly stream = false;
  readonly service: DescService;
  readonly method: UnaryMethod;
  readonly requestMethod: string;
  readonly url: string;
  readonly header: Headers;
  readonly contextValues: ContextValues;

  constructor(
    readonly context: CallContext,
    readonly message: Message,
  ) {
    this.service = context.service;
    this.method = context.method;
    this.requestMethod = context.requestMethod;
    this.url = context.url;
    this.header = context.requestHeader;
    this.contextValues = context.values;
  }

  get signal(): AbortSignal {
    return this.context.signal;
  }
}

/** What the implementation gets: the call's context, with what the interceptors passed on. */
class ImplContext implements HandlerContext {
  readonly method: DescMethod;
  readonly requestMethod: string;
  readonly protocolName: string;
  readonly url: string;
  readonly timeoutMs: () => number | undefined;
  readonly responseHeader: Headers;
  readonly responseTrailer: Headers;
  readonly service: DescService;
  readonly requestHeader: Headers;
  readonly values: ContextValues;

  constructor(private readonly req: UnaryRequest & { context: CallContext }) {
    const c = req.context;
    this.method = c.method;
    this.requestMethod = c.requestMethod;
    this.protocolName = c.protocolName;
    this.url = c.url;
    this.timeoutMs = c.timeoutMs;
    this.responseHeader = c.responseHeader;
    this.responseTrailer = c.responseTrailer;
    this.service = req.service;
    this.requestHeader = req.header;
    this.values = req.contextValues;
  }

  get signal(): AbortSignal {
    return this.req.signal;
  }
}

/**
 * A unary method's interceptors and implementation, composed once, as
 * connect-es's `invokeUnaryImplementation` composes them on every call: the
 * first interceptor outermost, the implementation's result normalized to the
 * output message, the response's headers and trailers the context's.
 */
export function unaryChain(
  method: UnaryMethod,
  impl: UnaryImpl,
  interceptors: Interceptor[],
): (context: CallContext, input: Message) => Promise<Message> {
  const output: DescMessage = method.output;
  const last = async (req: UnaryRequest): Promise<UnaryResponse> => {
    const carried = req as UnaryRequest & { context: CallContext };
    const result = await impl(req.message, new ImplContext(carried));
    return {
      stream: false,
      service: method.parent,
      method,
      header: carried.context.responseHeader,
      trailer: carried.context.responseTrailer,
      message: isMessage(result, output) ? result : create(output, result as never),
    } as UnaryResponse;
  };
  type Next = (req: UnaryRequest) => Promise<UnaryResponse>;
  const chain = interceptors.reduceRight<Next>(
    (next, interceptor) => interceptor(next as never) as Next,
    last,
  );
  return async (context, input) => {
    const res = await chain(new ChainRequest(context, input));
    copyInto(res.header, context.responseHeader);
    copyInto(res.trailer, context.responseTrailer);
    return res.message;
  };
}

/** As connect-es does after a call: an interceptor may have answered with other Headers objects. */
function copyInto(from: Headers, to: Headers): void {
  if (from === to) return;
  for (const key of [...to.keys()]) to.delete(key);
  for (const [key, value] of from) to.set(key, value);
}
