/**
 * An EC2 instance metadata service (IMDSv2) on a local port, so unmodified AWS
 * SDKs and the AWS CLI pick up the bound credential's short-lived session
 * (AWS_EC2_METADATA_SERVICE_ENDPOINT=http://127.0.0.1:PORT/). It answers the
 * paths SDKs read (token, role listing, role credentials) and a few identity
 * paths tools probe, from memory.
 */
import { randomBytes } from "node:crypto";
import http from "node:http";
import type { Socket } from "node:net";
import { DomainError, isDomainError } from "../../core/errors.js";
import type { MintedSession } from "../../providers/provider.js";
import { forwardedGuard, requestGuards } from "../guards.js";
import { listenMetadata } from "../listen.js";
import { StampCache, stamp } from "../stamp.js";
import { MAX_TOKEN_TTL_SECONDS, TokenTable } from "./token-table.js";

/** A session an instance is handed (the provider mints it). */
export type TaskCredentials = MintedSession;

export interface ImdsServerOptions {
  /** Listen address; port 0 picks a free port. */
  host: string;
  port: number;
  /** The role name IMDS lists (the bound credential's name). */
  roleName: string;
  /**
   * The bound credential's current session; may throw DomainError: not_found,
   * permission_denied, failed_precondition → 404 (an instance without a usable
   * role), unavailable → 503; anything else → 500. Called per request; it is
   * fast (cached).
   */
  credentials(): Promise<TaskCredentials>;
  /** IMDSv1 (no token) allowed. */
  allowV1: boolean;
  /** Injected clock: token expiry and LastUpdated. */
  now(): Date;
  /** Bound on live session tokens; default 4096. Full: token PUTs get 503, no token is evicted. */
  maxTokens?: number;
  /** Bound on live session tokens issued to one peer address; default 1024. */
  maxTokensPerPeer?: number;
  log?: { warn(obj: object, msg: string): void };
  /**
   * Told before every credentials answer (and refusal) is sent, which waits
   * for it; when it throws or rejects, the answer is 503 and no credentials
   * go out (fail-closed audit).
   */
  audit?(event: {
    route: string;
    peer: string | undefined;
    decision: "allow" | "deny" | "error";
    reason?: string;
  }): void | Promise<void>;
}

export interface ImdsServer {
  /** http://host:port (IPv6 in brackets) */
  readonly url: string;
  /** Stops listening, destroys every connection, resolves when the server is closed. */
  close(): Promise<void>;
}

/** Host names SDKs use for IMDS (IPv4 and IPv6 endpoints), allowed in Host besides our own address. */
export const IMDS_HOSTS: readonly string[] = ["169.254.169.254", "[fd00:ec2::254]"];

const TOKEN_PATH = "/latest/api/token";
const ROLES_PATH = "/latest/meta-data/iam/security-credentials";
const TTL_HEADER = "x-aws-ec2-metadata-token-ttl-seconds";
const TOKEN_HEADER = "x-aws-ec2-metadata-token";
const MAX_BODY_BYTES = 4096;
const ROLE_NAME = /^[A-Za-z0-9+=,.@_-]{1,128}$/;
const ACCOUNT_ID = "000000000000";
const REGION = "us-east-1";
const ZONE = "us-east-1a";
const TEXT = "text/plain";
const JSON_TYPE = "application/json";
const READ_METHODS = "GET, HEAD";

/** Paths whose answer needs the session (and fails as the session fails). */
type SessionRoute = "roles" | "credentials" | "info";
type Route = { kind: "static"; type: string; body: Buffer } | { kind: SessionRoute };

/**
 * Starts the IMDS listener. Security (see guards.ts for each threat): every
 * request passes the loopback-peer, Host allow-list and no-browser guards;
 * token PUTs carrying X-Forwarded-For get 403; GET/HEAD need a live token
 * unless `allowV1`; bodies are ignored and capped (413); the secret appears
 * only in the role-credentials JSON, never in an error or a log.
 */
