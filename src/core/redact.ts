import { clone } from "@bufbuild/protobuf";
import { type Credential, CredentialSchema } from "../../gen/credbroker/v1/credential_pb.js";

/**
 * A copy with every secret removed: what every read returns. The secret fields
 * are cleared, not masked, so no prefix or length of a secret leaves the daemon.
 */
export function redact(c: Credential): Credential {
  const out = clone(CredentialSchema, c);
  switch (out.kind.case) {
    case "accessKey":
      out.kind.value.secretAccessKey = "";
      out.kind.value.sessionToken = undefined;
      break;
    case "token":
      out.kind.value.token = "";
      break;
    case "servicePrincipal":
      out.kind.value.clientSecret = "";
      break;
    case "serviceAccount":
      out.kind.value.keyJson = "";
      break;
    default:
      break;
  }
  return out;
}
