/**
 * A small, real STS for tests: an HTTP server on 127.0.0.1 that speaks the
 * STS query protocol (form-encoded POST, or GET with the parameters in the
 * query string) the way @aws-sdk/client-sts talks to it, answers with the XML
 * shapes the SDK parses, and verifies every request's SigV4 signature with its
 * own canonicalisation (node:crypto, independent of credbroker's signer).
 *
 * It knows access keys (addKey) and roles (addRole); the sessions it issues
 * (AssumeRole, GetSessionToken, GetFederationToken) become keys it knows, so
 * a later call signed with them verifies. setMode makes it misbehave (down,
 * refused, slow, or a given STS error) until set back to "ok"; count() says
 * how many requests for an action reached it, whatever the mode did to them.
 */
import { createHash, createHmac, randomBytes, randomUUID, timingSafeEqual } from "node:crypto";
import { createServer, type IncomingMessage, type ServerResponse } from "node:http";
import type { AddressInfo, Socket } from "node:net";

export interface StsCall {
  action: string;
  /** Every parameter as received (Action and Version included), body over query string. */
  params: Record<string, string>;
  accessKeyId: string;
  sessionToken?: string;
  /** The region of the signature's credential scope. */
  region: string;
  at: Date;
}

export interface StsRejection {
  /** `Code: message`, as sent back (or `down` for a dropped connection). */
  reason: string;
  /** The STS error code sent back (`down` when the socket was closed instead). */
  code: string;
  at: Date;
}

/**
 * - down: each request is read, then its connection reset (no answer);
 * - refused: the listener is closed, so connections are refused; the port
 *   is kept, and the next other mode listens on it again;
 * - slow: each answer waits `ms` first;
 * - error: each signed request gets this STS error (status from the code's
 *   usual one, e.g. Throttling 400, ServiceUnavailable 503, unless given).
 */
export type StsMode =
  | { kind: "ok" }
  | { kind: "down" }
  | { kind: "refused" }
  | { kind: "slow"; ms: number }
  | { kind: "error"; code: string; message: string; status?: number };

export interface StsKey {
  accessKeyId: string;
  secretAccessKey: string;
  sessionToken?: string;
  arn: string;
  account: string;
}

export interface StsRole {
  arn: string;
  externalId?: string;
  /** Caller ARNs allowed to assume it; default: everyone. */
  trusted?: string[];
}

export interface FakeSts {
  /** http://127.0.0.1:PORT */
  readonly endpoint: string;
  /** Every call that passed signature verification, in order (including ones then refused). */
  readonly calls: StsCall[];
  /** Calls refused before or at authentication (bad signature, unknown key, …) or dropped. */
  readonly rejected: StsRejection[];
  /** Access keys it knows (secret + optional session token) and who they are. */
  addKey(key: StsKey): void;
  /** Roles that may be assumed, and by which caller ARNs; externalId required if set. */
  addRole(role: StsRole): void;
  /**
   * Make the next calls misbehave, until the next setMode. Resolves when the
   * listener is in the mode's state (closed for "refused", listening again
   * after it); every other change takes effect at once.
   */
  setMode(mode: StsMode): Promise<void>;
  /**
   * Requests for `action` (every action when not given) that reached the
   * server, counted on arrival: in any mode, signed or not, answered or not.
   */
  count(action?: string): number;
  /**
   * When set, sessions issued from now on last this many seconds whatever
   * was asked (real STS never issues less than 900), so a test can watch
   * them expire in real time.
   */
  sessionSeconds: number | undefined;
  /**
   * The server's clock: signature dates are checked against it (±15 min),
   * expirations of issued sessions are computed from it, and expired sessions
   * are refused by it. Sessions last the requested DurationSeconds, else 3600.
   */
  now: () => Date;
  stop(): Promise<void>;
}

export interface FakeStsOptions {
  /** When set, the signature's scope must name this region; otherwise any region is accepted. */
  region?: string;
  now?: () => Date;
  /** The port on 127.0.0.1; default: a free one. */
  port?: number;
  /**
   * For `npm run dev:sts` only, never in tests: an access key it does not know
   * is accepted without checking its signature (it has no secret to check it
   * with), as a user of this account, and any role ARN may be assumed by
   * anyone. Keys it knows are still verified.
   */
  acceptAnyKeyInAccount?: string;
  /**
   * For `npm run dev:sts` only: every session it issues carries this key pair
   * (with a fresh session token) instead of a random one, so a local S3 that
   * knows only that pair accepts the sessions. Such sessions are not
   * remembered; a call signed with one is an unknown key (see acceptAnyKeyInAccount).
   */
  sessionKey?: { accessKeyId: string; secretAccessKey: string };
}

