import http2 from "node:http2";
import type { Socket } from "node:net";
import type { TLSSocket } from "node:tls";
import { Http1Deadlines, PeerConnections } from "../http/deadlines.js";
import {
  applyServerLimits,
  DEFAULT_TRANSPORT_LIMITS,
  http1Options,
  http2Options,
} from "../http/limits.js";
import { ConnectionDrain } from "./connection-drain.js";
import { type Listener, type ListenOptions, listenOn, routeStreams } from "./listener.js";

export interface TlsListenOptions extends ListenOptions {
  /** PEM: the server certificate, then any intermediates. */
  cert: Buffer;
  /** PEM: its private key. */
  key: Buffer;
  /** PEM: the CAs a client certificate must chain to. Set: mutual TLS. */
  clientCa: Buffer | undefined;
}

/**
 * The API port over TLS: HTTP/2 (gRPC, Connect, gRPC-Web) and HTTP/1.1
 * (Connect, gRPC-Web, curl), chosen by ALPN, so no preface sniffing; a client
 * that offers no ALPN gets HTTP/1.1. With `clientCa` it is mutual TLS: a
 * client without a certificate chaining to one of those CAs fails the
 * handshake and never reaches a handler (threat: anyone who can reach the
 * port probing the API). Closing drains like the cleartext listener.
 */
export async function listenTls(opts: TlsListenOptions): Promise<Listener> {
  const limits = opts.limits ?? DEFAULT_TRANSPORT_LIMITS;
  const drain = new ConnectionDrain(opts.handler);
  const deadlines = new Http1Deadlines(limits);
  const peers = new PeerConnections(limits.maxConnectionsPerPeer);
  const mutual = opts.clientCa !== undefined;
  const server = http2.createSecureServer(
    {
      ...http1Options(limits),
      ...http2Options(limits),
      handshakeTimeout: limits.headersTimeoutMs,
      cert: opts.cert,
      key: opts.key,
      ...(mutual ? { ca: opts.clientCa } : {}),
      requestCert: mutual,
      rejectUnauthorized: mutual,
      allowHTTP1: true,
      ALPNProtocols: ["h2", "http/1.1"],
    },
    drain.track,
  );
  applyServerLimits(server);
  server.prependListener("request", deadlines.request);
  routeStreams(server, opts, drain, limits);
  // The TCP socket from the start (a handshake may hang), and the TLS socket
  // over it once secure: HTTP/1.1 requests arrive on the latter.
  server.on("connection", (socket: Socket) => {
    if (peers.admit(socket)) drain.socket(socket);
    else socket.destroy();
  });
  server.on("secureConnection", (socket: TLSSocket) => {
    drain.socket(socket);
    if (socket.alpnProtocol !== "h2") {
      drain.http1(socket);
      deadlines.socket(socket);
    }
  });
  server.on("session", (session) => drain.session(session));
  return listenOn(server, opts, "https", drain);
}
