/**
 * A token's placement (where ForwardRequest puts it) on the command line and
 * in the config file: `cred create/update --token-*`, what `cred get` and
 * `cred list` show, and the token_* keys of a declared credential.
 */
import assert from "node:assert/strict";
import { writeFile } from "node:fs/promises";
import path from "node:path";
import { after, before, describe, test } from "node:test";
import { type CliResult, runCredbroker } from "../support/cli-run.js";
import { type RunningDaemon, removeDir, startDaemon, tempDir } from "../support/daemon.js";

const TOKEN = "plcTOKENsecret41-aB3dE6gH9jK2mN5pQ8rS";

interface TokenJson {
  token?: string;
  placement?: string;
  headerName?: string;
  prefix?: string;
  queryName?: string;
  username?: string;
}

describe("token placement flags and keys", () => {
  let daemon: RunningDaemon;
  let dir: string;
  const cli = (args: string[], stdin?: string): Promise<CliResult> =>
    runCredbroker(args, {
      env: {
        CREDBROKER_ADDR: daemon.url,
        CREDBROKER_TOKEN_FILE: path.join(daemon.dataDir, "admin.token"),
      },
      ...(stdin === undefined ? {} : { stdin }),
    });
  const tokenOf = async (name: string): Promise<TokenJson> => {
    const r = await cli(["cred", "get", name, "-n", "team-p", "-o", "json"]);
    assert.equal(r.code, 0, r.stderr);
    assert.ok(!r.stdout.includes(TOKEN), "the secret is not shown");
    return (JSON.parse(r.stdout) as { credential?: { token?: TokenJson } }).credential?.token ?? {};
  };
  const create = (name: string, flags: string[]) =>
    cli(
      [
        "cred",
        "create",
        name,
        "-n",
        "team-p",
        "--kind",
        "token",
        "--provider",
        "generic",
        "--secret-stdin",
        ...flags,
      ],
      TOKEN,
    );

  before(async () => {
    dir = await tempDir("credbroker-placement-");
    daemon = await startDaemon();
  });
  after(async () => {
    await daemon?.stop();
    if (daemon) await removeDir(daemon.dataDir);
    await removeDir(dir);
  });

  test("create --token-placement header with its header and prefix; get and list show it", async () => {
    const r = await create("api-header", [
      "--token-placement",
      "header",
      "--token-header",
      "X-Api-Key",
      "--token-prefix",
      "Token ",
    ]);
    assert.equal(r.code, 0, r.stderr);
    assert.deepEqual(await tokenOf("api-header"), {
      placement: "TOKEN_PLACEMENT_HEADER",
      headerName: "X-Api-Key",
      prefix: "Token ",
    });
    const get = await cli(["cred", "get", "api-header", "-n", "team-p"]);
    assert.match(get.stdout, /^placement +header X-Api-Key: Token …$/m);
    const list = await cli(["cred", "list", "-n", "team-p"]);
    assert.match(list.stdout, /api-header .*header X-Api-Key: Token …/);
    assert.ok(!`${get.stdout}${list.stdout}`.includes(TOKEN));
  });

  test("a token without --token-placement is bearer; basic and query take their fields", async () => {
    assert.equal((await create("api-bearer", [])).code, 0);
    assert.deepEqual(await tokenOf("api-bearer"), {});
    const get = await cli(["cred", "get", "api-bearer", "-n", "team-p"]);
    assert.match(get.stdout, /^placement +bearer \(Authorization: Bearer …\)$/m);

    const basic = await create("api-basic", [
      "--token-placement=BASIC",
      "--token-username",
      "ci-bot",
    ]);
    assert.equal(basic.code, 0, basic.stderr);
    assert.deepEqual(await tokenOf("api-basic"), {
      placement: "TOKEN_PLACEMENT_BASIC",
      username: "ci-bot",
    });
    const get2 = await cli(["cred", "get", "api-basic", "-n", "team-p"]);
    assert.match(get2.stdout, /^placement +basic \(user ci-bot\)$/m);
  });

  test("update --token-placement replaces the placement and drops the old one's fields; a field alone changes alone", async () => {
    assert.equal(
      (await create("api-move", ["--token-placement", "header", "--token-header", "X-Key"])).code,
      0,
    );
    const moved = await cli([
      "cred",
      "update",
      "api-move",
      "-n",
      "team-p",
      "--token-placement",
      "query",
      "--token-query",
      "api_key",
    ]);
    assert.equal(moved.code, 0, moved.stderr);
    assert.deepEqual(await tokenOf("api-move"), {
      placement: "TOKEN_PLACEMENT_QUERY",
      queryName: "api_key",
    });
    const renamed = await cli([
      "cred",
      "update",
      "api-move",
      "-n",
      "team-p",
      "--token-query",
      "key",
    ]);
    assert.equal(renamed.code, 0, renamed.stderr);
    assert.deepEqual(await tokenOf("api-move"), {
      placement: "TOKEN_PLACEMENT_QUERY",
      queryName: "key",
    });
    // The secret stayed: the mask named no token.token.
    const verify = await cli(["cred", "verify", "api-move", "-n", "team-p", "-o", "json"]);
    assert.ok(!verify.stdout.includes(TOKEN));
  });

  test("a field of another placement is invalid input naming the field; a bad placement is a usage error", async () => {
    const wrong = await cli([
      "cred",
      "update",
      "api-header",
      "-n",
      "team-p",
      "--token-username",
      "someone",
    ]);
    assert.equal(wrong.code, 5, wrong.stderr);
    assert.match(wrong.stderr, /token\.username: only with TOKEN_PLACEMENT_BASIC/);
    assert.equal((await tokenOf("api-header")).username, undefined, "nothing changed");

    const missing = await create("api-noheader", ["--token-placement", "header"]);
    assert.equal(missing.code, 5, missing.stderr);
    assert.match(missing.stderr, /token\.header_name: required with TOKEN_PLACEMENT_HEADER/);

    const bad = await create("api-bad", ["--token-placement", "plcMARKERvalue"]);
    assert.equal(bad.code, 2);
    assert.match(bad.stderr, /--token-placement: bearer, header, query or basic/);
    assert.ok(!bad.stderr.includes("plcMARKERvalue"));
  });

  test("--token-* flags imply the token kind; with another kind's flags they are refused", async () => {
    const implied = await cli(
      [
        "cred",
        "create",
        "api-implied",
        "-n",
        "team-p",
        "--provider",
        "generic",
        "--secret-stdin",
        "--token-placement",
        "bearer",
      ],
      TOKEN,
    );
    assert.equal(implied.code, 0, implied.stderr);
    assert.deepEqual(await tokenOf("api-implied"), { placement: "TOKEN_PLACEMENT_BEARER" });
    const mixed = await cli(
      ["cred", "create", "api-mixed", "--role-arn", "arn:aws:iam::123456789012:role/x"].concat([
        "--token-query",
        "k",
      ]),
    );
    assert.equal(mixed.code, 2);
    assert.match(mixed.stderr, /more than one kind/);
  });

  describe("config file", () => {
    const check = async (toml: string): Promise<CliResult> => {
      const file = path.join(dir, `c${Math.random().toString(36).slice(2)}.toml`);
      await writeFile(file, toml);
      return runCredbroker(["config", "check", file]);
    };

    test("token_placement and its keys are accepted, and a daemon serves them as declared", async () => {
      const toml = `[[credentials]]
name = "declared-query"
namespace = "team-p"
token = "${TOKEN}"
token_placement = "query"
token_query_name = "access_token"

[[credentials]]
name = "declared-header"
namespace = "team-p"
token = "${TOKEN}"
token_placement = "header"
token_header_name = "X-Auth"
token_prefix = "Key "

[[credentials]]
name = "declared-basic"
namespace = "team-p"
token = "${TOKEN}"
token_placement = "basic"
token_username = "deploy"
`;
      const ok = await check(toml);
      assert.equal(ok.code, 0, ok.stderr);
      const file = path.join(dir, "served.toml");
      await writeFile(file, toml);
      const served = await startDaemon({ args: ["--config", file] });
      try {
        const r = await runCredbroker(
          ["cred", "list", "-n", "team-p", "-o", "json", "--addr", served.url],
          { env: { CREDBROKER_TOKEN: served.token } },
        );
        assert.equal(r.code, 0, r.stderr);
        const byName = new Map(
          (
            JSON.parse(r.stdout) as { credentials: { name: string; token?: TokenJson }[] }
          ).credentials.map((c) => [c.name, c.token]),
        );
        assert.deepEqual(byName.get("declared-query"), {
          placement: "TOKEN_PLACEMENT_QUERY",
          queryName: "access_token",
        });
        assert.deepEqual(byName.get("declared-header"), {
          placement: "TOKEN_PLACEMENT_HEADER",
          headerName: "X-Auth",
          prefix: "Key ",
        });
        assert.deepEqual(byName.get("declared-basic"), {
          placement: "TOKEN_PLACEMENT_BASIC",
          username: "deploy",
        });
      } finally {
        await served.stop();
        await removeDir(served.dataDir);
      }
    });

    test("a bad placement, a field the placement does not take, token keys on an access key: each named", async () => {
      const bad = await check(
        `[[credentials]]\nname = "t"\ntoken = "${TOKEN}"\ntoken_placement = "plcMARKERvalue"\n`,
      );
      assert.equal(bad.code, 2);
      assert.match(
        bad.stderr,
        /credentials\[0\]\.token_placement: one of bearer, header, query, basic/,
      );
      assert.ok(!bad.stderr.includes("plcMARKERvalue"));
      assert.ok(!bad.stderr.includes(TOKEN));

      const mismatch = await check(
        `[[credentials]]\nname = "t"\ntoken = "${TOKEN}"\ntoken_placement = "bearer"\ntoken_header_name = "X-A"\n`,
      );
      assert.equal(mismatch.code, 2);
      assert.match(mismatch.stderr, /token\.header_name: only with TOKEN_PLACEMENT_HEADER/);

      const other = await check(
        `[[credentials]]\naccess_key_id = "AKIAPLACEMENT0000001"\nsecret_access_key = "plc/secret/0000000000000000000000000000"\ntoken_prefix = "x"\n`,
      );
      assert.equal(other.code, 2);
      assert.match(other.stderr, /credentials\[0\]\.token_prefix: only with token/);
    });
  });
});
