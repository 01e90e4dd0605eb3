/**
 * The baseline for bench/imds.ts: a bare node:http server answering the token
 * PUT and the credentials GET with the same bytes IMDS would, and nothing
 * else (no token table, no guards, no session lookup). Prints its URL.
 */
import http from "node:http";

const token = "A".repeat(43);
const body = JSON.stringify({
  Code: "Success",
  LastUpdated: "2026-11-24T10:00:00Z",
  Type: "AWS-HMAC",
  AccessKeyId: "ASIAIOSFODNN7EXAMPLE",
  SecretAccessKey: "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
  Token: "F".repeat(400),
  Expiration: "2026-11-24T11:00:00Z",
});

const server = http.createServer((req, res) => {
  if (req.method === "PUT") {
    res.writeHead(200, {
      "content-type": "text/plain",
      "x-aws-ec2-metadata-token-ttl-seconds": "21600",
    });
    res.end(token);
    return;
  }
  res.writeHead(200, { "content-type": "application/json" });
  res.end(body);
});
server.keepAliveTimeout = 5000;
server.listen(0, "127.0.0.1", () => {
  const address = server.address();
  if (address && typeof address === "object")
    process.stdout.write(`http://127.0.0.1:${address.port}\n`);
});
process.on("SIGTERM", () => server.close(() => process.exit(0)));
