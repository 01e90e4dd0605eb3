import type http2 from "node:http2";
import type { Message } from "@bufbuild/protobuf";
import { Code, ConnectError } from "@connectrpc/connect";
import {
  createAsyncIterable,
  pipe,
  transformDecompressEnvelope,
  transformParseEnvelope,
  transformSplitEnvelope,
} from "@connectrpc/connect/protocol";
import { parseTimeout, setTrailerStatus } from "@connectrpc/connect/protocol-grpc";
import { encodeGrpcMessage } from "../grpc-message.js";
import { type Body, headerObject, joined } from "./body.js";
import type { Call } from "./call.js";

/**
 * A unary gRPC call, answered as connect-node's gRPC handler answers it:
 * headers (`application/grpc+proto`), one envelope, then trailers with
 * grpc-status, and on error the status, message and details in trailers
 * after empty headers. `grpc-message` is encoded the gRPC spec's way (see
 * grpc-message.ts).
 */
export async function grpcUnary(call: Call, stream: http2.ServerHttp2Stream): Promise<void> {
  const timeout = parseTimeout(call.requestHeader.get("grpc-timeout"), call.maxTimeoutMs);
  const context = call.context(timeout.timeoutMs, "application/grpc+proto");
  context.responseTrailer.set("grpc-status", "0");
  const compression = call.compression("grpc-encoding", "grpc-accept-encoding");
  if (compression.response) context.responseHeader.set("grpc-encoding", compression.response.name);
  let envelope: Uint8Array | undefined;
  try {
    if (compression.error) throw compression.error;
    if (timeout.error) throw timeout.error;
    const input = await decode(call, await call.body(call.readMaxBytes + 5), compression.request);
    // The message after 5 free bytes: uncompressed, the envelope is made in place.
    const framed = call.encode(await call.invoke(context, input), 5);
    const size = framed.byteLength - 5;
    if (compression.response && size >= call.compressMinBytes) {
      envelope = frame(1, await compression.response.compress(framed.subarray(5)));
    } else {
      framed[0] = 0;
      framed[1] = size >>> 24;
      framed[2] = (size >>> 16) & 0xff;
      framed[3] = (size >>> 8) & 0xff;
      framed[4] = size & 0xff;
      envelope = framed;
    }
  } catch (e) {
    setTrailerStatus(
      context.responseTrailer,
      e instanceof ConnectError
        ? e
        : new ConnectError("internal error", Code.Internal, undefined, undefined, e),
    );
  }
  const trailers = headerObject(context.responseTrailer, {});
  const message = trailers["grpc-message"];
  if (typeof message === "string") {
    trailers["grpc-message"] = encodeGrpcMessage(decodeURIComponent(message));
  }
  // node adds `date` (cached per second), as connect-node's answers have it.
  stream.respond(headerObject(context.responseHeader, { ":status": 200 }), {
    waitForTrailers: true,
  });
  stream.once("wantTrailers", () => stream.sendTrailers(trailers));
  stream.end(envelope);
}

/**
 * The request message: one uncompressed envelope is parsed in place; anything
 * else (compressed, several envelopes, truncated, oversized) goes through
 * connect-es's own envelope pipeline, so it fails exactly as there.
 */
async function decode(
  call: Call,
  body: Body,
  compression: Parameters<typeof transformDecompressEnvelope>[0],
): Promise<Message> {
  const parse = call.route.serialization.getI(true);
  if (body.complete && body.size >= 5) {
    const bytes = joined(body);
    if (bytes[0] === 0 && bytes.readUInt32BE(1) === bytes.length - 5) {
      return parse.parse(bytes.subarray(5));
    }
  }
  const it = pipe(
    createAsyncIterable(body.chunks),
    transformSplitEnvelope(call.readMaxBytes),
    transformDecompressEnvelope(compression, call.readMaxBytes),
    transformParseEnvelope(parse),
  )[Symbol.asyncIterator]();
  const first = await it.next();
  if (first.done === true) {
    throw new ConnectError(
      "protocol error: missing input message for unary method",
      Code.Unimplemented,
    );
  }
  if ((await it.next()).done !== true) {
    throw new ConnectError(
      "protocol error: received extra input message for unary method",
      Code.Unimplemented,
    );
  }
  return first.value;
}

function frame(flags: number, message: Uint8Array): Buffer {
  const out = Buffer.allocUnsafe(5 + message.byteLength);
  out[0] = flags;
  out.writeUInt32BE(message.byteLength, 1);
  out.set(message, 5);
  return out;
}
