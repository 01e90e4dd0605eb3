/**
 * brokerFetch, the client's `fetch` made by the broker: the real daemon, a
 * real HTTP upstream on 127.0.0.1, over both wire protocols. What comes
 * back is a standard Response; an abort cancels the call as fetch's does.
 */
import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import { create } from "@bufbuild/protobuf";
import { TokenPlacement, TokenSchema } from "../../gen/credbroker/v1/credential_pb.js";
import {
  type BrokerClient,
  BrokerFetchError,
  brokerFetch,
  createBrokerClient,
} from "../../src/client/index.js";
import { credentialClient } from "../support/clients.js";
import { type RunningDaemon, removeDir, startDaemon } from "../support/daemon.js";
import {
  BINARY,
  type Echoed,
  type FetchUpstream,
  startFetchUpstream,
} from "../support/fetch-upstream.js";
import { startTogether } from "../support/start-together.js";

const TOKEN = "bfTOKENsecret61-aB3dE6gH9jK2mN5pQ8rStUvW";

describe("brokerFetch", () => {
  let daemon: RunningDaemon;
  let upstream: FetchUpstream;
  let client: BrokerClient;
  const opts = () => ({ client, namespace: "bf", credential: "api" });
  const echo = async (res: Response) => (await res.json()) as Echoed;
  const sent = (e: Echoed) => Buffer.from(e.body, "base64");

  before(async () => {
    [daemon, upstream] = await startTogether([startDaemon(), startFetchUpstream()]);
    client = createBrokerClient({ addr: daemon.url, token: daemon.token });
    const credentials = credentialClient(daemon.url, "connect-h2", daemon.token);
    for (const [name, allowedHosts] of [
      ["api", ["127.0.0.1"]],
      ["nowhere", []],
    ] as const) {
      await credentials.createCredential({
        credential: {
          namespace: "bf",
          name,
          kind: {
            case: "token",
            value: create(TokenSchema, {
              token: TOKEN,
              placement: TokenPlacement.QUERY,
              queryName: "key",
            }),
          },
          allowedHosts: [...allowedHosts],
        },
      });
    }
  });
  after(async () => {
    await upstream?.close();
    await daemon?.stop();
    if (daemon) await removeDir(daemon.dataDir);
  });

  test("GET: a standard Response with the upstream's status, headers, body and URL", async () => {
    const url = `${upstream.url}/echo?page=2`;
    const res = await brokerFetch(opts(), url);
    assert.ok(res instanceof Response);
    assert.equal(res.status, 200);
    assert.equal(res.ok, true);
    assert.equal(res.headers.get("x-upstream"), "echo");
    assert.equal(res.url, url);
    const e = await echo(res);
    assert.equal(e.method, "GET");
    // The token went in the query, as the credential says; this process sees it redacted.
    assert.match(e.url, /^\/echo\?page=2&key=/);
    assert.ok(!JSON.stringify(e).includes(TOKEN));
  });

  test("POST with each kind of body fetch takes; headers and the default content-type are sent", async () => {
    const bodies: [NonNullable<RequestInit["body"]>, Buffer, string | undefined][] = [
      ["text body", Buffer.from("text body"), "text/plain;charset=UTF-8"],
      [BINARY, BINARY, undefined],
      [
        BINARY.buffer.slice(BINARY.byteOffset, BINARY.byteOffset + BINARY.length),
        BINARY,
        undefined,
      ],
      [
        new URLSearchParams({ a: "1", b: "x y" }),
        Buffer.from("a=1&b=x+y"),
        "application/x-www-form-urlencoded;charset=UTF-8",
      ],
      [new Blob(["blob"], { type: "text/csv" }), Buffer.from("blob"), "text/csv"],
    ];
    for (const [body, expected, type] of bodies) {
      const res = await brokerFetch(opts(), `${upstream.url}/echo`, {
        method: "POST",
        body,
        headers: { "X-Trace": "t-1" },
      });
      assert.equal(res.status, 200);
      const e = await echo(res);
      assert.equal(e.method, "POST");
      assert.deepEqual(sent(e), expected);
      assert.equal(e.headers["x-trace"], "t-1");
      if (type !== undefined) assert.equal(e.headers["content-type"], type);
    }
    // A stream, read whole before the call.
    const stream = new ReadableStream<Uint8Array>({
      start(c) {
        c.enqueue(Buffer.from("part 1, "));
        c.enqueue(Buffer.from("part 2"));
        c.close();
      },
    });
    const streamed = await brokerFetch(opts(), `${upstream.url}/echo`, {
      method: "POST",
      body: stream,
      duplex: "half",
    });
    assert.equal(sent(await echo(streamed)).toString(), "part 1, part 2");
    // A Request as the input: its method, headers and body.
    const req = new Request(`${upstream.url}/echo`, {
      method: "PUT",
      body: "from a Request",
      headers: new Headers([["x-from", "request"]]),
    });
    const e = await echo(await brokerFetch({ ...opts(), client }, req));
    assert.equal(e.method, "PUT");
    assert.equal(sent(e).toString(), "from a Request");
    assert.equal(e.headers["x-from"], "request");
  });

  test("a 404 resolves (as fetch does) with ok false; a binary body and a 204 come back as they are", async () => {
    const missing = await brokerFetch(opts(), `${upstream.url}/missing`);
    assert.equal(missing.status, 404);
    assert.equal(missing.ok, false);
    assert.equal(await missing.text(), "not here");

    const binary = await brokerFetch(opts(), `${upstream.url}/binary`);
    assert.deepEqual(Buffer.from(await binary.arrayBuffer()), BINARY);
    assert.equal(binary.redacted, false);

    const empty = await brokerFetch(opts(), `${upstream.url}/empty`);
    assert.equal(empty.status, 204);
    assert.equal(empty.body, null);
    assert.equal(empty.headers.get("x-upstream"), "empty");
  });

  test("a secret in the answer is redacted and the Response says so", async () => {
    const res = await brokerFetch(opts(), `${upstream.url}/leak`, {
      headers: { authorization: "Bearer caller-own" },
    }).catch((e: unknown) => e);
    // The caller may not set Authorization over a token: a refusal, as the API documents.
    assert.ok(res instanceof BrokerFetchError, String(res));
    assert.equal(res.code, "InvalidArgument");
    const echoed = await brokerFetch(opts(), `${upstream.url}/echo`);
    assert.equal(echoed.redacted, true);
    assert.ok(!(await echoed.text()).includes(TOKEN));
  });

  test("an abort rejects with the signal's reason and cancels the call; an aborted signal sends nothing", async () => {
    const controller = new AbortController();
    const started = Date.now();
    const pending = brokerFetch(opts(), `${upstream.url}/slow?ms=10000`, {
      signal: controller.signal,
    });
    setTimeout(() => controller.abort(), 300);
    await assert.rejects(pending, (err: Error) => err.name === "AbortError");
    assert.ok(Date.now() - started < 5000, "did not wait for the upstream");

    const seen = upstream.seen.length;
    const reason = new Error("changed my mind");
    await assert.rejects(
      brokerFetch(opts(), `${upstream.url}/echo`, { signal: AbortSignal.abort(reason) }),
      (err) => err === reason,
    );
    assert.equal(upstream.seen.length, seen);
  });

  test("a broker refusal is a BrokerFetchError (a TypeError, as fetch's failures are) with the code", async () => {
    for (const transport of ["grpc", "connect"] as const) {
      const c = createBrokerClient({ addr: daemon.url, token: daemon.token, transport });
      const err = await brokerFetch(
        { client: c, namespace: "bf", credential: "nowhere" },
        `${upstream.url}/echo`,
      ).catch((e: unknown) => e);
      assert.ok(err instanceof BrokerFetchError, String(err));
      assert.ok(err instanceof TypeError);
      assert.equal(err.code, "FailedPrecondition");
      assert.match(err.message, /allowed_hosts/);
    }
    await assert.rejects(
      brokerFetch(opts(), `${upstream.url}/echo`, { method: "GET", body: "x" }),
      TypeError,
      "fetch's own rule: no body with GET",
    );
  });
});
