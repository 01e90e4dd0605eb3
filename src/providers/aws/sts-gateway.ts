import {
  AssumeRoleCommand,
  GetCallerIdentityCommand,
  GetFederationTokenCommand,
  GetSessionTokenCommand,
  STSClient,
} from "@aws-sdk/client-sts";
import { fromNodeProviderChain } from "@aws-sdk/credential-providers";
import type { AccessKey } from "../../../gen/credbroker/v1/credential_pb.js";
import { DomainError } from "../../core/errors.js";
import type { Session } from "./session-cache.js";
import { stsError, stsTimeout } from "./sts-errors.js";

/** How long one STS call may take, retries included, when the options do not say. */
export const DEFAULT_STS_TIMEOUT_MS = 5_000;

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
  /**
   * The bound on one STS call, its retry included (default 5 s): past it the
   * call fails `unavailable` and every request waiting on it is answered.
   */
  timeoutMs?: number | undefined;
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
 * The daemon's way to STS, through @aws-sdk/client-sts. Every call is bounded
 * by `timeoutMs`, so a slow STS never holds a request (or the session
 * cache's single flight) longer. Errors become domain errors carrying STS's
 * own message (sts-errors.ts): AccessDenied is `permission_denied`; no
 * answer, throttling and 5xx are `unavailable`; other refusals
 * `failed_precondition`.
 */
export class StsGateway {
  private ambient: ReturnType<typeof fromNodeProviderChain> | undefined;
  private readonly timeoutMs: number;

  constructor(private readonly opts: StsOptions) {
    this.timeoutMs = opts.timeoutMs ?? DEFAULT_STS_TIMEOUT_MS;
  }

  /** The daemon's own identity; failed_precondition unless --allow-ambient. */
  async ambientCaller(): Promise<StsCaller> {
    if (!this.opts.allowAmbient) {
      throw new DomainError(
        "failed_precondition",
        "role.source is ROLE_SOURCE_AMBIENT, but the daemon's own AWS identity is off: start it with --allow-ambient",
      );
    }
    this.ambient ??= fromNodeProviderChain();
    const ambient = this.ambient;
    // The provider chain may wait on a credential_process, SSO or a metadata
    // endpoint that never answers: bounded like an STS call.
    const ms = this.timeoutMs;
    try {
      return await withDeadline(
        () => ambient(),
        ms,
        () =>
          new DomainError(
            "unavailable",
            `the daemon's own AWS identity was not resolved within ${ms / 1000} s (--sts-timeout)`,
          ),
      );
    } catch (cause) {
      if (cause instanceof DomainError) throw cause;
      throw new DomainError(
        "unavailable",
        `the daemon's own AWS identity could not be resolved: ${(cause as Error).message}`,
        { cause },
      );
    }
  }

  async assumeRole(caller: StsCaller, p: AssumeRoleParams): Promise<Session> {
    const out = await this.call("AssumeRole", caller, (c, abortSignal) =>
      c.send(
        new AssumeRoleCommand({
          RoleArn: p.roleArn,
          ExternalId: p.externalId,
          RoleSessionName: p.sessionName,
          DurationSeconds: p.durationSeconds,
          ...(p.policy ? { Policy: p.policy } : {}),
        }),
        { abortSignal },
      ),
    );
    return session("AssumeRole", out.Credentials, out.AssumedRoleUser?.Arn);
  }

  async getSessionToken(caller: StsCaller, durationSeconds: number): Promise<Session> {
    const out = await this.call("GetSessionToken", caller, (c, abortSignal) =>
      c.send(new GetSessionTokenCommand({ DurationSeconds: durationSeconds }), { abortSignal }),
    );
    return session("GetSessionToken", out.Credentials, undefined);
  }

  async getFederationToken(
    caller: StsCaller,
    name: string,
    policy: string,
    durationSeconds: number,
  ): Promise<Session> {
    const out = await this.call("GetFederationToken", caller, (c, abortSignal) =>
      c.send(
        new GetFederationTokenCommand({
          Name: name,
          Policy: policy,
          DurationSeconds: durationSeconds,
        }),
        { abortSignal },
      ),
    );
    return session("GetFederationToken", out.Credentials, out.FederatedUser?.Arn);
  }

  async getCallerIdentity(caller: StsCaller): Promise<CallerIdentity> {
    const out = await this.call("GetCallerIdentity", caller, (c, abortSignal) =>
      c.send(new GetCallerIdentityCommand({}), { abortSignal }),
    );
    return { account: out.Account ?? "", arn: out.Arn ?? "", userId: out.UserId ?? "" };
  }

  private async call<T>(
    action: string,
    caller: StsCaller,
    run: (client: STSClient, abortSignal: AbortSignal) => Promise<T>,
  ): Promise<T> {
    const timeoutMs = this.timeoutMs;
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
        connectionTimeout: Math.min(3_000, timeoutMs),
        requestTimeout: timeoutMs,
        throwOnRequestTimeout: true,
      },
    });
    // The deadline covers the whole call (both attempts and the backoff
    // between them), and answers even if the SDK is slow to notice the abort.
    try {
      return await withDeadline(
        (signal) => run(client, signal),
        timeoutMs,
        () => stsTimeout(action, timeoutMs),
      );
    } catch (cause) {
      if (cause instanceof DomainError) throw cause;
      throw stsError(action, cause, [caller.secretAccessKey, caller.sessionToken]);
    } finally {
      client.destroy();
    }
  }
}

/** `work`, or `late()`'s error once `ms` have passed (then `work`'s signal aborts). */
async function withDeadline<T>(
  work: (signal: AbortSignal) => Promise<T>,
  ms: number,
  late: () => Error,
): Promise<T> {
  const abort = new AbortController();
  let timer: NodeJS.Timeout | undefined;
  const deadline = new Promise<never>((_, reject) => {
    timer = setTimeout(() => {
      abort.abort();
      reject(late());
    }, ms);
  });
  try {
    return await Promise.race([work(abort.signal), deadline]);
  } finally {
    clearTimeout(timer);
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
