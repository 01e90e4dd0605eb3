import type { ForwardDeps } from "../api/forward-request.js";
import type { ServeConfig } from "../config/serve-config.js";
import type { Ambient } from "../core/lifecycle.js";
import { UpstreamPool } from "../forward/upstream-pool.js";
import type { Closers } from "./closers.js";

/** The daemon's listening addresses, filled in as each listener binds. */
export class OwnListeners {
  private readonly bound: { address: string; port: number }[] = [];

  /** Records a listener by its URL (http://127.0.0.1:PORT, http://[::1]:PORT). */
  add(url: string): void {
    const u = new URL(url);
    const address = u.hostname.startsWith("[") ? u.hostname.slice(1, -1) : u.hostname;
    this.bound.push({ address, port: Number(u.port) });
  }

  /** Forgets a listener recorded by `add` (one closed before the daemon stops). */
  remove(url: string): void {
    const u = new URL(url);
    const address = u.hostname.startsWith("[") ? u.hostname.slice(1, -1) : u.hostname;
    const i = this.bound.findIndex((b) => b.address === address && b.port === Number(u.port));
    if (i >= 0) this.bound.splice(i, 1);
  }

  list(): readonly { address: string; port: number }[] {
    return this.bound;
  }
}

/** ForwardRequest's connection pool and rules; the pool closes with the daemon. */
export function startForwarding(
  config: ServeConfig,
  ambient: Ambient,
  own: OwnListeners,
  closers: Closers,
): Pick<ForwardDeps, "pool" | "options" | "now"> {
  const pool = new UpstreamPool();
  closers.push(() => pool.close());
  return {
    pool,
    now: ambient.now,
    options: { ...config.forward, ownListeners: () => own.list() },
  };
}
