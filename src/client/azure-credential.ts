import type {
  HttpOperationResponse,
  PipelineLike,
  RequestPolicy,
  RequestPolicyFactory,
  StoragePipelineOptions,
  WebResource,
} from "@azure/storage-blob";
import { Code, ConnectError } from "@connectrpc/connect";
import { Provider } from "../../gen/credbroker/v1/credential_pb.js";
import type { BrokerClient } from "./broker-client.js";
import { BrokerSigningError } from "./broker-signer.js";

export interface BrokerAzureCredentialOptions {
  client: BrokerClient;
  namespace?: string;
  /** "" = the namespace's Azure provider default. */
  credential?: string;
  /**
   * The storage client's usual options (retries, user agent, …). Not
   * `retryOptions.tryTimeoutInMs` nor `retryOptions.secondaryHost`: the retry
   * policy would change the URL after the broker signed it.
   */
  pipelineOptions?: StoragePipelineOptions;
}

/** Set by the broker itself (its clock, its service version, the credential), never passed on. */
const BROKER_HEADERS = new Set(["host", "authorization", "x-ms-date", "x-ms-version", "date"]);

/**
 * What to pass to `new BlobServiceClient(url, …)` (or a ContainerClient,
 * BlobClient…) so that every request is signed by credbroker's SignRequest:
 * `Authorization: SharedKey …` for a storage account key, `Bearer …` for a
 * service principal. The application never holds the account key.
 *
 * It is a storage pipeline, not a `Credential` subclass: the storage clients
 * sign only with the credential classes they know (StorageSharedKeyCredential
 * signs locally with the key) and treat any other Credential as anonymous;
 * a pipeline's request policy is the extension point they honour.
 */
export function brokerAzureCredential(opts: BrokerAzureCredentialOptions): PipelineLike {
  const retry = opts.pipelineOptions?.retryOptions;
  if (retry?.tryTimeoutInMs !== undefined || retry?.secondaryHost !== undefined) {
    throw new TypeError(
      "brokerAzureCredential: retryOptions.tryTimeoutInMs and secondaryHost change the URL after signing; leave them unset",
    );
  }
  const factory: RequestPolicyFactory = {
    create: (next: RequestPolicy): RequestPolicy => ({
      sendRequest: async (request: WebResource): Promise<HttpOperationResponse> => {
        await signThroughBroker(opts, request);
        return next.sendRequest(request);
      },
    }),
  };
  return {
    factories: [factory],
    options: { ...opts.pipelineOptions },
    toServiceClientOptions: () => ({
      httpClient: opts.pipelineOptions?.httpClient,
      requestPolicyFactories: [factory],
    }),
  };
}

async function signThroughBroker(opts: BrokerAzureCredentialOptions, req: WebResource) {
  const body: unknown = req.body;
  // What the storage SDK's own SharedKey policy does: Content-Length is signed.
  if ((typeof body === "string" || Buffer.isBuffer(body)) && body.length > 0) {
    req.headers.set("content-length", Buffer.byteLength(body));
  }
  let res: Awaited<ReturnType<BrokerClient["signing"]["signRequest"]>>;
  try {
    res = await opts.client.signing.signRequest({
      namespace: opts.namespace ?? "",
      credential: opts.credential ?? "",
      provider: Provider.AZURE,
      method: req.method,
      url: req.url,
      headers: req.headers
        .headersArray()
        .filter((h) => !BROKER_HEADERS.has(h.name.toLowerCase()))
        .map(({ name, value }) => ({ name, value })),
    });
  } catch (err) {
    const e = ConnectError.from(err);
    throw new BrokerSigningError(Code[e.code] ?? "Unknown", e.rawMessage, { cause: err });
  }
  // The broker answers the full set of headers to send, its own included.
  for (const name of req.headers.headerNames()) req.headers.remove(name);
  for (const h of res.headers) {
    const had = req.headers.get(h.name);
    req.headers.set(h.name, had === undefined ? h.value : `${had},${h.value}`);
  }
  if (res.url !== "") req.url = res.url;
}
