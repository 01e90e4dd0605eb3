import assert from "node:assert/strict";
import { readdir, readFile } from "node:fs/promises";
import path from "node:path";
import { after, before, describe, test } from "node:test";
import { toJsonString } from "@bufbuild/protobuf";
import { ConnectError } from "@connectrpc/connect";
import { Level } from "level";
import {
  CreateCredentialResponseSchema,
  GetCredentialResponseSchema,
  ListCredentialsResponseSchema,
  UpdateCredentialResponseSchema,
  VerifyCredentialResponseSchema,
} from "../../gen/credbroker/v1/credential_service_pb.js";
import { credentialClient, PROTOCOLS } from "../support/clients.js";
import { type RunningDaemon, removeDir, startDaemon } from "../support/daemon.js";

// Distinctive values, so a hit anywhere is unambiguous.
const SECRET = "zQ8sK3vW1pL5xN7rT9bY2mC4dF6gH0jSECRETkey";
const ROTATED = "rT5yU8iO1pA3sD6fG9hJ2kL4zX7cV0bROTATEDkey";
const SESSION = "FwoGZXIvYXdzSESSIONtokenQ2w3e4r5t6y7u8i9o0p";
const TOKEN = "ghp_TOKENvalue0123456789abcdefghijklmnopqr";
const SECRETS = [SECRET, ROTATED, SESSION, TOKEN];

/** Each secret as it could leak: raw, base64, base64url, hex (both cases). */
function encodings(secret: string): string[] {
  const b = Buffer.from(secret);
  return [
    secret,
    b.toString("base64"),
    b.toString("base64url"),
    b.toString("hex"),
    b.toString("hex").toUpperCase(),
  ];
}

function assertNoSecret(haystack: Buffer | string, where: string): void {
  const buf = typeof haystack === "string" ? Buffer.from(haystack) : haystack;
  for (const secret of SECRETS) {
    for (const form of encodings(secret)) {
      assert.ok(!buf.includes(form), `${where} contains a secret (${form.slice(0, 6)}…)`);
    }
  }
}

describe("no secret leaves the daemon", () => {
  let daemon: RunningDaemon;
  const responses: string[] = [];
  const recordIds: string[] = [];

  before(async () => {
    daemon = await startDaemon({ args: ["--log-level", "trace"] });
    for (const protocol of PROTOCOLS) {
      const c = credentialClient(daemon.url, protocol, daemon.token);
      const ns = `leak-${protocol}`;
      const created = await c.createCredential({
        credential: {
          namespace: ns,
          name: "key",
          kind: {
            case: "accessKey",
            value: {
              accessKeyId: "ASIAIOSFODNN7EXAMPLE",
              secretAccessKey: SECRET,
              sessionToken: SESSION,
            },
          },
        },
      });
      responses.push(toJsonString(CreateCredentialResponseSchema, created));
      const token = await c.createCredential({
        credential: {
          namespace: ns,
          name: "tok",
          kind: { case: "token", value: { token: TOKEN } },
        },
      });
      responses.push(toJsonString(CreateCredentialResponseSchema, token));
      recordIds.push(created.credential?.id ?? "", token.credential?.id ?? "");
      const got = await c.getCredential({ namespace: ns, name: "key" });
      responses.push(toJsonString(GetCredentialResponseSchema, got));
      responses.push(
        toJsonString(ListCredentialsResponseSchema, await c.listCredentials({ namespace: ns })),
      );
      const rotated = await c.updateCredential({
        namespace: ns,
        name: "key",
        credential: {
          kind: {
            case: "accessKey",
            value: { accessKeyId: "ASIAIOSFODNN7EXAMPLE", secretAccessKey: ROTATED },
          },
        },
        updateMask: { paths: ["access_key.secret_access_key", "description"] },
      });
      responses.push(toJsonString(UpdateCredentialResponseSchema, rotated));
      for (const name of ["key", "tok"]) {
        const verdict = await c.verifyCredential({
          target: { case: "stored", value: { namespace: ns, name } },
        });
        responses.push(toJsonString(VerifyCredentialResponseSchema, verdict));
      }
      // Error paths: a rejected create carrying secrets must not echo them.
      for (const bad of [
        { name: "bad name!", secretAccessKey: SECRET },
        { name: "dup", secretAccessKey: `${SECRET} with space` },
      ]) {
        const err = await c
          .createCredential({
            credential: {
              namespace: ns,
              name: bad.name,
              kind: {
                case: "accessKey",
                value: {
                  accessKeyId: "AKIAIOSFODNN7EXAMPLE",
                  secretAccessKey: bad.secretAccessKey,
                },
              },
            },
          })
          .then(
            () => undefined,
            (e: unknown) => ConnectError.from(e),
          );
        assert.ok(err !== undefined, "the bad create is rejected");
        responses.push(err.rawMessage);
      }
    }
    assert.equal((await daemon.stop()).code, 0);
  });

  after(async () => {
    await removeDir(daemon.dataDir);
  });

  test("responses and error messages carry no secret", () => {
    assert.ok(responses.length >= PROTOCOLS.length * 8);
    for (const r of responses) assertNoSecret(r, "a response");
    // The access key id is not a secret: reads do show it.
    assert.ok(responses.some((r) => r.includes("ASIAIOSFODNN7EXAMPLE")));
  });

  test("the daemon's log (at trace level) carries no secret", () => {
    assert.ok(daemon.output().length > 0);
    assertNoSecret(daemon.output(), "the daemon log");
  });

  test("no file under the data dir holds a secret in any encoding", async () => {
    const files = await readdir(daemon.dataDir, { recursive: true, withFileTypes: true });
    let scanned = 0;
    for (const f of files) {
      if (!f.isFile()) continue;
      assertNoSecret(await readFile(path.join(f.parentPath, f.name)), f.name);
      scanned++;
    }
    assert.ok(scanned >= 4, "the database files were scanned");
  });

  test("records are encrypted, not merely compressed: LevelDB's own (decompressed) values hold no secret", async () => {
    const db = new Level<string, Buffer>(path.join(daemon.dataDir, "db"), {
      valueEncoding: "buffer",
    });
    try {
      let records = 0;
      for await (const [key, value] of db.iterator()) {
        assertNoSecret(Buffer.from(key), `key ${key}`);
        assertNoSecret(value, `value of ${key}`);
        if (key.startsWith("cred/")) {
          records++;
          // A sealed envelope: version byte, then key id, nonce, ciphertext, tag.
          assert.equal(value[0], 0x01);
          assert.ok(value.length > 1 + 8 + 12 + 16);
        }
      }
      assert.equal(records, recordIds.length);
    } finally {
      await db.close();
    }
  });
});
