import type { Etcd3, IKeyValue, Watcher } from "etcd3";
import { CALLER_PREFIX, KEYCHECK_KEY, recordKey } from "../keys.js";

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
   * `false`: the watch broke or etcd stopped answering, changes may go
   * unseen from now on, so caches must not be trusted; `true`: watched and
   * answered again (changes made meanwhile may have been missed, so caches
   * start empty). `at`: as in `confirmed`.
   */
  watching(up: boolean, at: number): void;
  /**
   * Watched, and etcd answered a read sent at `at` (performance.now()): the
   * view was current then. About once a second (HEARTBEAT_MS).
   */
  confirmed(at: number): void;
  /** Whether etcd answered the last heartbeat (told on every change). */
  answering(yes: boolean): void;
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
 * A linearizable read this often (and its deadline): a watch stream can sit
 * on a connection that no longer carries anything (a frozen etcd, a silent
 * partition) without ever reporting it; an unanswered read does.
 */
export const HEARTBEAT_MS = 1000;

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
 * watch is back, so the daemon distrusts its caches in between. A heartbeat
 * read (HEARTBEAT_MS) confirms etcd answers; one that fails or times out
 * counts as a broken watch until a later one is answered.
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
  /** What the listener was last told; true when it only follows from both below. */
  let up = true;
  /** The watch stream is connected (as far as the client knows). */
  let connected = true;
  /** The last heartbeat was answered. */
  let answered = true;
  let current: Watcher | undefined;
  let retryMs = RETRY_MS;
  let beating = false;
  let beatTimer: NodeJS.Timeout | undefined;

  const changed = (kv: IKeyValue) => {
    const key = kv.key.toString("utf8").slice(prefix.length);
    if (key.startsWith(CREDENTIAL_PREFIX)) listener.credential(key.slice(CREDENTIAL_PREFIX.length));
    else if (key.startsWith(CALLER_KEYS)) listener.callers();
  };
  const down = () => {
    if (closed || !up) return;
    up = false;
    listener.watching(false, performance.now());
  };
  const disconnected = () => {
    connected = false;
    down();
  };
  /** Up again only once a heartbeat is answered while connected. */
  const reconnected = () => {
    connected = true;
    beatNow();
  };
  const heartbeat = async () => {
    const at = performance.now();
    const before = answered;
    try {
      await client.kv.range(
        { key: Buffer.from(`${prefix}${KEYCHECK_KEY}`), count_only: true },
        { deadline: Date.now() + HEARTBEAT_MS },
      );
      answered = true;
    } catch {
      answered = false;
    }
    if (closed) return;
    if (answered !== before) listener.answering(answered);
    if (!answered || !connected) down();
    else if (up) listener.confirmed(at);
    else {
      up = true;
      listener.watching(true, at);
    }
  };
  const beatNow = () => {
    if (closed || beating) return;
    clearTimeout(beatTimer);
    beating = true;
    void heartbeat().finally(() => {
      beating = false;
      if (!closed) beatTimer = setTimeout(beatNow, HEARTBEAT_MS).unref();
    });
  };
  const attach = (watcher: Watcher) => {
    current = watcher;
    watcher
      .on("put", changed)
      .on("delete", changed)
      .on("disconnected", disconnected)
      .on("connected", () => {
        retryMs = RETRY_MS;
        reconnected();
      })
      .on("error", () => {
        // Cancelled by etcd (e.g. compacted): this watcher is finished; make another.
        disconnected();
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
        reconnected();
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
  beatTimer = setTimeout(beatNow, HEARTBEAT_MS).unref();
  return {
    async close() {
      closed = true;
      clearTimeout(beatTimer);
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