const XMLNS = "https://sts.amazonaws.com/doc/2011-06-15/";
const MAX_SKEW_MS = 15 * 60 * 1000;
const MAX_BODY = 1024 * 1024;
const NAME_RE = /^[\w+=,.@-]+$/;
const ROLE_ARN_RE = /^arn:(aws[\w-]*):iam::(\d{12}):role\/(?:[\w+=,.@/-]*\/)?([\w+=,.@-]{1,64})$/;
const DEFAULT_DURATION = 3600;

const STATUS: Record<string, number> = {
  AccessDenied: 403,
  ExpiredToken: 403,
  IncompleteSignature: 400,
  InternalFailure: 500,
  InvalidAction: 400,
  InvalidClientTokenId: 403,
  MalformedPolicyDocument: 400,
  MissingAction: 400,
  MissingAuthenticationToken: 403,
  RegionDisabledException: 403,
  RequestExpired: 403,
  ServiceUnavailable: 503,
  SignatureDoesNotMatch: 403,
  Throttling: 400,
  ValidationError: 400,
  XAmzContentSHA256Mismatch: 400,
};

/** An STS error: code, message and HTTP status. */
class StsError extends Error {
  constructor(
    readonly code: string,
    message: string,
    readonly status: number = STATUS[code] ?? 400,
  ) {
    super(message);
  }
}

type KeyKind = "user" | "session" | "assumed-role" | "federated";

interface KnownKey {
  accessKeyId: string;
  secretAccessKey: string;
  sessionToken?: string;
  arn: string;
  account: string;
  userId: string;
  kind: KeyKind;
  /** For assumed-role sessions: the role's IAM ARN (trust policies may name it). */
  roleArn?: string;
  expiresAt?: Date;
}

interface KnownRole {
  arn: string;
  account: string;
  partition: string;
  name: string;
  roleId: string;
  externalId?: string;
  trusted?: Set<string>;
}

interface Issued {
  accessKeyId: string;
  secretAccessKey: string;
  sessionToken: string;
  expiration: Date;
}

const BASE32 = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";

function randomId(prefix: string, length: number): string {
  const bytes = randomBytes(length);
  let out = prefix;
  for (const b of bytes) out += BASE32[b % 32];
  return out;
}

