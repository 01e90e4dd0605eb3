/**
 * Google Cloud credentials on the command line, over the real daemon:
 * `cred create/get/update/list` of a service account (a real RSA key file
 * from --key-file or stdin), a Cloud Storage HMAC key and a static token that
 * ForwardRequest places. Reads show the key file's public fields, never the
 * key; no secret comes back out, on stdout, stderr or in the data dir.
 */
import assert from "node:assert/strict";
import { generateKeyPairSync, randomBytes } from "node:crypto";
import { once } from "node:events";
import { readdir, readFile, writeFile } from "node:fs/promises";
import http from "node:http";
import type { AddressInfo } from "node:net";
import path from "node:path";
import { after, before, describe, test } from "node:test";
import { EXIT } from "../../src/cli/exit-codes.js";
import { type CliResult, runCredbroker } from "../support/cli-run.js";
import { type RunningDaemon, removeDir, startDaemon, tempDir } from "../support/daemon.js";

const PROJECT = "gcpcli-proj-4711";
const EMAIL = `gcpcli-sa@${PROJECT}.iam.gserviceaccount.com`;
const TOKEN_URI = "https://oauth2.googleapis.com/token";
const READ_SCOPE = "https://www.googleapis.com/auth/devstorage.read_only";
const PLATFORM_SCOPE = "https://www.googleapis.com/auth/cloud-platform";
/** Cloud Storage HMAC keys as Google issues them: a 61-character GOOG1E… id, a 40-character secret. */
const HMAC_ID = `GOOG1E${"GCPCLI0HMAC1ID2ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789ABCDE".slice(0, 55)}`;
const HMAC_SECRET = randomBytes(30).toString("base64");
const ROTATED_HMAC_SECRET = randomBytes(30).toString("base64");
const TOKEN = `ya29.gcpcliSTATICtoken-${randomBytes(24).toString("base64url")}`;

/** A PKCS #8 PEM private key, as Google's key files hold one. */
function pem(type: "rsa" | "ec"): string {
  const { privateKey } =
    type === "rsa"
      ? generateKeyPairSync("rsa", { modulusLength: 2048 })
      : generateKeyPairSync("ec", { namedCurve: "P-256" });
  return privateKey.export({ type: "pkcs8", format: "pem" }).toString();
}

/** The base64 lines of a PEM: the key itself, which must never be shown or stored in the clear. */
function bodyLines(p: string): string[] {
  return p
    .split("\n")
    .filter((l) => l !== "" && !l.startsWith("-----"))
    .map((l) => l.trim());
}

interface KeyFile {
  type: string;
  project_id: string;
  private_key_id: string;
  private_key: string;
  client_email: string;
  client_id: string;
  token_uri: string;
}

function keyFile(privateKey: string): KeyFile {
  return {
    type: "service_account",
    project_id: PROJECT,
    private_key_id: randomBytes(20).toString("hex"),
    private_key: privateKey,
    client_email: EMAIL,
    client_id: "104711000000000000042",
    token_uri: TOKEN_URI,
  };
}

const KEY = keyFile(pem("rsa"));
const ROTATED = keyFile(pem("rsa"));
const STDIN_KEY = keyFile(pem("rsa"));
const EC_KEY = keyFile(pem("ec"));
/** Values planted in refused files: none may be echoed. */
const MARKERS = {
  userSecret: "gcpcliUSERsecretMARKER",
  refresh: "1//gcpcliREFRESHmarker",
  notJson: "gcpcliNOTJSONmarker",
  badPem: "gcpcliBADPEMmarkerQUJDREVGR0g",
};
const SECRETS = [
  ...[KEY, ROTATED, STDIN_KEY, EC_KEY].flatMap((k) => bodyLines(k.private_key)),
  HMAC_SECRET,
  ROTATED_HMAC_SECRET,
  TOKEN,
  ...Object.values(MARKERS),
];
/** The raw DER of the keys (a slice from the middle): stored decoded it would still be the key. */
const DER_SLICES = [KEY, ROTATED, STDIN_KEY].map((k) =>
  Buffer.from(bodyLines(k.private_key).join(""), "base64").subarray(400, 464),
);

