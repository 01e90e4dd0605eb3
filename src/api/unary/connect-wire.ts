import type http2 from "node:http2";
import { Code, ConnectError } from "@connectrpc/connect";
import {
  createAsyncIterable,
  mergeNonProtocolHeaders,
  readAllBytes,
} from "@connectrpc/connect/protocol";
import {
  codeToHttpStatus,
  errorToJsonBytes,
  parseTimeout,
} from "@connectrpc/connect/protocol-connect";
import { type Body, headerObject, joined } from "./body.js";
import type { Call } from "./call.js";

/**
 * A Connect unary POST, answered as connect-node's Connect handler answers
 * it: the message with `application/proto`, or an error as the protocol's
 * JSON with the HTTP status for its code; trailers travel as `trailer-`
 * headers; bodies of 1 KiB and more are compressed when the client accepts it.
 */
export async function connectUnary(call: Call, stream: http2.ServerHttp2Stream): Promise<void> {
  const timeout = parseTimeout(call.requestHeader.get("connect-timeout-ms"), call.maxTimeoutMs);
  const context = call.context(timeout.timeoutMs, "application/proto");
  const compression = call.compression("content-encoding", "accept-encoding");
  let status = 200;
  let body: Uint8Array;
  try {
    if (compression.error) throw compression.error;
    if (timeout.error) throw timeout.error;
    let bytes = await readMessage(call, await call.body(call.readMaxBytes));
    if (compression.request) bytes = await compression.request.decompress(bytes, call.readMaxBytes);
    const input = call.route.serialization.getI(true).parse(bytes);
    body = call.encode(await call.invoke(context, input), 0);
  } catch (e) {
    const error =
      e instanceof ConnectError
        ? e
        : new ConnectError("internal error", Code.Internal, undefined, undefined, e);
    status = codeToHttpStatus(error.code);
    context.responseHeader.set("content-type", "application/json");
    if (!error.isWireError) mergeNonProtocolHeaders(context.responseHeader, error.metadata);
    body = errorToJsonBytes(error, {});
  }
  if (compression.response && body.byteLength >= call.compressMinBytes) {
    body = await compression.response.compress(body);
    context.responseHeader.set("content-encoding", compression.response.name);
  }
  // Trailers travel as trailer- headers (connect-es's trailerMux, without a copy of the headers).
  // node adds `date` (cached per second), as connect-node's answers have it.
  const header = headerObject(context.responseHeader, {
    ":status": status,
    "content-length": body.byteLength.toString(10),
  });
  context.responseTrailer.forEach((value, name) => {
    header[`trailer-${name}`] = value;
  });
  // The body's last DATA frame without END_STREAM, then an empty one with it
  // (what node sends for empty trailers): the same HTTP answer. With
  // END_STREAM on the body's own frame, the stream is closed and destroyed
  // before node runs the write's callback, and node then builds an
  // ERR_STREAM_DESTROYED error (a stack trace) for nobody, ~3% of a call.
  stream.respond(header, { waitForTrailers: true });
  stream.once("wantTrailers", () => stream.sendTrailers({}));
  stream.end(body);
}

/** The body when it is whole and as long as it says; otherwise connect-es reads it (and fails it) itself. */
async function readMessage(call: Call, body: Body): Promise<Uint8Array> {
  const hint = call.requestHeader.get("content-length");
  if (body.complete && (hint === null || hint === String(body.size))) return joined(body);
  return readAllBytes(createAsyncIterable(body.chunks), call.readMaxBytes, hint);
}
