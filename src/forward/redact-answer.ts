/** What an upstream answered, with every known form of the secret replaced. */
export interface RedactedAnswer {
  headers: [string, string][];
  body: Buffer;
  redacted: boolean;
}

export const REDACTED = "[redacted]";

/**
 * The forms searched for: each one sent, and how a server commonly writes a
 * string back (JSON-escaped, with "/" escaped as "\/", percent-encoded).
 * Longest first, so a form that contains another is replaced whole.
 */
export function redactionForms(sent: readonly string[]): string[] {
  const forms = new Set<string>();
  for (const s of sent) {
    if (s === "") continue;
    const json = JSON.stringify(s).slice(1, -1);
    for (const f of [s, json, json.replaceAll("/", "\\/"), encodeURIComponent(s)]) forms.add(f);
  }
  return [...forms].sort((a, b) => b.length - a.length);
}

/**
 * Replaces every occurrence of each form in the headers (names and values)
 * and the body. Linear in the answer's size per form; the body is bounded
 * by --forward-max-response before it gets here.
 */
export function redactAnswer(
  headers: readonly [string, string][],
  body: Buffer,
  forms: readonly string[],
): RedactedAnswer {
  let redacted = false;
  const scrub = (text: string): string => {
    let out = text;
    for (const f of forms) {
      if (out.includes(f)) {
        out = out.replaceAll(f, REDACTED);
        redacted = true;
      }
    }
    return out;
  };
  const outHeaders = headers.map(([n, v]): [string, string] => [scrub(n), scrub(v)]);
  let outBody = body;
  for (const f of forms) {
    const replaced = replaceBytes(outBody, Buffer.from(f));
    if (replaced !== undefined) {
      outBody = replaced;
      redacted = true;
    }
  }
  return { headers: outHeaders, body: outBody, redacted };
}

const REDACTED_BYTES = Buffer.from(REDACTED);

/** `body` with every `needle` replaced, or undefined when there is none. */
function replaceBytes(body: Buffer, needle: Buffer): Buffer | undefined {
  let at = body.indexOf(needle);
  if (at === -1) return undefined;
  const parts: Buffer[] = [];
  let from = 0;
  while (at !== -1) {
    parts.push(body.subarray(from, at), REDACTED_BYTES);
    from = at + needle.length;
    at = body.indexOf(needle, from);
  }
  parts.push(body.subarray(from));
  return Buffer.concat(parts);
}