function xml(text: string): string {
  return text
    .replace(/&/g, "&amp;")
    .replace(/</g, "&lt;")
    .replace(/>/g, "&gt;")
    .replace(/"/g, "&quot;")
    .replace(/'/g, "&apos;");
}

/** ISO 8601 without milliseconds, as STS writes it: 2026-11-24T01:02:03Z. */
function isoSeconds(d: Date): string {
  return d.toISOString().replace(/\.\d{3}Z$/, "Z");
}

/** RFC 3986 escaping, as SigV4 wants it. */
function escapeUri(s: string): string {
  return encodeURIComponent(s).replace(
    /[!'()*]/g,
    (c) => `%${c.charCodeAt(0).toString(16).toUpperCase()}`,
  );
}

function sha256Hex(data: string | Buffer): string {
  return createHash("sha256").update(data).digest("hex");
}

function hmac(key: string | Buffer, data: string): Buffer {
  return createHmac("sha256", key).update(data, "utf8").digest();
}

function safeEqual(a: string, b: string): boolean {
  const x = Buffer.from(a, "utf8");
  const y = Buffer.from(b, "utf8");
  // Compare equal-length buffers either way, so the time does not depend on where they differ.
  return timingSafeEqual(x.length === y.length ? x : y, y) && x.length === y.length;
}

/** Non-S3 canonical URI: the path as received, dot segments removed, each segment escaped again. */
function canonicalUri(rawPath: string): string {
  const out: string[] = [];
  for (const seg of rawPath.split("/")) {
    if (seg === "" || seg === ".") continue;
    if (seg === "..") out.pop();
    else out.push(seg);
  }
  const path = `/${out.map(escapeUri).join("/")}`;
  return path !== "/" && rawPath.endsWith("/") ? `${path}/` : path;
}

function canonicalQuery(rawQuery: string): string {
  if (rawQuery === "") return "";
  const pairs: [string, string][] = [];
  for (const part of rawQuery.split("&")) {
    if (part === "") continue;
    const eq = part.indexOf("=");
    const k = eq < 0 ? part : part.slice(0, eq);
    const v = eq < 0 ? "" : part.slice(eq + 1);
    pairs.push([escapeUri(decodeURIComponent(k)), escapeUri(decodeURIComponent(v))]);
  }
  pairs.sort((a, b) =>
    a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : a[1] < b[1] ? -1 : a[1] > b[1] ? 1 : 0,
  );
  return pairs.map(([k, v]) => `${k}=${v}`).join("&");
}

/** Header values by lower-cased name, repeated headers joined with ",", from the raw headers. */
function rawHeaderValues(req: IncomingMessage): Map<string, string[]> {
  const values = new Map<string, string[]>();
  for (let i = 0; i + 1 < req.rawHeaders.length; i += 2) {
    const name = (req.rawHeaders[i] ?? "").toLowerCase();
    const list = values.get(name) ?? [];
    list.push(req.rawHeaders[i + 1] ?? "");
    values.set(name, list);
  }
  return values;
}

function parseAmzDate(s: string): Date | undefined {
  const m = /^(\d{4})(\d{2})(\d{2})T(\d{2})(\d{2})(\d{2})Z$/.exec(s);
  if (!m) return undefined;
  const [, y, mo, d, h, mi, se] = m.map(Number) as number[];
  const date = new Date(Date.UTC(y ?? 0, (mo ?? 1) - 1, d ?? 0, h ?? 0, mi ?? 0, se ?? 0));
  return Number.isNaN(date.getTime()) ? undefined : date;
}

function formatAmzDate(d: Date): string {
  return d
    .toISOString()
    .replace(/[-:]/g, "")
    .replace(/\.\d{3}Z$/, "Z");
}

function readBody(req: IncomingMessage): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    req.on("data", (chunk: Buffer) => {
      size += chunk.length;
      if (size > MAX_BODY) {
        reject(new StsError("ValidationError", "Request body too large"));
        req.destroy();
        return;
      }
      chunks.push(chunk);
    });
    req.on("end", () => resolve(Buffer.concat(chunks)));
    req.on("error", reject);
  });
}

interface Authenticated {
  key: KnownKey;
  region: string;
}

class Sts implements FakeSts {
  endpoint = "";
  readonly calls: StsCall[] = [];
  readonly rejected: StsRejection[] = [];
  now: () => Date;
  sessionSeconds: number | undefined;

  private readonly keys = new Map<string, KnownKey>();
  private readonly roles = new Map<string, KnownRole>();
  private mode: StsMode = { kind: "ok" };
  private readonly arrivals = new Map<string, number>();
  /** Listener changes (refused and back), one after another. */
  private listening: Promise<void> = Promise.resolve();
  private port = 0;
  private readonly sockets = new Set<Socket>();
  private readonly timers = new Set<NodeJS.Timeout>();
  private readonly server = createServer((req, res) => {
    this.handle(req, res).catch((err: unknown) => {
      this.fail(res, new StsError("InternalFailure", String(err), 500));
    });
  });
  private stopped: Promise<void> | undefined;

  private readonly region: string | undefined;
  private readonly anyKeyAccount: string | undefined;
  private readonly sessionKey: FakeStsOptions["sessionKey"];

  constructor(opts: FakeStsOptions) {
    this.region = opts.region;
    this.anyKeyAccount = opts.acceptAnyKeyInAccount;
    this.sessionKey = opts.sessionKey;
    this.now = opts.now ?? (() => new Date());
    this.server.on("connection", (socket: Socket) => {
      this.sockets.add(socket);
      socket.on("close", () => this.sockets.delete(socket));
    });
  }

  /** Listens on 127.0.0.1: `port` (a free one if 0) the first time, the same port after "refused". */
  async listen(port = this.port): Promise<void> {
    this.port = port;
    await new Promise<void>((resolve, reject) => {
      this.server.once("error", reject);
      this.server.listen(this.port, "127.0.0.1", () => {
        this.server.off("error", reject);
        resolve();
      });
    });
    this.port = (this.server.address() as AddressInfo).port;
    this.endpoint = `http://127.0.0.1:${this.port}`;
  }

