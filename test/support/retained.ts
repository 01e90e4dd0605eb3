/**
 * Where `secrets` occur in everything reachable from `root`: strings, byte
 * arrays, arrays, maps, sets and object properties, followed deeply. Returns
 * one path per hit ("$.entries[2].kind.value.secretAccessKey"), so a test
 * failure names the field that kept a secret.
 */
export function secretsIn(root: unknown, secrets: readonly string[]): string[] {
  const hits: string[] = [];
  const seen = new Set<object>();
  const needles = secrets.map((s) => Buffer.from(s));
  const visit = (value: unknown, where: string): void => {
    if (typeof value === "string") {
      for (const s of secrets) if (value.includes(s)) hits.push(where);
      return;
    }
    if (typeof value !== "object" || value === null || seen.has(value)) return;
    seen.add(value);
    if (value instanceof Uint8Array) {
      const bytes = Buffer.from(value.buffer, value.byteOffset, value.byteLength);
      if (needles.some((n) => bytes.includes(n))) hits.push(where);
      return;
    }
    if (value instanceof Map) {
      let i = 0;
      for (const [k, v] of value) {
        visit(k, `${where}<key ${i}>`);
        visit(v, `${where}<${typeof k === "string" ? k : i}>`);
        i++;
      }
      return;
    }
    if (value instanceof Set || Array.isArray(value)) {
      let i = 0;
      for (const v of value) visit(v, `${where}[${i++}]`);
      return;
    }
    for (const [k, v] of Object.entries(value)) visit(v, `${where}.${k}`);
  };
  visit(root, "$");
  return hits;
}
