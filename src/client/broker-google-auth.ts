import { Code, ConnectError } from "@connectrpc/connect";
import { AuthClient, gaxios } from "google-auth-library";
import { Provider } from "../../gen/credbroker/v1/credential_pb.js";
import type { BrokerClient } from "./broker-client.js";
import { BrokerSigningError } from "./broker-signer.js";

export interface BrokerGoogleAuthOptions {
  client: BrokerClient;
  namespace?: string;
  /** A service account credential; "" = the namespace's Google Cloud default. */
  credential?: string;
  /** The project the client libraries bill and list in (not a secret). */
  projectId?: string;
}

/**
 * Headers both generations of google-auth-library read: a `Headers` (what 10.x
 * merges) that also has each header as an own property (what 9.x, which
 * @google-cloud/storage 7 bundles, copies with Object.assign).
 */
function portableHeaders(headers: Headers): Headers {
  headers.forEach((value, name) => {
    Object.defineProperty(headers, name, { value, enumerable: true, configurable: true });
  });
  return headers;
}

/**
 * An `AuthClient` whose requests are authorized by the broker: each one asks
 * SignRequest (header mode) for the headers of that URL, and for a service
 * account the broker answers with `Authorization: Bearer <access token>`.
 * The application never holds the key; it does hold each short-lived token
 * while its request is made (a bearer token cannot be bound to one request,
 * and @google-cloud/storage sends requests, uploads and streams through its
 * own transport, so ForwardRequest, which keeps the token in the broker, cannot
 * carry them: use `brokerFetch` for that). Every request is checked (hosts,
 * disabled, expiry, namespace) and audited by the broker.
 *
 * `new Storage({ authClient: brokerGoogleAuth({ client, credential: "gcs" }) })`
 */
export class BrokerGoogleAuth extends AuthClient {
  readonly #options: BrokerGoogleAuthOptions;

  constructor(options: BrokerGoogleAuthOptions) {
    super();
    this.#options = options;
    this.projectId = options.projectId ?? null;
  }

  /** The headers the broker signs for `method url` (Authorization among them). */
  async headersFor(method: string, url: string | URL): Promise<Headers> {
    try {
      const res = await this.#options.client.signing.signRequest({
        namespace: this.#options.namespace ?? "",
        credential: this.#options.credential ?? "",
        provider: Provider.GCP,
        method,
        url: String(url),
      });
      const headers = new Headers();
      for (const h of res.headers) headers.append(h.name, h.value);
      return portableHeaders(headers);
    } catch (err) {
      const e = ConnectError.from(err);
      throw new BrokerSigningError(Code[e.code] ?? "Unknown", e.rawMessage, { cause: err });
    }
  }

  /** What the client libraries call before each request (they pass the URL, not the method). */
  override async getRequestHeaders(url?: string | URL): Promise<Headers> {
    if (url === undefined) {
      throw new TypeError("brokerGoogleAuth: the broker authorizes one URL at a time");
    }
    return this.headersFor("GET", url);
  }

  override async request<T>(opts: gaxios.GaxiosOptions): Promise<gaxios.GaxiosResponse<T>> {
    if (opts.url === undefined) throw new TypeError("brokerGoogleAuth: request needs a url");
    const url = new URL(
      String(opts.url),
      opts.baseURL === undefined ? undefined : String(opts.baseURL),
    );
    const signed = await this.headersFor(opts.method ?? "GET", url);
    const res = await this.transporter.request<T>({
      ...opts,
      headers: gaxios.Gaxios.mergeHeaders(opts.headers, signed),
    });
    // 9.x callers (storage's resumable uploads) read response headers as properties.
    portableHeaders(res.headers);
    return res;
  }

  /** Not offered: a token is lent for one URL at a time (getRequestHeaders), never on its own. */
  override async getAccessToken(): Promise<{ token?: string | null }> {
    throw new TypeError(
      "brokerGoogleAuth: getAccessToken is not offered; the broker authorizes each request (getRequestHeaders(url)), or serve a GCE metadata listener for tokens",
    );
  }
}

/** `new Storage({ authClient: brokerGoogleAuth({ client, credential }) })`. */
export function brokerGoogleAuth(options: BrokerGoogleAuthOptions): BrokerGoogleAuth {
  return new BrokerGoogleAuth(options);
}
