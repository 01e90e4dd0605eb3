/**
 * A real upstream for the pool's tests: node:http or node:https on
 * 127.0.0.1 that records each connection (its TLS SNI, when it closed) and
 * each request as it arrived on the wire, and answers with `handler`.
 */
import { mkdtemp, readFile, rm } from "node:fs/promises";
import http from "node:http";
import https from "node:https";
import type { AddressInfo, Socket } from "node:net";
import { tmpdir } from "node:os";
import path from "node:path";
import type { TLSSocket } from "node:tls";
import { assertOpenssl, keyAndCsr, selfSignedCa, signCsr } from "../support/certs.js";

export interface SeenConnection {
  servername: string | false | null | undefined;
  closed: Promise<void>;
  isClosed: () => boolean;
}

export interface SeenRequest {
  method: string;
  url: string;
  rawHeaders: [string, string][];
  body: Buffer;
}

export interface Upstream {
  port: number;
  connections: SeenConnection[];
  requests: SeenRequest[];
  stop(): Promise<void>;
}

export type Handler = (req: http.IncomingMessage, res: http.ServerResponse, body: Buffer) => void;

export interface Pki {
  /** The CA the good server's certificate chains to. */
  ca: string;
  /** For pinned.invalid and 127.0.0.1, signed by `ca`. */
  cert: string;
  key: string;
  /** The same names, signed by a CA nobody trusts. */
  strangerCert: string;
  strangerKey: string;
}

export async function makePki(): Promise<Pki> {
  await assertOpenssl();
  const dir = await mkdtemp(path.join(tmpdir(), "credbroker-forward-pki-"));
  try {
    const server =
      "basicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\nsubjectAltName=DNS:pinned.invalid,IP:127.0.0.1\n";
    await selfSignedCa(dir, "ca", "forward test CA");
    await selfSignedCa(dir, "other-ca", "untrusted CA");
    await keyAndCsr(dir, "server", "/CN=pinned.invalid");
    await signCsr(dir, "server", "ca", server, 1);
    await keyAndCsr(dir, "stranger", "/CN=pinned.invalid");
    await signCsr(dir, "stranger", "other-ca", server, 2);
    const read = (name: string) => readFile(path.join(dir, name), "utf8");
    return {
      ca: await read("ca.crt"),
      cert: await read("server.crt"),
      key: await read("server.key"),
      strangerCert: await read("stranger.crt"),
      strangerKey: await read("stranger.key"),
    };
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

export async function startUpstream(
  handler: Handler,
  tls?: { cert: string; key: string },
): Promise<Upstream> {
  const connections: SeenConnection[] = [];
  const requests: SeenRequest[] = [];
  const sockets = new Set<Socket>();
  const onRequest = (req: http.IncomingMessage, res: http.ServerResponse) => {
    const chunks: Buffer[] = [];
    req.on("data", (c: Buffer) => chunks.push(c));
    req.on("end", () => {
      const body = Buffer.concat(chunks);
      const rawHeaders: [string, string][] = [];
      for (let i = 0; i + 1 < req.rawHeaders.length; i += 2) {
        rawHeaders.push([req.rawHeaders[i] ?? "", req.rawHeaders[i + 1] ?? ""]);
      }
      requests.push({ method: req.method ?? "", url: req.url ?? "", rawHeaders, body });
      handler(req, res, body);
    });
  };
  const server =
    tls === undefined ? http.createServer(onRequest) : https.createServer(tls, onRequest);
  const onSocket = (socket: Socket) => {
    sockets.add(socket);
    let closed = false;
    connections.push({
      servername: (socket as TLSSocket).servername,
      closed: new Promise((resolve) =>
        socket.once("close", () => {
          closed = true;
          sockets.delete(socket);
          resolve();
        }),
      ),
      isClosed: () => closed,
    });
  };
  server.on(tls === undefined ? "connection" : "secureConnection", onSocket);
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  return {
    port: (server.address() as AddressInfo).port,
    connections,
    requests,
    stop: async () => {
      for (const s of sockets) s.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

/** A port on 127.0.0.1 that nothing listens on (it was bound, then closed). */
export async function closedPort(): Promise<number> {
  const server = http.createServer();
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as AddressInfo;
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}
