import { getCanonicalHeaders } from "@smithy/signature-v4";

/**
 * Never signed: hop-by-hop headers and headers proxies and clients rewrite
 * (smithy's getCanonicalHeaders also skips its own list: authorization,
 * cache-control, user-agent, proxy-*, sec-*, …).
 */
export const UNSIGNABLE = new Set([
  "connection",
  "keep-alive",
  "proxy-authorization",
  "proxy-connection",
  "te",
  "trailer",
  "transfer-encoding",
  "upgrade",
  "user-agent",
  "expect",
]);

/**
 * A caller's request headers, the one view both policy (the S3 mapping) and
 * the SigV4 signer read, so they cannot disagree on what a header says.
 * Names are case-insensitive; a repeated name is one header whose values are
 * trimmed and joined in order with "," (as SigV4 signs it). `host` comes
 * from the URL and `authorization` is replaced, so neither is in the view.
 */
export class RequestHeaders {
  /** Lower-case name → trimmed values joined with ",". No prototype: a name may be "__proto__". */
  private readonly joined: Record<string, string> = Object.create(null);
  private readonly counts = new Map<string, number>();
  private canonical: Record<string, string> | undefined;

  /** The headers as given, in order, names as written. */
  readonly list: readonly (readonly [string, string])[];

  constructor(list: readonly (readonly [string, string])[]) {
    this.list = list;
    for (const [name, value] of list) {
      const lower = name.toLowerCase();
      this.counts.set(lower, (this.counts.get(lower) ?? 0) + 1);
      if (lower === "host" || lower === "authorization") continue;
      const prev = this.joined[lower];
      this.joined[lower] = prev === undefined ? value.trim() : `${prev},${value.trim()}`;
    }
  }

  /** How many times `name` is given, in any letter case. */
  count(name: string): number {
    return this.counts.get(name.toLowerCase()) ?? 0;
  }

  /** Lower-case names in the view, in first-seen order. */
  names(): string[] {
    return Object.keys(this.joined);
  }

  /** The trimmed, joined value: what a presigned URL carries in its query. */
  joinedValue(name: string): string | undefined {
    return this.joined[name.toLowerCase()];
  }

  /**
   * The value as SigV4 signs it (smithy's canonical form: runs of spaces and
   * tabs made one space), or undefined when `name` is absent or never signed.
   * Policy decides on this and nothing else.
   */
  get(name: string): string | undefined {
    this.canonical ??= getCanonicalHeaders({ headers: this.joined } as never, UNSIGNABLE) as Record<
      string,
      string
    >;
    const lower = name.toLowerCase();
    return Object.hasOwn(this.canonical, lower) ? this.canonical[lower] : undefined;
  }

  has(name: string): boolean {
    return this.get(name) !== undefined;
  }

  /** A fresh map of the joined values, for the signer to add its own headers to. */
  toRecord(): Record<string, string> {
    const out: Record<string, string> = Object.create(null);
    for (const name in this.joined) out[name] = this.joined[name] as string;
    return out;
  }
}
