/**
 * The pure parts of `cred import --bulk`: parsing a line (reasons never
 * quote a value), grouping rows into messages and calls, merging local and
 * daemon failures, and the progress line.
 */
import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { create } from "@bufbuild/protobuf";
import {
  type ImportCredentialsRequest,
  ImportCredentialsResponseSchema,
} from "../../gen/credbroker/v1/credential_service_pb.js";
import { BulkImportStopped, bulkImport, type RowFailure } from "../../src/cli/bulk-import.js";
import { MAX_LINE_BYTES, parseRow } from "../../src/cli/jsonl-rows.js";
import { progressLine } from "../../src/cli/progress.js";

const SECRET = "rowSECRETvalue0123456789";

describe("parseRow", () => {
  test("a credential in protobuf JSON; a row without namespace takes the default", () => {
    const row = parseRow(
      `{"name":"k","accessKey":{"accessKeyId":"AKIAIOSFODNN7EXAMPLE","secretAccessKey":"${SECRET}"},"allowed_hosts":["*.amazonaws.com"]}`,
      "team-a",
    );
    assert.ok(row.ok);
    assert.equal(row.credential.namespace, "team-a");
    assert.deepEqual(row.credential.allowedHosts, ["*.amazonaws.com"]);
    const own = parseRow('{"namespace":"","name":"k"}', "team-a");
    assert.ok(own.ok);
    assert.equal(own.credential.namespace, "", "an explicit workspace stays");
  });

  const cases: [string, string, RegExp][] = [
    ["broken JSON", `{"name":"k","token":{"token":"${SECRET}"`, /^not valid JSON/],
    ["JSON that is no object", `["${SECRET}"]`, /^not a JSON object/],
    ["an unknown field", `{"secretKey":"${SECRET}"}`, /unknown field "secretKey"/],
    ["an unknown field with an odd name", `{"${SECRET} x":1}`, /unknown field$/],
    [
      "a wrong type",
      `{"allowedHosts":"${SECRET}"}`,
      /^field credbroker\.v1\.Credential\.allowed_hosts: expected Array$/,
    ],
    [
      "a wrong type in a list",
      `{"allowedHosts":[1,"${SECRET}"]}`,
      /allowed_hosts: list item #1: expected string$/,
    ],
    ["a bad enum value", `{"provider":"${SECRET}"}`, /^enum credbroker\.v1\.Provider: bad value$/],
    ["a bad timestamp", `{"expiresAt":"${SECRET}"}`, /invalid RFC 3339 string/],
    ["a bad map entry", `{"metadata":{"${SECRET}":1}}`, /metadata: bad map entry$/],
    [
      "two kinds",
      `{"accessKey":{"secretAccessKey":"${SECRET}"},"token":{"token":"x"}}`,
      /oneof set multiple times by access_key and token/,
    ],
  ];
  for (const [what, line, reason] of cases) {
    test(`${what}: a reason that quotes nothing of the line`, () => {
      const row = parseRow(line, "");
      assert.ok(!row.ok);
      assert.match(row.reason, reason);
      assert.ok(!row.reason.includes(SECRET.slice(0, 9)), row.reason);
    });
  }

  test("a line over the size limit is refused unread", () => {
    const row = parseRow(`{"description":"${"x".repeat(MAX_LINE_BYTES)}"}`, "");
    assert.ok(!row.ok);
    assert.match(row.reason, /longer than/);
  });
});

/** A fake daemon: records each call's messages; refuses names starting with "dup". */
function fakeDaemon() {
  const calls: ImportCredentialsRequest[][] = [];
  return {
    calls,
    async call(requests: AsyncIterable<ImportCredentialsRequest>) {
      const messages: ImportCredentialsRequest[] = [];
      const res = create(ImportCredentialsResponseSchema);
      for await (const m of requests) {
        messages.push(m);
        for (const item of m.items) {
          if (item.credential?.name.startsWith("dup")) {
            res.failures.push({
              $typeName: "credbroker.v1.ImportFailure",
              line: item.line,
              code: "already_exists",
              message: "exists",
            });
          } else {
            res.created++;
          }
        }
      }
      calls.push(messages);
      return res;
    },
  };
}

async function* linesOf(lines: string[]): AsyncIterable<string> {
  for (const l of lines) yield l;
}

