/**
 * Hop-by-hop headers (RFC 9110 section 7.6.1) describe one connection, not the
 * message: a forward drops them both ways. Pure.
 */
const HOP_BY_HOP = new Set([
  "connection",
  "keep-alive",
  "te",
  "trailer",
  "transfer-encoding",
  "upgrade",
]);

/** Drops hop-by-hop headers and those the Connection header names; keeps order and repeats. */
export function dropHopByHop(headers: readonly [string, string][]): [string, string][] {
  const named = new Set<string>();
  for (const [name, value] of headers) {
    if (name.toLowerCase() !== "connection") continue;
    for (const token of value.split(",")) named.add(token.trim().toLowerCase());
  }
  return headers
    .filter(([name]) => {
      const lower = name.toLowerCase();
      return !HOP_BY_HOP.has(lower) && !lower.startsWith("proxy-") && !named.has(lower);
    })
    .map(([name, value]) => [name, value]);
}
