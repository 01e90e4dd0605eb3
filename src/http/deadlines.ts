import type http from "node:http";
import http2 from "node:http2";
import type net from "node:net";
import type { TransportLimits } from "./limits.js";

const REQUEST_TIMEOUT =
  "HTTP/1.1 408 Request Timeout\r\nconnection: close\r\ncontent-length: 0\r\n\r\n";

/**
 * The headers and request deadlines of HTTP/1.1 connections, kept per socket
 * here because node's own checker (headersTimeout, requestTimeout) runs only
 * for a server that listens itself, and the preface router hands sockets
 * on. From a connection's start, and again from each response's end, the
 * next request's headers must arrive within `headersTimeoutMs` (else 408 and
 * close) and the whole request within `requestTimeoutMs` (else the
 * connection is destroyed). Threat: slowloris, and slow bodies that hold memory.
 */
export class Http1Deadlines {
  private readonly timers = new Map<
    net.Socket,
    { headers?: NodeJS.Timeout; request?: NodeJS.Timeout }
  >();

  constructor(private readonly limits: TransportLimits) {}

  /** Watches a socket that speaks HTTP/1.1 (the one its requests arrive on). */
  socket(socket: net.Socket): void {
    this.arm(socket);
    socket.once("close", () => {
      this.disarm(socket);
      this.timers.delete(socket);
    });
  }

  /** Sees every request of the server (HTTP/2 compatibility requests are ignored). */
  readonly request = (req: http.IncomingMessage | http2.Http2ServerRequest, res: unknown): void => {
    if ("stream" in req) return;
    const socket = req.socket;
    const timers = this.timers.get(socket);
    if (timers === undefined) return;
    clearTimeout(timers.headers);
    timers.headers = undefined;
    let ended = req.complete;
    const onEnd = () => {
      ended = true;
      clearTimeout(timers.request);
    };
    if (ended) onEnd();
    else req.once("end", onEnd);
    (res as http.ServerResponse).once("finish", () => {
      if (socket.destroyed) return;
      if (ended) this.arm(socket);
      else req.once("end", () => this.arm(socket));
    });
  };

  private arm(socket: net.Socket): void {
    this.disarm(socket);
    this.timers.set(socket, {
      headers: setTimeout(() => {
        if (socket.writable) socket.end(REQUEST_TIMEOUT);
        socket.destroySoon();
      }, this.limits.headersTimeoutMs),
      request: setTimeout(() => socket.destroy(), this.limits.requestTimeoutMs),
    });
  }

  private disarm(socket: net.Socket): void {
    const timers = this.timers.get(socket);
    clearTimeout(timers?.headers);
    clearTimeout(timers?.request);
  }
}

/**
 * An HTTP/2 stream's body must have arrived `requestTimeoutMs` after the
 * stream opened, or the stream is reset (CANCEL): HTTP/1.1's request deadline
 * for streams, which a client can otherwise keep open by dripping data.
 * A client stream (`idle`: ImportCredentials may send for minutes) is reset
 * after `requestTimeoutMs` without activity instead. It can only drip once
 * authenticated: an unauthenticated stream is answered and reset before its
 * body is read, and what an authenticated one holds is one message at a time
 * (the body budget counts it; rpc-handler.ts).
 */
export function streamDeadline(
  stream: http2.ServerHttp2Stream,
  limits: TransportLimits,
  idle = false,
): void {
  const cancel = () => {
    if (!stream.closed) stream.close(http2.constants.NGHTTP2_CANCEL);
  };
  if (idle) {
    stream.setTimeout(limits.requestTimeoutMs, cancel);
    return;
  }
  const timer = setTimeout(cancel, limits.requestTimeoutMs);
  const clear = () => clearTimeout(timer);
  stream.once("end", clear);
  stream.once("close", clear);
}

/**
 * Counts each peer address's open connections; one over `max` is refused
 * (threat: one host holding every socket and session).
 */
export class PeerConnections {
  private readonly open = new Map<string, number>();

  constructor(private readonly max: number) {}

  /** Counts `socket` until it closes and returns true, or returns false when its peer is at the cap. */
  admit(socket: net.Socket): boolean {
    const peer = socket.remoteAddress ?? "unknown";
    const count = this.open.get(peer) ?? 0;
    if (count >= this.max) return false;
    this.open.set(peer, count + 1);
    socket.once("close", () => {
      const left = (this.open.get(peer) ?? 1) - 1;
      if (left === 0) this.open.delete(peer);
      else this.open.set(peer, left);
    });
    return true;
  }
}
