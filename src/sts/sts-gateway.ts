import {
  AssumeRoleCommand,
  GetCallerIdentityCommand,
  GetFederationTokenCommand,
  GetSessionTokenCommand,
  STSClient,
} from "@aws-sdk/client-sts";
import { fromNodeProviderChain } from "@aws-sdk/credential-providers";
import type { AccessKey } from "../../gen/credbroker/v1/credential_pb.js";
import { DomainError } from "../core/errors.js";
import type { Session } from "./session-cache.js";

/** Access key material STS calls are signed with. */
export interface StsCaller {
  accessKeyId: string;
  secretAccessKey: string;
  sessionToken?: string | undefined;
}

/** The key material of a stored access key, as STS calls are signed with it. */
export function keyMaterial(k: AccessKey): StsCaller {
  return {
    accessKeyId: k.accessKeyId,
    secretAccessKey: k.secretAccessKey,
    sessionToken: k.sessionToken,
  };
}

export interface StsOptions {
  /** e.g. http://127.0.0.1:9000; unset: the regional endpoint of `region`. */
  endpoint?: string | undefined;
  region: string;
  /** Allow the daemon's own identity (SDK default provider chain) as a source. */
  allowAmbient: boolean;
}

export interface AssumeRoleParams {
  roleArn: string;
  externalId: string;
  sessionName: string;
  durationSeconds: number;
  /** An inline session policy (JSON), narrowing what the session may do. */
  policy?: string | undefined;
}

export interface CallerIdentity {
  account: string;
  arn: string;
  userId: string;
}

/**
 * The daemon's way to STS, through @aws-sdk/client-sts. Errors become domain
 * errors carrying STS's own message: AccessDenied is `permission_denied`,
 * anything else (unreachable, throttled, 5xx) is `unavailable`.
 */
export class StsGateway {
  private ambient: ReturnType<typeof fromNodeProviderChain> | undefined;

  constructor(private readonly opts: StsOptions) {}

  /** The daemon's own identity; failed_precondition unless --allow-ambient. */
  async ambientCaller(): Promise<StsCaller> {
    if (!this.opts.allowAmbient) {
      throw new DomainError(
        "failed_precondition",
        "role.source is ROLE_SOURCE_AMBIENT, but the daemon's own AWS identity is off: start it with --allow-ambient",
      );
    }
    this.ambient ??= fromNodeProviderChain();
    try {
      return await this.ambient();
    } catch (cause) {
      throw new DomainError(
        "unavailable",
        `the daemon's own AWS identity could not be resolved: ${(cause as Error).message}`,
        { cause },
      );
    }
  }

  async assumeRole(caller: StsCaller, p: AssumeRoleParams): Promise<Session> {
    const out = await this.call("AssumeRole", caller, (c) =>
      c.send(
        new AssumeRoleCommand({
          RoleArn: p.roleArn,
          ExternalId: p.externalId,
          RoleSessionName: p.sessionName,
          DurationSeconds: p.durationSeconds,
          ...(p.policy ? { Policy: p.policy } : {}),
        }),
      ),
    );
    return session("AssumeRole", out.Credentials, out.AssumedRoleUser?.Arn);
  }

  async getSessionToken(caller: StsCaller, durationSeconds: number): Promise<Session> {
    const out = await this.call("GetSessionToken", caller, (c) =>
      c.send(new GetSessionTokenCommand({ DurationSeconds: durationSeconds })),
    );
    return session("GetSessionToken", out.Credentials, undefined);
  }

  async getFederationToken(
    caller: StsCaller,
    name: string,
    policy: string,
    durationSeconds: number,
  ): Promise<Session> {
    const out = await this.call("GetFederationToken", caller, (c) =>
      c.send(
        new GetFederationTokenCommand({
          Name: name,
          Policy: policy,
          DurationSeconds: durationSeconds,
        }),
      ),
    );
    return session("GetFederationToken", out.Credentials, out.FederatedUser?.Arn);
  }

  async getCallerIdentity(caller: StsCaller): Promise<CallerIdentity> {
    const out = await this.call("GetCallerIdentity", caller, (c) =>
      c.send(new GetCallerIdentityCommand({})),
    );
    return { account: out.Account ?? "", arn: out.Arn ?? "", userId: out.UserId ?? "" };
  }

  private async call<T>(
    action: string,
    caller: StsCaller,
    run: (client: STSClient) => Promise<T>,
  ): Promise<T> {
    const client = new STSClient({
      region: this.opts.region,
      ...(this.opts.endpoint ? { endpoint: this.opts.endpoint } : {}),
      credentials: {
        accessKeyId: caller.accessKeyId,
        secretAccessKey: caller.secretAccessKey,
        ...(caller.sessionToken ? { sessionToken: caller.sessionToken } : {}),
      },
      maxAttempts: 2,
      // throwOnRequestTimeout: without it the SDK only warns when STS is slow.
      requestHandler: {
        connectionTimeout: 3_000,
        requestTimeout: 10_000,
        throwOnRequestTimeout: true,
      },
    });
    try {
      return await run(client);
    } catch (cause) {
      const err = cause as { name?: string; message?: string };
      const message = `STS ${action}: ${err.name ?? "Error"}: ${err.message ?? "no message"}`;
      throw new DomainError(
        err.name === "AccessDenied" || err.name === "AccessDeniedException"
          ? "permission_denied"
          : "unavailable",
        message,
        { cause },
      );
    } finally {
      client.destroy();
    }
  }
}

function session(
  action: string,
  c:
    | { AccessKeyId?: string; SecretAccessKey?: string; SessionToken?: string; Expiration?: Date }
    | undefined,
  arn: string | undefined,
): Session {
  if (!c?.AccessKeyId || !c.SecretAccessKey || !c.SessionToken || !c.Expiration) {
    throw new DomainError("unavailable", `STS ${action}: the answer holds no complete credentials`);
  }
  return {
    accessKeyId: c.AccessKeyId,
    secretAccessKey: c.SecretAccessKey,
    sessionToken: c.SessionToken,
    expiration: c.Expiration,
    arn,
  };
}
