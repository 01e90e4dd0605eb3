import type { Logger } from "pino";
import type { StoreTrust } from "../store/store-trust.js";
import type { DaemonStore } from "./open-store.js";

export interface WatchTargets {
  /** A credential changed elsewhere: drop what was derived from it. */
  changed(credentialId: string): void;
  callersChanged(): void;
  trust: StoreTrust;
  log: Logger;
}

/**
 * Before anything is served: other daemons' writes invalidate as this one's
 * do. Returns the watch's closer, or undefined for a store without one (LevelDB).
 */
export async function watchStore(
  store: DaemonStore,
  { changed, callersChanged, trust, log }: WatchTargets,
): Promise<(() => Promise<void>) | undefined> {
  if (store.watch === undefined) return undefined;
  const watch = await store.watch({
    credential: changed,
    callers: callersChanged,
    // Down: changes elsewhere go unseen, so every read goes to the store
    // (derived keys and sessions are keyed by the etag read).
    watching(up, at) {
      if (up) {
        trust.regain(at);
        log.info("store watch re-established; caches trusted again");
      } else {
        trust.lose();
        log.warn("store watch lost or etcd not answering; reading through to the store");
      }
    },
    confirmed: (at) => trust.confirm(at),
    answering: (yes) => trust.answering(yes),
  });
  return () => watch.close();
}
