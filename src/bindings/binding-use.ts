import { timestampMs } from "@bufbuild/protobuf/wkt";
import type { Caller } from "../../gen/credbroker/v1/caller_pb.js";
import type { Credential } from "../../gen/credbroker/v1/credential_pb.js";
import { authorizeCredential } from "../core/authz.js";
import { DomainError, isDomainError } from "../core/errors.js";
import type { MintedSession as ContainerSession } from "../providers/provider.js";
import type { Binding, Creator } from "./bindings.js";

export interface BindingUseDeps {
  /** The caller named `name` when it exists, is enabled and has not expired (the bootstrap admin included). */
  callerNamed(name: string): Promise<Caller | undefined>;
  /** The credential's public fields (not_found when absent). */
  credential(namespace: string, name: string): Promise<Credential>;
  /**
   * The credential's task session, when the credential under that name
   * still has id `id` (and is allowed_in_tasks, enabled, unexpired).
   */
  taskSession(namespace: string, name: string, id: string): Promise<ContainerSession>;
}

/** Who made a binding, as bindings.ts keeps it. */
export function creatorOf(caller: Caller): Creator {
  return {
    name: caller.name,
    createdAtMs: caller.createdAt === undefined ? undefined : timestampMs(caller.createdAt),
  };
}

/**
 * The session a binding serves, decided again on every use: a binding lends
 * its creator's power, so it ends with it. The creator must still exist (the
 * same caller, not one re-created under its name), be enabled and unexpired,
 * and still be allowed to sign with the credential; the credential must be
 * the one bound (by id: a credential deleted and re-created under the same
 * name is not served). Refusals are permission_denied (403 on the wire).
 */
export function bindingSessions(deps: BindingUseDeps): (b: Binding) => Promise<ContainerSession> {
  const check = bindingCheck(deps);
  return async (b) => {
    await check(b);
    return deps.taskSession(b.namespace, b.credential, b.credentialId);
  };
}

/**
 * The checks bindingSessions makes before lending anything (creator, bound
 * credential by id, sign permission), for protocols that mint their own
 * answer (the GCE metadata listener): resolves to the bound credential.
 */
export function bindingCheck(
  deps: Pick<BindingUseDeps, "callerNamed" | "credential">,
): (b: Binding) => Promise<Credential> {
  return async (b) => {
    const creator = await deps.callerNamed(b.creator.name);
    if (creator === undefined || creatorOf(creator).createdAtMs !== b.creator.createdAtMs) {
      throw new DomainError(
        "permission_denied",
        "the binding's creator no longer exists, is disabled or has expired",
      );
    }
    const credential = await deps.credential(b.namespace, b.credential).catch((err: unknown) => {
      if (!isDomainError(err, "not_found")) throw err;
      throw new DomainError("permission_denied", "the bound credential no longer exists");
    });
    if (credential.id !== b.credentialId) {
      throw new DomainError(
        "permission_denied",
        "the bound credential was deleted (one created since under its name is not bound)",
      );
    }
    try {
      authorizeCredential(creator, "sign", credential);
    } catch (err) {
      throw new DomainError(
        "permission_denied",
        "the binding's creator may no longer sign with the bound credential",
        { cause: err },
      );
    }
    return credential;
  };
}