export async function startImdsServer(opts: ImdsServerOptions): Promise<ImdsServer> {
  if (!ROLE_NAME.test(opts.roleName)) {
    throw new DomainError("invalid_argument", "roleName: must be 1-128 of A-Z a-z 0-9 +=,.@_-");
  }
  const tokens = new TokenTable(opts.maxTokens ?? 4096, undefined, opts.maxTokensPerPeer ?? 1024);
  const listener = await listenMetadata(opts.host, opts.port);
  const { server, bound } = listener;
  const guard = requestGuards(bound, IMDS_HOSTS);
  const routes = buildRoutes(opts.roleName, opts.now());
  const log = opts.log;

  const refuse = (res: http.ServerResponse, socket: Socket, reason: string): void => {
    log?.warn({ reason, remoteAddress: socket.remoteAddress }, "imds request refused");
    send(res, 403, reason);
  };

  const authorized = (req: http.IncomingMessage): boolean => {
    const token = req.headers[TOKEN_HEADER];
    if (token === undefined) return opts.allowV1;
    return typeof token === "string" && tokens.valid(token, opts.now());
  };

  const issueToken = (req: http.IncomingMessage, res: http.ServerResponse) => {
    const forwarded = forwardedGuard(req.headers, req.socket);
    if (forwarded !== undefined) return refuse(res, req.socket, forwarded);
    const ttl = parseTtl(req.headers[TTL_HEADER]);
    if (ttl === undefined) return send(res, 400, "Bad Request");
    let token: string;
    try {
      token = tokens.issue(ttl, opts.now(), req.socket.remoteAddress ?? "");
    } catch (err) {
      if (!isDomainError(err, "resource_exhausted")) throw err;
      // Live tokens are never evicted to make room: a new one waits for some to expire.
      // Not logged: a flood of PUTs would become a flood of log lines.
      return send(res, 503, "Service Unavailable", TEXT, { "retry-after": "1" });
    }
    res.writeHead(200, {
      "content-type": TEXT,
      "content-length": token.length,
      [TTL_HEADER]: String(ttl),
    });
    res.end(token);
  };

  /** The answers that depend on the bound credential's session: 404/503/500 when it is unusable. */
  const answerWithSession = async (
    kind: SessionRoute,
    req: http.IncomingMessage,
    res: http.ServerResponse,
  ): Promise<void> => {
    let body: string;
    const audited = async (
      decision: "allow" | "deny" | "error",
      reason?: string,
    ): Promise<boolean> => {
      if (kind !== "credentials" || opts.audit === undefined) return true;
      try {
        await opts.audit({
          // The path only: a query is the caller's and is not recorded.
          route: `${req.method} ${(req.url ?? "/").split("?")[0]}`,
          peer: req.socket.remoteAddress,
          decision,
          reason,
        });
        return true;
      } catch {
        send(res, 503, "Service Unavailable");
        return false;
      }
    };
    try {
      const session = await opts.credentials();
      body = sessionBody(kind, session, opts.now());
    } catch (err) {
      const status = failureStatus(err);
      const code = isDomainError(err) ? err.code : "internal";
      if (status !== 404) log?.warn({ status, code }, "imds credentials unavailable");
      if (!(await audited(status === 404 ? "deny" : "error", code))) return;
      return send(res, status, http.STATUS_CODES[status] ?? "Error");
    }
    if (!(await audited("allow"))) return;
    if (kind === "roles") return send(res, 200, body);
    send(res, 200, body, JSON_TYPE, { "cache-control": "no-store" });
  };

  /** Second-precision stamps, made once per second of the clock (and per session expiry). */
  const nowStamp = new StampCache();
  const expiryStamp = new StampCache();

  /** Role listing (text), instance profile or role credentials (JSON). */
  const sessionBody = (kind: SessionRoute, session: TaskCredentials, now: Date): string => {
    if (kind === "roles") return opts.roleName;
    if (kind === "info") {
      return JSON.stringify({ Code: "Success", LastUpdated: nowStamp.of(now), ...routes.profile });
    }
    return JSON.stringify({
      Code: "Success",
      LastUpdated: nowStamp.of(now),
      Type: "AWS-HMAC",
      AccessKeyId: session.accessKeyId,
      SecretAccessKey: session.secretAccessKey,
      Token: session.sessionToken,
      Expiration: expiryStamp.of(session.expiration),
    });
  };

  const dispatch = (req: http.IncomingMessage, res: http.ServerResponse) => {
    const url = req.url ?? "/";
    const query = url.indexOf("?");
    const path = query === -1 ? url : url.slice(0, query);
    const method = req.method;
    if (path === TOKEN_PATH) {
      if (method !== "PUT") return send(res, 405, "Method Not Allowed", TEXT, { allow: "PUT" });
      return issueToken(req, res);
    }
    const route = routes.byPath.get(path);
    const reading = method === "GET" || method === "HEAD";
    if (!reading) {
      if (route === undefined) return send(res, 404, "Not Found");
      return send(res, 405, "Method Not Allowed", TEXT, { allow: READ_METHODS });
    }
    if (!authorized(req)) return send(res, 401, "Unauthorized");
    if (route === undefined) return send(res, 404, "Not Found");
    if (route.kind === "static") return send(res, 200, route.body, route.type);
    void answerWithSession(route.kind, req, res);
  };

  server.on("request", (req: http.IncomingMessage, res: http.ServerResponse) => {
    const reason = guard(req.headers, req.socket);
    if (reason !== undefined) return refuse(res, req.socket, reason);
    const declared = req.headers["content-length"];
    if (declared !== undefined && !(Number(declared) <= MAX_BODY_BYTES)) {
      return send(res, 413, "Payload Too Large", TEXT, { connection: "close" });
    }
    if (req.headers["transfer-encoding"] === undefined) {
      req.resume();
      return dispatch(req, res);
    }
    // A chunked body of unknown length: drain it, counting, and answer at its end.
    let seen = 0;
    req.on("data", (chunk: Buffer) => {
      seen += chunk.length;
      if (seen > MAX_BODY_BYTES && !res.headersSent) {
        send(res, 413, "Payload Too Large", TEXT, { connection: "close" });
      }
    });
    req.once("end", () => {
      if (!res.headersSent) dispatch(req, res);
    });
  });

  return {
    url: listener.url,
    close: listener.close,
  };
}

