import { timestampDate } from "@bufbuild/protobuf/wkt";
import {
  type AccessKey,
  type Credential,
  RoleSource,
} from "../../../gen/credbroker/v1/credential_pb.js";
import { DomainError } from "../../core/errors.js";
import { displayName } from "../../core/names.js";
import type { CredentialReads } from "../provider.js";
import type { Session, SessionCache } from "./session-cache.js";
import { keyMaterial, type StsCaller, type StsGateway } from "./sts-gateway.js";

export interface RoleSessionsDeps {
  /** Role sources: public fields cached, the secret read only for an STS call. */
  credentials: CredentialReads;
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
   * Its shape is the role's etag (every parameter, the scopes included, is in
   * the record, and a write changes the etag) and the source's version.
   */
  async session(role: Credential, policy?: string): Promise<Session> {
    const source = await this.source(role);
    const key = policy === undefined ? role.id : `${role.id}#task`;
    return this.deps.cache.get(key, `${role.etag}\0${source.version}`, async () =>
      this.deps.sts.assumeRole(await source.caller(), { ...this.params(role), policy }),
    );
  }

  /** A fresh AssumeRole, not cached: the stricter check that live verification wants. */
  async assumeOnce(role: Credential): Promise<Session> {
    const source = await this.source(role);
    return this.deps.sts.assumeRole(await source.caller(), this.params(role));
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
   * Who calls STS: checked on every call from the cached (public) record, so a
   * disabled source stops its roles at once. `version` is the source's id and
   * etag, so rotating its key changes the session's shape. `caller()` reads
   * the secret from the store only when an STS call is made, and keeps it nowhere.
   */
  private async source(
    role: Credential,
  ): Promise<{ version: string; caller(): Promise<StsCaller> }> {
    if (role.kind.case !== "role") throw new Error("not a role");
    const r = role.kind.value;
    if (r.source === RoleSource.AMBIENT) {
      return { version: "ambient", caller: () => this.deps.sts.ambientCaller() };
    }
    const who = displayName(role.namespace, r.sourceCredential);
    const { credentials } = this.deps;
    const read = (secrets: boolean) =>
      (secrets
        ? credentials.getWithSecrets(role.namespace, r.sourceCredential)
        : credentials.get(role.namespace, r.sourceCredential)
      ).catch((err) => {
        throw new DomainError("failed_precondition", `role source ${who} cannot be read`, {
          cause: err,
        });
      });
    const source = await read(false);
    this.usable(source, who);
    return {
      version: `${source.id}:${source.etag}`,
      caller: async () => keyMaterial(this.usable(await read(true), who)),
    };
  }

  /** The source's access key, if it may be used now. */
  private usable(source: Credential, who: string): AccessKey {
    if (source.kind.case !== "accessKey") {
      throw new DomainError("failed_precondition", `role source ${who} is not an access key`);
    }
    if (source.enabled === false) {
      throw new DomainError("failed_precondition", `role source ${who} is disabled`);
    }
    if (source.expiresAt !== undefined && timestampDate(source.expiresAt) <= this.deps.now()) {
      throw new DomainError("failed_precondition", `role source ${who} has expired`);
    }
    return source.kind.value;
  }
}
