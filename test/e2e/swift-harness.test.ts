/**
 * Proves that test/support/swift.ts is a real, signature-verifying S3: requests
 * are signed here with @smithy/signature-v4 (no AWS SDK client) and sent with
 * fetch, path-style, to Swift's s3api on 127.0.0.1.
 */
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { after, before, describe, test } from "node:test";
import { Hash } from "@smithy/hash-node";
import { HttpRequest } from "@smithy/protocol-http";
import { SignatureV4 } from "@smithy/signature-v4";
import { type SwiftServer, startSwift } from "../support/swift.js";

const BUCKET = "harness";

let swift: SwiftServer;
before(async () => {
  swift = await startSwift();
  const res = await send(await sign({ method: "PUT", path: s3Path(BUCKET) }));
  assert.equal(res.status, 200, res.text);
});
after(async () => {
  await swift?.stop();
});

type Query = Record<string, string>;

interface Request {
  method: string;
  /** Already URI-encoded, see s3Path. */
  path: string;
  query?: Query;
  headers?: Record<string, string>;
  body?: Uint8Array | string;
}

interface Response {
  status: number;
  headers: Headers;
  body: Buffer;
  text: string;
}

interface SignOptions {
  secret?: string;
  region?: string;
  /** false: no x-amz-content-sha256 header (Swift then refuses the request). */
  applyChecksum?: boolean;
  signingDate?: Date;
}

