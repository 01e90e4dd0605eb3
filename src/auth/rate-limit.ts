/**
 * Token buckets per key (a caller's name): `rate` tokens a second, up to
 * `burst`. Bounded: at most `maxKeys` buckets (the stalest is dropped).
 * Threat: one caller (or a leaked token) starving everyone else.
 */
export class RateLimiter {
  private readonly buckets = new Map<string, { tokens: number; at: number }>();

  constructor(
    private readonly rate: number,
    private readonly burst: number,
    private readonly now: () => number = Date.now,
    private readonly maxKeys = 10_000,
  ) {}

  /** True when `key` may make one more request now. A rate of 0 means unlimited. */
  take(key: string): boolean {
    if (this.rate <= 0) return true;
    const now = this.now();
    let b = this.buckets.get(key);
    if (b === undefined) {
      if (this.buckets.size >= this.maxKeys) {
        const stalest = this.buckets.keys().next().value;
        if (stalest !== undefined) this.buckets.delete(stalest);
      }
      b = { tokens: this.burst, at: now };
    } else {
      this.buckets.delete(key);
      b.tokens = Math.min(this.burst, b.tokens + ((now - b.at) / 1000) * this.rate);
      b.at = now;
    }
    this.buckets.set(key, b);
    if (b.tokens < 1) return false;
    b.tokens -= 1;
    return true;
  }
}

/**
 * Slows repeated failed authentication from one peer: past `free` failures
 * in the last minute (a client with a stale token retries a few times), each
 * further one adds `stepMs` to its answer, up to `maxMs`. Successful
 * requests are never delayed. Threat: token guessing.
 */
export class FailureThrottle {
  private readonly failures = new Map<string, { count: number; at: number }>();

  constructor(
    private readonly now: () => number = Date.now,
    private readonly free = 10,
    private readonly stepMs = 100,
    private readonly maxMs = 2_000,
    private readonly windowMs = 60_000,
    private readonly maxPeers = 10_000,
  ) {}

  /** Records a failure from `peer`; returns how long to wait before answering it. */
  fail(peer: string): number {
    const now = this.now();
    const f = this.failures.get(peer);
    const count = f !== undefined && now - f.at < this.windowMs ? f.count + 1 : 1;
    this.failures.delete(peer);
    if (this.failures.size >= this.maxPeers) {
      const oldest = this.failures.keys().next().value;
      if (oldest !== undefined) this.failures.delete(oldest);
    }
    this.failures.set(peer, { count, at: now });
    return Math.min(this.maxMs, Math.max(0, count - this.free) * this.stepMs);
  }
}
