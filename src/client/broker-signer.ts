import { createHash } from "node:crypto";
import { Code, ConnectError } from "@connectrpc/connect";
import type {
  HttpRequest,
  RequestPresigner,
  RequestPresigningArguments,
  RequestSigner,
  RequestSigningArguments,
} from "@smithy/types";
import type { BrokerClient } from "./broker-client.js";

/**
 * What to pass as the SDK client's `credentials` when it signs through the
 * broker: a placeholder, so the application holds no secret at all. It is
 * never used to sign (the signer ignores credentials).
 */
export const PLACEHOLDER_ACCESS_KEY_ID = "credbroker-placeholder";

/** A credential provider (the SDK decorates what it returns, so a fresh object each call). */
export const BROKER_CREDENTIALS = async () => ({
  accessKeyId: PLACEHOLDER_ACCESS_KEY_ID,
  secretAccessKey: "credbroker-placeholder",
});

export interface BrokerSignerOptions {
  client: BrokerClient;
  namespace?: string;
  /** "" = the namespace's AWS provider default. */
  credential?: string;
  /**
   * The signing name and region when the SDK does not pass them, which it
   * does not for most non-S3 services on a custom `endpoint` (e.g. "sts").
   * Unset, the broker infers them from AWS hostnames and the credential.
   */
  service?: string;
  region?: string;
}

/** A broker refusal, as the SDK surfaces it: the Connect code and the broker's reason. */
export class BrokerSigningError extends Error {
  override readonly name = "BrokerSigningError";

  constructor(
    readonly code: string,
    readonly reason: string,
    options?: { cause?: unknown },
  ) {
    super(`credbroker refused to sign (${code}): ${reason}`, options);
  }
}

/** RFC 3986, as SigV4 wants query strings. */
function encode(value: string): string {
  return encodeURIComponent(value).replace(
    /[!'()*]/g,
    (c) => `%${c.charCodeAt(0).toString(16).toUpperCase()}`,
  );
}

function urlOf(req: HttpRequest): string {
  const port = req.port ? `:${req.port}` : "";
  const query = Object.entries(req.query ?? {})
    .flatMap(([k, v]) =>
      v === null || v === undefined
        ? [encode(k)]
        : (Array.isArray(v) ? v : [v]).map((x) => `${encode(k)}=${encode(x)}`),
    )
    .join("&");
  return `${req.protocol}//${req.hostname}${port}${req.path}${query ? `?${query}` : ""}`;
}

/**
 * The payload hash: the SDK's own x-amz-content-sha256 when it set one (a
 * hash, UNSIGNED-PAYLOAD or a STREAMING-* value), the hash of an in-memory
 * body computed here, UNSIGNED-PAYLOAD for a stream. The body never goes to
 * the broker.
 */
function payloadOf(
  req: HttpRequest,
): { case: "payloadSha256"; value: string } | { case: "unsignedPayload"; value: true } {
  const given = Object.entries(req.headers).find(
    ([n]) => n.toLowerCase() === "x-amz-content-sha256",
  )?.[1];
  if (given) return { case: "payloadSha256", value: given };
  const body = req.body as unknown;
  if (body === undefined || body === null || body === "") {
    return { case: "payloadSha256", value: createHash("sha256").digest("hex") };
  }
  if (typeof body === "string" || body instanceof Uint8Array) {
    return { case: "payloadSha256", value: createHash("sha256").update(body).digest("hex") };
  }
  return { case: "unsignedPayload", value: true };
}

/**
 * An AWS SDK v3 `signer` that signs through credbroker's SignRequest:
 * `new S3Client({ region, signer: brokerSigner({ client, credential }), credentials: BROKER_CREDENTIALS })`.
 */
export function brokerSigner(opts: BrokerSignerOptions): RequestSigner & RequestPresigner {
  const call = async (
    req: HttpRequest,
    options: RequestSigningArguments | undefined,
    presign?: number,
  ) => {
    try {
      return await opts.client.signing.signRequest({
        namespace: opts.namespace ?? "",
        credential: opts.credential ?? "",
        method: req.method,
        url: urlOf(req),
        headers: Object.entries(req.headers)
          .filter(([n]) => {
            const name = n.toLowerCase();
            // Set by the broker itself (its clock, the credential), never passed on.
            if (["host", "authorization", "x-amz-date", "x-amz-security-token"].includes(name))
              return false;
            return !(presign && name === "x-amz-content-sha256");
          })
          .map(([name, value]) => ({ name, value })),
        payload: presign ? { case: "unsignedPayload", value: true } : payloadOf(req),
        region: options?.signingRegion ?? opts.region ?? "",
        service: options?.signingService ?? opts.service ?? "",
        presignExpiresSeconds: presign ?? 0,
      });
    } catch (err) {
      const e = ConnectError.from(err);
      throw new BrokerSigningError(Code[e.code] ?? "Unknown", e.rawMessage, { cause: err });
    }
  };
  return {
    async sign(req, options) {
      const res = await call(req, options);
      const headers: Record<string, string> = {};
      for (const h of res.headers)
        headers[h.name] = h.name in headers ? `${headers[h.name]},${h.value}` : h.value;
      if (req.headers.host) headers.host = req.headers.host;
      req.headers = headers;
      return req;
    },
    async presign(req, options?: RequestPresigningArguments) {
      const res = await call(req, options, options?.expiresIn ?? 900);
      const url = new URL(res.url);
      req.query = Object.fromEntries(url.searchParams);
      return req;
    },
  };
}