/** RFC 3986 unreserved characters stay; everything else is %XX (UTF-8). */
function uriEncode(s: string): string {
  return encodeURIComponent(s).replace(
    /[!'()*]/g,
    (c) => `%${c.charCodeAt(0).toString(16).toUpperCase()}`,
  );
}

/**
 * "/bucket/key" with each segment encoded once. That is S3's canonical URI
 * (not the double encoding of other AWS services, hence uriEscapePath: false),
 * and it is how Swift rebuilds it: quote(unquote(path), safe="-_.~/").
 */
function s3Path(bucket: string, key?: string): string {
  const segments = key === undefined ? [bucket] : [bucket, ...key.split("/")];
  return `/${segments.map(uriEncode).join("/")}`;
}

function queryString(query: Query): string {
  const pairs = Object.entries(query).map(([k, v]) => `${uriEncode(k)}=${uriEncode(v)}`);
  return pairs.length === 0 ? "" : `?${pairs.join("&")}`;
}

function sha256Hex(data: Uint8Array | string): string {
  return createHash("sha256").update(data).digest("hex");
}

function signer(opts: SignOptions = {}): SignatureV4 {
  return new SignatureV4({
    credentials: {
      accessKeyId: swift.accessKeyId,
      secretAccessKey: opts.secret ?? swift.secretAccessKey,
    },
    region: opts.region ?? swift.region,
    service: "s3",
    sha256: Hash.bind(null, "sha256"),
    uriEscapePath: false,
    applyChecksum: opts.applyChecksum ?? true,
  });
}

function httpRequest(req: Request): HttpRequest {
  const url = new URL(swift.endpoint);
  return new HttpRequest({
    method: req.method,
    protocol: url.protocol,
    hostname: url.hostname,
    port: Number(url.port),
    path: req.path,
    query: req.query ?? {},
    headers: { host: url.host, ...req.headers },
    body: req.body,
  });
}

/** A request signed in the Authorization header (x-amz-content-sha256 set by the signer). */
async function sign(req: Request, opts: SignOptions = {}): Promise<Request> {
  const signed = await signer(opts).sign(httpRequest(req), {
    signingDate: opts.signingDate ?? new Date(),
  });
  return { ...req, headers: { ...signed.headers } };
}

async function presignedUrl(
  req: Request,
  opts: { expiresIn: number; unsignedPayload: boolean; signingDate?: Date },
): Promise<string> {
  const request = httpRequest(req);
  if (opts.unsignedPayload) request.headers["x-amz-content-sha256"] = "UNSIGNED-PAYLOAD";
  const keep = new Set(["x-amz-content-sha256"]);
  const presigned = await signer().presign(request, {
    expiresIn: opts.expiresIn,
    signingDate: opts.signingDate ?? new Date(),
    // The payload hash only feeds the canonical request; it is not sent.
    unsignableHeaders: keep,
    unhoistableHeaders: keep,
  });
  const query: Query = {};
  for (const [k, v] of Object.entries(presigned.query ?? {})) {
    assert.equal(typeof v, "string", k);
    query[k] = String(v);
  }
  return `${swift.endpoint}${presigned.path}${queryString(query)}`;
}

/** Sends `req` as is (fetch sets Host from the URL, the same value that was signed). */
async function send(req: Request): Promise<Response> {
  const headers = Object.fromEntries(
    Object.entries(req.headers ?? {}).filter(([k]) => k.toLowerCase() !== "host"),
  );
  const res = await fetch(`${swift.endpoint}${req.path}${queryString(req.query ?? {})}`, {
    method: req.method,
    headers,
    body: req.body,
  });
  const body = Buffer.from(await res.arrayBuffer());
  return { status: res.status, headers: res.headers, body, text: body.toString("utf8") };
}

async function signedSend(req: Request, opts: SignOptions = {}): Promise<Response> {
  return send(await sign(req, opts));
}

function errorCode(res: Response): string | undefined {
  return /<Code>([^<]*)<\/Code>/.exec(res.text)?.[1];
}

function md5Etag(data: Uint8Array | string): string {
  return `"${createHash("md5").update(data).digest("hex")}"`;
}

describe("swift s3api harness: a real SigV4-verifying S3", () => {
  test("creates, lists and deletes a bucket (path-style)", async () => {
    const put = await signedSend({ method: "PUT", path: s3Path("made-and-gone") });
    assert.equal(put.status, 200, put.text);
    const list = await signedSend({ method: "GET", path: "/" });
    assert.equal(list.status, 200, list.text);
    assert.match(list.text, /<Name>made-and-gone<\/Name>/);
    assert.match(list.text, new RegExp(`<Name>${BUCKET}</Name>`));
    const del = await signedSend({ method: "DELETE", path: s3Path("made-and-gone") });
    assert.equal(del.status, 204, del.text);
    const head = await signedSend({ method: "HEAD", path: s3Path("made-and-gone") });
    assert.equal(head.status, 404);
  });

  test("PUT with the body's sha256, GET, HEAD, list (v1 and v2), DELETE", async () => {
    const key = "docs/hello.txt";
    const body = "hello, swift\n";
    const put = await signedSend({
      method: "PUT",
      path: s3Path(BUCKET, key),
      headers: { "x-amz-content-sha256": sha256Hex(body), "content-type": "text/plain" },
      body,
    });
    assert.equal(put.status, 200, put.text);
    assert.equal(put.headers.get("etag"), md5Etag(body));

    const get = await signedSend({ method: "GET", path: s3Path(BUCKET, key) });
    assert.equal(get.status, 200, get.text);
    assert.equal(get.text, body);
    assert.equal(get.headers.get("content-type"), "text/plain");

    const head = await signedSend({ method: "HEAD", path: s3Path(BUCKET, key) });
    assert.equal(head.status, 200);
    assert.equal(head.headers.get("content-length"), String(Buffer.byteLength(body)));
    assert.equal(head.headers.get("etag"), md5Etag(body));
    assert.equal(head.body.length, 0);

    const v2 = await signedSend({
      method: "GET",
      path: s3Path(BUCKET),
      query: { "list-type": "2", prefix: "docs/" },
    });
    assert.equal(v2.status, 200, v2.text);
    assert.match(v2.text, /<ListBucketResult/);
    assert.match(v2.text, /<Key>docs\/hello\.txt<\/Key>/);
    assert.match(v2.text, /<KeyCount>1<\/KeyCount>/);

    const v1 = await signedSend({ method: "GET", path: s3Path(BUCKET) });
    assert.equal(v1.status, 200, v1.text);
    assert.match(v1.text, /<Key>docs\/hello\.txt<\/Key>/);

    const del = await signedSend({ method: "DELETE", path: s3Path(BUCKET, key) });
    assert.equal(del.status, 204, del.text);
    const gone = await signedSend({ method: "GET", path: s3Path(BUCKET, key) });
    assert.equal(gone.status, 404);
    assert.equal(errorCode(gone), "NoSuchKey");
  });

  test("PUT with x-amz-content-sha256: UNSIGNED-PAYLOAD is accepted", async () => {
    const key = "unsigned.bin";
    const body = Buffer.from([0, 1, 2, 3, 254, 255]);
    const put = await signedSend({
      method: "PUT",
      path: s3Path(BUCKET, key),
      headers: { "x-amz-content-sha256": "UNSIGNED-PAYLOAD" },
      body,
    });
    assert.equal(put.status, 200, put.text);
    const get = await signedSend({ method: "GET", path: s3Path(BUCKET, key) });
    assert.equal(get.status, 200);
    assert.deepEqual(get.body, body);
  });

  test("keys are signed with the path encoded once (RFC 3986), as S3 does", async () => {
    const key = "odd/a b+c(1)*!'~ü.txt";
    const body = "odd";
    const put = await signedSend({ method: "PUT", path: s3Path(BUCKET, key), body });
    assert.equal(put.status, 200, put.text);
    const list = await signedSend({
      method: "GET",
      path: s3Path(BUCKET),
      query: { "list-type": "2", prefix: "odd/" },
    });
    assert.equal(list.status, 200, list.text);
    assert.ok(list.text.includes(`<Key>${key}</Key>`), list.text);
    const get = await signedSend({ method: "GET", path: s3Path(BUCKET, key) });
    assert.equal(get.status, 200, get.text);
    assert.equal(get.text, body);

    // Signing "(" and ")" unescaped (encodeURIComponent leaves them) does not
    // match: Swift canonicalizes the received path to %28/%29.
    const loose = `/${BUCKET}/${key.split("/").map(encodeURIComponent).join("/")}`;
    assert.notEqual(loose, s3Path(BUCKET, key));
    const res = await signedSend({ method: "GET", path: loose });
    assert.equal(res.status, 403, res.text);
    assert.equal(errorCode(res), "SignatureDoesNotMatch");
  });

  test("a request signed with the wrong secret is refused (403 SignatureDoesNotMatch)", async () => {
    const res = await signedSend({ method: "GET", path: s3Path(BUCKET) }, { secret: "wrong" });
    assert.equal(res.status, 403, res.text);
    assert.equal(errorCode(res), "SignatureDoesNotMatch");
  });

  test("changing the path after signing is refused (403)", async () => {
    const body = "payload";
    const signed = await sign({
      method: "PUT",
      path: s3Path(BUCKET, "signed-key"),
      headers: { "x-amz-content-sha256": sha256Hex(body) },
      body,
    });
    const res = await send({ ...signed, path: s3Path(BUCKET, "other-key") });
    assert.equal(res.status, 403, res.text);
    assert.equal(errorCode(res), "SignatureDoesNotMatch");
    const other = await signedSend({ method: "HEAD", path: s3Path(BUCKET, "other-key") });
    assert.equal(other.status, 404);
  });

  test("changing a signed header after signing is refused (403)", async () => {
    const body = "payload";
    const signed = await sign({
      method: "PUT",
      path: s3Path(BUCKET, "meta"),
      headers: { "x-amz-content-sha256": sha256Hex(body), "x-amz-meta-color": "red" },
      body,
    });
    const res = await send({
      ...signed,
      headers: { ...signed.headers, "x-amz-meta-color": "blue" },
    });
    assert.equal(res.status, 403, res.text);
    assert.equal(errorCode(res), "SignatureDoesNotMatch");

    const ok = await send(signed);
    assert.equal(ok.status, 200, ok.text);
    const head = await signedSend({ method: "HEAD", path: s3Path(BUCKET, "meta") });
    assert.equal(head.headers.get("x-amz-meta-color"), "red");
  });

  test("a body that does not match the signed sha256 is refused and not stored", async () => {
    const signedBody = "the body that was signed";
    const sentBody = "a body that was swapped!";
    assert.equal(sentBody.length, signedBody.length);
    const signed = await sign({
      method: "PUT",
      path: s3Path(BUCKET, "swapped"),
      headers: { "x-amz-content-sha256": sha256Hex(signedBody) },
      body: signedBody,
    });
    const res = await send({ ...signed, body: sentBody });
    assert.ok(res.status === 400 || res.status === 403, `${res.status} ${res.text}`);
    assert.ok(["BadDigest", "XAmzContentSHA256Mismatch"].includes(errorCode(res) ?? ""), res.text);
    const head = await signedSend({ method: "HEAD", path: s3Path(BUCKET, "swapped") });
    assert.equal(head.status, 404);
  });

  test("a presigned GET URL (UNSIGNED-PAYLOAD, 60 s) works with plain fetch", async () => {
    const body = "presigned content";
    const put = await signedSend({ method: "PUT", path: s3Path(BUCKET, "shared.txt"), body });
    assert.equal(put.status, 200, put.text);

    const url = await presignedUrl(
      { method: "GET", path: s3Path(BUCKET, "shared.txt") },
      { expiresIn: 60, unsignedPayload: true },
    );
    assert.match(url, /X-Amz-Signature=[0-9a-f]{64}/);
    assert.doesNotMatch(url, /content-sha256/i);
    const res = await fetch(url);
    assert.equal(res.status, 200);
    assert.equal(await res.text(), body);

    // Tampering with the URL breaks it.
    const tampered = await fetch(url.replace("X-Amz-Expires=60", "X-Amz-Expires=600"));
    assert.equal(tampered.status, 403);
    assert.match(await tampered.text(), /<Code>SignatureDoesNotMatch<\/Code>/);
  });

  test("presigned URLs: the payload hash must be UNSIGNED-PAYLOAD, and expiry is enforced", async () => {
    const path = s3Path(BUCKET, "shared.txt");
    // Without the UNSIGNED-PAYLOAD header the signer hashes the empty body;
    // Swift always uses UNSIGNED-PAYLOAD for query-string auth.
    const emptyHash = await fetch(
      await presignedUrl({ method: "GET", path }, { expiresIn: 60, unsignedPayload: false }),
    );
    assert.equal(emptyHash.status, 403);
    assert.match(await emptyHash.text(), /<Code>SignatureDoesNotMatch<\/Code>/);

    const expired = await fetch(
      await presignedUrl(
        { method: "GET", path },
        { expiresIn: 60, unsignedPayload: true, signingDate: new Date(Date.now() - 120_000) },
      ),
    );
    assert.equal(expired.status, 403);
    assert.match(await expired.text(), /<Code>AccessDenied<\/Code>/);
  });

  test("Swift's SigV4 rules: x-amz-content-sha256 required, region checked, aws-chunked refused", async () => {
    const noHash = await signedSend(
      { method: "GET", path: s3Path(BUCKET) },
      { applyChecksum: false },
    );
    assert.equal(noHash.status, 400, noHash.text);
    assert.equal(errorCode(noHash), "InvalidRequest");

    const otherRegion = await signedSend(
      { method: "GET", path: s3Path(BUCKET) },
      { region: "eu-west-1" },
    );
    assert.equal(otherRegion.status, 400, otherRegion.text);
    assert.equal(errorCode(otherRegion), "AuthorizationHeaderMalformed");

    const chunked = await signedSend({
      method: "PUT",
      path: s3Path(BUCKET, "chunked"),
      headers: { "x-amz-content-sha256": "STREAMING-AWS4-HMAC-SHA256-PAYLOAD" },
      body: "x",
    });
    assert.equal(chunked.status, 501, chunked.text);
    assert.equal(errorCode(chunked), "NotImplemented");
  });
});
