import { timestampFromDate } from "@bufbuild/protobuf/wkt";
import type { ServiceImpl } from "@connectrpc/connect";
import { Provider } from "../../gen/credbroker/v1/credential_pb.js";
import type { SigningService } from "../../gen/credbroker/v1/signing_service_pb.js";
import { DomainError } from "../core/errors.js";
import type { Ambient } from "../core/lifecycle.js";
import { displayName } from "../core/names.js";
import { planSignature, validateSignRequest } from "../core/sign-plan.js";
import type { SigningKeyCache } from "../sign/signing-keys.js";
import { sigv4 } from "../sign/sigv4.js";
import type { CredentialStore } from "../store/credential-store.js";

export interface SigningServiceDeps {
  store: CredentialStore;
  /** Derived signing keys, one cache per daemon. */
  signingKeys: SigningKeyCache;
  /** The signing clock: injected where the server is composed, never a request field. */
  ambient: Ambient;
}

/** SigningService: form check, credential lookup, policy, then SigV4. */
export function signingService({
  store,
  signingKeys,
  ambient,
}: SigningServiceDeps): ServiceImpl<typeof SigningService> {
  return {
    async signRequest(req) {
      const valid = validateSignRequest(req);
      const credential =
        valid.credential === ""
          ? await store.getDefault(valid.namespace, Provider.AWS)
          : await store.get(valid.namespace, valid.credential);
      if (credential === undefined) {
        throw new DomainError(
          "not_found",
          `namespace "${valid.namespace}" has no AWS provider default: name a credential`,
        );
      }
      const plan = planSignature(valid, credential, ambient.now());
      if (credential.kind.case !== "accessKey") {
        throw new DomainError(
          "unimplemented",
          `${displayName(credential.namespace, credential.name)} is a role: signing with roles (through STS) is not available yet`,
        );
      }
      const key = credential.kind.value;
      const signed = sigv4(
        plan,
        {
          id: credential.id,
          etag: credential.etag,
          accessKeyId: key.accessKeyId,
          secretAccessKey: key.secretAccessKey,
          sessionToken: key.sessionToken,
        },
        signingKeys,
      );
      return {
        url: signed.url,
        headers: signed.headers.map(([name, value]) => ({ name, value })),
        accessKeyId: key.accessKeyId,
        expiresAt: timestampFromDate(signed.expiresAt),
      };
    },
  };
}