describe("bulkImport", () => {
  const row = (name: string) => `{"name":"${name}"}`;

  test("rows go in messages and calls within the limits; failures come back per call, in line order", async () => {
    const daemon = fakeDaemon();
    const lines = Array.from({ length: 23 }, (_, i) => row(`k${i + 1}`));
    lines[4] = "{broken"; // line 5
    lines[6] = ""; // line 7: skipped
    lines[8] = row("dup9"); // line 9
    lines[21] = row("dup22"); // line 22
    const reported: RowFailure[][] = [];
    const progress: number[] = [];
    const result = await bulkImport({
      lines: linesOf(lines),
      namespace: "ns",
      call: daemon.call,
      onProgress: (n) => progress.push(n),
      onFailures: (f) => reported.push([...f]),
      limits: { itemsPerMessage: 3, rowsPerCall: 10 },
    });
    assert.deepEqual(result, { created: 19, failed: 3 });
    assert.equal(progress.at(-1), 23);
    // 21 rows sent: calls of 10, 10 and 1 rows; messages of at most 3.
    assert.deepEqual(
      daemon.calls.map((c) => c.map((m) => m.items.length)),
      [[3, 3, 3, 1], [3, 3, 3, 1], [1]],
    );
    assert.deepEqual(
      daemon.calls.flat().flatMap((m) => m.items.map((i) => Number(i.line))),
      [1, 2, 3, 4, 6, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20, 21, 22, 23],
    );
    assert.equal(daemon.calls[0]?.[0]?.items[0]?.credential?.namespace, "ns");
    assert.deepEqual(
      reported.map((r) => r.map((f) => `${f.line} ${f.code}`)),
      [["5 invalid_argument", "9 already_exists"], ["22 already_exists"]],
    );
  });

  test("a message closes before it would pass the byte limit", async () => {
    const daemon = fakeDaemon();
    const long = (name: string) => `{"name":"${name}","description":"${"d".repeat(80)}"}`;
    await bulkImport({
      lines: linesOf(["a", "b", "c", "d", "e"].map(long)),
      namespace: "",
      call: daemon.call,
      onProgress() {},
      onFailures() {},
      limits: { bytesPerMessage: 250 },
    });
    assert.deepEqual(
      daemon.calls.map((c) => c.map((m) => m.items.length)),
      [[2, 2, 1]],
    );
  });

  test("only bad lines: no call, every line reported", async () => {
    const daemon = fakeDaemon();
    const reported: RowFailure[] = [];
    const result = await bulkImport({
      lines: linesOf(["nope", "", "[]"]),
      namespace: "",
      call: daemon.call,
      onProgress() {},
      onFailures: (f) => reported.push(...f),
    });
    assert.deepEqual(result, { created: 0, failed: 2 });
    assert.equal(daemon.calls.length, 0);
    assert.deepEqual(
      reported.map((f) => f.line),
      [1, 3],
    );
  });

  test("a failed call stops the import, saying what was confirmed and which lines are in doubt", async () => {
    const daemon = fakeDaemon();
    let calls = 0;
    const err = await bulkImport({
      lines: linesOf(Array.from({ length: 10 }, (_, i) => row(`k${i + 1}`))),
      namespace: "",
      async call(requests) {
        if (++calls === 2) {
          for await (const _ of requests) break;
          throw new Error("connection reset");
        }
        return daemon.call(requests);
      },
      onProgress() {},
      onFailures() {},
      limits: { rowsPerCall: 4 },
    }).then(
      () => assert.fail("the import should stop"),
      (e: unknown) => e,
    );
    assert.ok(err instanceof BulkImportStopped);
    assert.deepEqual(err.confirmed, { created: 4, failed: 0 });
    assert.equal(err.firstUnconfirmedLine, 5);
    assert.ok(err.lastLine >= 5);
    assert.match(String((err.cause as Error).message), /connection reset/);
  });
});

describe("progressLine", () => {
  test("count, rate and time left", () => {
    assert.equal(
      progressLine(12_000, 2, { total: 100_000, unit: "lines" }),
      "12,000/100,000 lines · 6,000/s · 15s left",
    );
    assert.equal(
      progressLine(1000, 2, { total: 500_000, unit: "lines" }),
      "1,000/500,000 lines · 500/s · 16m38s left",
    );
    assert.equal(progressLine(500, 1, { unit: "lines" }), "500 lines · 500/s");
    assert.equal(progressLine(10, 0.1, { total: 20, unit: "lines" }), "10/20 lines");
  });
});
