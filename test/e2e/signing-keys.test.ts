/**
 * Cached signing keys against a server that checks signatures: the daemon
 * (composed in process, as server.ts wires it) signs STS GetCallerIdentity
 * calls with an access key, and the fake STS verifies each one with the
 * secret it knows. A rotated secret signs at once (the old key is never
 * used), a disabled credential stops signing, and a key with a session token
 * keeps sending it while its derived key is cached.
 */
import assert from "node:assert/strict";
import { randomUUID } from "node:crypto";
import { readFile } from "node:fs/promises";
import path from "node:path";
import { after, before, describe, test } from "node:test";
import { type Client, ConnectError, createClient } from "@connectrpc/connect";
import { pino } from "pino";
import { CredentialService } from "../../gen/credbroker/v1/credential_service_pb.js";
import {
  SigningService,
  type SignRequestResponse,
} from "../../gen/credbroker/v1/signing_service_pb.js";
import { startDaemon as composeDaemon, type Daemon } from "../../src/daemon/serve.js";
import { transport } from "../support/clients.js";
import { testConfig } from "../support/compose.js";
import { removeDir, tempDir } from "../support/daemon.js";
import { type FakeSts, startFakeSts } from "../support/sts-server.js";

const ACCOUNT = "123456789012";
const BODY = "Action=GetCallerIdentity&Version=2011-06-15";
const FIRST = "first/secret/KEY00000000000000000000000";
const SECOND = "second/secret/KEY0000000000000000000000";

describe("cached signing keys against a verifying STS", () => {
  let sts: FakeSts;
  let daemon: Daemon;
  let dataDir: string;
  let creds: Client<typeof CredentialService>;
  let signing: Client<typeof SigningService>;

  const sign = (credential: string) =>
    signing.signRequest({
      credential,
      method: "POST",
      url: `${sts.endpoint}/`,
      headers: [{ name: "content-type", value: "application/x-www-form-urlencoded" }],
      payload: { case: "body", value: Buffer.from(BODY) },
      service: "sts",
      region: "us-east-1",
    });
  /** The status STS answers the signed call with. */
  const send = async (signed: SignRequestResponse) => {
    const res = await fetch(signed.url, {
      method: "POST",
      headers: Object.fromEntries(signed.headers.map((h) => [h.name, h.value])),
      body: BODY,
    });
    await res.text();
    return res.status;
  };
  const key = (name: string, accessKeyId: string, secretAccessKey: string, sessionToken?: string) =>
    creds.createCredential({
      credential: {
        name,
        allowedHosts: ["127.0.0.1"],
        kind: { case: "accessKey", value: { accessKeyId, secretAccessKey, sessionToken } },
      },
    });

  before(async () => {
    sts = await startFakeSts();
    dataDir = await tempDir();
    daemon = await composeDaemon(
      testConfig(dataDir, {
        sts: { endpoint: sts.endpoint, region: "us-east-1", allowAmbient: false },
      }),
      pino({ level: "silent" }),
      { now: () => new Date(), newId: randomUUID },
    );
    const token = (await readFile(path.join(dataDir, "admin.token"), "utf8")).trim();
    creds = createClient(CredentialService, transport(daemon.url, "connect-h2", token));
    signing = createClient(SigningService, transport(daemon.url, "grpc-h2", token));
  });

  after(async () => {
    await daemon?.stop();
    await removeDir(dataDir);
    await sts?.stop();
  });

  test("a rotated secret signs at once; the old key is never used", async () => {
    const arn = `arn:aws:iam::${ACCOUNT}:user/rotating`;
    sts.addKey({
      accessKeyId: "AKIAROTATING00000001",
      secretAccessKey: FIRST,
      arn,
      account: ACCOUNT,
    });
    await key("rotating", "AKIAROTATING00000001", FIRST);
    assert.equal(await send(await sign("rotating")), 200);
    assert.equal(await send(await sign("rotating")), 200, "a cached key");

    await creds.updateCredential({
      name: "rotating",
      credential: {
        kind: { case: "accessKey", value: { secretAccessKey: SECOND } },
      },
      updateMask: { paths: ["access_key.secret_access_key"] },
    });
    const rotated = await sign("rotating");
    // STS still knows the first secret: a signature made with the new one fails there …
    assert.equal(await send(rotated), 403);
    // … and passes once STS knows the new one.
    sts.addKey({
      accessKeyId: "AKIAROTATING00000001",
      secretAccessKey: SECOND,
      arn,
      account: ACCOUNT,
    });
    assert.equal(await send(rotated), 200);
    assert.equal(await send(await sign("rotating")), 200);
  });

  test("a disabled credential stops signing; enabled again, it signs", async () => {
    const arn = `arn:aws:iam::${ACCOUNT}:user/toggled`;
    sts.addKey({
      accessKeyId: "AKIATOGGLED000000001",
      secretAccessKey: FIRST,
      arn,
      account: ACCOUNT,
    });
    await key("toggled", "AKIATOGGLED000000001", FIRST);
    assert.equal(await send(await sign("toggled")), 200);
    const enable = (enabled: boolean) =>
      creds.updateCredential({
        name: "toggled",
        credential: { enabled },
        updateMask: { paths: ["enabled"] },
      });
    await enable(false);
    const denied = await sign("toggled").then(
      () => assert.fail("a disabled credential signed"),
      (e: unknown) => ConnectError.from(e),
    );
    assert.match(denied.message, /AccessDenied/);
    await enable(true);
    assert.equal(await send(await sign("toggled")), 200);
  });

  test("a key with a session token sends it with every signature", async () => {
    const sessionToken = "FwoGZXIvYXdzTOKEN/for+cached+keys==";
    sts.addKey({
      accessKeyId: "ASIATEMPORARY0000001",
      secretAccessKey: FIRST,
      sessionToken,
      arn: `arn:aws:sts::${ACCOUNT}:assumed-role/temp/session`,
      account: ACCOUNT,
    });
    await key("temporary", "ASIATEMPORARY0000001", FIRST, sessionToken);
    for (let i = 0; i < 3; i++) {
      const signed = await sign("temporary");
      assert.equal(
        signed.headers.find((h) => h.name === "x-amz-security-token")?.value,
        sessionToken,
      );
      assert.equal(await send(signed), 200);
    }
  });
});
