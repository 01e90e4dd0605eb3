// The container's HEALTHCHECK: grpc.health.v1.Health/Check over the Connect
// protocol (HTTP/1.1, JSON) on this container's own API port. Exit 0 when the
// daemon answers SERVING; 1 otherwise (down, draining, no answer within 4 s).
//
// The port is CREDBROKER_LISTEN's (default 50051), reached on 127.0.0.1. With
// CREDBROKER_TLS_CERT set it speaks TLS without checking the certificate: the
// probe stays on loopback, sends no token and reads nothing but the status.
// With --client-ca (mutual TLS) the handshake needs a client certificate this
// probe does not have: override the healthcheck (docs/OPERATIONS.md).
import http from "node:http";
import https from "node:https";

const listen = process.env.CREDBROKER_LISTEN || "127.0.0.1:50051";
const port = Number(listen.slice(listen.lastIndexOf(":") + 1));
const tls = Boolean(process.env.CREDBROKER_TLS_CERT);

const request = (tls ? https : http).request(
  {
    host: "127.0.0.1",
    port,
    method: "POST",
    path: "/grpc.health.v1.Health/Check",
    headers: { "content-type": "application/json" },
    timeout: 4000,
    ...(tls ? { rejectUnauthorized: false } : {}),
  },
  (res) => {
    let body = "";
    res.setEncoding("utf8");
    res.on("data", (chunk) => {
      body += chunk;
    });
    res.on("end", () => {
      const serving = res.statusCode === 200 && statusOf(body) === "SERVING";
      if (!serving) console.error(`credbroker not healthy: HTTP ${res.statusCode} ${body}`);
      process.exit(serving ? 0 : 1);
    });
  },
);
/** The `status` of a JSON HealthCheckResponse; undefined for anything else. */
function statusOf(body) {
  try {
    return JSON.parse(body).status;
  } catch {
    return undefined;
  }
}

request.on("timeout", () => request.destroy(new Error("no answer within 4 s")));
request.on("error", (err) => {
  console.error(`credbroker not healthy: ${err.message}`);
  process.exit(1);
});
request.end("{}");
