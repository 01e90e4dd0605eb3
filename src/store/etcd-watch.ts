import type { Etcd3, IKeyValue, Watcher } from "etcd3";
import { CALLER_PREFIX, recordKey } from "./keys.js";

/**
 * What a daemon does when the shared store changes under it (another daemon
 * on the same etcd wrote, or this one did: invalidating twice is harmless).
 */
export interface StoreChangeListener {
  /** A credential's record was written or deleted. */
  credential(id: string): void;
  /** A caller, its token or its token hash was written or deleted. */
  callers(): void;
  /**
   * `false`: the watch broke, changes may go unseen from now on, so caches
   * must not be trusted; `true`: watched again (changes made meanwhile may
   * have been missed, so caches start empty).
   */
  watching(up: boolean): void;
}

/** A running watch; `close()` ends it (before the store's client closes). */
export interface StoreWatch {
  close(): Promise<void>;
}

const CREDENTIAL_PREFIX = recordKey("");
/** caller/, callertoken/, callerhash/ (keys.ts). */
const CALLER_KEYS = CALLER_PREFIX.slice(0, -1);
/** After a cancelled watch, the wait before a new one (doubling up to the max). */
const RETRY_MS = 100;
const MAX_RETRY_MS = 2000;

/**
 * Watches every key under `prefix` and tells `listener` which credential
 * (`cred/<id>`) or that callers changed. Index keys (name/, prov/, default/,
 * ref/) are not reported: every write that changes one also writes a
 * credential record in the same transaction, which is reported.
 *
 * A broken stream is re-established by the etcd3 client from the last
 * revision seen (`disconnected`, then `connected`); a watch etcd cancels
 * (its revision compacted away) is made again from the current revision.
 * Either way `watching(false)` comes first and `watching(true)` once the
 * watch is back, so the daemon distrusts its caches in between.
 *
 * Resolves once the watch is established: changes committed after that are
 * reported.
 */
export async function watchPrefix(
  client: Etcd3,
  prefix: string,
  listener: StoreChangeListener,
): Promise<StoreWatch> {
  let closed = false;
  let up = true;
  let current: Watcher | undefined;
  let retryMs = RETRY_MS;

  const changed = (kv: IKeyValue) => {
    const key = kv.key.toString("utf8").slice(prefix.length);
    if (key.startsWith(CREDENTIAL_PREFIX)) listener.credential(key.slice(CREDENTIAL_PREFIX.length));
    else if (key.startsWith(CALLER_KEYS)) listener.callers();
  };
  const setUp = (next: boolean) => {
    if (closed || up === next) return;
    up = next;
    listener.watching(next);
  };
  const attach = (watcher: Watcher) => {
    current = watcher;
    watcher
      .on("put", changed)
      .on("delete", changed)
      .on("disconnected", () => setUp(false))
      .on("connected", () => {
        retryMs = RETRY_MS;
        setUp(true);
      })
      .on("error", () => {
        // Cancelled by etcd (e.g. compacted): this watcher is finished; make another.
        setUp(false);
        if (current === watcher) current = undefined;
        void watcher.cancel().catch(() => undefined);
        setTimeout(again, retryMs).unref();
        retryMs = Math.min(retryMs * 2, MAX_RETRY_MS);
      });
  };
  const create = () => client.watch().prefix(prefix).create();
  const again = () => {
    if (closed) return;
    create().then(
      (watcher) => {
        if (closed) {
          void watcher.cancel().catch(() => undefined);
          return;
        }
        attach(watcher);
        retryMs = RETRY_MS;
        setUp(true);
      },
      () => {
        setTimeout(again, retryMs).unref();
        retryMs = Math.min(retryMs * 2, MAX_RETRY_MS);
      },
    );
  };

  let timer: NodeJS.Timeout | undefined;
  const first = await Promise.race([
    create(),
    new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Error("the watch was not established in time")), 10_000);
    }),
  ]).finally(() => clearTimeout(timer));
  attach(first);
  return {
    async close() {
      closed = true;
      const watcher = current;
      current = undefined;
      if (watcher === undefined) return;
      // A cancel waits for etcd's answer; a dead etcd must not hold up shutdown.
      await Promise.race([
        watcher.cancel().catch(() => undefined),
        new Promise((r) => setTimeout(r, 1000).unref()),
      ]);
    },
  };
}
