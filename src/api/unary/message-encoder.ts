import { type DescField, type DescMessage, type Message, ScalarType } from "@bufbuild/protobuf";

/**
 * A binary encoder for the plain response messages of the hot RPCs
 * (SignRequestResponse: strings, a list of messages, a Timestamp), writing
 * exactly the bytes protobuf-es's `toBinary` writes, into one buffer sized
 * first (toBinary's writer starts at 128 bytes and grows by copying, and
 * encodes every string through a TextEncoder: ~5 µs for a SignRequest
 * answer, ~6% of the call). The buffer can keep room at its front for a
 * gRPC envelope prefix, so framing copies nothing.
 *
 * Only a small, exact subset is handled: proto3 (implicit presence) string,
 * int32 and int64 fields, singular message fields, repeated message fields,
 * fields in field-number order as toBinary writes them. `compileEncoder`
 * returns undefined for a message type with anything else in it (or in a
 * message it contains), and the encoder returns undefined for a message it
 * does not expect (unknown fields kept, another type, a value of the wrong
 * JS type): the caller then uses toBinary, so a changed .proto or an odd
 * message is never encoded differently, only slower.
 */
export type MessageEncoder = (message: Message, reserve: number) => Buffer | undefined;

/** Lengths worked out while sizing (strings, nested messages), read back in the same order while writing. */
interface Pass {
  lens: number[];
  next: number;
  buf: Buffer;
  pos: number;
}

interface Codec {
  /** The field's encoded size, or -1 when the value is not what this codec writes. */
  size(message: Record<string, unknown>, pass: Pass): number;
  write(message: Record<string, unknown>, pass: Pass): void;
}

interface MessageCodec {
  size(message: unknown, pass: Pass): number;
  write(message: Record<string, unknown>, pass: Pass): void;
}

/** The encoder for `desc`, or undefined when its shape is outside the subset. */
export function compileEncoder(desc: DescMessage): MessageEncoder | undefined {
  const codec = messageCodec(desc, new Map());
  if (codec === undefined) return undefined;
  return (message, reserve) => {
    const pass: Pass = { lens: [], next: 0, buf: EMPTY, pos: reserve };
    const size = codec.size(message, pass);
    if (size < 0) return undefined;
    pass.buf = Buffer.allocUnsafe(reserve + size);
    codec.write(message as unknown as Record<string, unknown>, pass);
    return pass.buf;
  };
}

const EMPTY = Buffer.alloc(0);

/** Message types toBinary maps to other local shapes (wrappers unboxed, Struct as JSON): not handled. */
const GOOGLE_ALLOWED = new Set(["google.protobuf.Timestamp", "google.protobuf.Duration"]);

function messageCodec(
  desc: DescMessage,
  seen: Map<DescMessage, MessageCodec | undefined>,
): MessageCodec | undefined {
  if (seen.has(desc)) return seen.get(desc);
  if (desc.typeName.startsWith("google.protobuf.") && !GOOGLE_ALLOWED.has(desc.typeName)) {
    return undefined;
  }
  const fields: Codec[] = [];
  const typeName = desc.typeName;
  const codec: MessageCodec = {
    size(message, pass) {
      const m = message as Record<string, unknown> | null;
      if (typeof m !== "object" || m === null || m.$typeName !== typeName) return -1;
      if (m.$unknown !== undefined) return -1;
      let size = 0;
      for (const field of fields) {
        const s = field.size(m, pass);
        if (s < 0) return -1;
        size += s;
      }
      return size;
    },
    write(message, pass) {
      for (const field of fields) field.write(message, pass);
    },
  };
  // Registered first, so a message that contains itself resolves to this codec.
  seen.set(desc, codec);
  for (const field of [...desc.fields].sort((a, b) => a.number - b.number)) {
    const f = fieldCodec(field, seen);
    if (f === undefined) {
      seen.set(desc, undefined);
      return undefined;
    }
    fields.push(f);
  }
  return codec;
}

const IMPLICIT = 2;

function fieldCodec(
  field: DescField,
  seen: Map<DescMessage, MessageCodec | undefined>,
): Codec | undefined {
  if (field.oneof !== undefined) return undefined;
  const name = field.localName;
  switch (field.fieldKind) {
    case "scalar":
      if (field.presence !== IMPLICIT) return undefined;
      if (field.scalar === ScalarType.STRING) return stringField(name, field.number);
      if (field.scalar === ScalarType.INT32) return int32Field(name, field.number);
      if (field.scalar === ScalarType.INT64) return int64Field(name, field.number);
      return undefined;
    case "message": {
      if (field.delimitedEncoding) return undefined;
      const child = messageCodec(field.message, seen);
      if (child === undefined) return undefined;
      return messageField(name, field.number, child, false);
    }
    case "list": {
      if (field.listKind !== "message" || field.delimitedEncoding) return undefined;
      const child = messageCodec(field.message, seen);
      if (child === undefined) return undefined;
      return messageField(name, field.number, child, true);
    }
    default:
      return undefined;
  }
}

/** Tags below field 16 are one byte; the subset's tags are computed once per field. */
function tagBytes(fieldNo: number, wireType: number): number[] {
  const out: number[] = [];
  let v = (fieldNo << 3) | wireType;
  while (v > 0x7f) {
    out.push((v & 0x7f) | 0x80);
    v >>>= 7;
  }
  out.push(v);
  return out;
}

