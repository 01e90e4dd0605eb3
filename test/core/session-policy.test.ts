// biome-ignore-all lint/suspicious/noTemplateCurlyInString: IAM's ${*} escapes are the expected text
import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { create } from "@bufbuild/protobuf";
import { AccessScopeSchema } from "../../gen/credbroker/v1/credential_pb.js";
import type { S3Action } from "../../src/core/s3-actions.js";
import { iamLiteral, sessionPolicy } from "../../src/providers/aws/session-policy.js";

const scope = (bucket: string, prefixes: string[], actions: S3Action[]) =>
  create(AccessScopeSchema, { bucket, prefixes, actions });

interface Statement {
  Sid: string;
  Action: string[];
  Resource: string[];
  Condition?: { StringLike: { "s3:prefix": string[] } };
}

const statements = (...scopes: ReturnType<typeof scope>[]): Statement[] =>
  JSON.parse(sessionPolicy(scopes) ?? "null").Statement;

describe("sessionPolicy", () => {
  test("no scopes, no policy", () => {
    assert.equal(sessionPolicy([]), undefined);
  });

  test("plain prefixes: a trailing slash is a starts-with, a bare prefix is the key and below", () => {
    const [objects, list] = statements(
      scope("reports", ["2026/", "data"], ["get_object", "list_bucket"]),
    );
    assert.deepEqual(objects?.Resource, [
      "arn:aws:s3:::reports/2026/*",
      "arn:aws:s3:::reports/data",
      "arn:aws:s3:::reports/data/*",
    ]);
    assert.deepEqual(list?.Condition?.StringLike["s3:prefix"], ["2026/*", "data", "data/*"]);
  });

  // Issue 20 #10: SignRequest reads `pub*` as the literal prefix "pub*"; IAM read it as a wildcard.
  test("*, ? and $ in a prefix are IAM literals, in resources and in the listing condition", () => {
    const [objects, list] = statements(
      scope("reports", ["pub*", "a?b/", "${aws:username}/"], ["get_object", "list_bucket"]),
    );
    assert.deepEqual(objects?.Resource, [
      "arn:aws:s3:::reports/pub${*}",
      "arn:aws:s3:::reports/pub${*}/*",
      "arn:aws:s3:::reports/a${?}b/*",
      "arn:aws:s3:::reports/${$}{aws:username}/*",
    ]);
    assert.deepEqual(list?.Condition?.StringLike["s3:prefix"], [
      "pub${*}",
      "pub${*}/*",
      "a${?}b/*",
      "${$}{aws:username}/*",
    ]);
    // Only the wildcard credbroker adds itself stays a wildcard.
    for (const r of objects?.Resource ?? []) {
      assert.equal(
        r
          .replace(/\$\{[*?$]\}/g, "")
          .replace(/\*$/, "")
          .match(/[*?$]/),
        null,
        r,
      );
    }
  });

  test("iamLiteral leaves plain text alone and escapes each special character once", () => {
    assert.equal(iamLiteral("data/2026/x.csv"), "data/2026/x.csv");
    assert.equal(iamLiteral("**"), "${*}${*}");
    assert.equal(iamLiteral("$?*"), "${$}${?}${*}");
  });

  // Issue 20 #9: the new scope actions reach tasks as the IAM actions they stand for.
  test("put_object_acl, put_object_retention and put_object_tagging map to their IAM actions", () => {
    const [objects] = statements(
      scope(
        "reports",
        ["2026/"],
        ["put_object", "put_object_acl", "put_object_retention", "put_object_tagging"],
      ),
    );
    assert.deepEqual(objects?.Action, [
      "s3:PutObject",
      "s3:PutObjectAcl",
      "s3:PutObjectLegalHold",
      "s3:PutObjectRetention",
      "s3:PutObjectTagging",
    ]);
  });

  test("put_object alone grants only s3:PutObject", () => {
    const [objects] = statements(
      scope("reports", [], ["put_object", "create_multipart_upload", "upload_part"]),
    );
    assert.deepEqual(objects?.Action, ["s3:PutObject"]);
    assert.deepEqual(objects?.Resource, ["arn:aws:s3:::reports/*"]);
  });
});
