/** The GCE metadata paths served, each with what answers it. */
export type GceRoute =
  | { kind: "static"; body: string }
  | { kind: "token" | "email" | "scopes" | "identity" | "project-id" | "aliases" };

const V1 = "/computeMetadata/v1";
const ACCOUNT = `${V1}/instance/service-accounts/default`;

/** A directory answers with and without its trailing slash, as GCE does. */
function table(): Map<string, GceRoute> {
  const byPath = new Map<string, GceRoute>();
  const dir = (path: string, body: string) => {
    byPath.set(path, { kind: "static", body });
    byPath.set(`${path}/`, { kind: "static", body });
  };
  byPath.set("/", { kind: "static", body: "computeMetadata/\n" });
  dir("/computeMetadata", "v1/\n");
  dir(V1, "instance/\nproject/\n");
  dir(`${V1}/instance`, "service-accounts/\n");
  dir(`${V1}/instance/service-accounts`, "default/\n");
  dir(ACCOUNT, "aliases\nemail\nidentity\nscopes\ntoken\n");
  byPath.set(`${ACCOUNT}/aliases`, { kind: "aliases" });
  byPath.set(`${ACCOUNT}/email`, { kind: "email" });
  byPath.set(`${ACCOUNT}/scopes`, { kind: "scopes" });
  byPath.set(`${ACCOUNT}/token`, { kind: "token" });
  byPath.set(`${ACCOUNT}/identity`, { kind: "identity" });
  dir(`${V1}/project`, "project-id\n");
  byPath.set(`${V1}/project/project-id`, { kind: "project-id" });
  return byPath;
}

export const GCE_ROUTES: ReadonlyMap<string, GceRoute> = table();

/** `?scopes=a,b` (repeatable), as google-auth-library's Compute client sends it. */
export function requestedScopes(query: URLSearchParams): string[] {
  return query
    .getAll("scopes")
    .flatMap((v) => v.split(","))
    .map((s) => s.trim())
    .filter((s) => s !== "");
}
