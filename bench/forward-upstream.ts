/**
 * The upstream for bench/forward.ts, in its own process: a bare node:http
 * server answering every request with the same ~100-byte JSON body, with
 * keep-alive. It checks nothing, so the broker's token and a direct call
 * cost it the same. Prints its URL on stdout.
 */
import http from "node:http";

const body = Buffer.from(
  JSON.stringify({
    id: "item-0001",
    status: "ok",
    owner: "bench",
    tags: ["alpha", "beta"],
    updated: "2026-12-04T00:00:00Z",
  }),
);

const server = http.createServer((_req, res) => {
  res.writeHead(200, { "content-type": "application/json", "content-length": body.length });
  res.end(body);
});
server.keepAliveTimeout = 60_000;
server.listen(0, "127.0.0.1", () => {
  const address = server.address();
  if (address && typeof address === "object")
    process.stdout.write(`http://127.0.0.1:${address.port}\n`);
});
process.on("SIGTERM", () => server.close(() => process.exit(0)));
