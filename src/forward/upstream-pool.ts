/**
 * The forward's HTTP client: one undici Pool per (scheme, host, port,
 * address), keep-alive, LRU-bounded. Every connection goes to the address
 * resolveTarget checked (the connector swaps the host name for it), while the
 * Host header and TLS SNI/certificate check use the name: no second lookup.
 */
import { isIP } from "node:net";
import type { Readable } from "node:stream";
import { pipeline } from "node:stream/promises";
import { createBrotliDecompress, createGunzip, createInflate } from "node:zlib";
import { buildConnector, type Dispatcher, Pool } from "undici";
import { DomainError } from "../core/errors.js";
import { dropHopByHop } from "./hop-by-hop.js";

export interface UpstreamRequest {
  scheme: "http" | "https";
  /** The host name as checked (lower case, no trailing dot): Host header and TLS SNI (no SNI for an IP literal). */
  host: string;
  port: number;
  /** The address resolveTarget returned: the connection goes there, with no second lookup. */
  address: string;
  method: string;
  /** Path and query exactly as they go on the wire ("/a%20b?x=1"); not re-encoded. */
  path: string;
  /** Final headers (the caller's + the broker's). The pool adds Host (host[:port], port omitted when default) and content-length; it sends nothing else of its own. */
  headers: readonly [string, string][];
  body: Uint8Array;
  /** The whole exchange, connect to last body byte. */
  timeoutMs: number;
  maxResponseBytes: number;
}

export interface UpstreamResponse {
  status: number;
  /** Names lower case, in the upstream's order, repeats kept; hop-by-hop dropped. */
  headers: [string, string][];
  body: Buffer;
}

export interface UpstreamPoolOptions {
  /** Pools kept (one per scheme, host, port and address); the least recently used is closed beyond it. Default 256. */
  maxPools?: number;
  /** Default 10000; a request's timeoutMs caps it. */
  connectTimeoutMs?: number;
  /** Trusted CAs (PEM) instead of the default store: for tests. The daemon uses the default store (NODE_EXTRA_CA_CERTS adds to it). */
  ca?: string;
}

/** Headers the pool writes itself; a caller's copy is dropped. `expect` is dropped: the body goes at once. */
const POOL_OWNED = new Set(["host", "content-length", "expect"]);

type Decoder = () => NodeJS.ReadWriteStream;
const DECODERS: Readonly<Record<string, Decoder>> = {
  gzip: createGunzip,
  "x-gzip": createGunzip,
  deflate: createInflate,
  br: createBrotliDecompress,
};

class Deadline extends Error {}

export class UpstreamPool {
  private readonly pools = new Map<string, Pool>();
  private readonly maxPools: number;
  private readonly connectTimeoutMs: number;
  private readonly ca: string | undefined;
  private closed = false;

  constructor(options: UpstreamPoolOptions = {}) {
    this.maxPools = options.maxPools ?? 256;
    this.connectTimeoutMs = options.connectTimeoutMs ?? 10_000;
    this.ca = options.ca;
  }

  async send(req: UpstreamRequest): Promise<UpstreamResponse> {
    if (this.closed) throw new DomainError("unavailable", "the daemon is shutting down");
    const deadline = new AbortController();
    const timer = setTimeout(() => deadline.abort(new Deadline()), req.timeoutMs);
    try {
      const res = await this.poolFor(req).request({
        method: req.method as Dispatcher.HttpMethod,
        path: req.path,
        headers: requestHeaders(req.headers),
        body: req.body.length > 0 ? req.body : null,
        signal: deadline.signal,
        headersTimeout: req.timeoutMs,
        bodyTimeout: req.timeoutMs,
        responseHeaders: "raw",
      });
      const headers = responseHeaders(res.headers);
      const decoders = contentDecoders(headers);
      if (decoders === undefined) {
        res.body.on("error", () => {}).destroy();
        throw new DomainError(
          "failed_precondition",
          "the upstream's response has a content-encoding the broker cannot decode (gzip, deflate and br can be)",
        );
      }
      const body = await readCapped(res.body, decoders, req.maxResponseBytes);
      // undici frees the connection for the next request on setImmediate after
      // the last byte; waiting for it lets a caller's next send reuse it.
      await new Promise((resolve) => setImmediate(resolve));
      const kept =
        decoders.length > 0
          ? headers.filter(([n]) => n !== "content-encoding" && n !== "content-length")
          : headers;
      return { status: res.statusCode, headers: kept, body };
    } catch (err) {
      throw asDomainError(err, deadline.signal);
    } finally {
      clearTimeout(timer);
    }
  }

