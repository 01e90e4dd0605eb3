import type { SignRequestRequest } from "../../gen/credbroker/v1/signing_service_pb.js";
import { DomainError } from "./errors.js";
import { assertNamespace, isValidName } from "./names.js";
import { MAX_URL_BYTES } from "./raw-url.js";

/**
 * The checks that cost nothing, made before the caller is authorized: what
 * the request names (namespace, credential) and the URL's length. Everything
 * else is checked after, so an unauthorized caller cannot make the daemon work.
 */
export function checkSignTarget(req: SignRequestRequest): void {
  assertNamespace(req.namespace);
  if (req.credential !== "" && !isValidName(req.credential)) {
    invalid(
      "credential: 1-64 of letters, digits, '.', '_', '-' (or \"\" for the provider default)",
    );
  }
  if (req.url.length > MAX_URL_BYTES) invalid(`url: at most ${MAX_URL_BYTES} bytes`);
}

function invalid(message: string): never {
  throw new DomainError("invalid_argument", message);
}
