/** The S3 actions a scope may grant; SignRequest maps each request to one of them. */
export const S3_ACTIONS = [
  "get_object",
  "head_object",
  "put_object",
  "delete_object",
  "list_bucket",
  "create_multipart_upload",
  "upload_part",
  "complete_multipart_upload",
  "abort_multipart_upload",
  // Headers of put_object and create_multipart_upload that IAM gives their own permission:
  // x-amz-acl and x-amz-grant-*, x-amz-object-lock-*, x-amz-tagging. (PUT ?acl etc. stay unmapped.)
  "put_object_acl",
  "put_object_retention",
  "put_object_tagging",
] as const;

export type S3Action = (typeof S3_ACTIONS)[number];

export function isS3Action(value: string): value is S3Action {
  return (S3_ACTIONS as readonly string[]).includes(value);
}
