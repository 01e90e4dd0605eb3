import type http2 from "node:http2";
import type net from "node:net";
import type { RequestHandler } from "../http/request-handler.js";

/**
 * The bookkeeping behind a listener's graceful close, shared by the cleartext
 * and the TLS listener: which sockets are open, which HTTP/1.1 connections
 * are busy, which HTTP/2 sessions are live, and how many requests are in
 * flight. The listener reports connections as its server sees them; `close`
 * stops the server, sends GOAWAY to every HTTP/2 session, closes idle
 * HTTP/1.1 connections (busy ones after their response), waits for in-flight
 * requests and then destroys whatever is left once `graceMs` has passed.
 */
export class ConnectionDrain {
  private readonly sockets = new Set<net.Socket>();
  private readonly h1Busy = new Map<net.Socket, number>();
  private readonly sessions = new Set<http2.ServerHttp2Session>();
  private draining = false;
  private inflight = 0;
  private settle = () => {};

  constructor(private readonly handler: RequestHandler) {}

  /** `handler`, counting each request until its response closes: serve with this. */
  readonly track: RequestHandler = (req, res) => {
    this.inflight++;
    const socket = "stream" in req ? undefined : req.socket;
    if (socket !== undefined) {
      this.h1Busy.set(socket, (this.h1Busy.get(socket) ?? 0) + 1);
      if (this.draining) res.setHeader("connection", "close");
    }
    res.once("close", () => {
      this.inflight--;
      if (socket !== undefined) {
        const busy = (this.h1Busy.get(socket) ?? 1) - 1;
        this.h1Busy.set(socket, busy);
        if (this.draining && busy === 0) socket.destroySoon();
      }
      this.settle();
    });
    this.handler(req, res);
  };

  /** An HTTP/2 stream answered without a compatibility request (the fast unary path): in flight until it closes. */
  readonly trackStream = (stream: http2.ServerHttp2Stream): void => {
    this.inflight++;
    stream.once("close", () => {
      this.inflight--;
      this.settle();
    });
  };

  /** A socket (TCP, or the TLS socket over one): open until it closes, destroyed at the cut-off. */
  socket(socket: net.Socket): void {
    this.sockets.add(socket);
    socket.once("close", () => {
      this.sockets.delete(socket);
      this.h1Busy.delete(socket);
      this.settle();
    });
    socket.on("error", () => socket.destroy());
  }

  /** A socket that speaks HTTP/1.1 (the one its requests arrive on): closed when idle while draining. */
  http1(socket: net.Socket): void {
    this.h1Busy.set(socket, 0);
  }

  /** An HTTP/2 session: GOAWAY when draining, also when it opens during the drain. */
  session(session: http2.ServerHttp2Session): void {
    this.sessions.add(session);
    session.once("close", () => this.sessions.delete(session));
    if (this.draining) session.close();
  }

  /** Stops `server` accepting and drains as described above; resolves when every socket is closed. */
  async close(server: net.Server, graceMs: number): Promise<void> {
    this.draining = true;
    server.close();
    for (const session of this.sessions) session.close();
    for (const [socket, busy] of this.h1Busy) if (busy === 0) socket.destroySoon();
    const drained = new Promise<void>((resolve) => {
      this.settle = () => {
        if (this.inflight === 0 && this.sockets.size === 0) resolve();
      };
      this.settle();
    });
    let timer: NodeJS.Timeout | undefined;
    const timedOut = new Promise<void>((resolve) => {
      timer = setTimeout(resolve, graceMs);
    });
    await Promise.race([drained, timedOut]);
    clearTimeout(timer);
    for (const socket of this.sockets) socket.destroy();
  }
}