  addKey(key: StsKey): void {
    const isRoot = /^arn:aws[\w-]*:iam::\d{12}:root$/.test(key.arn);
    const assumed = /^arn:(aws[\w-]*):sts::(\d{12}):assumed-role\/([^/]+)\/(.+)$/.exec(key.arn);
    this.keys.set(key.accessKeyId, {
      accessKeyId: key.accessKeyId,
      secretAccessKey: key.secretAccessKey,
      ...(key.sessionToken !== undefined ? { sessionToken: key.sessionToken } : {}),
      arn: key.arn,
      account: key.account,
      userId: assumed
        ? `${randomId("AROA", 17)}:${assumed[4]}`
        : isRoot
          ? key.account
          : randomId("AIDA", 17),
      kind: key.sessionToken !== undefined ? "session" : "user",
      ...(assumed ? { roleArn: `arn:${assumed[1]}:iam::${assumed[2]}:role/${assumed[3]}` } : {}),
    });
  }

  addRole(role: StsRole): void {
    const m = ROLE_ARN_RE.exec(role.arn);
    if (!m) throw new Error(`not a role ARN: ${role.arn}`);
    this.roles.set(role.arn, {
      arn: role.arn,
      partition: m[1] ?? "aws",
      account: m[2] ?? "",
      name: m[3] ?? "",
      roleId: randomId("AROA", 17),
      ...(role.externalId !== undefined ? { externalId: role.externalId } : {}),
      ...(role.trusted !== undefined ? { trusted: new Set(role.trusted) } : {}),
    });
  }

  setMode(mode: StsMode): Promise<void> {
    const refused = mode.kind === "refused";
    if ((this.mode.kind === "refused") !== refused) {
      this.listening = this.listening.then(() => (refused ? this.unlisten() : this.listen()));
    }
    this.mode = mode;
    return this.listening;
  }

  count(action?: string): number {
    if (action !== undefined) return this.arrivals.get(action) ?? 0;
    let n = 0;
    for (const v of this.arrivals.values()) n += v;
    return n;
  }

  /** Closes the listener and every open connection; the port stays ours to listen on again. */
  private unlisten(): Promise<void> {
    return new Promise<void>((resolve) => {
      this.server.close(() => resolve());
      this.server.closeAllConnections();
      for (const s of this.sockets) s.destroy();
    });
  }

  stop(): Promise<void> {
    // After any listener change in progress, so nothing listens again once stopped.
    this.stopped ??= this.listening.then(
      () =>
        new Promise<void>((resolve) => {
          for (const t of this.timers) clearTimeout(t);
          this.timers.clear();
          this.server.close(() => resolve());
          this.server.closeAllConnections();
          for (const s of this.sockets) s.destroy();
        }),
    );
    return this.stopped;
  }

