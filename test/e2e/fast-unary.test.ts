/**
 * The fast unary path (src/api/unary) against connect-node, on the wire:
 * the same raw HTTP/2 requests go to a daemon with the fast path and to one
 * started with --disable-fast-unary, and the answers must match — status,
 * headers, trailers, and for errors the exact bytes (gRPC status, message
 * and details; Connect's JSON). Real clients (grpc-js, the Connect client,
 * gRPC-Web, buf curl) talk to the fast path in every other e2e suite.
 */
import assert from "node:assert/strict";
import http2 from "node:http2";
import { after, before, describe, test } from "node:test";
import { gunzipSync, gzipSync } from "node:zlib";
import { create, fromBinary, toBinary } from "@bufbuild/protobuf";
import {
  GetCredentialRequestSchema,
  ListCredentialsRequestSchema,
  ListCredentialsResponseSchema,
} from "../../gen/credbroker/v1/credential_service_pb.js";
import {
  SignRequestRequestSchema,
  SignRequestResponseSchema,
} from "../../gen/credbroker/v1/signing_service_pb.js";
import { credentialClient } from "../support/clients.js";
import { type RunningDaemon, removeDir, startDaemon } from "../support/daemon.js";
import { grpcFrame } from "../support/h2load.js";
import { startTogether } from "../support/start-together.js";

interface Answer {
  status: number;
  headers: Record<string, string>;
  trailers: Record<string, string>;
  body: Buffer;
}

/** One raw HTTP/2 POST; the answer with per-call headers (date, required; x-request-id) left out. */
async function post(
  base: string,
  path: string,
  headers: Record<string, string>,
  body: Uint8Array,
): Promise<Answer> {
  const session = http2.connect(base);
  try {
    return await new Promise<Answer>((resolve, reject) => {
      const req = session.request({ ":method": "POST", ":path": path, ...headers });
      const answer: Answer = { status: 0, headers: {}, trailers: {}, body: Buffer.alloc(0) };
      const chunks: Buffer[] = [];
      const plain = (h: http2.IncomingHttpHeaders) => {
        const out: Record<string, string> = {};
        for (const [k, v] of Object.entries(h)) {
          if (k.startsWith(":") || k === "date" || k === "x-request-id") continue;
          out[k] = String(v);
        }
        return out;
      };
      req.on("response", (h) => {
        answer.status = Number(h[":status"]);
        answer.headers = plain(h);
        // Its value differs per call, but both paths must send it.
        if (Number.isNaN(Date.parse(String(h.date)))) reject(new Error("no date header"));
      });
      req.on("trailers", (h) => {
        answer.trailers = plain(h);
      });
      req.on("data", (c: Buffer) => chunks.push(c));
      req.on("end", () => resolve({ ...answer, body: Buffer.concat(chunks) }));
      req.on("error", reject);
      req.end(body);
    });
  } finally {
    session.close();
  }
}

const SIGN = "/credbroker.v1.SigningService/SignRequest";
const GET = "/credbroker.v1.CredentialService/GetCredential";
const LIST = "/credbroker.v1.CredentialService/ListCredentials";

