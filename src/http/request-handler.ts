import type http from "node:http";
import type http2 from "node:http2";

/** A node request listener for either HTTP version (the listeners and the drain share it). */
export type RequestHandler = (
  req: http.IncomingMessage | http2.Http2ServerRequest,
  res: http.ServerResponse | http2.Http2ServerResponse,
) => void;
