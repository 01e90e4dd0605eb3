import type { Credential } from "../../../gen/credbroker/v1/credential_pb.js";
import { DomainError } from "../../core/errors.js";
import type { Ambient } from "../../core/lifecycle.js";
import { displayName } from "../../core/names.js";
import type { PreparedSign, SignContext, SignedRequest } from "../provider.js";
import type { RoleSessions } from "./role-sessions.js";
import { describeTarget, planSignature, type ValidSignRequest } from "./sign-plan.js";
import type { SigningKeyCache } from "./signing-keys.js";
import { needsSecret, type SigningCredential, sigv4 } from "./sigv4.js";
import { keyMaterial } from "./sts-gateway.js";

export interface AwsSignerDeps {
  /** Derived signing keys, one cache per daemon. */
  signingKeys: SigningKeyCache;
  /** STS sessions for role credentials. */
  roleSessions: RoleSessions;
  /** The signing clock: injected where the daemon is composed, never a request field. */
  ambient: Pick<Ambient, "now">;
}

/** A SignRequest, checked for form, ready to be signed with SigV4. */
export function prepareAwsSign(valid: ValidSignRequest, deps: AwsSignerDeps): PreparedSign {
  return {
    namespace: valid.namespace,
    credential: valid.credential,
    target: describeTarget(valid),
    sign: (c, ctx) => signSigV4(valid, c, ctx, deps),
  };
}

/**
 * Policy, then SigV4. An access key signs with a cached derived key, so a
 * hit needs no secret; on a miss its secret is read for the one derivation
 * and dropped. A role signs with its STS session.
 */
async function signSigV4(
  valid: ValidSignRequest,
  c: Credential,
  ctx: SignContext,
  { signingKeys, roleSessions, ambient }: AwsSignerDeps,
): Promise<SignedRequest> {
  const plan = planSignature(valid, c, ambient.now());
  let signer: SigningCredential;
  if (c.kind.case === "accessKey") {
    signer = { id: c.id, etag: c.etag, accessKeyId: c.kind.value.accessKeyId };
    if (needsSecret(plan, signer, signingKeys)) {
      const full = await ctx.withSecrets();
      // Written since it was cached: decide again on the version whose secret signs.
      if (full.etag !== c.etag || full.kind.case !== "accessKey") return ctx.again(full);
      signer = { ...signer, ...keyMaterial(full.kind.value) };
    }
  } else if (c.kind.case === "role") {
    // The session's key id names its cached keys, so a new session derives new ones.
    const session = await roleSessions.session(c);
    signer = { id: c.id, etag: session.accessKeyId, ...session };
    // No signature outlives the session it was made with (plan.notAfter: nor the credential).
    if (plan.notAfter === undefined || session.expiration < plan.notAfter) {
      plan.notAfter = session.expiration;
    }
  } else {
    // policy already refused token credentials; nothing else can sign.
    throw new DomainError("failed_precondition", `${displayName(c.namespace, c.name)} cannot sign`);
  }
  const signed = sigv4(plan, signer, signingKeys);
  return { ...signed, keyId: signer.accessKeyId };
}
