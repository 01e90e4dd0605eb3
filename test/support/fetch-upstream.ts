/**
 * A small plain-HTTP upstream on 127.0.0.1 for `credbroker fetch` and
 * brokerFetch tests (allowed_hosts ["127.0.0.1"] allows http to it).
 *
 * Routes: /echo (the request back as JSON: method, path, headers, the body
 * as base64 and its SHA-256), /binary (every byte value, 0-255, 4 times),
 * /missing (404 "not here"), /leak (the Authorization header it got, in
 * the body and a header), /empty (204), /slow?ms=N (answers after N ms).
 */
import { createHash } from "node:crypto";
import { once } from "node:events";
import http from "node:http";
import type { AddressInfo, Socket } from "node:net";

export interface FetchUpstream {
  /** http://127.0.0.1:PORT */
  url: string;
  /** Requests received: method and path. */
  readonly seen: { method: string; url: string }[];
  close(): Promise<void>;
}

/** What /echo answers. */
export interface Echoed {
  method: string;
  url: string;
  headers: Record<string, string | string[] | undefined>;
  body: string;
  sha256: string;
}

/** Every byte value, four times: what /binary answers. */
export const BINARY = Buffer.from(Array.from({ length: 1024 }, (_, i) => i % 256));

export async function startFetchUpstream(): Promise<FetchUpstream> {
  const seen: FetchUpstream["seen"] = [];
  const sockets = new Set<Socket>();
  const server = http.createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on("data", (c: Buffer) => chunks.push(c));
    req.on("end", () => {
      seen.push({ method: req.method ?? "", url: req.url ?? "" });
      const body = Buffer.concat(chunks);
      const url = new URL(req.url ?? "/", "http://upstream");
      switch (url.pathname) {
        case "/echo": {
          const echoed: Echoed = {
            method: req.method ?? "",
            url: req.url ?? "",
            headers: req.headers,
            body: body.toString("base64"),
            sha256: createHash("sha256").update(body).digest("hex"),
          };
          res.writeHead(200, { "content-type": "application/json", "x-upstream": "echo" });
          res.end(JSON.stringify(echoed));
          return;
        }
        case "/binary":
          res.writeHead(200, { "content-type": "application/octet-stream" }).end(BINARY);
          return;
        case "/missing":
          res.writeHead(404, { "content-type": "text/plain" }).end("not here");
          return;
        case "/leak":
          res
            .writeHead(200, { "x-seen-auth": req.headers.authorization ?? "" })
            .end(`you sent: ${req.headers.authorization ?? ""}`);
          return;
        case "/empty":
          res.writeHead(204, { "x-upstream": "empty" }).end();
          return;
        case "/slow": {
          const timer = setTimeout(
            () => res.writeHead(200).end("late"),
            Number(url.searchParams.get("ms") ?? "0"),
          );
          res.on("close", () => clearTimeout(timer));
          return;
        }
        default:
          res.writeHead(500).end("no such route");
      }
    });
  });
  server.on("connection", (s: Socket) => {
    sockets.add(s);
    s.once("close", () => sockets.delete(s));
  });
  server.listen(0, "127.0.0.1");
  await once(server, "listening");
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    seen,
    async close() {
      for (const s of sockets) s.destroy();
      server.close();
      await once(server, "close");
    },
  };
}
