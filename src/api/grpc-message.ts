import type http from "node:http";
import type http2 from "node:http2";
import type { RequestHandler } from "./listener.js";

/**
 * Percent-encodes a status message as the gRPC spec asks: only bytes outside
 * printable ASCII (0x20-0x7E), and '%' itself.
 */
export function encodeGrpcMessage(message: string): string {
  let out = "";
  for (const byte of Buffer.from(message, "utf8")) {
    out +=
      byte >= 0x20 && byte <= 0x7e && byte !== 0x25
        ? String.fromCharCode(byte)
        : `%${byte.toString(16).toUpperCase().padStart(2, "0")}`;
  }
  return out;
}

function decode(value: string): string {
  try {
    return decodeURIComponent(value);
  } catch {
    return value;
  }
}

/**
 * connect-es encodes `grpc-message` with encodeURIComponent (':' → %3A,
 * ',' → %2C); grpc-js decodes with decodeURI, which leaves those escapes in
 * the message its callers read. Re-encoding the trailer the spec's way makes
 * every client (grpc-js, grpc-go, buf curl) show the same readable message.
 */
export function specCompliantGrpcMessage(handler: RequestHandler): RequestHandler {
  return (req, res) => {
    const add = res.addTrailers.bind(res) as (headers: http.OutgoingHttpHeaders) => void;
    (res as http2.Http2ServerResponse).addTrailers = (headers) => {
      const message = headers["grpc-message"];
      add(
        typeof message === "string"
          ? { ...headers, "grpc-message": encodeGrpcMessage(decode(message)) }
          : headers,
      );
    };
    handler(req, res);
  };
}
