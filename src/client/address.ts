/** Where the daemon listens by default (`credbroker serve`). */
export const DEFAULT_ADDR = "127.0.0.1:50051";

const EXPECTED = "expected host:port or http(s)://host[:port]";

/** Why `addr` is not a daemon address, or undefined when it is one. Never quotes `addr`. */
export function addressProblem(addr: string): string | undefined {
  const scheme = /^([a-z][a-z0-9+.-]*):\/\//i.exec(addr);
  if (scheme !== null && !/^https?$/i.test(scheme[1] ?? "")) {
    return "the scheme is not http:// or https://";
  }
  if (scheme === null) {
    // host:port, the port required: "localhost" alone would quietly mean port 80.
    const hostPort = /^(\[[0-9a-f:.]+\]|[a-z0-9_.-]+):([^:]*)$/i.exec(addr);
    if (hostPort === null) return "not host:port (a host, a colon, a port)";
    const port = hostPort[2] ?? "";
    if (!/^\d+$/.test(port)) return "the port is not a number";
    if (Number(port) < 1 || Number(port) > 65535) return "the port is not 1-65535";
  }
  let url: URL;
  try {
    url = new URL(scheme === null ? `http://${addr}` : addr);
  } catch {
    return scheme === null ? "not host:port (a host, a colon, a port)" : "not a URL";
  }
  if (url.hostname === "") return "no host";
  if (url.pathname !== "/" || url.search !== "" || url.hash !== "" || url.username !== "") {
    return "no path, query or credentials allowed";
  }
  if (url.port === "0") return "the port is not 1-65535";
  return undefined;
}

/**
 * The base URL for an address written `host:port` or `http(s)://host[:port]`.
 * Throws a TypeError saying what is malformed (without quoting the address).
 */
export function baseUrl(addr: string): string {
  const problem = addressProblem(addr);
  if (problem !== undefined) throw new TypeError(`malformed address: ${problem}; ${EXPECTED}`);
  return new URL(/^https?:\/\//i.test(addr) ? addr : `http://${addr}`).origin;
}
