import {
  ConsecutiveBreaker,
  ConstantBackoff,
  circuitBreaker,
  handleWhen,
  type IBackoff,
  retry,
} from "cockatiel";
import {
  CompareResult,
  CompareTarget,
  Etcd3,
  EtcdAuthenticationFailedError,
  EtcdPermissionDeniedError,
  type IKeyValue,
  isRecoverableError,
} from "etcd3";
import { DomainError } from "../../core/errors.js";
import { KEYCHECK_KEY } from "../keys.js";
import { ROTATION_KEY } from "../rotation.js";
import type { Sealer } from "../sealing.js";
import { KEYCHECK_PLAINTEXT } from "../store-rules.js";
import type { KeyMoved } from "./etcd-keys.js";
import { FleetMember } from "./etcd-members.js";
import { etcdCall } from "./etcd-snapshot.js";

export interface EtcdStoreOptions {
  /** Client URLs of the etcd cluster, `http://host:port` or `https://…`. */
  endpoints: readonly string[];
  /** Every key lives under it; ends with "/". Default `/credbroker/`. */
  prefix?: string;
  /** TLS to etcd (a CA, and a client certificate for mutual TLS). */
  tls?: { ca: Buffer; cert?: Buffer; key?: Buffer };
  /** etcd user and password, when etcd has authentication on. */
  auth?: { username: string; password: string };
  /**
   * How long one etcd call may take before the operation fails `unavailable`
   * (default 5000 ms). A store operation makes a few calls.
   */
  callTimeoutMs?: number;
  /**
   * Returns the sealer; `fresh` is true when the prefix holds no keycheck yet
   * (the only time a new master key may be made).
   */
  sealer(fresh: boolean): Promise<Sealer>;
  now(): Date;
  /** How this daemon names itself in its member record (host, pid). */
  memberName: string;
  /** Told when a rotation started on another daemon moved the fleet's key under this one. */
  keyMoved?: KeyMoved;
  /** Told when this daemon's member record could not be kept (it is retried). */
  memberLost?: (err: unknown) => void;
}

/** The etcd client: every call bounded by `timeout`, one retry on another endpoint. */
export function etcdClient(opts: EtcdStoreOptions, timeout: number): Etcd3 {
  return new Etcd3({
    hosts: [...opts.endpoints],
    dialTimeout: timeout,
    ...(opts.tls === undefined
      ? {}
      : {
          credentials: {
            rootCertificate: opts.tls.ca,
            ...(opts.tls.key === undefined ? {} : { privateKey: opts.tls.key }),
            ...(opts.tls.cert === undefined ? {} : { certChain: opts.tls.cert }),
          },
        }),
    ...(opts.auth === undefined ? {} : { auth: opts.auth }),
    // Every call ends within `timeout`: a store operation never hangs on a dead etcd.
    defaultCallOptions: (ctx) => (ctx.isStream ? {} : { deadline: Date.now() + timeout }),
    faultHandling: {
      // One more try on another endpoint, then fail; a host that failed
      // three times in a row is skipped for a second.
      global: retry(handleWhen(isRecoverableError), {
        maxAttempts: 1,
        backoff: new ConstantBackoff(50),
      }),
      host: () =>
        circuitBreaker(handleWhen(isRecoverableError), {
          halfOpenAfter: 1000,
          breaker: new ConsecutiveBreaker(3),
        }),
      // A broken watch stream is made again soon: caches are distrusted until then.
      watchBackoff: watchBackoff(100),
    },
  });
}

/**
 * Joined before the keycheck is read: a rotation either sees this daemon's
 * keys, or happened before and this daemon sees its keycheck.
 */
export function joinFleet(
  client: Etcd3,
  prefix: string,
  where: string,
  sealer: Sealer,
  opts: EtcdStoreOptions,
): Promise<FleetMember> {
  return etcdCall(where, () =>
    FleetMember.join(
      client,
      prefix,
      () => ({
        name: opts.memberName,
        keyIds: [sealer.currentKeyId, ...sealer.previousKeyIds],
      }),
      opts.memberLost ?? (() => undefined),
    ),
  );
}

/** 100 ms, doubling up to 2 s: how soon a broken watch stream is made again. */
function watchBackoff(ms: number): IBackoff<unknown> {
  return { duration: ms, next: () => watchBackoff(Math.min(ms * 2, 2000)) };
}

/**
 * The first calls of a daemon are where a wrong password, a role without
 * the prefix, or a TLS mismatch shows: each becomes a DomainError saying
 * which, instead of a bare "unavailable". The message names the user (never
 * the password) and none of etcd's text; the original is the cause (logged).
 * Anything else is returned as is, for etcdCall.
 */
export function explainOpenFailure(
  err: unknown,
  where: string,
  prefix: string,
  username: string | undefined,
): unknown {
  const user = username === undefined ? "" : ` user "${username}"`;
  if (err instanceof EtcdAuthenticationFailedError) {
    return new DomainError(
      "unauthenticated",
      `${where} refused${user}: authentication failed (wrong user or password)`,
      { cause: err },
    );
  }
  if (err instanceof EtcdPermissionDeniedError) {
    return new DomainError(
      "permission_denied",
      `${where} denied${user} access to the prefix (its role needs readwrite on ${prefix})`,
      { cause: err },
    );
  }
  const message = err instanceof Error ? err.message : "";
  if (
    /unable to verify|self[- ]signed certificate|certificate has expired|altname/i.test(message)
  ) {
    return new DomainError(
      "unavailable",
      `${where}: TLS handshake failed: etcd's certificate is not trusted by the given CA (or does not name the host)`,
      { cause: err },
    );
  }
  if (
    /alert (bad certificate|certificate required|unknown ca|certificate unknown)/i.test(message)
  ) {
    return new DomainError(
      "unavailable",
      `${where}: TLS handshake failed: etcd refused the client certificate (none given, or not signed by a CA etcd trusts)`,
      { cause: err },
    );
  }
  return err;
}

/** Whether the prefix holds no keycheck yet (a fleet's first start). */
export async function isFresh(client: Etcd3, prefix: string): Promise<boolean> {
  const key = Buffer.from(`${prefix}${KEYCHECK_KEY}`);
  return (await client.kv.range({ key, count_only: true })).count === "0";
}

/**
 * The keycheck (written on first use, once, even with several daemons
 * starting) and the rotation marker, at one revision.
 */
export async function checkKey(
  client: Etcd3,
  prefix: string,
  sealer: Sealer,
): Promise<[IKeyValue, IKeyValue | undefined]> {
  const key = Buffer.from(`${prefix}${KEYCHECK_KEY}`);
  const marker = Buffer.from(`${prefix}${ROTATION_KEY}`);
  const sealed = sealer.seal(KEYCHECK_PLAINTEXT, KEYCHECK_KEY);
  const res = await client.kv.txn({
    compare: [
      { key, target: CompareTarget.Create, result: CompareResult.Equal, create_revision: 0 },
    ],
    success: [{ request_put: { key, value: sealed } }],
    failure: [{ request_range: { key } }, { request_range: { key: marker } }],
  });
  if (res.succeeded) {
    // Written now: its revision is the transaction's.
    const written = { key, value: sealed, mod_revision: res.header.revision };
    return [written as IKeyValue, undefined];
  }
  const check = res.responses[0]?.response_range.kvs[0];
  if (check === undefined) throw new Error("etcd answered a keycheck read with no keycheck");
  return [check, res.responses[1]?.response_range.kvs[0]];
}
