import type { DescMessage, DescMethod, Message } from "@bufbuild/protobuf";
import type { ConnectError } from "@connectrpc/connect";
import type { Compression, MethodSerializationLookup } from "@connectrpc/connect/protocol";
import type { Body } from "./body.js";
import type { CallContext } from "./invoke.js";

/** One RPC as both wire formats see it (built by fast-unary.ts). */
export interface Call {
  route: {
    spec: { method: DescMethod };
    serialization: MethodSerializationLookup<DescMessage, DescMessage>;
  };
  requestHeader: Headers;
  compression(
    encodingHeader: string,
    acceptHeader: string,
  ): { request: Compression | null; response: Compression | null; error?: ConnectError };
  compressMinBytes: number;
  readMaxBytes: number;
  maxTimeoutMs: number;
  /** The request body, kept up to `bound` bytes. */
  body(bound: number): Promise<Body>;
  context(timeoutMs: number | undefined, contentType: string): CallContext;
  /**
   * The output message's bytes (connect-es's serializer's, or the same bytes
   * from message-encoder.ts), after `reserve` bytes left for the caller.
   */
  encode(message: Message, reserve: number): Uint8Array;
  invoke(context: CallContext, input: Message): Promise<Message>;
}
