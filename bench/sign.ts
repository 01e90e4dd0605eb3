/**
 * Signing in process: validation + policy + SigV4 (credbroker's code, with
 * its derived-key cache) against a minimal node:crypto signer that derives
 * its key once and does only the canonicalization any signer must. (The
 * RPC around it is bench/rpc.ts.)
 */
import { createHash, createHmac } from "node:crypto";
import { create } from "@bufbuild/protobuf";
import { CredentialSchema } from "../gen/credbroker/v1/credential_pb.js";
import { SignRequestRequestSchema } from "../gen/credbroker/v1/signing_service_pb.js";
import { prepareNew } from "../src/core/lifecycle.js";
import { planSignature, validateSignRequest } from "../src/providers/aws/sign-plan.js";
import { SigningKeyCache } from "../src/providers/aws/signing-keys.js";
import { sigv4 } from "../src/providers/aws/sigv4.js";
import type { Bench, Row } from "./table.js";

const SECRET = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY";
const URL_TO_SIGN = "https://reports.s3.eu-west-1.amazonaws.com/2026/q1.csv";

/** Mean µs per call of a synchronous task, after a warm-up. */
function micros(task: () => unknown, rounds = 50000): number {
  for (let i = 0; i < 5000; i++) task();
  const t = process.hrtime.bigint();
  for (let i = 0; i < rounds; i++) task();
  return Number(process.hrtime.bigint() - t) / 1000 / rounds;
}

/**
 * The smallest honest SigV4 header signer: node:crypto, the signing key
 * derived once, and only the canonicalization any signer must do for a GET
 * of a URL (encode the path, sort the query and the headers). No policy,
 * no validation, no service rules.
 */
function minimalSigner() {
  const hmac = (key: Buffer | string, data: string) =>
    createHmac("sha256", key).update(data).digest();
  const date = "20261124";
  const key = ["eu-west-1", "s3", "aws4_request"].reduce(
    (k, part) => hmac(k, part),
    hmac(`AWS4${SECRET}`, date),
  );
  return (url: string, now: Date) => {
    const u = new URL(url);
    const amzDate = `${now.toISOString().replace(/[-:]/g, "").slice(0, 15)}Z`;
    const headers: [string, string][] = [
      ["host", u.host],
      ["x-amz-content-sha256", "UNSIGNED-PAYLOAD"],
      ["x-amz-date", amzDate],
    ];
    headers.sort(([a], [b]) => (a < b ? -1 : 1));
    const query = [...u.searchParams]
      .map(([k, v]) => `${encodeURIComponent(k)}=${encodeURIComponent(v)}`)
      .sort()
      .join("&");
    const signed = headers.map(([n]) => n).join(";");
    const canonical = [
      "GET",
      u.pathname.split("/").map(encodeURIComponent).join("/"),
      query,
      ...headers.map(([n, v]) => `${n}:${v.trim()}`),
      "",
      signed,
      "UNSIGNED-PAYLOAD",
    ].join("\n");
    const scope = `${date}/eu-west-1/s3/aws4_request`;
    const toSign = `AWS4-HMAC-SHA256\n${amzDate}\n${scope}\n${createHash("sha256").update(canonical).digest("hex")}`;
    return `AWS4-HMAC-SHA256 Credential=AKIAIOSFODNN7EXAMPLE/${scope}, SignedHeaders=${signed}, Signature=${createHmac("sha256", key).update(toSign).digest("hex")}`;
  };
}

export const sign: Bench = {
  name: "sign",
  async run(): Promise<Row[]> {
    const request = { credential: "bench", method: "GET", url: URL_TO_SIGN };
    const credential = prepareNew(
      create(CredentialSchema, {
        name: "bench",
        kind: {
          case: "accessKey",
          value: { accessKeyId: "AKIAIOSFODNN7EXAMPLE", secretAccessKey: SECRET },
        },
        allowedScopes: [{ bucket: "reports", prefixes: ["2026/"], actions: ["get_object"] }],
      }),
      { now: () => new Date(), newId: () => "bench" },
    );
    const signingCredential = {
      id: credential.id,
      etag: "bench",
      accessKeyId: "AKIAIOSFODNN7EXAMPLE",
      secretAccessKey: SECRET,
    };
    const keys = new SigningKeyCache();
    const signReq = create(SignRequestRequestSchema, request);
    const oursUs = micros(() =>
      sigv4(
        planSignature(validateSignRequest(signReq), credential, new Date()),
        signingCredential,
        keys,
      ),
    );
    const minimal = minimalSigner();
    const minimalUs = micros(() => minimal(URL_TO_SIGN, new Date()));
    return [
      {
        figure: "in-process policy + signing (speed vs the minimal signer)",
        credbroker: `${oursUs.toFixed(1)} µs`,
        baseline: `${minimalUs.toFixed(1)} µs (node:crypto, cached key)`,
        ratio: minimalUs / oursUs,
        target: "≥ 0.5×",
        met: minimalUs / oursUs >= 0.5,
      },
    ];
  },
};
