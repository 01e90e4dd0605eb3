import { hash, randomFillSync } from "node:crypto";
import { DomainError } from "../../core/errors.js";

/** IMDSv2 session tokens live 1 s to 6 h, as on EC2. */
export const MIN_TOKEN_TTL_SECONDS = 1;
export const MAX_TOKEN_TTL_SECONDS = 21_600;

/** 256 random bits, base64url: 43 characters. */
const TOKEN_BYTES = 32;
/** Longer presented values are refused before hashing (ours are 43 characters). */
const MAX_PRESENTED_LENGTH = 128;

interface Entry {
  readonly digest: string;
  /** Its place in the expiry heap (kept by the heap, for removal out of order). */
  index: number;
  readonly expiresAtMs: number;
  /** Issue order: among equal expiries the older token goes first. */
  readonly seq: number;
  /** Who asked for it (the peer's address): its share of the table. */
  readonly peer: string;
}

/**
 * The IMDSv2 session tokens a server has handed out, bounded in number.
 *
 * Only a SHA-256 digest of each token is kept, and a presented token is found
 * by the digest of what was presented: the lookup never compares token bytes,
 * so its timing says nothing about how close a guess was, and a dump of the
 * table holds nothing that can be replayed.
 *
 * Bound: at most `maxTokens` live entries, and at most `maxPerPeer` of them
 * issued to one peer. Past either bound, the oldest token that was never
 * presented (of the table, or of that peer) makes room; when every token
 * has been used, issuing is refused (resource_exhausted, a 503 on the wire).
 * So a flood of PUTs costs memory O(maxTokens), never locks the table, and
 * never takes away a token someone uses (an evicted holder would get 401
 * until it asks again). A token PUT and not yet presented can be evicted by
 * a flood; its holder's GET gets 401 and the SDK asks for a new one. Expired entries are dropped as they reach the front of
 * the expiry heap.
 */
export class TokenTable {
  private readonly byDigest = new Map<string, Entry>();
  /** Binary min-heap on (expiresAtMs, seq); holds exactly the entries of byDigest. */
  private readonly heap: Entry[] = [];
  /** Live entries by peer (a peer with none has no key). */
  private readonly perPeer = new Map<string, number>();
  /** Entries never presented, oldest first (Map order), all and by peer: what makes room. */
  private readonly unused = new Map<string, Entry>();
  private readonly unusedByPeer = new Map<string, Map<string, Entry>>();
  private seq = 0;

  /**
   * @param maxTokens the bound, a positive integer.
   * @param random the source of token bytes (injected for tests; default crypto's CSPRNG, drawn in blocks).
   * @param maxPerPeer the bound for one peer, a positive integer (default: maxTokens).
   */
  constructor(
    readonly maxTokens: number,
    private readonly random: (size: number) => Buffer = pooledRandomBytes(),
    readonly maxPerPeer = maxTokens,
  ) {
    if (!Number.isSafeInteger(maxTokens) || maxTokens < 1) {
      throw new DomainError("invalid_argument", "maxTokens must be a positive integer");
    }
    if (!Number.isSafeInteger(maxPerPeer) || maxPerPeer < 1) {
      throw new DomainError("invalid_argument", "maxPerPeer must be a positive integer");
    }
  }

  /** How many tokens the table holds now (expired ones not yet dropped included). */
  get size(): number {
    return this.byDigest.size;
  }

  /**
   * A new token valid for `ttlSeconds` (an integer in 1–21600) from `now`,
   * for `peer`. Throws DomainError invalid_argument for any other TTL, and
   * resource_exhausted when the table, or the peer's share of it, is full.
   */
  issue(ttlSeconds: number, now: Date, peer = ""): string {
    if (
      !Number.isInteger(ttlSeconds) ||
      ttlSeconds < MIN_TOKEN_TTL_SECONDS ||
      ttlSeconds > MAX_TOKEN_TTL_SECONDS
    ) {
      throw new DomainError("invalid_argument", "token TTL must be an integer from 1 to 21600");
    }
    const nowMs = now.getTime();
    this.dropExpired(nowMs);
    if ((this.perPeer.get(peer) ?? 0) >= this.maxPerPeer) {
      const oldest = first(this.unusedByPeer.get(peer));
      if (oldest === undefined) {
        throw new DomainError(
          "resource_exhausted",
          `at most ${this.maxPerPeer} live tokens per peer, all in use`,
        );
      }
      this.remove(oldest);
    }
    if (this.heap.length >= this.maxTokens) {
      const oldest = first(this.unused);
      if (oldest === undefined) {
        throw new DomainError(
          "resource_exhausted",
          `at most ${this.maxTokens} live tokens, all in use`,
        );
      }
      this.remove(oldest);
    }
    const token = this.random(TOKEN_BYTES).toString("base64url");
    const entry: Entry = {
      digest: digest(token),
      index: -1,
      expiresAtMs: nowMs + ttlSeconds * 1000,
      seq: this.seq++,
      peer,
    };
    this.byDigest.set(entry.digest, entry);
    this.perPeer.set(peer, (this.perPeer.get(peer) ?? 0) + 1);
    this.unused.set(entry.digest, entry);
    let mine = this.unusedByPeer.get(peer);
    if (mine === undefined) {
      mine = new Map();
      this.unusedByPeer.set(peer, mine);
    }
    mine.set(entry.digest, entry);
    this.push(entry);
    return token;
  }

