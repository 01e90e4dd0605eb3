import type { AccessScope } from "../../../gen/credbroker/v1/credential_pb.js";
import type { S3Action } from "../../core/s3-actions.js";

/** The IAM actions each scope action needs (multipart parts are PutObject, HEAD is GetObject). */
const IAM_ACTIONS: Record<S3Action, string[]> = {
  get_object: ["s3:GetObject"],
  head_object: ["s3:GetObject"],
  put_object: ["s3:PutObject"],
  delete_object: ["s3:DeleteObject"],
  list_bucket: ["s3:ListBucket"],
  create_multipart_upload: ["s3:PutObject"],
  upload_part: ["s3:PutObject"],
  complete_multipart_upload: ["s3:PutObject"],
  abort_multipart_upload: ["s3:AbortMultipartUpload"],
  put_object_acl: ["s3:PutObjectAcl"],
  put_object_retention: ["s3:PutObjectRetention", "s3:PutObjectLegalHold"],
  put_object_tagging: ["s3:PutObjectTagging"],
};

/**
 * A key prefix as literal IAM pattern text: `*`, `?` and `$` are IAM's
 * wildcards and variable marker, while credbroker's prefixes are plain text.
 */
export function iamLiteral(text: string): string {
  return text.replace(/[*?$]/g, (c) => `\${${c}}`);
}

/**
 * Object-ARN patterns for a scope prefix, following credbroker's prefix rule:
 * "" or "data/" is a plain starts-with; "data" is the key "data" itself and
 * everything under "data/" (never "data-private/…").
 */
function objectPatterns(prefix: string): string[] {
  const p = iamLiteral(prefix);
  return prefix === "" || prefix.endsWith("/") ? [`${p}*`] : [p, `${p}/*`];
}

/**
 * The STS session policy that carries a credential's S3 scopes to AWS, so
 * sessions handed to tasks (IMDS, container credentials) can do no more than
 * SignRequest would sign. Undefined when there are no scopes. Pure.
 */
export function sessionPolicy(scopes: readonly AccessScope[]): string | undefined {
  if (scopes.length === 0) return undefined;
  const statements = scopes.flatMap((scope, i) => {
    const prefixes = scope.prefixes.length === 0 ? [""] : scope.prefixes;
    const objectActions = [
      ...new Set(
        scope.actions.filter((a) => a !== "list_bucket").flatMap((a) => IAM_ACTIONS[a as S3Action]),
      ),
    ].sort();
    const out: object[] = [];
    if (objectActions.length > 0) {
      out.push({
        Sid: `Scope${i}Objects`,
        Effect: "Allow",
        Action: objectActions,
        Resource: prefixes.flatMap(objectPatterns).map((p) => `arn:aws:s3:::${scope.bucket}/${p}`),
      });
    }
    if (scope.actions.includes("list_bucket")) {
      const listing =
        scope.prefixes.length === 0 ? undefined : scope.prefixes.flatMap(objectPatterns);
      out.push({
        Sid: `Scope${i}List`,
        Effect: "Allow",
        Action: ["s3:ListBucket"],
        Resource: [`arn:aws:s3:::${scope.bucket}`],
        ...(listing ? { Condition: { StringLike: { "s3:prefix": listing } } } : {}),
      });
    }
    return out;
  });
  return JSON.stringify({ Version: "2012-10-17", Statement: statements });
}
