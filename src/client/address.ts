/** Where the daemon listens by default (`credbroker serve`). */
export const DEFAULT_ADDR = "127.0.0.1:50051";

/**
 * The base URL for an address written `host:port` or `http(s)://host:port`.
 * Throws a TypeError naming the address when it is neither.
 */
export function baseUrl(addr: string): string {
  const withScheme = /^[a-z][a-z0-9+.-]*:\/\//i.test(addr) ? addr : `http://${addr}`;
  let url: URL;
  try {
    url = new URL(withScheme);
  } catch {
    throw new TypeError(`address "${addr}": expected host:port or http(s)://host:port`);
  }
  if ((url.protocol !== "http:" && url.protocol !== "https:") || url.hostname === "") {
    throw new TypeError(`address "${addr}": expected host:port or http(s)://host:port`);
  }
  if (url.pathname !== "/" || url.search !== "" || url.username !== "") {
    throw new TypeError(`address "${addr}": no path, query or credentials allowed`);
  }
  return url.origin;
}
