import http from "node:http";
import http2 from "node:http2";
import net from "node:net";
import { Http1Deadlines, PeerConnections, streamDeadline } from "../http/deadlines.js";
import {
  applyServerLimits,
  DEFAULT_TRANSPORT_LIMITS,
  http1Options,
  http2Options,
  type TransportLimits,
} from "../http/limits.js";
import type { RequestHandler } from "../http/request-handler.js";
import { ConnectionDrain } from "./connection-drain.js";

/** The first bytes of every HTTP/2 connection (RFC 9113 §3.4). */
const PREFACE = Buffer.from("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n");

export type { RequestHandler } from "../http/request-handler.js";

/** Serves an HTTP/2 stream itself and returns true, or returns false to leave it to `handler`. */
export type StreamHandler = (
  stream: http2.ServerHttp2Stream,
  headers: http2.IncomingHttpHeaders,
) => boolean;

export interface ListenOptions {
  host: string;
  port: number;
  handler: RequestHandler;
  /** Sees every HTTP/2 stream first (the fast unary path). */
  streams?: StreamHandler | undefined;
  /** Deadlines and caps (default: DEFAULT_TRANSPORT_LIMITS). */
  limits?: TransportLimits | undefined;
  /** Paths of client-streaming RPCs: an idle deadline instead of the body deadline (HTTP/2). */
  clientStreams?: ReadonlySet<string> | undefined;
}

export interface Listener {
  readonly host: string;
  readonly port: number;
  /** http://host:port, or https://host:port when the listener speaks TLS */
  readonly url: string;
  /**
   * Stops accepting, lets in-flight requests finish (HTTP/2 sessions get
   * GOAWAY, HTTP/1.1 connections close after their response), and after
   * `graceMs` cuts off whatever is left. Resolves when every socket is closed.
   */
  close(graceMs: number): Promise<void>;
}

/**
 * One port that serves HTTP/2 cleartext (h2c, prior knowledge: gRPC, Connect,
 * gRPC-Web) and HTTP/1.1 (Connect, gRPC-Web, plain curl). Node's cleartext
 * http2 server has no HTTP/1.1 fallback, so each connection's first bytes are
 * compared with the HTTP/2 preface and the socket handed to the right server.
 */
export async function listen(opts: ListenOptions): Promise<Listener> {
  const limits = opts.limits ?? DEFAULT_TRANSPORT_LIMITS;
  const drain = new ConnectionDrain(opts.handler);
  const deadlines = new Http1Deadlines(limits);
  const peers = new PeerConnections(limits.maxConnectionsPerPeer);
  const h1 = http.createServer(http1Options(limits), drain.track);
  const h2 = http2.createServer(http2Options(limits), drain.track);
  applyServerLimits(h1);
  applyServerLimits(h2);
  h1.prependListener("request", deadlines.request);
  h2.on("session", (session) => drain.session(session));
  routeStreams(h2, opts, drain, limits);

  const server = net.createServer((socket) => {
    if (!peers.admit(socket)) {
      socket.destroy();
      return;
    }
    drain.socket(socket);
    // The preface itself is a request's first bytes: it counts against the headers deadline.
    const preface = setTimeout(() => socket.destroy(), limits.headersTimeoutMs);
    routeByPreface(socket, (isHttp2) => {
      clearTimeout(preface);
      if (!isHttp2) {
        drain.http1(socket);
        deadlines.socket(socket);
      }
      (isHttp2 ? h2 : h1).emit("connection", socket);
    });
  });
  return listenOn(server, opts, "http", drain);
}

/**
 * Binds `server` (which reports its connections to `drain`) to the host and
 * port of `opts`; the Listener's close is the drain's. Shared by `listen` and
 * `listenTls`.
 */
export async function listenOn(
  server: net.Server,
  opts: { host: string; port: number },
  scheme: "http" | "https",
  drain: ConnectionDrain,
): Promise<Listener> {
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(opts.port, opts.host, () => {
      server.off("error", reject);
      resolve();
    });
  });
  const address = server.address() as net.AddressInfo;
  const host = address.family === "IPv6" ? `[${address.address}]` : address.address;

  return {
    host: address.address,
    port: address.port,
    url: `${scheme}://${host}:${address.port}`,
    close: (graceMs) => drain.close(server, graceMs),
  };
}

/**
 * Gives every HTTP/2 stream its body deadline and puts `streams` in front of
 * node:http2's compatibility layer: each stream goes to it first, and only
 * the ones it declines become the (request, response) pairs `handler`
 * serves. The compatibility listener is node's own, so declined streams
 * behave exactly as without this.
 */
export function routeStreams(
  server: http2.Http2Server | http2.Http2SecureServer,
  { streams, clientStreams }: Pick<ListenOptions, "streams" | "clientStreams">,
  drain: ConnectionDrain,
  limits: TransportLimits,
): void {
  const compat = server.listeners("stream") as ((...args: unknown[]) => void)[];
  server.removeAllListeners("stream");
  const dispatch = (
    stream: http2.ServerHttp2Stream,
    headers: http2.IncomingHttpHeaders,
    flags: number,
    rawHeaders: string[],
  ) => {
    // A stream's error (a reset, the session's memory cap) is the client's; "close" follows and ends the call.
    stream.on("error", () => {});
    const path = headers[":path"]?.split("?", 1)[0] ?? "";
    streamDeadline(stream, limits, clientStreams?.has(path) ?? false);
    if (streams?.(stream, headers)) {
      drain.trackStream(stream);
      return;
    }
    for (const listener of compat) listener.call(server, stream, headers, flags, rawHeaders);
  };
  server.on("stream", dispatch);
}

/** Reads until the first bytes tell HTTP/2 from HTTP/1.x, then puts them back. */
function routeByPreface(socket: net.Socket, route: (isHttp2: boolean) => void): void {
  let head = Buffer.alloc(0);
  const onData = (chunk: Buffer) => {
    head = Buffer.concat([head, chunk]);
    const n = Math.min(head.length, PREFACE.length);
    const matches = head.subarray(0, n).equals(PREFACE.subarray(0, n));
    if (matches && head.length < PREFACE.length) return;
    socket.off("data", onData);
    socket.pause();
    socket.unshift(head);
    route(matches);
    // The HTTP/2 session reads the buffered bytes and then takes over the
    // socket's handle itself; resuming would steal data from it. HTTP/1.1
    // reads through the stream, so it must flow again.
    if (!matches) socket.resume();
  };
  socket.on("data", onData);
}
