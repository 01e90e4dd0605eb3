import { DomainError, isDomainError } from "../core/errors.js";

/**
 * How far a daemon may believe what it cached from a store other daemons
 * write too (etcd): the read cache and the caller directory ask it.
 *
 * Trusted: the store watch is up and a read confirmed the store answers, at
 * most `confirmWithinMs` ago; cached copies answer without a store read
 * (changes made elsewhere arrive through the watch and invalidate them).
 * Not trusted: every read goes to the store. If the store cannot be reached
 * (`unavailable`), a copy cached earlier may still answer, but only while
 * the last confirmation is at most `staleLimitMs` old; after that the read
 * fails `unavailable` (fail closed). Once the store is known not to answer
 * (`answering(false)`), such a copy answers at once instead of after a
 * store call's timeout. docs/ARCHITECTURE.md, "When etcd is unreachable",
 * explains the choice.
 *
 * LevelDB has one writer, this daemon: `StoreTrust.always()` never expires.
 * Time is `clock()` (milliseconds, monotonic: performance.now by default).
 */
export class StoreTrust {
  private watched = true;
  /** The last heartbeat went unanswered: the store is unreachable, not just unwatched. */
  private unanswered = false;
  private confirmedAt: number;
  private servingStale = false;
  private readonly regainedListeners: (() => void)[] = [];

  constructor(
    private readonly options: {
      /** After the last confirmation, how long cached copies may still serve an unreachable store (0: never). */
      staleLimitMs: number;
      /** Without a confirmation for this long, the cache is not trusted even if the watch seems up. */
      confirmWithinMs: number;
      /** Called once each time a cached copy first serves while the store is unreachable. */
      onStale?: (sinceConfirmedMs: number) => void;
      clock?: () => number;
    },
  ) {
    this.confirmedAt = this.now();
  }

  /** For a store only this daemon writes: always trusted. */
  static always(): StoreTrust {
    return new StoreTrust({ staleLimitMs: 0, confirmWithinMs: Number.POSITIVE_INFINITY });
  }

  /** Cached copies may answer without a store read. */
  get trusted(): boolean {
    const within = this.options.confirmWithinMs;
    // always(): no clock read on every hit of a hot-path cache.
    return this.watched && (within === Infinity || this.now() - this.confirmedAt <= within);
  }

  /** The watch is up and a read sent at `sentAt` (clock time) was answered: the view was current then. */
  confirm(sentAt: number): void {
    if (this.watched && sentAt > this.confirmedAt) this.confirmedAt = sentAt;
  }

  /** The watch broke or the store stopped answering: changes elsewhere may go unseen. */
  lose(): void {
    this.watched = false;
  }

  /** Whether the store answered its last heartbeat. */
  answering(yes: boolean): void {
    this.unanswered = !yes;
  }

  /** Watched and confirmed again at `sentAt`; listeners drop what they cached (changes may have been missed). */
  regain(sentAt: number): void {
    this.watched = true;
    this.unanswered = false;
    this.servingStale = false;
    this.confirmedAt = sentAt;
    for (const listener of this.regainedListeners) listener();
  }

  onRegain(listener: () => void): void {
    this.regainedListeners.push(listener);
  }

  /**
   * A cached copy to serve without asking the store: only while the store is
   * known not to answer and the stale limit allows it (undefined otherwise:
   * ask the store, then maybe `stale`).
   */
  instead<T>(cached: T | undefined): T | undefined {
    if (cached === undefined || !this.unanswered || this.trusted || !this.withinLimit()) {
      return undefined;
    }
    this.noteStale();
    return cached;
  }

  /**
   * After a store read failed with `err`: the cached copy when the store was
   * unreachable and the stale limit allows it; otherwise throws (`err`
   * itself, or `unavailable` saying the stale limit has passed).
   */
  stale<T>(cached: T | undefined, err: unknown): T {
    if (!isDomainError(err, "unavailable") || cached === undefined) throw err;
    if (this.options.staleLimitMs === 0) throw err;
    if (!this.withinLimit()) {
      const since = this.now() - this.confirmedAt;
      throw new DomainError(
        "unavailable",
        `${err.message}; cached copies serve for ${this.options.staleLimitMs / 1000} s after the store was last confirmed (--etcd-stale-limit), ${Math.round(since / 1000)} s ago`,
        { cause: err },
      );
    }
    this.noteStale();
    return cached;
  }

  private withinLimit(): boolean {
    const limit = this.options.staleLimitMs;
    return limit > 0 && this.now() - this.confirmedAt <= limit;
  }

  private noteStale(): void {
    if (this.servingStale) return;
    this.servingStale = true;
    this.options.onStale?.(this.now() - this.confirmedAt);
  }

  private now(): number {
    return this.options.clock === undefined ? performance.now() : this.options.clock();
  }
}