  private delay(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const t = setTimeout(() => {
        this.timers.delete(t);
        resolve();
      }, ms);
      this.timers.add(t);
    });
  }

  private reject(res: ServerResponse, err: StsError): void {
    this.rejected.push({ reason: `${err.code}: ${err.message}`, code: err.code, at: this.now() });
    this.fail(res, err);
  }

  private fail(res: ServerResponse, err: StsError): void {
    const type = err.status >= 500 ? "Receiver" : "Sender";
    const body =
      `<ErrorResponse xmlns="${XMLNS}">\n` +
      `  <Error>\n    <Type>${type}</Type>\n    <Code>${xml(err.code)}</Code>\n` +
      `    <Message>${xml(err.message)}</Message>\n  </Error>\n` +
      `  <RequestId>${randomUUID()}</RequestId>\n</ErrorResponse>\n`;
    this.send(res, err.status, body);
  }

  private send(res: ServerResponse, status: number, body: string): void {
    if (res.headersSent || res.destroyed) return;
    const buf = Buffer.from(body, "utf8");
    res.writeHead(status, {
      "content-type": "text/xml",
      "content-length": buf.length,
      "x-amzn-requestid": randomUUID(),
      // The SDK corrects its clock skew from this header.
      date: this.now().toUTCString(),
    });
    res.end(buf);
  }

  private async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const mode = this.mode;
    let body: Buffer;
    try {
      body = await readBody(req);
    } catch (err) {
      if (err instanceof StsError) this.reject(res, err);
      return;
    }
    const url = new URL(req.url ?? "/", "http://127.0.0.1");
    const params: Record<string, string> = {};
    for (const [k, v] of url.searchParams) params[k] = v;
    const contentType = (req.headers["content-type"] ?? "").toLowerCase();
    if (req.method === "POST" && contentType.startsWith("application/x-www-form-urlencoded")) {
      for (const [k, v] of new URLSearchParams(body.toString("utf8"))) params[k] = v;
    }
    const action = params.Action ?? "";
    this.arrivals.set(action, (this.arrivals.get(action) ?? 0) + 1);
    if (mode.kind === "down") {
      this.rejected.push({ reason: "down", code: "down", at: this.now() });
      req.socket.destroy();
      return;
    }
    if (mode.kind === "slow") await this.delay(mode.ms);
    if (this.stopped) return;

    const rawQuery = (req.url ?? "").includes("?")
      ? (req.url ?? "").slice((req.url ?? "").indexOf("?") + 1)
      : "";
    const rawPath = (req.url ?? "/").split("?")[0] ?? "/";

    if (req.method !== "GET" && req.method !== "POST") {
      this.reject(res, new StsError("InvalidAction", `Method ${req.method} is not supported`, 405));
      return;
    }

    let auth: Authenticated;
    try {
      auth = this.authenticate(req, rawPath, rawQuery, body);
    } catch (err) {
      if (err instanceof StsError) this.reject(res, err);
      else this.reject(res, new StsError("IncompleteSignature", String(err)));
      return;
    }

    this.calls.push({
      action,
      params,
      accessKeyId: auth.key.accessKeyId,
      ...(auth.key.sessionToken !== undefined ? { sessionToken: auth.key.sessionToken } : {}),
      region: auth.region,
      at: this.now(),
    });

    if (mode.kind === "error") {
      this.fail(res, new StsError(mode.code, mode.message, mode.status));
      return;
    }
    try {
      this.send(res, 200, this.dispatch(action, params, auth.key));
    } catch (err) {
      if (err instanceof StsError) this.fail(res, err);
      else throw err;
    }
  }

  /** Verifies the SigV4 Authorization header; returns the caller's key. */
  private authenticate(
    req: IncomingMessage,
    rawPath: string,
    rawQuery: string,
    body: Buffer,
  ): Authenticated {
    const header = req.headers.authorization;
    if (header === undefined) {
      throw new StsError("MissingAuthenticationToken", "Request is missing Authentication Token");
    }
    const m = /^AWS4-HMAC-SHA256 (.*)$/.exec(header.trim());
    if (!m) {
      throw new StsError("IncompleteSignature", "Unsupported or malformed Authorization header");
    }
    const fields = new Map<string, string>();
    for (const part of (m[1] ?? "").split(",")) {
      const eq = part.indexOf("=");
      if (eq > 0) fields.set(part.slice(0, eq).trim(), part.slice(eq + 1).trim());
    }
    const credential = fields.get("Credential");
    const signedHeaders = fields.get("SignedHeaders");
    const signature = fields.get("Signature");
    if (!credential || !signedHeaders || !signature) {
      throw new StsError(
        "IncompleteSignature",
        "Authorization header requires 'Credential', 'SignedHeaders' and 'Signature'",
      );
    }
    const scopeParts = credential.split("/");
    if (scopeParts.length !== 5) {
      throw new StsError("IncompleteSignature", `Malformed credential scope: ${credential}`);
    }
    const [akid = "", shortDate = "", region = "", service = "", terminator = ""] = scopeParts;
    if (service !== "sts") {
      throw new StsError(
        "SignatureDoesNotMatch",
        `Credential should be scoped to correct service: 'sts', not '${service}'`,
      );
    }
    if (terminator !== "aws4_request") {
      throw new StsError(
        "SignatureDoesNotMatch",
        "Credential should be scoped with a valid terminator: 'aws4_request'",
      );
    }
    if (this.region !== undefined && region !== this.region) {
      throw new StsError(
        "SignatureDoesNotMatch",
        `Credential should be scoped to a valid region, not '${region}'`,
      );
    }

    const names = signedHeaders.split(";");
    const sorted = [...new Set(names)].sort();
    if (names.some((n) => n !== n.toLowerCase()) || names.join(";") !== sorted.join(";")) {
      throw new StsError(
        "SignatureDoesNotMatch",
        "SignedHeaders must be lower-case, unique and sorted",
      );
    }
    for (const required of ["host", "x-amz-date"]) {
      if (!names.includes(required)) {
        throw new StsError(
          "SignatureDoesNotMatch",
          `'${required}' must be a signed header. SignedHeaders: ${signedHeaders}`,
        );
      }
    }
    const dateHeader = req.headers["x-amz-date"];
    const amzDateText = typeof dateHeader === "string" ? dateHeader : undefined;
    const amzDate = amzDateText !== undefined ? parseAmzDate(amzDateText) : undefined;
    if (amzDate === undefined || amzDateText === undefined) {
      throw new StsError("IncompleteSignature", "Missing or malformed X-Amz-Date header");
    }
    if (!amzDateText.startsWith(shortDate) || shortDate.length !== 8) {
      throw new StsError(
        "SignatureDoesNotMatch",
        `Date in Credential scope does not match YYYYMMDD from X-Amz-Date: ${shortDate}`,
      );
    }
    const now = this.now();
    if (Math.abs(amzDate.getTime() - now.getTime()) > MAX_SKEW_MS) {
      throw new StsError(
        "RequestExpired",
        `Request has expired: signed at ${amzDateText}, server time ${formatAmzDate(now)} (15 min allowed)`,
      );
    }

    const key = this.keys.get(akid);
    if (key === undefined && this.anyKeyAccount !== undefined) {
      return { key: this.anyKey(akid, this.anyKeyAccount, req), region };
    }
    if (key === undefined) {
      throw new StsError(
        "InvalidClientTokenId",
        "The security token included in the request is invalid.",
      );
    }
    const token = req.headers["x-amz-security-token"];
    if (key.sessionToken !== undefined) {
      if (
        typeof token !== "string" ||
        !names.includes("x-amz-security-token") ||
        !safeEqual(token, key.sessionToken)
      ) {
        throw new StsError(
          "InvalidClientTokenId",
          "The security token included in the request is invalid.",
        );
      }
    } else if (token !== undefined) {
      throw new StsError(
        "InvalidClientTokenId",
        "The security token included in the request is invalid.",
      );
    }
    if (key.expiresAt !== undefined && now.getTime() >= key.expiresAt.getTime()) {
      throw new StsError("ExpiredToken", "The security token included in the request is expired");
    }

    const payloadHash = sha256Hex(body);
    const claimed = req.headers["x-amz-content-sha256"];
    if (typeof claimed === "string" && claimed !== payloadHash) {
      throw new StsError(
        "XAmzContentSHA256Mismatch",
        "The provided 'x-amz-content-sha256' header does not match what was computed.",
      );
    }

    const values = rawHeaderValues(req);
    let canonicalHeaders = "";
    for (const name of names) {
      const list = values.get(name);
      if (list === undefined) {
        throw new StsError(
          "SignatureDoesNotMatch",
          `Signed header '${name}' is missing from the request`,
        );
      }
      const value = list.map((v) => v.trim().replace(/\s+/g, " ")).join(",");
      canonicalHeaders += `${name}:${value}\n`;
    }
    let query: string;
    try {
      query = canonicalQuery(rawQuery);
    } catch {
      throw new StsError("SignatureDoesNotMatch", "Malformed query string");
    }
    const canonicalRequest = [
      req.method ?? "",
      canonicalUri(rawPath),
      query,
      canonicalHeaders,
      signedHeaders,
      payloadHash,
    ].join("\n");
    const scope = `${shortDate}/${region}/sts/aws4_request`;
    const stringToSign = ["AWS4-HMAC-SHA256", amzDateText, scope, sha256Hex(canonicalRequest)].join(
      "\n",
    );
    let signingKey = hmac(`AWS4${key.secretAccessKey}`, shortDate);
    signingKey = hmac(signingKey, region);
    signingKey = hmac(signingKey, "sts");
    signingKey = hmac(signingKey, "aws4_request");
    const expected = createHmac("sha256", signingKey).update(stringToSign, "utf8").digest("hex");
    if (!safeEqual(signature, expected)) {
      throw new StsError(
        "SignatureDoesNotMatch",
        "The request signature we calculated does not match the signature you provided. " +
          "Check your AWS Secret Access Key and signing method. Consult the service documentation for details.\n\n" +
          `The Canonical String for this request should have been\n'${canonicalRequest}'\n\n` +
          `The String-to-Sign should have been\n'${stringToSign}'\n`,
      );
    }
    return { key, region };
  }

  /** An unknown key, accepted as it is (dev:sts): a user of `account`, or a session when a token came with it. */
  private anyKey(accessKeyId: string, account: string, req: IncomingMessage): KnownKey {
    const token = req.headers["x-amz-security-token"];
    return {
      accessKeyId,
      secretAccessKey: "",
      ...(typeof token === "string" ? { sessionToken: token } : {}),
      arn: `arn:aws:iam::${account}:user/any-key`,
      account,
      userId: `AIDA${account}`,
      kind: typeof token === "string" ? "session" : "user",
    };
  }

  private dispatch(action: string, params: Record<string, string>, caller: KnownKey): string {
    switch (action) {
      case "GetCallerIdentity":
        return this.respond(
          action,
          `<Arn>${xml(caller.arn)}</Arn>\n<UserId>${xml(caller.userId)}</UserId>\n` +
            `<Account>${xml(caller.account)}</Account>`,
        );
      case "AssumeRole":
        return this.assumeRole(params, caller);
      case "GetSessionToken":
        return this.getSessionToken(params, caller);
      case "GetFederationToken":
        return this.getFederationToken(params, caller);
      case "":
        throw new StsError("MissingAction", "Missing Action");
      default:
        throw new StsError(
          "InvalidAction",
          `Could not find operation ${action} for version NO_VERSION_SPECIFIED`,
        );
    }
  }

  private assumeRole(params: Record<string, string>, caller: KnownKey): string {
    const roleArn = params.RoleArn;
    const sessionName = params.RoleSessionName;
    if (roleArn === undefined) throw validation("roleArn", "Member must not be null");
    if (sessionName === undefined) throw validation("roleSessionName", "Member must not be null");
    if (!NAME_RE.test(sessionName) || sessionName.length < 2 || sessionName.length > 64) {
      throw validation(
        "roleSessionName",
        "Member must satisfy regular expression pattern: [\\w+=,.@-]* and have length between 2 and 64",
        sessionName,
      );
    }
    const duration = durationParam(params, 900, 43200);
    checkPolicy(params);
    if (!this.roles.has(roleArn) && this.anyKeyAccount !== undefined && ROLE_ARN_RE.test(roleArn)) {
      this.addRole({ arn: roleArn }); // dev:sts: any role may be assumed, by anyone
    }
    const role = this.roles.get(roleArn);
    const denied = (why: string) =>
      new StsError(
        "AccessDenied",
        `Not authorized to perform sts:AssumeRole: User: ${caller.arn} is not authorized to perform: sts:AssumeRole on resource: ${roleArn} (${why})`,
      );
    if (role === undefined) throw denied("no such role");
    if (
      role.trusted !== undefined &&
      !role.trusted.has(caller.arn) &&
      !(caller.roleArn !== undefined && role.trusted.has(caller.roleArn))
    ) {
      throw denied("caller not trusted");
    }
    if (role.externalId !== undefined && params.ExternalId !== role.externalId) {
      throw denied("external id mismatch");
    }
    const arn = `arn:${role.partition}:sts::${role.account}:assumed-role/${role.name}/${sessionName}`;
    const userId = `${role.roleId}:${sessionName}`;
    const issued = this.issue(duration, {
      arn,
      account: role.account,
      userId,
      kind: "assumed-role",
      roleArn: role.arn,
    });
    return this.respond(
      "AssumeRole",
      `${credentialsXml(issued)}\n<AssumedRoleUser>\n<AssumedRoleId>${xml(userId)}</AssumedRoleId>\n` +
        `<Arn>${xml(arn)}</Arn>\n</AssumedRoleUser>`,
    );
  }

  private getSessionToken(params: Record<string, string>, caller: KnownKey): string {
    if (caller.kind !== "user") {
      throw new StsError("AccessDenied", "Cannot call GetSessionToken with session credentials");
    }
    const duration = durationParam(params, 900, 129600);
    const issued = this.issue(duration, {
      arn: caller.arn,
      account: caller.account,
      userId: caller.userId,
      kind: "session",
    });
    return this.respond("GetSessionToken", credentialsXml(issued));
  }

  private getFederationToken(params: Record<string, string>, caller: KnownKey): string {
    if (caller.kind !== "user") {
      throw new StsError("AccessDenied", "Cannot call GetFederationToken with session credentials");
    }
    const name = params.Name;
    if (name === undefined) throw validation("name", "Member must not be null");
    if (!NAME_RE.test(name) || name.length < 2 || name.length > 32) {
      throw validation(
        "name",
        "Member must satisfy regular expression pattern: [\\w+=,.@-]* and have length between 2 and 32",
        name,
      );
    }
    const duration = durationParam(params, 900, 129600);
    checkPolicy(params);
    const partition = /^arn:([\w-]+):/.exec(caller.arn)?.[1] ?? "aws";
    const arn = `arn:${partition}:sts::${caller.account}:federated-user/${name}`;
    const userId = `${caller.account}:${name}`;
    const issued = this.issue(duration, {
      arn,
      account: caller.account,
      userId,
      kind: "federated",
    });
    return this.respond(
      "GetFederationToken",
      `${credentialsXml(issued)}\n<FederatedUser>\n<Arn>${xml(arn)}</Arn>\n` +
        `<FederatedUserId>${xml(userId)}</FederatedUserId>\n</FederatedUser>`,
    );
  }

  /** A new session key, known from now on. */
  private issue(
    durationSeconds: number,
    who: Pick<KnownKey, "arn" | "account" | "userId" | "kind" | "roleArn">,
  ): Issued {
    const start = Math.floor(this.now().getTime() / 1000) * 1000;
    const lasts = this.sessionSeconds ?? durationSeconds;
    const issued: Issued = {
      accessKeyId: this.sessionKey?.accessKeyId ?? randomId("ASIA", 16),
      secretAccessKey: this.sessionKey?.secretAccessKey ?? randomBytes(30).toString("base64"),
      sessionToken: `FwoGZXIvYXdzE${randomBytes(180).toString("base64")}`,
      expiration: new Date(start + lasts * 1000),
    };
    if (this.sessionKey !== undefined) return issued;
    this.keys.set(issued.accessKeyId, {
      ...who,
      accessKeyId: issued.accessKeyId,
      secretAccessKey: issued.secretAccessKey,
      sessionToken: issued.sessionToken,
      expiresAt: issued.expiration,
    });
    return issued;
  }

  private respond(action: string, result: string): string {
    return (
      `<${action}Response xmlns="${XMLNS}">\n<${action}Result>\n${result}\n</${action}Result>\n` +
      `<ResponseMetadata>\n<RequestId>${randomUUID()}</RequestId>\n</ResponseMetadata>\n` +
      `</${action}Response>\n`
    );
  }
}

