import { parseKnownFiles } from "@smithy/shared-ini-file-loader";
import { UsageError } from "./flags.js";
import type { Io } from "./io.js";

/** What a source yields: an access key, or a role with its source key. */
export type Imported =
  | {
      kind: "accessKey";
      accessKeyId: string;
      secretAccessKey: string;
      sessionToken?: string | undefined;
      region?: string | undefined;
      allowedHosts?: string[];
    }
  | {
      kind: "role";
      roleArn: string;
      externalId?: string | undefined;
      sessionName?: string | undefined;
      durationSeconds?: number | undefined;
      region?: string | undefined;
      /** The profile the role is assumed with, imported alongside. */
      source: Imported & { kind: "accessKey" };
      sourceProfile: string;
    };

/** Why a source yielded nothing complete: what is missing, never a secret. */
export class Incomplete extends Error {}

async function readStdin(io: Io): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const chunk of io.stdin)
    chunks.push(typeof chunk === "string" ? Buffer.from(chunk) : chunk);
  return Buffer.concat(chunks).toString("utf8").trim();
}

function fromEnv(env: NodeJS.ProcessEnv): Imported {
  const id = env.AWS_ACCESS_KEY_ID;
  const secret = env.AWS_SECRET_ACCESS_KEY;
  const missing = [id ? "" : "AWS_ACCESS_KEY_ID", secret ? "" : "AWS_SECRET_ACCESS_KEY"].filter(
    Boolean,
  );
  if (missing.length > 0 || !id || !secret)
    throw new Incomplete(`env: ${missing.join(" and ")} not set`);
  return {
    kind: "accessKey",
    accessKeyId: id,
    secretAccessKey: secret,
    sessionToken: env.AWS_SESSION_TOKEN || undefined,
    region: env.AWS_REGION || env.AWS_DEFAULT_REGION || undefined,
  };
}

/** The shared credentials and config files, as the SDKs read them (some S3 clients say AWS_SHARED_CONFIG_FILE). */
async function fromProfile(name: string, env: NodeJS.ProcessEnv): Promise<Imported> {
  const profiles = await parseKnownFiles({
    profile: name,
    ignoreCache: true,
    ...(env.AWS_SHARED_CREDENTIALS_FILE ? { filepath: env.AWS_SHARED_CREDENTIALS_FILE } : {}),
    ...(env.AWS_CONFIG_FILE || env.AWS_SHARED_CONFIG_FILE
      ? { configFilepath: env.AWS_CONFIG_FILE || env.AWS_SHARED_CONFIG_FILE }
      : {}),
  });
  const key = (profile: string): Imported & { kind: "accessKey" } => {
    const p = profiles[profile];
    if (p === undefined) throw new Incomplete(`aws-profile:${profile}: no such profile`);
    const missing = ["aws_access_key_id", "aws_secret_access_key"].filter((k) => !p[k]);
    if (missing.length > 0)
      throw new Incomplete(`aws-profile:${profile}: ${missing.join(" and ")} missing`);
    return {
      kind: "accessKey",
      accessKeyId: p.aws_access_key_id as string,
      secretAccessKey: p.aws_secret_access_key as string,
      sessionToken: p.aws_session_token || undefined,
      region: p.region || undefined,
    };
  };
  const p = profiles[name];
  if (p === undefined) throw new Incomplete(`aws-profile:${name}: no such profile`);
  if (p.role_arn) {
    if (!p.source_profile) {
      throw new Incomplete(
        `aws-profile:${name}: role_arn without source_profile (credential_source is not imported)`,
      );
    }
    const duration = p.duration_seconds ? Number(p.duration_seconds) : undefined;
    return {
      kind: "role",
      roleArn: p.role_arn,
      externalId: p.external_id || undefined,
      sessionName: p.role_session_name || undefined,
      durationSeconds: Number.isInteger(duration) ? duration : undefined,
      region: p.region || undefined,
      source: key(p.source_profile),
      sourceProfile: p.source_profile,
    };
  }
  return key(name);
}

/** http(s)://KEY_ID:SECRET@host[:port], percent-decoded; the host becomes allowed_hosts. */
function fromUrl(what: string, value: string | undefined): Imported {
  if (!value) throw new Incomplete(`${what}: empty`);
  let url: URL;
  try {
    url = new URL(value);
  } catch {
    throw new Incomplete(`${what}: not a URL of the form http(s)://KEY_ID:SECRET@host`);
  }
  if (!/^https?:$/.test(url.protocol) || !url.username || !url.password) {
    throw new Incomplete(
      `${what}: expected http(s)://KEY_ID:SECRET@host (user and password required)`,
    );
  }
  return {
    kind: "accessKey",
    accessKeyId: decodeURIComponent(url.username),
    secretAccessKey: decodeURIComponent(url.password),
    allowedHosts: [url.hostname.toLowerCase()],
  };
}

/** Reads one source: env, aws-profile[:NAME], url-env:VAR or url-stdin. */
export async function readSource(source: string, io: Io): Promise<Imported> {
  if (source === "env") return fromEnv(io.env);
  if (source === "aws-profile" || source.startsWith("aws-profile:")) {
    const name = source.slice("aws-profile:".length) || io.env.AWS_PROFILE || "default";
    return fromProfile(name, io.env);
  }
  if (source.startsWith("url-env:")) {
    const variable = source.slice("url-env:".length);
    return fromUrl(source, io.env[variable]);
  }
  if (source === "url-stdin") return fromUrl(source, await readStdin(io));
  throw new UsageError("--from: env, aws-profile[:NAME], url-env:VAR or url-stdin");
}

/** The first source that yields a complete credential, and which one; Incomplete naming every miss otherwise. */
export async function readChain(
  sources: readonly string[],
  io: Io,
): Promise<{ from: string; imported: Imported }> {
  const misses: string[] = [];
  for (const from of sources) {
    try {
      return { from, imported: await readSource(from, io) };
    } catch (err) {
      if (!(err instanceof Incomplete)) throw err;
      misses.push(err.message);
    }
  }
  throw new Incomplete(`no source yielded a complete credential: ${misses.join("; ")}`);
}