  /** Closes every pool and its connections (daemon shutdown); later sends fail. */
  async close(): Promise<void> {
    this.closed = true;
    const pools = [...this.pools.values()];
    this.pools.clear();
    await Promise.all(pools.map((p) => p.destroy()));
  }

  private poolFor(req: UpstreamRequest): Pool {
    const key = [req.scheme, req.host, req.port, req.address].join(" ");
    const existing = this.pools.get(key);
    if (existing !== undefined) {
      this.pools.delete(key);
      this.pools.set(key, existing);
      return existing;
    }
    const pool = this.newPool(req);
    this.pools.set(key, pool);
    for (const [oldKey, old] of this.pools) {
      if (this.pools.size <= this.maxPools) break;
      this.pools.delete(oldKey);
      // In-flight requests on it finish; then its connections close.
      old.close().catch(() => {});
    }
    return pool;
  }

  private newPool(req: UpstreamRequest): Pool {
    const bare = req.host.startsWith("[") ? req.host.slice(1, -1) : req.host;
    const urlHost = isIP(bare) === 6 ? `[${bare}]` : bare;
    const base = buildConnector({
      timeout: Math.min(this.connectTimeoutMs, req.timeoutMs),
      ...(this.ca === undefined ? {} : { ca: this.ca }),
    });
    const address = req.address;
    const servername = isIP(bare) === 0 ? bare : undefined;
    return new Pool(`${req.scheme}://${urlHost}:${req.port}`, {
      // The checked address, never the name: net/tls.connect to an IP literal does no lookup.
      connect: (opts, callback) => base({ ...opts, hostname: address, servername }, callback),
    });
  }
}

function requestHeaders(headers: readonly [string, string][]): string[] {
  const flat: string[] = [];
  for (const [name, value] of dropHopByHop(headers)) {
    if (!POOL_OWNED.has(name.toLowerCase())) flat.push(name, value);
  }
  return flat;
}

function responseHeaders(raw: unknown): [string, string][] {
  const list = Array.isArray(raw) ? (raw as (Buffer | string)[]) : [];
  const pairs: [string, string][] = [];
  for (let i = 0; i + 1 < list.length; i += 2) {
    pairs.push([String(list[i]).toLowerCase(), Buffer.from(list[i + 1] ?? "").toString("latin1")]);
  }
  return dropHopByHop(pairs);
}

/** The decoders to apply, last coding first; [] for none or identity; undefined for a coding not supported. */
function contentDecoders(headers: readonly [string, string][]): Decoder[] | undefined {
  const codings = headers
    .filter(([n]) => n === "content-encoding")
    .flatMap(([, v]) => v.split(","))
    .map((c) => c.trim().toLowerCase())
    .filter((c) => c !== "" && c !== "identity");
  const decoders: Decoder[] = [];
  for (const coding of codings.reverse()) {
    const decoder = DECODERS[coding];
    if (decoder === undefined) return undefined;
    decoders.push(decoder);
  }
  return decoders;
}

/** Reads the body chunk by chunk; the wire size and the decoded size are each capped. */
async function readCapped(body: Readable, decoders: Decoder[], cap: number): Promise<Buffer> {
  const chunks: Buffer[] = [];
  let size = 0;
  if (decoders.length === 0) {
    // No decoding: one loop, no pipeline (most answers; a pipeline per answer costs ~5% of a forward).
    // A throw here ends the iteration, which destroys the body and drops its connection.
    for await (const chunk of body as AsyncIterable<Buffer>) {
      size += chunk.length;
      if (size > cap) throw tooLarge();
      chunks.push(chunk);
    }
    return Buffer.concat(chunks, size);
  }
  const counted = (limit: number) =>
    async function* (source: AsyncIterable<Buffer>) {
      let seen = 0;
      for await (const chunk of source) {
        seen += chunk.length;
        if (seen > limit) throw tooLarge();
        yield chunk;
      }
    };
  // pipeline's overloads do not type a variable number of stages.
  const run = pipeline as (...stages: unknown[]) => Promise<void>;
  await run(
    body,
    counted(cap),
    ...decoders.map((d) => d()),
    async (decoded: AsyncIterable<Buffer>) => {
      for await (const chunk of decoded) {
        size += chunk.length;
        if (size > cap) throw tooLarge();
        chunks.push(chunk);
      }
    },
  );
  return Buffer.concat(chunks, size);
}

