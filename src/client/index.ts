/**
 * `credbroker/client`: a typed client for the daemon, and an AWS SDK v3
 * signer that signs through it so applications hold no secret.
 */
export { baseUrl, DEFAULT_ADDR } from "./address.js";
export {
  type BrokerClient,
  type BrokerClientOptions,
  createBrokerClient,
} from "./broker-client.js";
export {
  BROKER_CREDENTIALS,
  type BrokerSignerOptions,
  BrokerSigningError,
  brokerSigner,
  PLACEHOLDER_ACCESS_KEY_ID,
} from "./broker-signer.js";
export { getSignedUrl } from "./get-signed-url.js";
