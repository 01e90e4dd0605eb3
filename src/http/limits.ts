import type http from "node:http";
import type http2 from "node:http2";

/**
 * Every HTTP listener's limits, set explicitly (docs/SECURITY.md lists them;
 * test/e2e/limits.test.ts proves them). Threat: a client that holds
 * connections, streams or memory without finishing requests.
 */
export const LIMITS = {
  /** Largest request message, also after decompression (Connect's readMaxBytes). */
  maxMessageBytes: 1024 * 1024,
  /** Longest deadline a client may ask for; longer is invalid_argument. */
  maxTimeoutMs: 60_000,
  /** HTTP/2 streams a connection may have open at once. */
  maxConcurrentStreams: 256,
  /** Request header block, bytes (HTTP/1.1 and HTTP/2). */
  maxHeaderBytes: 16 * 1024,
  /** Request headers, count. */
  maxHeaderCount: 100,
  /** All of a request's headers must arrive within this. */
  headersTimeoutMs: 10_000,
  /** A whole HTTP/1.1 request must arrive within this. */
  requestTimeoutMs: 60_000,
  /** An idle keep-alive connection (HTTP/1.1) is closed after this. */
  keepAliveTimeoutMs: 5_000,
  /** An idle HTTP/2 session (no open stream, no frames) is closed after this. */
  idleTimeoutMs: 120_000,
} as const;

/** Options for http.createServer. */
export const HTTP1_OPTIONS: http.ServerOptions = {
  maxHeaderSize: LIMITS.maxHeaderBytes,
  headersTimeout: LIMITS.headersTimeoutMs,
  requestTimeout: LIMITS.requestTimeoutMs,
  keepAliveTimeout: LIMITS.keepAliveTimeoutMs,
};

/** Options for http2.createServer / createSecureServer. */
export const HTTP2_OPTIONS: http2.ServerOptions = {
  maxHeaderListPairs: LIMITS.maxHeaderCount,
  settings: {
    maxConcurrentStreams: LIMITS.maxConcurrentStreams,
    maxHeaderListSize: LIMITS.maxHeaderBytes,
  },
};

/** Applies the limits a Node server takes as properties rather than options. */
export function applyServerLimits(
  server: http.Server | http2.Http2Server | http2.Http2SecureServer,
): void {
  if ("maxHeadersCount" in server) server.maxHeadersCount = LIMITS.maxHeaderCount;
  server.setTimeout(LIMITS.idleTimeoutMs);
}