function credentialsXml(c: Issued): string {
  return (
    `<Credentials>\n<AccessKeyId>${c.accessKeyId}</AccessKeyId>\n` +
    `<SecretAccessKey>${xml(c.secretAccessKey)}</SecretAccessKey>\n` +
    `<SessionToken>${xml(c.sessionToken)}</SessionToken>\n` +
    `<Expiration>${isoSeconds(c.expiration)}</Expiration>\n</Credentials>`
  );
}

function validation(member: string, constraint: string, value?: string): StsError {
  const shown = value === undefined ? "null" : `'${value}'`;
  return new StsError(
    "ValidationError",
    `1 validation error detected: Value ${shown} at '${member}' failed to satisfy constraint: ${constraint}`,
  );
}

function durationParam(params: Record<string, string>, min: number, max: number): number {
  const text = params.DurationSeconds;
  if (text === undefined) return DEFAULT_DURATION;
  const n = /^\d+$/.test(text) ? Number(text) : Number.NaN;
  if (!Number.isSafeInteger(n) || n < min || n > max) {
    throw validation(
      "durationSeconds",
      `Member must have value ${n < min ? "greater" : "less"} than or equal to ${n < min ? min : max}`,
      text,
    );
  }
  return n;
}

function checkPolicy(params: Record<string, string>): void {
  const policy = params.Policy;
  if (policy === undefined) return;
  try {
    JSON.parse(policy);
  } catch {
    throw new StsError("MalformedPolicyDocument", "The policy is not in the valid JSON format.");
  }
}

/** Starts a fake STS on 127.0.0.1 (a free port, unless `port` is given). */
export async function startFakeSts(opts: FakeStsOptions = {}): Promise<FakeSts> {
  const sts = new Sts(opts);
  await sts.listen(opts.port ?? 0);
  return sts;
}
