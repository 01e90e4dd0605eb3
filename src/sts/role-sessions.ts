import { createHash } from "node:crypto";
import { timestampDate } from "@bufbuild/protobuf/wkt";
import { type Credential, RoleSource } from "../../gen/credbroker/v1/credential_pb.js";
import { DomainError } from "../core/errors.js";
import { displayName } from "../core/names.js";
import type { CredentialStore } from "../store/credential-store.js";
import type { Session, SessionCache } from "./session-cache.js";
import { keyMaterial, type StsCaller, type StsGateway } from "./sts-gateway.js";

export interface RoleSessionsDeps {
  /** Reads (cached) of role sources. */
  credentials: Pick<CredentialStore, "get">;
  sts: StsGateway;
  cache: SessionCache;
  now(): Date;
}

/** "credbroker-<name>", within STS's RoleSessionName rules ([\w+=,.@-], 2–64). */
export function defaultSessionName(c: Credential): string {
  return `credbroker-${c.name}`.replace(/[^\w+=,.@-]/g, "-").slice(0, 64);
}

/**
 * Sessions for role credentials: the source resolved (an access key in the
 * same namespace, or the daemon's own identity), then AssumeRole through the
 * session cache, so renewals are shared and shaped by everything that matters.
 */
export class RoleSessions {
  constructor(private readonly deps: RoleSessionsDeps) {}

  /**
   * The role's current session, from the cache or a fresh AssumeRole. With a
   * session policy (tasks: the credential's scopes) it is a separate session.
   */
  async session(role: Credential, policy?: string): Promise<Session> {
    const { caller, sourceKey } = await this.source(role);
    const params = { ...this.params(role), policy };
    const shape = createHash("sha256")
      .update(JSON.stringify([params, sourceKey]))
      .digest("base64url");
    const key = policy === undefined ? role.id : `${role.id}#task`;
    return this.deps.cache.get(key, shape, () => this.deps.sts.assumeRole(caller, params));
  }

  /** A fresh AssumeRole, not cached: the stricter check that live verification wants. */
  async assumeOnce(role: Credential): Promise<Session> {
    const { caller } = await this.source(role);
    return this.deps.sts.assumeRole(caller, this.params(role));
  }

  private params(role: Credential) {
    if (role.kind.case !== "role") throw new Error("not a role");
    const r = role.kind.value;
    return {
      roleArn: r.roleArn,
      externalId: r.externalId,
      sessionName: r.sessionName ?? defaultSessionName(role),
      durationSeconds: r.durationSeconds,
    };
  }

  /**
   * Who calls STS. `sourceKey` names the source's version (its id and etag),
   * so rotating the source's key changes the session's shape.
   */
  private async source(role: Credential): Promise<{ caller: StsCaller; sourceKey: string }> {
    if (role.kind.case !== "role") throw new Error("not a role");
    const r = role.kind.value;
    if (r.source === RoleSource.AMBIENT) {
      return { caller: await this.deps.sts.ambientCaller(), sourceKey: "ambient" };
    }
    const who = displayName(role.namespace, r.sourceCredential);
    const source = await this.deps.credentials
      .get(role.namespace, r.sourceCredential)
      .catch((err) => {
        throw new DomainError("failed_precondition", `role source ${who} cannot be read`, {
          cause: err,
        });
      });
    if (source.kind.case !== "accessKey") {
      throw new DomainError("failed_precondition", `role source ${who} is not an access key`);
    }
    if (source.enabled === false) {
      throw new DomainError("failed_precondition", `role source ${who} is disabled`);
    }
    if (source.expiresAt !== undefined && timestampDate(source.expiresAt) <= this.deps.now()) {
      throw new DomainError("failed_precondition", `role source ${who} has expired`);
    }
    return {
      caller: keyMaterial(source.kind.value),
      sourceKey: `${source.id}:${source.etag}`,
    };
  }
}
