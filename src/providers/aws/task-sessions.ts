import { timestampDate } from "@bufbuild/protobuf/wkt";
import type { Credential } from "../../../gen/credbroker/v1/credential_pb.js";
import { DomainError } from "../../core/errors.js";
import { displayName } from "../../core/names.js";
import type { CredentialReads } from "../provider.js";
import type { RoleSessions } from "./role-sessions.js";
import type { Session, SessionCache } from "./session-cache.js";
import { sessionPolicy } from "./session-policy.js";
import { keyMaterial, type StsGateway } from "./sts-gateway.js";

/** Sessions handed to tasks last this long (GetSessionToken's and GetFederationToken's minimum is 900). */
export const TASK_SESSION_SECONDS = 3600;

export interface TaskSessionsDeps {
  /** The credentials tasks ask for: public fields cached, the secret read only for an STS call. */
  credentials: CredentialReads;
  sts: StsGateway;
  roleSessions: RoleSessions;
  cache: SessionCache;
  now(): Date;
}

/**
 * Short-lived sessions for tasks (IMDS, container credentials): never the
 * stored secret. A role gives its AssumeRole session; an access key gives
 * GetSessionToken, or GetFederationToken with its scopes as the session
 * policy when it has scopes, so AWS enforces what credbroker cannot see.
 * Only credentials marked allowed_in_tasks, enabled and not expired.
 */
export class TaskSessions {
  /** Session policies by credential (a record is immutable: a write makes a new one). */
  private readonly policies = new WeakMap<Credential, { policy: string | undefined }>();

  constructor(private readonly deps: TaskSessionsDeps) {}

  /** `expectedId`, when given: a credential of that name with another id is refused (a binding's). */
  async forCredential(namespace: string, name: string, expectedId?: string): Promise<Session> {
    const c = await this.deps.credentials.get(namespace, name);
    const who = displayName(namespace, name);
    if (expectedId !== undefined && c.id !== expectedId) {
      throw new DomainError("permission_denied", `${who} is not the credential that was bound`);
    }
    if (!c.allowedInTasks) {
      throw new DomainError("permission_denied", `${who} is not allowed_in_tasks`);
    }
    if (c.enabled === false)
      throw new DomainError("permission_denied", `AccessDenied: ${who} is disabled`);
    if (c.expiresAt !== undefined && timestampDate(c.expiresAt) <= this.deps.now()) {
      throw new DomainError("permission_denied", `ExpiredCredentials: ${who} has expired`);
    }
    return this.session(c);
  }

  private session(c: Credential): Promise<Session> {
    let memo = this.policies.get(c);
    if (memo === undefined) {
      memo = { policy: sessionPolicy(c.allowedScopes) };
      this.policies.set(c, memo);
    }
    const { policy } = memo;
    switch (c.kind.case) {
      case "role":
        return this.deps.roleSessions.session(c, policy);
      case "accessKey":
        // The etag is the shape: the policy comes from the record's scopes.
        return this.deps.cache.get(`${c.id}#task`, c.etag, async () => {
          // The secret is read for this STS call only and kept nowhere.
          const full = await this.deps.credentials.getWithSecrets(c.namespace, c.name);
          if (full.kind.case !== "accessKey") {
            throw new DomainError("aborted", `${displayName(c.namespace, c.name)} changed: retry`);
          }
          const caller = keyMaterial(full.kind.value);
          return policy === undefined
            ? this.deps.sts.getSessionToken(caller, TASK_SESSION_SECONDS)
            : this.deps.sts.getFederationToken(
                caller,
                federationName(c),
                policy,
                TASK_SESSION_SECONDS,
              );
        });
      default:
        throw new DomainError(
          "failed_precondition",
          `${displayName(c.namespace, c.name)} is a token credential: it has no AWS session to hand out`,
        );
    }
  }
}

/** GetFederationToken's Name: 2–32 of [\w+=,.@-]. */
function federationName(c: Credential): string {
  return `cb-${c.name}`.replace(/[^\w+=,.@-]/g, "-").slice(0, 32);
}