describe("fast unary path: the same answers as connect-node", () => {
  let fast: RunningDaemon;
  let slow: RunningDaemon;

  before(async () => {
    [fast, slow] = await startTogether([
      startDaemon({ args: ["--rate-limit", "0", "--auth-failure-delay", "0"] }),
      startDaemon({
        args: ["--rate-limit", "0", "--auth-failure-delay", "0", "--disable-fast-unary"],
      }),
    ]);
    for (const d of [fast, slow]) {
      const creds = credentialClient(d.url, "connect-h2", d.token);
      await creds.createCredential({
        credential: {
          name: "reader",
          kind: {
            case: "accessKey",
            value: {
              accessKeyId: "AKIAIOSFODNN7EXAMPLE",
              secretAccessKey: "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
            },
          },
          allowedScopes: [{ bucket: "reports", prefixes: ["2026/"], actions: ["get_object"] }],
        },
      });
      // Enough credentials for a list page over 1 KiB (compressed when the client accepts it).
      for (let i = 0; i < 30; i++) {
        await creds.createCredential({
          credential: {
            name: `filler-${String(i).padStart(2, "0")}`,
            description: "a credential to make the list page longer than a kilobyte",
            kind: { case: "token", value: { token: `t-${i}` } },
            provider: 2,
          },
        });
      }
    }
  });
  after(async () => {
    for (const d of [fast, slow]) {
      await d?.stop();
      if (d) await removeDir(d.dataDir);
    }
  });

  const sign = (url: string) =>
    toBinary(
      SignRequestRequestSchema,
      create(SignRequestRequestSchema, { credential: "reader", method: "GET", url }),
    );
  const inScope = sign("https://reports.s3.eu-west-1.amazonaws.com/2026/q1.csv");
  const outOfScope = sign("https://reports.s3.eu-west-1.amazonaws.com/2025/q4.csv");
  const missing = toBinary(
    GetCredentialRequestSchema,
    create(GetCredentialRequestSchema, { namespace: "", name: "nope" }),
  );
  const grpc = { "content-type": "application/grpc", te: "trailers" };
  const connect = { "content-type": "application/proto", "connect-protocol-version": "1" };

  /** Sends the same request to both daemons, each with its own token. */
  async function both(
    path: string,
    headers: Record<string, string>,
    body: Uint8Array,
    auth = true,
  ): Promise<[Answer, Answer]> {
    const send = (d: RunningDaemon) =>
      post(
        d.url,
        path,
        { ...headers, ...(auth ? { authorization: `Bearer ${d.token}` } : {}) },
        body,
      );
    return Promise.all([send(fast), send(slow)]);
  }

  const errorCases: [string, string, Record<string, string>, Uint8Array, boolean?][] = [
    ["gRPC: out of scope (permission_denied)", SIGN, grpc, grpcFrame(outOfScope)],
    ["gRPC: not found", GET, grpc, grpcFrame(missing)],
    ["gRPC: no token (unauthenticated)", SIGN, grpc, grpcFrame(inScope), false],
    ["gRPC: an invalid field", SIGN, grpc, grpcFrame(sign("not a url"))],
    ["gRPC: bytes that are no protobuf", SIGN, grpc, grpcFrame(Buffer.from([0xff, 0xff, 0xff]))],
    ["gRPC: no message at all", SIGN, grpc, new Uint8Array()],
    ["gRPC: two messages", SIGN, grpc, Buffer.concat([grpcFrame(inScope), grpcFrame(inScope)])],
    ["gRPC: a truncated envelope", SIGN, grpc, grpcFrame(inScope).subarray(0, 9)],
    ["gRPC: a message over 1 MiB", SIGN, grpc, grpcFrame(Buffer.alloc(1024 * 1024 + 1))],
    [
      "gRPC: an unknown compression",
      SIGN,
      { ...grpc, "grpc-encoding": "snappy" },
      grpcFrame(inScope),
    ],
    ["gRPC: a malformed timeout", SIGN, { ...grpc, "grpc-timeout": "soon" }, grpcFrame(inScope)],
    [
      "gRPC: a timeout over the maximum",
      SIGN,
      { ...grpc, "grpc-timeout": "99999S" },
      grpcFrame(inScope),
    ],
    ["Connect: out of scope (permission_denied)", SIGN, connect, outOfScope],
    ["Connect: not found", GET, connect, missing],
    ["Connect: no token (unauthenticated)", SIGN, connect, inScope, false],
    ["Connect: bytes that are no protobuf", SIGN, connect, Buffer.from([0xff, 0xff, 0xff])],
    ["Connect: a body over 1 MiB", SIGN, connect, Buffer.alloc(1024 * 1024 + 1)],
    [
      "Connect: an unknown compression",
      SIGN,
      { ...connect, "content-encoding": "snappy" },
      inScope,
    ],
    ["Connect: a malformed timeout", SIGN, { ...connect, "connect-timeout-ms": "x" }, inScope],
  ];
  for (const [name, path, headers, body, auth] of errorCases) {
    test(name, async () => {
      const [a, b] = await both(path, headers, body, auth ?? true);
      assert.deepEqual(a, b);
      // An error, not an accident of two broken paths agreeing.
      if (headers["content-type"] === "application/grpc") {
        assert.notEqual(a.trailers["grpc-status"], "0", JSON.stringify(a));
      } else {
        assert.notEqual(a.status, 200, JSON.stringify(a));
      }
    });
  }

  test("gRPC and Connect successes: same status, headers and trailers; the message decodes", async () => {
    for (const [headers, body, unwrap] of [
      [grpc, grpcFrame(inScope), (b: Buffer) => b.subarray(5)],
      [connect, inScope, (b: Buffer) => b],
      [
        { ...grpc, "grpc-encoding": "gzip" },
        grpcFrame(gzipSync(inScope), 1),
        (b: Buffer) => b.subarray(5),
      ],
      [{ ...connect, "content-encoding": "gzip" }, gzipSync(inScope), (b: Buffer) => b],
    ] as const) {
      const [a, b] = await both(SIGN, headers, body);
      const { "content-length": _a, ...ha } = a.headers;
      const { "content-length": _b, ...hb } = b.headers;
      assert.deepEqual([a.status, ha, a.trailers], [b.status, hb, b.trailers]);
      assert.equal(a.status, 200);
      const res = fromBinary(SignRequestResponseSchema, unwrap(a.body));
      assert.equal(res.accessKeyId, "AKIAIOSFODNN7EXAMPLE");
      assert.match(res.headers.find((h) => h.name === "authorization")?.value ?? "", /Signature=/);
    }
  });

  test("a response over 1 KiB is gzip-compressed for a client that accepts it, as connect-node does", async () => {
    const list = toBinary(
      ListCredentialsRequestSchema,
      create(ListCredentialsRequestSchema, { pageSize: 100 }),
    );
    for (const [headers, body, unwrap] of [
      [
        { ...grpc, "grpc-accept-encoding": "gzip" },
        grpcFrame(list),
        (b: Buffer) => {
          assert.equal(b[0], 1, "compressed flag");
          return gunzipSync(b.subarray(5));
        },
      ],
      [{ ...connect, "accept-encoding": "gzip" }, list, (b: Buffer) => gunzipSync(b)],
    ] as const) {
      const [a, b] = await both(LIST, headers, body);
      const { "content-length": _a, ...ha } = a.headers;
      const { "content-length": _b, ...hb } = b.headers;
      assert.deepEqual([a.status, ha, a.trailers], [b.status, hb, b.trailers]);
      const page = fromBinary(ListCredentialsResponseSchema, unwrap(a.body));
      assert.equal(page.credentials.length, 31);
    }
  });

  test("JSON, gRPC-Web and HTTP/1.1 still reach connect-node on the fast daemon", async () => {
    const res = await fetch(`${fast.url}${GET}`, {
      method: "POST",
      headers: { "content-type": "application/json", authorization: `Bearer ${fast.token}` },
      body: JSON.stringify({ name: "reader" }),
    });
    assert.equal(res.status, 200);
    const json = (await res.json()) as { credential: { name: string } };
    assert.equal(json.credential.name, "reader");
    for (const protocol of ["grpc-web-h2", "connect-h1", "grpc-h2"] as const) {
      const got = await credentialClient(fast.url, protocol, fast.token).getCredential({
        name: "reader",
      });
      assert.equal(got.credential?.name, "reader");
    }
  });
});
