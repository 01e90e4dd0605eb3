import type http2 from "node:http2";

/**
 * A fetch `Headers` for one call on the fast path: a Map of lower-case
 * names. undici's Headers checks every name and value against the fetch
 * spec and sorts its entries on every read, ~4% of a SignRequest's time
 * for the three each call makes (request, response, trailers). Here request
 * names come from node's HTTP/2 parser, already lower-case and valid, and
 * node checks what is sent when `stream.respond` gets it. Same semantics
 * otherwise: case-insensitive names, `append` joins values with ", ";
 * entries come in insertion order, not sorted (HTTP/2 headers are unordered).
 */
export class HeaderMap implements Headers {
  private readonly map = new Map<string, string>();

  /** A request's headers, without HTTP/2 pseudo-headers. */
  static fromRequest(headers: http2.IncomingHttpHeaders): HeaderMap {
    const out = new HeaderMap();
    for (const name in headers) {
      const value = headers[name];
      if (name.charCodeAt(0) === 58 /* ":" */ || value === undefined) continue;
      out.map.set(name, Array.isArray(value) ? value.join(", ") : value);
    }
    return out;
  }

  append(name: string, value: string): void {
    const key = name.toLowerCase();
    const prev = this.map.get(key);
    this.map.set(key, prev === undefined ? value : `${prev}, ${value}`);
  }

  delete(name: string): void {
    this.map.delete(name.toLowerCase());
  }

  get(name: string): string | null {
    return this.map.get(name.toLowerCase()) ?? null;
  }

  getSetCookie(): string[] {
    const cookie = this.map.get("set-cookie");
    return cookie === undefined ? [] : [cookie];
  }

  has(name: string): boolean {
    return this.map.has(name.toLowerCase());
  }

  set(name: string, value: string): void {
    this.map.set(name.toLowerCase(), value);
  }

  forEach(
    callback: (value: string, key: string, parent: Headers) => void,
    thisArg?: unknown,
  ): void {
    for (const [key, value] of this.map) callback.call(thisArg, value, key, this);
  }

  entries(): IterableIterator<[string, string]> {
    return this.map.entries();
  }

  keys(): IterableIterator<string> {
    return this.map.keys();
  }

  values(): IterableIterator<string> {
    return this.map.values();
  }

  [Symbol.iterator](): IterableIterator<[string, string]> {
    return this.map.entries();
  }
}
