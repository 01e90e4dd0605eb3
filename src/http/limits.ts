import type http from "node:http";
import type http2 from "node:http2";
import { DomainError } from "../core/errors.js";

/**
 * Every HTTP listener's limits, set explicitly (docs/SECURITY.md lists them;
 * test/e2e/limits.test.ts and transport-limits.test.ts prove them). Threat: a
 * client that holds connections, streams or memory without finishing requests.
 */
export const LIMITS = {
  /** Largest request message, also after decompression (Connect's readMaxBytes). */
  maxMessageBytes: 1024 * 1024,
  /** Longest deadline a client may ask for; longer is invalid_argument (a 120 s ForwardRequest fits). */
  maxTimeoutMs: 130_000,
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

/**
 * The API port's transport limits that `--transport-limits` may change
 * (tests set short deadlines); the defaults are LIMITS'.
 */
export interface TransportLimits {
  /** A request's headers must arrive within this of its connection opening (or its previous response ending). */
  headersTimeoutMs: number;
  /** A request's body (HTTP/1.1: the whole request; HTTP/2: the stream's body) must arrive within this. */
  requestTimeoutMs: number;
  /** HTTP/2 streams a session may have open at once (SETTINGS_MAX_CONCURRENT_STREAMS). */
  maxConcurrentStreams: number;
  /** Connections (HTTP/1.1 or HTTP/2 sessions) open at once from one peer address; more are closed at once. */
  maxConnectionsPerPeer: number;
  /** Request body bytes held by all requests together; beyond, a request is resource_exhausted. */
  maxInflightBodyBytes: number;
}

export const DEFAULT_TRANSPORT_LIMITS: TransportLimits = {
  headersTimeoutMs: LIMITS.headersTimeoutMs,
  requestTimeoutMs: LIMITS.requestTimeoutMs,
  maxConcurrentStreams: LIMITS.maxConcurrentStreams,
  maxConnectionsPerPeer: 64,
  maxInflightBodyBytes: 64 * 1024 * 1024,
};

/** `--transport-limits` keys, each a TransportLimits field and its largest value. */
const LIMIT_KEYS: Record<string, { field: keyof TransportLimits; max: number }> = {
  "headers-timeout-ms": { field: "headersTimeoutMs", max: 600_000 },
  "request-timeout-ms": { field: "requestTimeoutMs", max: 3_600_000 },
  "streams-per-session": { field: "maxConcurrentStreams", max: 10_000 },
  "connections-per-peer": { field: "maxConnectionsPerPeer", max: 1_000_000 },
  "inflight-body-bytes": { field: "maxInflightBodyBytes", max: 16 * 1024 * 1024 * 1024 },
};

/**
 * `--transport-limits`: comma-separated `key=N` (keys above, N a positive
 * integer); unnamed limits keep their defaults. Errors name the rule, not the value.
 */
export function parseTransportLimits(text: string | undefined): TransportLimits {
  const limits = { ...DEFAULT_TRANSPORT_LIMITS };
  if (text === undefined || text.trim() === "") return limits;
  for (const item of text.split(",")) {
    const [key = "", value = "", ...rest] = item.trim().split("=");
    const spec = LIMIT_KEYS[key];
    if (spec === undefined || rest.length > 0) {
      throw new DomainError(
        "invalid_argument",
        `--transport-limits: each item is key=N with key one of ${Object.keys(LIMIT_KEYS).join(", ")}`,
      );
    }
    const n = Number(value);
    if (!/^\d+$/.test(value) || n < 1 || n > spec.max) {
      throw new DomainError(
        "invalid_argument",
        `--transport-limits: ${key} is an integer, 1-${spec.max}`,
      );
    }
    limits[spec.field] = n;
  }
  // The headers are part of the request: node refuses the reverse at listen time.
  if (limits.headersTimeoutMs > limits.requestTimeoutMs) {
    throw new DomainError(
      "invalid_argument",
      "--transport-limits: headers-timeout-ms is at most request-timeout-ms",
    );
  }
  return limits;
}

/** Options for http.createServer. */
export const HTTP1_OPTIONS: http.ServerOptions = {
  maxHeaderSize: LIMITS.maxHeaderBytes,
  headersTimeout: LIMITS.headersTimeoutMs,
  requestTimeout: LIMITS.requestTimeoutMs,
  keepAliveTimeout: LIMITS.keepAliveTimeoutMs,
};

/** Options for the API port's http.createServer, with `limits`' deadlines. */
export function http1Options(limits: TransportLimits): http.ServerOptions {
  return {
    ...HTTP1_OPTIONS,
    headersTimeout: limits.headersTimeoutMs,
    requestTimeout: limits.requestTimeoutMs,
  };
}

/** Options for http2.createServer / createSecureServer. */
export function http2Options(limits: TransportLimits): http2.ServerOptions {
  return {
    maxHeaderListPairs: LIMITS.maxHeaderCount,
    settings: {
      maxConcurrentStreams: limits.maxConcurrentStreams,
      maxHeaderListSize: LIMITS.maxHeaderBytes,
    },
  };
}

/** Applies the limits a Node server takes as properties rather than options. */
export function applyServerLimits(
  server: http.Server | http2.Http2Server | http2.Http2SecureServer,
): void {
  if ("maxHeadersCount" in server) server.maxHeadersCount = LIMITS.maxHeaderCount;
  server.setTimeout(LIMITS.idleTimeoutMs);
}
