import { fromJson, type JsonObject } from "@bufbuild/protobuf";
import { type Credential, CredentialSchema } from "../../gen/credbroker/v1/credential_pb.js";

/** The longest line read as a row; the daemon takes at most 1 MiB per message. */
export const MAX_LINE_BYTES = 256 * 1024;

/** A line's credential, or why it is none. Never holds the line's text. */
export type ParsedRow =
  | { ok: true; credential: Credential; bytes: number }
  | { ok: false; reason: string };

/**
 * One JSON line → a Credential in protobuf JSON form. A row without a
 * "namespace" key is in `namespace`. The reason for a bad line names a
 * position, a field or a type, never a value: a line holds a secret.
 */
export function parseRow(text: string, namespace: string): ParsedRow {
  const bytes = Buffer.byteLength(text);
  if (bytes > MAX_LINE_BYTES) return { ok: false, reason: `longer than ${MAX_LINE_BYTES} bytes` };
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (err) {
    const at = /at position (\d+)/.exec(err instanceof Error ? err.message : "")?.[1];
    return {
      ok: false,
      reason: `not valid JSON${at === undefined ? "" : ` (column ${Number(at) + 1})`}`,
    };
  }
  if (typeof json !== "object" || json === null || Array.isArray(json)) {
    return { ok: false, reason: "not a JSON object (one credential per line)" };
  }
  try {
    const credential = fromJson(CredentialSchema, json as JsonObject);
    if (!Object.hasOwn(json, "namespace")) credential.namespace = namespace;
    return { ok: true, credential, bytes };
  } catch (err) {
    return { ok: false, reason: decodeReason(err instanceof Error ? err.message : "") };
  }
}

/**
 * protobuf-es's decode errors quote the offending value; keep what they say
 * about the schema (field, expected type) and drop the value.
 */
function decodeReason(message: string): string {
  const m = /^cannot decode (field|oneof|enum|message) ([\w.]+) from JSON: (.*)$/s.exec(message);
  if (m === null) return "not a credential in protobuf JSON form";
  const [, what, name, detail = ""] = m;
  return `${what} ${name}: ${safeDetail(detail)}`;
}

function safeDetail(detail: string): string {
  const expected = /^(list item #\d+: )?expected (\w+)/.exec(detail);
  if (expected !== null) return `${expected[1] ?? ""}expected ${expected[2]}`;
  const unknown = /^key "([A-Za-z_][A-Za-z0-9_]{0,63})" is unknown$/.exec(detail);
  if (unknown !== null) return `unknown field "${unknown[1]}"`;
  if (/^key ".*" is unknown$/s.test(detail)) return "unknown field";
  if (/^oneof set multiple times by \w+ and \w+$/.test(detail)) return detail;
  if (/^invalid RFC 3339 string$|^must be from \S+ to \S+ inclusive$/.test(detail)) return detail;
  if (/^map entry /.test(detail)) return "bad map entry";
  return "bad value";
}
