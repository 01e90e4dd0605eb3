// An application as users write it: plain JavaScript importing the published
// `credbroker/client` entry point and the AWS SDK's S3Client. It holds a bearer
// token file and a credential name, never an AWS secret. The SDK logs every
// call to stdout (logger: console) so a test can search all it printed.
//
// env: BROKER_ADDR, BROKER_TOKEN_FILE, BROKER_TRANSPORT, CREDENTIAL, S3_ENDPOINT, BUCKET
import { createHash } from "node:crypto";
import {
  CompleteMultipartUploadCommand,
  CreateMultipartUploadCommand,
  DeleteObjectCommand,
  GetObjectCommand,
  ListObjectsV2Command,
  PutObjectCommand,
  S3Client,
  UploadPartCommand,
} from "@aws-sdk/client-s3";
import { BROKER_CREDENTIALS, brokerSigner, createBrokerClient } from "credbroker/client";

const env = process.env;
const bucket = env.BUCKET;
const s3 = new S3Client({
  region: "us-east-1",
  endpoint: env.S3_ENDPOINT,
  forcePathStyle: true,
  // Swift 2.30 refuses aws-chunked uploads: checksums only when an operation needs one.
  requestChecksumCalculation: "WHEN_REQUIRED",
  responseChecksumValidation: "WHEN_REQUIRED",
  credentials: BROKER_CREDENTIALS,
  signer: brokerSigner({
    client: createBrokerClient({
      addr: env.BROKER_ADDR,
      tokenFile: env.BROKER_TOKEN_FILE,
      transport: env.BROKER_TRANSPORT,
    }),
    credential: env.CREDENTIAL,
  }),
  logger: console,
  maxAttempts: 1,
});
const sha256 = (data) => createHash("sha256").update(data).digest("hex");

const small = Buffer.from("hello from an app with no secret");
await s3.send(new PutObjectCommand({ Bucket: bucket, Key: "app/small.txt", Body: small }));
const gotSmall = await s3.send(new GetObjectCommand({ Bucket: bucket, Key: "app/small.txt" }));
const smallBack = await gotSmall.Body.transformToString();

// 12 MiB in three parts (S3's minimum part size is 5 MiB, except the last).
const big = Buffer.alloc(12 * 1024 * 1024);
for (let i = 0; i < big.length; i += 4) big.writeUInt32LE((i * 2654435761) >>> 0, i);
const partSize = 5 * 1024 * 1024;
const { UploadId } = await s3.send(
  new CreateMultipartUploadCommand({ Bucket: bucket, Key: "app/big.bin" }),
);
const parts = [];
for (let start = 0, n = 1; start < big.length; start += partSize, n++) {
  const part = await s3.send(
    new UploadPartCommand({
      Bucket: bucket,
      Key: "app/big.bin",
      UploadId,
      PartNumber: n,
      Body: big.subarray(start, start + partSize),
    }),
  );
  parts.push({ PartNumber: n, ETag: part.ETag });
}
await s3.send(
  new CompleteMultipartUploadCommand({
    Bucket: bucket,
    Key: "app/big.bin",
    UploadId,
    MultipartUpload: { Parts: parts },
  }),
);
const gotBig = await s3.send(new GetObjectCommand({ Bucket: bucket, Key: "app/big.bin" }));
const bigBack = Buffer.from(await gotBig.Body.transformToByteArray());
const listed = await s3.send(new ListObjectsV2Command({ Bucket: bucket, Prefix: "app/" }));
for (const key of ["app/small.txt", "app/big.bin"]) {
  await s3.send(new DeleteObjectCommand({ Bucket: bucket, Key: key }));
}
const after = await s3.send(new ListObjectsV2Command({ Bucket: bucket, Prefix: "app/" }));
const identity = await s3.config.credentials();

console.log(
  JSON.stringify({
    result: {
      small: smallBack === small.toString(),
      parts: parts.length,
      bigSha256: sha256(bigBack),
      wantSha256: sha256(big),
      listed: (listed.Contents ?? []).map((o) => ({ key: o.Key, size: o.Size })),
      afterDelete: after.KeyCount ?? 0,
      accessKeyId: identity.accessKeyId,
    },
  }),
);
