/**
 * The baseline for bench/sign.ts: a bare connect-node server answering
 * SigningService.SignRequest with a canned response of the same shape and
 * size — the framework's cost with no policy, store or signing behind it.
 * Prints its URL on stdout.
 */
import http2 from "node:http2";
import { create } from "@bufbuild/protobuf";
import { connectNodeAdapter } from "@connectrpc/connect-node";
import {
  SigningService,
  SignRequestResponseSchema,
} from "../gen/credbroker/v1/signing_service_pb.js";

const canned = create(SignRequestResponseSchema, {
  url: "https://reports.s3.eu-west-1.amazonaws.com/2026/q1.csv",
  headers: [
    { name: "x-amz-date", value: "20261124T000000Z" },
    { name: "x-amz-content-sha256", value: "UNSIGNED-PAYLOAD" },
    {
      name: "authorization",
      value:
        "AWS4-HMAC-SHA256 Credential=AKIAIOSFODNN7EXAMPLE/20261124/eu-west-1/s3/aws4_request, SignedHeaders=host;x-amz-content-sha256;x-amz-date, Signature=c275d46844ba32ec464cdf6e0b95be64d8442c9e7feef5dc8de1ba27d1bb56c6",
    },
  ],
  accessKeyId: "AKIAIOSFODNN7EXAMPLE",
  expiresAt: { seconds: 1n, nanos: 0 },
});

const server = http2.createServer(
  connectNodeAdapter({
    routes: (router) => {
      router.service(SigningService, { signRequest: () => canned });
    },
  }),
);
server.listen(0, "127.0.0.1", () => {
  const address = server.address();
  if (address && typeof address === "object") {
    process.stdout.write(`http://127.0.0.1:${address.port}\n`);
  }
});
process.on("SIGTERM", () => server.close(() => process.exit(0)));