function putTag(pass: Pass, tag: number[]): void {
  for (const b of tag) pass.buf[pass.pos++] = b;
}

function varintSize(v: number): number {
  // v is a non-negative integer below 2^53.
  let size = 1;
  while (v >= 0x80) {
    v = Math.floor(v / 128);
    size++;
  }
  return size;
}

function putVarint(pass: Pass, v: number): void {
  while (v >= 0x80) {
    pass.buf[pass.pos++] = (v % 128) | 0x80;
    v = Math.floor(v / 128);
  }
  pass.buf[pass.pos++] = v;
}

/** proto3 string: left out when "", else tag, byte length, UTF-8 (lone surrogates as U+FFFD, as TextEncoder writes them). */
function stringField(name: string, fieldNo: number): Codec {
  const tag = tagBytes(fieldNo, 2);
  return {
    size(m, pass) {
      const v = m[name];
      if (typeof v !== "string") return -1;
      if (v === "") return 0;
      const len = Buffer.byteLength(v, "utf8");
      pass.lens.push(len);
      return tag.length + varintSize(len) + len;
    },
    write(m, pass) {
      const v = m[name] as string;
      if (v === "") return;
      const len = pass.lens[pass.next++] as number;
      putTag(pass, tag);
      putVarint(pass, len);
      putString(pass, v, len);
    },
  };
}

/** `len` UTF-8 bytes of `v`; ASCII (as long in bytes as in UTF-16 units) by a cheaper route, the same bytes. */
function putString(pass: Pass, v: string, len: number): void {
  const buf = pass.buf;
  let pos = pass.pos;
  if (len !== v.length) {
    pass.pos += buf.write(v, pos, len, "utf8");
  } else if (len > 24) {
    pass.pos += buf.write(v, pos, len, "latin1");
  } else {
    for (let i = 0; i < len; i++) buf[pos++] = v.charCodeAt(i);
    pass.pos = pos;
  }
}

/** proto3 int32: left out when 0; negative values are ten-byte varints (sign-extended to 64 bits). */
function int32Field(name: string, fieldNo: number): Codec {
  const tag = tagBytes(fieldNo, 0);
  return {
    size(m) {
      const v = m[name];
      if (typeof v !== "number" || (v | 0) !== v) return -1;
      if (v === 0) return 0;
      return tag.length + (v < 0 ? 10 : varintSize(v));
    },
    write(m, pass) {
      const v = m[name] as number;
      if (v === 0) return;
      putTag(pass, tag);
      if (v >= 0) putVarint(pass, v);
      else putVarint64(pass, BigInt.asUintN(64, BigInt(v)));
    },
  };
}

/** proto3 int64 (a bigint): left out when 0, else the two's-complement varint. */
function int64Field(name: string, fieldNo: number): Codec {
  const tag = tagBytes(fieldNo, 0);
  return {
    size(m) {
      const v = m[name];
      if (typeof v !== "bigint" || BigInt.asIntN(64, v) !== v) return -1;
      if (v === 0n) return 0;
      if (v > 0n && v <= MAX_SAFE) return tag.length + varintSize(Number(v));
      let u = BigInt.asUintN(64, v);
      let size = 1;
      while (u >= 0x80n) {
        u >>= 7n;
        size++;
      }
      return tag.length + size;
    },
    write(m, pass) {
      const v = m[name] as bigint;
      if (v === 0n) return;
      putTag(pass, tag);
      if (v > 0n && v <= MAX_SAFE) putVarint(pass, Number(v));
      else putVarint64(pass, BigInt.asUintN(64, v));
    },
  };
}

const MAX_SAFE = BigInt(Number.MAX_SAFE_INTEGER);

function putVarint64(pass: Pass, u: bigint): void {
  while (u >= 0x80n) {
    pass.buf[pass.pos++] = Number(u & 0x7fn) | 0x80;
    u >>= 7n;
  }
  pass.buf[pass.pos++] = Number(u);
}

/**
 * A message field (written when set, even if empty) or a list of messages
 * (each one written): tag, length, the message.
 */
function messageField(name: string, fieldNo: number, child: MessageCodec, list: boolean): Codec {
  const tag = tagBytes(fieldNo, 2);
  const one = (value: unknown, pass: Pass): number => {
    const at = pass.lens.length;
    pass.lens.push(0);
    const len = child.size(value, pass);
    if (len < 0) return -1;
    pass.lens[at] = len;
    return tag.length + varintSize(len) + len;
  };
  const put = (value: Record<string, unknown>, pass: Pass): void => {
    putTag(pass, tag);
    putVarint(pass, pass.lens[pass.next++] as number);
    child.write(value, pass);
  };
  if (list) {
    return {
      size(m, pass) {
        const items = m[name];
        if (!Array.isArray(items)) return -1;
        let size = 0;
        for (const item of items) {
          const s = one(item, pass);
          if (s < 0) return -1;
          size += s;
        }
        return size;
      },
      write(m, pass) {
        for (const item of m[name] as Record<string, unknown>[]) put(item, pass);
      },
    };
  }
  return {
    size(m, pass) {
      // Explicit presence, as toBinary reads it: an own property that is not undefined.
      const v = m[name];
      if (v === undefined || !Object.hasOwn(m, name)) return 0;
      return one(v, pass);
    },
    write(m, pass) {
      const v = m[name];
      if (v === undefined || !Object.hasOwn(m, name)) return;
      put(v as Record<string, unknown>, pass);
    },
  };
}
