/**
 * `credbroker/client`: a typed client for the daemon, an AWS SDK v3 signer
 * that signs through it, and `brokerFetch`, a `fetch` the broker makes with a
 * stored credential: applications hold no secret. `brokerAzureCredential` is
 * the same for `@azure/storage-blob` (an optional peer dependency).
 */
export { baseUrl, DEFAULT_ADDR } from "./address.js";
export {
  type BrokerAzureCredentialOptions,
  brokerAzureCredential,
} from "./azure-credential.js";
export {
  type BrokerClient,
  type BrokerClientOptions,
  createBrokerClient,
} from "./broker-client.js";
export {
  BrokerFetchError,
  type BrokerFetchOptions,
  type BrokerResponse,
  brokerFetch,
} from "./broker-fetch.js";
export {
  BrokerGoogleAuth,
  type BrokerGoogleAuthOptions,
  brokerGoogleAuth,
} from "./broker-google-auth.js";
export {
  BROKER_CREDENTIALS,
  type BrokerSignerOptions,
  BrokerSigningError,
  brokerSigner,
  PLACEHOLDER_ACCESS_KEY_ID,
} from "./broker-signer.js";
export {
  type BrokerGcsOptions,
  brokerGcsSignedUrl,
  type GcsSignedUrlRequest,
} from "./gcs-signed-url.js";
export { getSignedUrl } from "./get-signed-url.js";
