/** Temporary AWS credentials from STS. */
export interface Session {
  accessKeyId: string;
  secretAccessKey: string;
  sessionToken: string;
  expiration: Date;
  /** The assumed-role (or federated user) ARN, when STS says it. */
  arn?: string | undefined;
}

interface Entry {
  shape: string;
  session?: Session;
  /** When `session` is due for renewal (ms since the epoch). */
  renewAt: number;
  /** The one STS call in flight for this entry (single flight). */
  renewing?: Promise<Session>;
  /** After a failed renewal: no new attempt before this while `session` is still valid. */
  retryAt: number;
}

export interface SessionCacheOptions {
  now(): Date;
  /** Renew this long before a session expires (default 5 minutes; at most a third of its life). */
  renewBeforeMs?: number;
  /** After a failed renewal, the still-valid session serves this long before STS is asked again (default 10 s). */
  renewRetryMs?: number;
  /** Told when a renewal failed but the cached session still serves. */
  onStaleServe?(credentialId: string, err: unknown): void;
}

/**
 * STS sessions in memory only, one per credential, keyed also by a hash of
 * everything that shapes the session (role, external id, source key, …), so
 * a changed shape never gets an old session.
 *
 * One STS call per entry at a time, however many requests wait (single
 * flight); the call is bounded by the gateway's timeout, so a failure
 * settles every waiter and the next request starts a new call.
 *
 * A session is renewed 5 minutes before it expires (a third of its life if
 * that is shorter). The request that starts a renewal waits for it; others
 * holding a still-valid session are not held up behind it. While STS fails,
 * a session that has not yet expired keeps serving, and STS is asked again
 * at most every `renewRetryMs`; an expired session is never served.
 */
export class SessionCache {
  private readonly entries = new Map<string, Entry>();
  private readonly renewBeforeMs: number;
  private readonly renewRetryMs: number;

  constructor(private readonly opts: SessionCacheOptions) {
    this.renewBeforeMs = opts.renewBeforeMs ?? 5 * 60_000;
    this.renewRetryMs = opts.renewRetryMs ?? 10_000;
  }

  async get(credentialId: string, shape: string, fetch: () => Promise<Session>): Promise<Session> {
    let entry = this.entries.get(credentialId);
    if (entry === undefined || entry.shape !== shape) {
      entry = { shape, renewAt: 0, retryAt: 0 };
      this.entries.set(credentialId, entry);
    }
    const now = this.opts.now().getTime();
    const current = entry.session;
    if (current !== undefined && now < current.expiration.getTime()) {
      if (now < entry.renewAt || entry.renewing !== undefined || now < entry.retryAt) {
        return current;
      }
    }
    // A dropped entry may still finish its fetch, but it is no longer in the map.
    entry.renewing ??= this.renew(entry, fetch);
    try {
      return await entry.renewing;
    } catch (err) {
      if (current !== undefined && this.opts.now().getTime() < current.expiration.getTime()) {
        this.opts.onStaleServe?.(credentialId, err);
        return current;
      }
      throw err;
    }
  }

  /** Forgets a credential's sessions at once (updated, disabled, deleted), its task sessions too. */
  drop(credentialId: string): void {
    this.entries.delete(credentialId);
    this.entries.delete(`${credentialId}#task`);
  }

  get size(): number {
    return this.entries.size;
  }

  private renew(e: Entry, fetch: () => Promise<Session>): Promise<Session> {
    return fetch()
      .then(
        (session) => {
          const now = this.opts.now().getTime();
          const expires = session.expiration.getTime();
          e.session = session;
          e.renewAt = expires - Math.min(this.renewBeforeMs, (expires - now) / 3);
          e.retryAt = 0;
          return session;
        },
        (err: unknown) => {
          e.retryAt = this.opts.now().getTime() + this.renewRetryMs;
          throw err;
        },
      )
      .finally(() => {
        e.renewing = undefined;
      });
  }
}
