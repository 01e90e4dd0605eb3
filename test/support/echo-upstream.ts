/**
 * A real HTTPS (or HTTP) upstream for ForwardRequest tests: a stand-in for
 * a token-protected API, since no public one runs here. It checks the token
 * where each placement puts it and echoes whatever it received, so a test
 * can prove the broker redacts the secret from an answer. Its certificate
 * is signed by a CA the test makes (the daemon trusts it through
 * NODE_EXTRA_CA_CERTS) for 127.0.0.1, ::1 and localhost.
 *
 * Routes: /echo (the request back as JSON, headers and body included),
 * /bearer /header /query /basic (200 when the token is where the route
 * says, else 401), /redirect (302 to another host), /big?bytes=N,
 * /slow?ms=N (headers after N ms), /drip (headers, then a byte a second),
 * /gzip (the echo, gzip-encoded), /hop (an answer with hop-by-hop headers).
 */
import { once } from "node:events";
import { readFile } from "node:fs/promises";
import http from "node:http";
import https from "node:https";
import type { AddressInfo, Socket } from "node:net";
import path from "node:path";
import { gzipSync } from "node:zlib";
import { keyAndCsr, selfSignedCa, signCsr } from "./certs.js";

export interface Expected {
  bearer?: string;
  header?: [name: string, value: string];
  query?: [name: string, value: string];
  basic?: [user: string, password: string];
}

export interface EchoUpstream {
  /** https://127.0.0.1:PORT (http:// for a plain one). */
  url: string;
  port: number;
  /** The CA that signed the certificate (PEM file), for NODE_EXTRA_CA_CERTS. */
  caFile: string;
  /** Requests received, in order: method, path with query, headers. */
  readonly seen: { method: string; url: string; headers: http.IncomingHttpHeaders }[];
  /** TCP connections accepted so far, and those the peer closed. */
  connections(): { opened: number; closed: number };
  expect: Expected;
  close(): Promise<void>;
}

/** Writes the test PKI into `dir` (once per dir): ca.crt, upstream.crt, upstream.key. */
export async function upstreamPki(dir: string): Promise<{ ca: string; cert: string; key: string }> {
  await selfSignedCa(dir, "ca", "credbroker forward test CA");
  await keyAndCsr(dir, "upstream", "/CN=localhost");
  await signCsr(
    dir,
    "upstream",
    "ca",
    "subjectAltName=DNS:localhost,IP:127.0.0.1,IP:::1\nextendedKeyUsage=serverAuth\n",
    2,
  );
  return {
    ca: path.join(dir, "ca.crt"),
    cert: path.join(dir, "upstream.crt"),
    key: path.join(dir, "upstream.key"),
  };
}

export async function startEchoUpstream(opts: {
  pki?: { ca: string; cert: string; key: string };
  host?: string;
}): Promise<EchoUpstream> {
  const seen: EchoUpstream["seen"] = [];
  const sockets = new Set<Socket>();
  let opened = 0;
  let closed = 0;
  const upstream = { expect: {} as Expected };
  const handler = (req: http.IncomingMessage, res: http.ServerResponse) => {
    const chunks: Buffer[] = [];
    req.on("data", (c: Buffer) => chunks.push(c));
    req.on("end", () => {
      seen.push({ method: req.method ?? "", url: req.url ?? "", headers: req.headers });
      route(req, Buffer.concat(chunks), res, upstream.expect);
    });
  };
  const server = opts.pki
    ? https.createServer(
        {
          cert: await readFile(opts.pki.cert),
          key: await readFile(opts.pki.key),
        },
        handler,
      )
    : http.createServer(handler);
  server.on(opts.pki ? "secureConnection" : "connection", (s: Socket) => {
    opened++;
    sockets.add(s);
    s.once("close", () => {
      closed++;
      sockets.delete(s);
    });
  });
  server.listen(0, opts.host ?? "127.0.0.1");
  await once(server, "listening");
  const { port } = server.address() as AddressInfo;
  const host = opts.host ?? "127.0.0.1";
  return {
    url: `${opts.pki ? "https" : "http"}://${host.includes(":") ? `[${host}]` : host}:${port}`,
    port,
    caFile: opts.pki?.ca ?? "",
    seen,
    connections: () => ({ opened, closed }),
    get expect() {
      return upstream.expect;
    },
    set expect(e: Expected) {
      upstream.expect = e;
    },
    async close() {
      for (const s of sockets) s.destroy();
      server.close();
      await once(server, "close");
    },
  };
}

function route(
  req: http.IncomingMessage,
  body: Buffer,
  res: http.ServerResponse,
  expect: Expected,
): void {
  const url = new URL(req.url ?? "/", "http://upstream");
  const echo = () =>
    JSON.stringify({
      method: req.method,
      url: req.url,
      headers: req.headers,
      body: body.toString("utf8"),
    });
  const authorized = (ok: boolean): void => {
    res.writeHead(ok ? 200 : 401, { "content-type": "application/json" }).end(echo());
  };
  switch (url.pathname) {
    case "/echo":
      res.writeHead(200, {
        "content-type": "application/json",
        "x-echo-auth": req.headers.authorization ?? "",
      });
      res.end(echo());
      return;
    case "/bearer":
      authorized(
        expect.bearer !== undefined && req.headers.authorization === `Bearer ${expect.bearer}`,
      );
      return;
    case "/header":
      authorized(
        expect.header !== undefined &&
          req.headers[expect.header[0].toLowerCase()] === expect.header[1],
      );
      return;
    case "/query":
      authorized(
        expect.query !== undefined && url.searchParams.get(expect.query[0]) === expect.query[1],
      );
      return;
    case "/basic": {
      const basic = expect.basic
        ? `Basic ${Buffer.from(`${expect.basic[0]}:${expect.basic[1]}`).toString("base64")}`
        : undefined;
      authorized(basic !== undefined && req.headers.authorization === basic);
      return;
    }
    case "/redirect":
      res.writeHead(302, { location: "https://elsewhere.example/landing" }).end();
      return;
    case "/big": {
      const bytes = Number(url.searchParams.get("bytes") ?? "0");
      res.writeHead(200, { "content-type": "application/octet-stream" });
      const chunk = Buffer.alloc(64 * 1024, 0x61);
      let left = bytes;
      const pump = () => {
        while (left > 0) {
          const n = Math.min(left, chunk.length);
          left -= n;
          if (!res.write(chunk.subarray(0, n))) {
            res.once("drain", pump);
            return;
          }
        }
        res.end();
      };
      res.on("close", () => {
        left = 0;
      });
      pump();
      return;
    }
    case "/slow": {
      const timer = setTimeout(
        () => res.writeHead(200).end("late"),
        Number(url.searchParams.get("ms") ?? "0"),
      );
      res.on("close", () => clearTimeout(timer));
      return;
    }
    case "/drip": {
      res.writeHead(200, { "content-type": "text/plain" });
      const timer = setInterval(() => res.write("."), 1000);
      res.on("close", () => clearInterval(timer));
      return;
    }
    case "/gzip":
      res
        .writeHead(200, { "content-type": "application/json", "content-encoding": "gzip" })
        .end(gzipSync(echo()));
      return;
    case "/hop":
      res.writeHead(200, {
        connection: "x-private-hop",
        "x-private-hop": "1",
        "keep-alive": "timeout=5",
        "x-kept": "yes",
      });
      res.end("hop");
      return;
    default:
      res.writeHead(404).end("no such route");
  }
}
