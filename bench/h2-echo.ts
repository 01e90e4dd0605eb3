/**
 * The baseline the framework is measured against: a bare node:http2 server
 * that answers every POST with a canned message of the size the real RPC
 * returns, framed for the protocol the request speaks (gRPC: length-prefixed
 * message and grpc-status trailers; Connect unary: the raw message). No
 * routing, auth, decoding or policy. Message bytes come from argv[2] (a
 * file); prints its URL on stdout.
 */
import { readFileSync } from "node:fs";
import http2 from "node:http2";
import { grpcFrame } from "../test/support/h2load.js";

const message = readFileSync(process.argv[2] ?? "");
const framed = grpcFrame(message);

const server = http2.createServer();
server.on("stream", (stream, headers) => {
  const grpc = String(headers["content-type"] ?? "").startsWith("application/grpc");
  stream.on("data", () => {});
  stream.on("end", () => {
    if (grpc) {
      stream.respond(
        { ":status": 200, "content-type": "application/grpc" },
        { waitForTrailers: true },
      );
      stream.on("wantTrailers", () => stream.sendTrailers({ "grpc-status": "0" }));
      stream.end(framed);
    } else {
      stream.respond({ ":status": 200, "content-type": "application/proto" });
      stream.end(message);
    }
  });
});
server.listen(0, "127.0.0.1", () => {
  const address = server.address();
  if (address && typeof address === "object") {
    process.stdout.write(`http://127.0.0.1:${address.port}\n`);
  }
});
process.on("SIGTERM", () => server.close(() => process.exit(0)));
