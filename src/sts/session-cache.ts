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
  renewing?: Promise<Session>;
}

export interface SessionCacheOptions {
  now(): Date;
  /** Renew this long before a session expires (default 5 minutes). */
  renewBeforeMs?: number;
  /** Told when a renewal failed but the cached session still serves. */
  onStaleServe?(credentialId: string, err: unknown): void;
}

/**
 * STS sessions in memory only, one per credential, keyed also by a hash of
 * everything that shapes the session (role, external id, source key, …), so
 * a changed shape never gets an old session. A session is renewed 5 minutes
 * before it expires, by one STS call however many requests wait (single
 * flight); while renewal fails, a session that has not yet expired keeps
 * serving.
 */
export class SessionCache {
  private readonly entries = new Map<string, Entry>();
  private readonly renewBeforeMs: number;

  constructor(private readonly opts: SessionCacheOptions) {
    this.renewBeforeMs = opts.renewBeforeMs ?? 5 * 60_000;
  }

  async get(credentialId: string, shape: string, fetch: () => Promise<Session>): Promise<Session> {
    let entry = this.entries.get(credentialId);
    if (entry === undefined || entry.shape !== shape) {
      entry = { shape };
      this.entries.set(credentialId, entry);
    }
    const now = this.opts.now().getTime();
    const current = entry.session;
    if (current !== undefined && now < current.expiration.getTime() - this.renewBeforeMs) {
      return current;
    }
    const e = entry;
    // One STS call per credential at a time; a dropped entry may still finish
    // its fetch, but it is no longer in the map.
    e.renewing ??= fetch()
      .then((session) => {
        e.session = session;
        return session;
      })
      .finally(() => {
        e.renewing = undefined;
      });
    try {
      return await e.renewing;
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
}