function tooLarge(): DomainError {
  return new DomainError(
    "resource_exhausted",
    "the upstream's response body is larger than the forward's response cap",
  );
}

const UNTRUSTED = new Set([
  "UNABLE_TO_VERIFY_LEAF_SIGNATURE",
  "UNABLE_TO_GET_ISSUER_CERT",
  "UNABLE_TO_GET_ISSUER_CERT_LOCALLY",
  "SELF_SIGNED_CERT_IN_CHAIN",
  "DEPTH_ZERO_SELF_SIGNED_CERT",
  "CERT_UNTRUSTED",
  "CERT_REJECTED",
  "CERT_SIGNATURE_FAILURE",
  "INVALID_CA",
]);

/** Every failure as a DomainError whose message names what went wrong, never the URL. */
function asDomainError(err: unknown, deadline: AbortSignal): DomainError {
  if (err instanceof DomainError) return err;
  const code = errorCode(err);
  const fail = (c: "unavailable" | "invalid_argument", message: string) =>
    new DomainError(c, message, { cause: err });
  if (deadline.aborted || code === "UND_ERR_HEADERS_TIMEOUT" || code === "UND_ERR_BODY_TIMEOUT") {
    return new DomainError(
      "deadline_exceeded",
      "the upstream did not answer within the forward's timeout",
      {
        cause: err,
      },
    );
  }
  if (code === "UND_ERR_CONNECT_TIMEOUT") {
    return new DomainError("deadline_exceeded", "the connection to the upstream timed out", {
      cause: err,
    });
  }
  if (code === "ECONNREFUSED") return fail("unavailable", "the upstream refused the connection");
  if (code === "ECONNRESET" || code === "EPIPE" || code === "UND_ERR_SOCKET") {
    return fail("unavailable", "the upstream closed the connection before answering");
  }
  if (code === "EHOSTUNREACH" || code === "ENETUNREACH" || code === "EADDRNOTAVAIL") {
    return fail("unavailable", "the upstream's address is unreachable");
  }
  if (UNTRUSTED.has(code))
    return fail("unavailable", "the upstream's TLS certificate is not trusted");
  if (code === "ERR_TLS_CERT_ALTNAME_INVALID") {
    return fail("unavailable", "the upstream's TLS certificate does not name the URL's host");
  }
  if (code === "CERT_HAS_EXPIRED" || code === "CERT_NOT_YET_VALID") {
    return fail("unavailable", "the upstream's TLS certificate is outside its validity period");
  }
  if (code.startsWith("ERR_SSL_") || code === "EPROTO") {
    return fail("unavailable", "the TLS handshake with the upstream failed");
  }
  if (code.startsWith("HPE_") || code === "UND_ERR_INFO") {
    return fail("unavailable", "the upstream's response is not valid HTTP");
  }
  if (
    code.startsWith("Z_") ||
    code.startsWith("ERR_BROTLI") ||
    code === "ERR__ERROR_FORMAT_PADDING_1"
  ) {
    return fail(
      "unavailable",
      "the upstream's response body does not decode as its content-encoding says",
    );
  }
  if (code === "UND_ERR_INVALID_ARG" || code === "UND_ERR_NOT_SUPPORTED") {
    return fail("invalid_argument", "the request's method, path or headers are not valid HTTP");
  }
  return fail("unavailable", "the request to the upstream failed");
}

function errorCode(err: unknown): string {
  if (typeof err !== "object" || err === null || !("code" in err)) return "";
  return typeof err.code === "string" ? err.code : "";
}