interface CredentialJson {
  name: string;
  provider?: string;
  accessKey?: { accessKeyId?: string; secretAccessKey?: string };
  token?: { token?: string; placement?: string };
  serviceAccount?: {
    keyJson?: string;
    clientEmail?: string;
    privateKeyId?: string;
    projectId?: string;
  };
  tokenScopes?: string[];
  allowedHosts?: string[];
  etag?: string;
}

function assertNoSecret(r: CliResult): void {
  for (const s of SECRETS) {
    assert.ok(!r.stdout.includes(s), `no secret on stdout: ${r.stdout.slice(0, 200)}`);
    assert.ok(!r.stderr.includes(s), `no secret on stderr: ${r.stderr.slice(0, 200)}`);
  }
  assert.doesNotMatch(r.stdout + r.stderr, /BEGIN PRIVATE KEY|keyJson/);
}

/** Every file under `dir`, recursively, as bytes. */
async function readAllFiles(dir: string): Promise<Map<string, Buffer>> {
  const files = new Map<string, Buffer>();
  for (const entry of await readdir(dir, { withFileTypes: true, recursive: true })) {
    if (!entry.isFile()) continue;
    const file = path.join(entry.parentPath, entry.name);
    files.set(file, await readFile(file));
  }
  return files;
}

describe("Google Cloud credentials in the CLI", () => {
  let daemon: RunningDaemon;
  let dir: string;
  const files: Record<string, string> = {};
  const cli = async (args: string[], stdin?: string): Promise<CliResult> => {
    const r = await runCredbroker(args, {
      env: {
        CREDBROKER_ADDR: daemon.url,
        CREDBROKER_TOKEN_FILE: path.join(daemon.dataDir, "admin.token"),
      },
      ...(stdin === undefined ? {} : { stdin }),
    });
    assertNoSecret(r);
    return r;
  };
  const get = async (name: string): Promise<CredentialJson> => {
    const r = await cli(["cred", "get", name, "-n", "team-gcp", "-o", "json"]);
    assert.equal(r.code, 0, r.stderr);
    return (JSON.parse(r.stdout) as { credential: CredentialJson }).credential;
  };
  const names = async (): Promise<string[]> => {
    const r = await cli(["cred", "list", "-n", "team-gcp", "-o", "json"]);
    assert.equal(r.code, 0, r.stderr);
    const list = (JSON.parse(r.stdout) as { credentials?: CredentialJson[] }).credentials;
    return (list ?? []).map((c) => c.name);
  };

  before(async () => {
    dir = await tempDir("credbroker-gcpcli-");
    const write = async (name: string, text: string) => {
      files[name] = path.join(dir, name);
      await writeFile(files[name], text);
    };
    await write("key.json", JSON.stringify(KEY, null, 2));
    await write("rotated.json", JSON.stringify(ROTATED, null, 2));
    await write(
      "user.json",
      JSON.stringify({
        type: "authorized_user",
        client_id: "764086051850-gcpcli.apps.googleusercontent.com",
        client_secret: MARKERS.userSecret,
        refresh_token: MARKERS.refresh,
      }),
    );
    await write("not-json.pem", `-----BEGIN PRIVATE KEY-----\n${MARKERS.notJson}\n`);
    await write(
      "bad-pem.json",
      JSON.stringify({
        ...KEY,
        private_key: `-----BEGIN PRIVATE KEY-----\n${MARKERS.badPem}\n-----END PRIVATE KEY-----\n`,
      }),
    );
    await write("ec.json", JSON.stringify(EC_KEY));
    await write("no-email.json", JSON.stringify({ ...KEY, client_email: "gcpcliNoAtSign" }));
    daemon = await startDaemon();
  });
  after(async () => {
    await daemon?.stop();
    if (daemon) await removeDir(daemon.dataDir);
    await removeDir(dir);
  });

  test("create --key-file: a service account, provider gcp inferred; reads show email, key id, project, never the key", async () => {
    const r = await cli([
      "cred",
      "create",
      "gcp-sa",
      "-n",
      "team-gcp",
      "--key-file",
      files["key.json"] as string,
      "--token-scope",
      READ_SCOPE,
      "--token-scope",
      PLATFORM_SCOPE,
    ]);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /^kind +service-account$/m);
    assert.match(r.stdout, new RegExp(`^client email +${EMAIL.replaceAll(".", "\\.")}$`, "m"));
    assert.match(r.stdout, new RegExp(`^private key id +${KEY.private_key_id}$`, "m"));
    assert.match(r.stdout, new RegExp(`^project id +${PROJECT}$`, "m"));
    assert.match(r.stdout, /^provider +gcp$/m, "a service account implies --provider gcp");
    assert.match(
      r.stdout,
      /^token scopes +https:\/\/www\.googleapis\.com\/auth\/devstorage\.read_only https:\/\/www\.googleapis\.com\/auth\/cloud-platform$/m,
    );

    const c = await get("gcp-sa");
    assert.equal(c.provider, "PROVIDER_GCP");
    assert.deepEqual(
      c.serviceAccount,
      { clientEmail: EMAIL, privateKeyId: KEY.private_key_id, projectId: PROJECT },
      "the public fields only: no keyJson",
    );
    assert.deepEqual(c.tokenScopes, [READ_SCOPE, PLATFORM_SCOPE]);
    const table = await cli(["cred", "get", "gcp-sa", "-n", "team-gcp"]);
    assert.equal(table.code, 0, table.stderr);
    assert.match(table.stdout, new RegExp(`^private key id +${KEY.private_key_id}$`, "m"));

    // The same key file's JSON through --kind service-account --secret-stdin.
    const stdin = await cli(
      ["cred", "create", "gcp-sa-stdin", "-n", "team-gcp", "--kind", "service-account"],
      JSON.stringify(STDIN_KEY),
    );
    assert.equal(stdin.code, EXIT.usage, "without --secret-stdin there is no key");
    assert.match(stdin.stderr, /the key is required: --key-file FILE/);
    const piped = await cli(
      [
        "cred",
        "create",
        "gcp-sa-stdin",
        "-n",
        "team-gcp",
        "--kind",
        "service-account",
        "--secret-stdin",
      ],
      `${JSON.stringify(STDIN_KEY)}\n`,
    );
    assert.equal(piped.code, 0, piped.stderr);
    assert.deepEqual((await get("gcp-sa-stdin")).serviceAccount, {
      clientEmail: EMAIL,
      privateKeyId: STDIN_KEY.private_key_id,
      projectId: PROJECT,
    });
  });

  test("an HMAC key: --provider gcp --access-key-id GOOG1E… with the secret on stdin; a bad id refused", async () => {
    const r = await cli(
      [
        "cred",
        "create",
        "gcp-hmac",
        "-n",
        "team-gcp",
        "--provider",
        "gcp",
        "--access-key-id",
        HMAC_ID,
        "--secret-stdin",
      ],
      `${HMAC_SECRET}\n`,
    );
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, new RegExp(`^access key id +${HMAC_ID}$`, "m"));
    assert.match(r.stdout, /^provider +gcp$/m);
    const c = await get("gcp-hmac");
    assert.equal(c.provider, "PROVIDER_GCP");
    assert.deepEqual(c.accessKey, { accessKeyId: HMAC_ID }, "the secret is never read back");

    for (const bad of ["AKIAGCPCLIMARKER0000", "GOOG1Egcpcli-lower-marker", "GOOGSHORT"]) {
      const refused = await cli(
        [
          "cred",
          "create",
          "gcp-hmac-bad",
          "-n",
          "team-gcp",
          "--provider",
          "gcp",
          "--access-key-id",
          bad,
          "--secret-stdin",
        ],
        HMAC_SECRET,
      );
      assert.equal(refused.code, EXIT.invalidInput, refused.stderr);
      assert.match(
        refused.stderr,
        /access_key\.access_key_id: a Cloud Storage HMAC access id \(GOOG and 20-57 upper-case letters or digits/,
      );
      assert.ok(!refused.stderr.includes(bad), "the id given is not echoed");
    }
    assert.ok(!(await names()).includes("gcp-hmac-bad"), "nothing was stored");
  });

  test("a static token (provider gcp): stored with its placement, and ForwardRequest sends it upstream", async () => {
    const seen: (string | undefined)[] = [];
    const upstream = http.createServer((req, res) => {
      seen.push(req.headers.authorization);
      res.writeHead(200, { "content-type": "text/plain" }).end("gcs says ok");
    });
    upstream.listen(0, "127.0.0.1");
    await once(upstream, "listening");
    const { port } = upstream.address() as AddressInfo;
    try {
      const r = await cli(
        [
          "cred",
          "create",
          "gcp-token",
          "-n",
          "team-gcp",
          "--provider",
          "gcp",
          "--kind",
          "token",
          "--allowed-host",
          "127.0.0.1",
          "--secret-stdin",
        ],
        TOKEN,
      );
      assert.equal(r.code, 0, r.stderr);
      assert.match(r.stdout, /^kind +token$/m);
      assert.match(r.stdout, /^placement +bearer \(Authorization: Bearer …\)$/m);
      assert.match(r.stdout, /^provider +gcp$/m);
      const c = await get("gcp-token");
      assert.equal(c.provider, "PROVIDER_GCP");
      assert.deepEqual(c.token, {}, "no token field read back");
      assert.deepEqual(c.allowedHosts, ["127.0.0.1"]);

      const fetched = await cli([
        "fetch",
        "-n",
        "team-gcp",
        "-c",
        "gcp-token",
        `http://127.0.0.1:${port}/storage/v1/b?project=${PROJECT}`,
      ]);
      assert.equal(fetched.code, 0, fetched.stderr);
      assert.equal(fetched.stdout, "gcs says ok");
      assert.deepEqual(seen, [`Bearer ${TOKEN}`], "the broker placed the stored token");
    } finally {
      upstream.close();
      upstream.closeAllConnections();
    }
  });

  test("a key file that is not a service account, not JSON, or holds a wrong PEM: refused naming the field, no content echoed", async () => {
    const create = (name: string, file: string) =>
      cli(["cred", "create", name, "-n", "team-gcp", "--key-file", files[file] as string]);

    const user = await create("gcp-bad1", "user.json");
    assert.equal(user.code, EXIT.usage, user.stderr);
    assert.match(user.stderr, /--key-file: field "type" must be "service_account"/);

    const notJson = await create("gcp-bad2", "not-json.pem");
    assert.equal(notJson.code, EXIT.usage, notJson.stderr);
    assert.match(notJson.stderr, /--key-file: not JSON/);

    const badPem = await create("gcp-bad3", "bad-pem.json");
    assert.equal(badPem.code, EXIT.invalidInput, badPem.stderr);
    assert.match(
      badPem.stderr,
      /service_account\.key_json: private_key must be a PEM RSA private key that loads/,
    );

    const ec = await create("gcp-bad4", "ec.json");
    assert.equal(ec.code, EXIT.invalidInput, ec.stderr);
    assert.match(ec.stderr, /service_account\.key_json: private_key must be an RSA key/);

    const email = await create("gcp-bad5", "no-email.json");
    assert.equal(email.code, EXIT.usage, email.stderr);
    assert.match(email.stderr, /--key-file: field "client_email" is not an email address/);
    assert.ok(!email.stderr.includes("gcpcliNoAtSign"));

    const missing = await create("gcp-bad6", "absent.json");
    assert.equal(missing.code, EXIT.usage, missing.stderr);
    assert.match(missing.stderr, /--key-file: cannot read the file \(ENOENT\)/);

    // The same checks on a key given through stdin.
    const viaStdin = await cli(
      [
        "cred",
        "create",
        "gcp-bad7",
        "-n",
        "team-gcp",
        "--kind",
        "service-account",
        "--secret-stdin",
      ],
      await readFile(files["user.json"] as string, "utf8"),
    );
    assert.equal(viaStdin.code, EXIT.usage, viaStdin.stderr);
    assert.match(viaStdin.stderr, /--secret-\*: field "type" must be "service_account"/);

    const both = await cli(
      [
        "cred",
        "create",
        "gcp-bad8",
        "-n",
        "team-gcp",
        "--key-file",
        files["key.json"] as string,
        "--secret-stdin",
      ],
      JSON.stringify(ROTATED),
    );
    assert.equal(both.code, EXIT.usage, both.stderr);
    assert.match(both.stderr, /give the key with --key-file or --secret-\*, not both/);

    const aws = await cli([
      "cred",
      "create",
      "gcp-bad9",
      "-n",
      "team-gcp",
      "--provider",
      "aws",
      "--key-file",
      files["key.json"] as string,
    ]);
    assert.equal(aws.code, EXIT.invalidInput, aws.stderr);
    assert.match(aws.stderr, /kind: PROVIDER_AWS takes access_key, role, token/);

    assert.deepEqual(
      (await names()).filter((n) => n.startsWith("gcp-bad")),
      [],
      "nothing was stored",
    );
  });

  test("update --key-file rotates the key (the new private_key_id shown); scopes and secrets change alone", async () => {
    const before = await get("gcp-sa");
    const rotated = await cli([
      "cred",
      "update",
      "gcp-sa",
      "-n",
      "team-gcp",
      "--key-file",
      files["rotated.json"] as string,
    ]);
    assert.equal(rotated.code, 0, rotated.stderr);
    assert.match(rotated.stdout, new RegExp(`^private key id +${ROTATED.private_key_id}$`, "m"));
    const after = await get("gcp-sa");
    assert.notEqual(ROTATED.private_key_id, KEY.private_key_id);
    assert.notEqual(after.etag, before.etag, "the credential changed");
    assert.deepEqual(after.serviceAccount, {
      clientEmail: EMAIL,
      privateKeyId: ROTATED.private_key_id,
      projectId: PROJECT,
    });
    assert.deepEqual(after.tokenScopes, before.tokenScopes, "scopes kept");

    // A wrong file leaves the rotated key in place.
    const bad = await cli([
      "cred",
      "update",
      "gcp-sa",
      "-n",
      "team-gcp",
      "--key-file",
      files["bad-pem.json"] as string,
    ]);
    assert.equal(bad.code, EXIT.invalidInput, bad.stderr);
    assert.match(
      bad.stderr,
      /service_account\.key_json: private_key must be a PEM RSA private key/,
    );
    const user = await cli([
      "cred",
      "update",
      "gcp-sa",
      "-n",
      "team-gcp",
      "--key-file",
      files["user.json"] as string,
    ]);
    assert.equal(user.code, EXIT.usage, user.stderr);
    assert.match(user.stderr, /--key-file: field "type" must be "service_account"/);
    const kept = await get("gcp-sa");
    assert.equal(kept.serviceAccount?.privateKeyId, ROTATED.private_key_id);
    assert.equal(kept.etag, after.etag, "nothing changed");

    const scoped = await cli([
      "cred",
      "update",
      "gcp-sa",
      "-n",
      "team-gcp",
      "--token-scope",
      READ_SCOPE,
    ]);
    assert.equal(scoped.code, 0, scoped.stderr);
    const narrowed = await get("gcp-sa");
    assert.deepEqual(narrowed.tokenScopes, [READ_SCOPE]);
    assert.equal(narrowed.serviceAccount?.privateKeyId, ROTATED.private_key_id, "key kept");
    const badScope = await cli([
      "cred",
      "update",
      "gcp-sa",
      "-n",
      "team-gcp",
      "--token-scope",
      "gcpcli scope with spaces",
    ]);
    assert.equal(badScope.code, EXIT.invalidInput, badScope.stderr);
    assert.match(badScope.stderr, /token_scopes: /);
    assert.ok(!badScope.stderr.includes("gcpcli scope"));
    const cleared = await cli([
      "cred",
      "update",
      "gcp-sa",
      "-n",
      "team-gcp",
      "--clear",
      "token-scopes",
    ]);
    assert.equal(cleared.code, 0, cleared.stderr);
    assert.equal((await get("gcp-sa")).tokenScopes, undefined);

    // An HMAC key's secret rotates alone; a key file does not fit an HMAC key.
    const hmac = await get("gcp-hmac");
    const secret = await cli(
      ["cred", "update", "gcp-hmac", "-n", "team-gcp", "--secret-stdin"],
      ROTATED_HMAC_SECRET,
    );
    assert.equal(secret.code, 0, secret.stderr);
    const hmacAfter = await get("gcp-hmac");
    assert.notEqual(hmacAfter.etag, hmac.etag);
    assert.deepEqual(hmacAfter.accessKey, { accessKeyId: HMAC_ID });
    assert.equal(hmacAfter.provider, "PROVIDER_GCP");
    const wrongKind = await cli([
      "cred",
      "update",
      "gcp-hmac",
      "-n",
      "team-gcp",
      "--key-file",
      files["key.json"] as string,
    ]);
    assert.equal(wrongKind.code, EXIT.invalidInput, wrongKind.stderr);
    assert.match(
      wrongKind.stderr,
      /update_mask: service_account\.key_json names a service_account field/,
    );
    const badId = await cli([
      "cred",
      "update",
      "gcp-hmac",
      "-n",
      "team-gcp",
      "--access-key-id",
      "GOOGgcpcliMARKER",
    ]);
    assert.equal(badId.code, EXIT.invalidInput, badId.stderr);
    assert.match(badId.stderr, /access_key\.access_key_id: a Cloud Storage HMAC access id/);
    assert.ok(!badId.stderr.includes("GOOGgcpcliMARKER"));
    assert.deepEqual((await get("gcp-hmac")).accessKey, { accessKeyId: HMAC_ID });
  });

  test("cred list shows the provider; --provider gcp lists only Google Cloud's", async () => {
    const aws = await cli(
      [
        "cred",
        "create",
        "aws-control",
        "-n",
        "team-gcp",
        "--access-key-id",
        "AKIAGCPCLICONTROL000",
        "--secret-stdin",
      ],
      "awsControlSecretNotAGoogleOne0000000000",
    );
    assert.equal(aws.code, 0, aws.stderr);

    const all = await cli(["cred", "list", "-n", "team-gcp"]);
    assert.equal(all.code, 0, all.stderr);
    assert.match(
      all.stdout,
      new RegExp(
        `^team-gcp +gcp-sa +service-account +gcp +active +${EMAIL.replaceAll(".", "\\.")}`,
        "m",
      ),
    );
    assert.match(
      all.stdout,
      new RegExp(`^team-gcp +gcp-hmac +access-key +gcp +active +${HMAC_ID}`, "m"),
    );
    assert.match(all.stdout, /^team-gcp +gcp-token +token +gcp +active /m);
    assert.match(
      all.stdout,
      /^team-gcp +aws-control +access-key +aws +active +AKIAGCPCLICONTROL000/m,
    );

    const gcp = await cli(["cred", "list", "-n", "team-gcp", "--provider", "gcp"]);
    assert.equal(gcp.code, 0, gcp.stderr);
    const listed = [...gcp.stdout.matchAll(/^team-gcp +(\S+) +\S+ +(\S+)/gm)].map((m) => [
      m[1],
      m[2],
    ]);
    assert.deepEqual(listed, [
      ["gcp-hmac", "gcp"],
      ["gcp-sa", "gcp"],
      ["gcp-sa-stdin", "gcp"],
      ["gcp-token", "gcp"],
    ]);
    const json = await cli(["cred", "list", "-n", "team-gcp", "--provider", "gcp", "-o", "json"]);
    const creds = (JSON.parse(json.stdout) as { credentials: CredentialJson[] }).credentials;
    assert.deepEqual(
      creds.map((c) => c.provider),
      ["PROVIDER_GCP", "PROVIDER_GCP", "PROVIDER_GCP", "PROVIDER_GCP"],
    );
    const awsOnly = await cli(["cred", "list", "-n", "team-gcp", "--provider", "aws"]);
    assert.match(awsOnly.stdout, /aws-control/);
    assert.doesNotMatch(awsOnly.stdout, /gcp-/, "none of them is AWS");
  });

  test("no secret anywhere under the daemon's data dir, nor in its log", async () => {
    await daemon.stop();
    const stored = await readAllFiles(daemon.dataDir);
    assert.ok(stored.size >= 3, `the data dir holds files: ${[...stored.keys()].join(", ")}`);
    // The scan reads what is there: the admin token file holds the token.
    const admin = [...stored].filter(([, bytes]) => bytes.includes(daemon.token));
    assert.deepEqual(
      admin.map(([file]) => path.basename(file)),
      ["admin.token"],
      "the scan finds a stored value",
    );
    const found: string[] = [];
    for (const [file, bytes] of stored) {
      for (const s of SECRETS) if (bytes.includes(s)) found.push(`${file}: ${s.slice(0, 12)}…`);
      for (const der of DER_SLICES) if (bytes.includes(der)) found.push(`${file}: DER`);
      if (bytes.includes("BEGIN PRIVATE KEY")) found.push(`${file}: PEM header`);
    }
    assert.deepEqual(found, [], "no secret in the clear under the data dir");
    const log = daemon.output();
    assert.match(log, /"msg":"listening"/, "the log was captured");
    for (const s of SECRETS) assert.ok(!log.includes(s), "the log holds no secret");
  });
});
