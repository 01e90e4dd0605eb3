import { Code, ConnectError } from "@connectrpc/connect";
import type { BrokerClient } from "./broker-client.js";

export interface BrokerFetchOptions {
  client: BrokerClient;
  namespace?: string;
  /** The credential the broker uses (required): a token, access key or role. */
  credential: string;
  /** SigV4 signing region and service, for access keys and roles (unset: from the host). */
  region?: string;
  service?: string;
  /** The whole upstream exchange, 1-120000 ms; unset, the broker's default (30 s). */
  timeoutMs?: number;
}

/** A `Response`, and whether the broker replaced the secret somewhere in it. */
export interface BrokerResponse extends Response {
  /** Some occurrence of the secret in the headers or body was replaced by "[redacted]". */
  readonly redacted: boolean;
}

/**
 * A broker refusal (the Connect code and the broker's reason). A TypeError,
 * as `fetch` rejects with one when the request cannot be made.
 */
export class BrokerFetchError extends TypeError {
  override readonly name = "BrokerFetchError";

  constructor(
    readonly code: string,
    readonly reason: string,
    options?: { cause?: unknown },
  ) {
    super(`credbroker refused to forward (${code}): ${reason}`, options);
  }
}

/** Statuses whose response has no body, which `Response` refuses one for. */
const NULL_BODY = new Set([101, 103, 204, 205, 304]);

/**
 * `fetch`, made by the broker with a stored credential that this process never
 * sees: `brokerFetch({ client, credential: "github" }, url, init)` in place of
 * `fetch(url, init)`. The request is read whole (method, headers, body of any
 * BodyInit) and forwarded by ForwardRequest; `init.signal` cancels the call.
 * Redirects are never followed: a 3xx comes back as it is.
 */
export async function brokerFetch(
  options: BrokerFetchOptions,
  input: string | URL | Request,
  init?: RequestInit,
): Promise<BrokerResponse> {
  const request = new Request(input, init);
  const signal = request.signal;
  signal.throwIfAborted();
  const body = new Uint8Array(await request.arrayBuffer());
  let res: Awaited<ReturnType<BrokerClient["signing"]["forwardRequest"]>>;
  try {
    res = await options.client.signing.forwardRequest(
      {
        namespace: options.namespace ?? "",
        credential: options.credential,
        method: request.method,
        url: request.url,
        headers: [...request.headers].map(([name, value]) => ({ name, value })),
        body,
        region: options.region ?? "",
        service: options.service ?? "",
        timeoutMs: options.timeoutMs ?? 0,
      },
      { signal },
    );
  } catch (err) {
    // As fetch does: an abort rejects with the signal's reason.
    signal.throwIfAborted();
    const e = ConnectError.from(err);
    throw new BrokerFetchError(Code[e.code] ?? "Unknown", e.rawMessage, { cause: err });
  }
  if (res.status < 200 || res.status > 599) {
    throw new TypeError(`the upstream's status ${res.status} is not one a Response can carry`);
  }
  const headers = new Headers();
  for (const h of res.headers) headers.append(h.name, h.value);
  const empty = NULL_BODY.has(res.status) || request.method === "HEAD";
  const response = new Response(empty ? null : res.body, { status: res.status, headers });
  // What fetch's own Response says: the URL it fetched.
  Object.defineProperty(response, "url", { value: request.url });
  Object.defineProperty(response, "redacted", { value: res.redacted });
  return response as BrokerResponse;
}