/** The TTL header as an integer in 1–21600, else undefined (→ 400). */
function parseTtl(value: string | string[] | undefined): number | undefined {
  if (typeof value !== "string" || !/^[0-9]{1,5}$/.test(value)) return undefined;
  const ttl = Number(value);
  return ttl >= 1 && ttl <= MAX_TOKEN_TTL_SECONDS ? ttl : undefined;
}

/** The HTTP status for a failed credentials() call. */
function failureStatus(err: unknown): 404 | 503 | 500 {
  if (!isDomainError(err)) return 500;
  switch (err.code) {
    case "not_found":
    case "permission_denied":
    case "failed_precondition":
      return 404;
    case "unavailable":
      return 503;
    default:
      return 500;
  }
}

function send(
  res: http.ServerResponse,
  status: number,
  body: string | Buffer,
  type = TEXT,
  extra?: http.OutgoingHttpHeaders,
): void {
  res.writeHead(status, {
    "content-type": type,
    "content-length": Buffer.byteLength(body),
    ...extra,
  });
  res.end(body);
}

/** The paths served and their fixed answers; identifiers are random but stable per server. */
function buildRoutes(roleName: string, started: Date) {
  const instanceId = `i-${randomBytes(9).toString("hex").slice(0, 17)}`;
  const imageId = `ami-${randomBytes(9).toString("hex").slice(0, 17)}`;
  const profileId = `AIPA${base32(randomBytes(17))}`;
  const byPath = new Map<string, Route>();
  const text = (body: string): Route => ({ kind: "static", type: TEXT, body: Buffer.from(body) });
  const dir = (path: string, route: Route) => {
    byPath.set(path, route);
    byPath.set(`${path}/`, route);
  };
  dir("/latest/meta-data", text("iam/\ninstance-id\nplacement/"));
  dir("/latest/meta-data/iam", text("info\nsecurity-credentials/"));
  dir(ROLES_PATH, { kind: "roles" });
  byPath.set(`${ROLES_PATH}/${roleName}`, { kind: "credentials" });
  byPath.set("/latest/meta-data/iam/info", { kind: "info" });
  byPath.set("/latest/meta-data/instance-id", text(instanceId));
  dir("/latest/meta-data/placement", text("availability-zone\nregion"));
  byPath.set("/latest/meta-data/placement/availability-zone", text(ZONE));
  byPath.set("/latest/meta-data/placement/region", text(REGION));
  dir("/latest/dynamic", text("instance-identity/"));
  dir("/latest/dynamic/instance-identity", text("document"));
  const document = {
    accountId: ACCOUNT_ID,
    architecture: process.arch === "arm64" ? "arm64" : "x86_64",
    availabilityZone: ZONE,
    billingProducts: null,
    devpayProductCodes: null,
    marketplaceProductCodes: null,
    imageId,
    instanceId,
    instanceType: "t3.micro",
    kernelId: null,
    pendingTime: stamp(started),
    privateIp: "127.0.0.1",
    ramdiskId: null,
    region: REGION,
    version: "2017-09-30",
  };
  byPath.set("/latest/dynamic/instance-identity/document", {
    kind: "static",
    type: JSON_TYPE,
    body: Buffer.from(JSON.stringify(document, null, 2)),
  });
  const profile = {
    InstanceProfileArn: `arn:aws:iam::${ACCOUNT_ID}:instance-profile/${roleName}`,
    InstanceProfileId: profileId,
  };
  return { byPath, profile };
}

/** RFC 4648 base32 letters, one per byte (5 low bits): the shape of IAM unique ids. */
function base32(bytes: Buffer): string {
  const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
  let out = "";
  for (const b of bytes) out += alphabet[b & 31];
  return out;
}