  /** True when `token` was issued by this table, is still held, and has not expired at `now`. */
  valid(token: string, now: Date): boolean {
    if (token.length === 0 || token.length > MAX_PRESENTED_LENGTH) return false;
    const entry = this.byDigest.get(digest(token));
    if (entry === undefined || now.getTime() >= entry.expiresAtMs) return false;
    this.forgetUnused(entry);
    return true;
  }

  private dropExpired(nowMs: number): void {
    for (
      let top = this.heap[0];
      top !== undefined && top.expiresAtMs <= nowMs;
      top = this.heap[0]
    ) {
      this.dropFirst();
    }
  }

  /** Removes the entry that expires soonest. */
  private dropFirst(): void {
    const top = this.heap[0];
    if (top !== undefined) this.remove(top);
  }

  /** Removes `entry` from every index. */
  private remove(entry: Entry): void {
    this.removeAt(entry.index);
    this.byDigest.delete(entry.digest);
    this.forgetUnused(entry);
    const left = (this.perPeer.get(entry.peer) ?? 1) - 1;
    if (left === 0) this.perPeer.delete(entry.peer);
    else this.perPeer.set(entry.peer, left);
  }

  private forgetUnused(entry: Entry): void {
    if (!this.unused.delete(entry.digest)) return;
    const mine = this.unusedByPeer.get(entry.peer);
    mine?.delete(entry.digest);
    if (mine?.size === 0) this.unusedByPeer.delete(entry.peer);
  }

  private push(entry: Entry): void {
    entry.index = this.heap.push(entry) - 1;
    this.up(entry.index);
  }

  /** Takes the entry at `i` out of the heap, moving the last one into its place. */
  private removeAt(i: number): void {
    const heap = this.heap;
    const last = heap.pop();
    if (last === undefined || i === heap.length) return;
    heap[i] = last;
    last.index = i;
    this.up(i);
    this.down(last.index);
  }

  private up(i: number): void {
    const heap = this.heap;
    const entry = heap[i] as Entry;
    while (i > 0) {
      const parent = (i - 1) >> 1;
      const p = heap[parent] as Entry;
      if (!before(entry, p)) break;
      heap[i] = p;
      p.index = i;
      i = parent;
    }
    heap[i] = entry;
    entry.index = i;
  }

  private down(i: number): void {
    const heap = this.heap;
    const entry = heap[i] as Entry;
    for (;;) {
      const left = 2 * i + 1;
      if (left >= heap.length) break;
      const r = heap[left + 1];
      let child = left;
      let c = heap[left] as Entry;
      if (r !== undefined && before(r, c)) {
        child = left + 1;
        c = r;
      }
      if (!before(c, entry)) break;
      heap[i] = c;
      c.index = i;
      i = child;
    }
    heap[i] = entry;
    entry.index = i;
  }
}

/** The oldest entry of an insertion-ordered map. */
function first(entries: Map<string, Entry> | undefined): Entry | undefined {
  return entries?.values().next().value;
}

function before(a: Entry, b: Entry): boolean {
  return a.expiresAtMs < b.expiresAtMs || (a.expiresAtMs === b.expiresAtMs && a.seq < b.seq);
}

/** One-shot SHA-256 (crypto.hash): no Hash object per token issued or checked. */
function digest(token: string): string {
  return hash("sha256", token, "base64");
}

/**
 * crypto.randomFillSync drawn 4 KiB at a time and handed out in slices, as
 * node does for randomUUID: a call into the CSPRNG costs ~2 µs whatever its
 * size, once per token PUT. Each slice is copied out and zeroed in the pool
 * as it is taken, so the bytes of an issued token are kept nowhere but in
 * the token handed out.
 */
function pooledRandomBytes(): (size: number) => Buffer {
  const pool = Buffer.alloc(4096);
  let offset = pool.length;
  return (size) => {
    if (size > pool.length) return randomFillSync(Buffer.alloc(size));
    if (offset + size > pool.length) {
      randomFillSync(pool);
      offset = 0;
    }
    // Buffer.alloc: a buffer of its own, not a slice of node's shared pool.
    const out = Buffer.alloc(size);
    pool.copy(out, 0, offset, offset + size);
    pool.fill(0, offset, offset + size);
    offset += size;
    return out;
  };
}
