import { constants } from "node:fs";
import { access, readFile, stat } from "node:fs/promises";
import path from "node:path";
import { DomainError } from "../core/errors.js";
import { loadMasterKey, loadPreviousMasterKeys } from "../store/master-key.js";
import { type ConfigFile, loadConfigFile } from "./config-file.js";
import { checkDeclaredCredentials } from "./declared.js";
import { checkDeclaredCallers } from "./declared-callers.js";
import { ConfigInvalid, type ConfigProblem } from "./problems.js";
import type { ServeConfig } from "./serve-config.js";
import { flagAndPath, unreadable } from "./shown-path.js";
import { checkTlsFiles, type TlsMaterial } from "./tls-files.js";

/** What the startup check found: the TLS material to serve with, and every problem. */
export interface StartupCheck {
  tls: TlsMaterial | undefined;
  /** Problems of a setting: each a DomainError whose message names the flag (`--tls-key FILE: …`). */
  settings: DomainError[];
  /** Problems in the config file's [[credentials]] and [[callers]], at their lines. */
  declarations: ConfigProblem[];
}

/**
 * Everything serve checks before it creates a file or a directory, beyond the
 * settings' own syntax: the TLS files, the data dir and audit log (usable),
 * the master keys the environment gives, etcd's files, and the config file's
 * declarations. Reads only; `config check` runs the same.
 */
export async function checkStartup(
  config: ServeConfig,
  env: NodeJS.ProcessEnv,
  file?: ConfigFile,
): Promise<StartupCheck> {
  const settings: DomainError[] = [];
  let tls: TlsMaterial | undefined;
  if (config.tls !== undefined) {
    const checked = await checkTlsFiles(config.tls);
    tls = checked.material;
    settings.push(...checked.problems);
  }
  const dirProblem = await creatable(config.dataDir, "--data-dir");
  if (dirProblem !== undefined) settings.push(dirProblem);
  if (config.auditLog !== "stdout" && !isInside(config.auditLog, config.dataDir)) {
    const p = await appendable(config.auditLog);
    if (p !== undefined) settings.push(p);
  }
  settings.push(...(await masterKeyProblems(config)));
  if (config.store.kind === "etcd" && config.store.tls !== undefined) {
    const { ca, cert, key } = config.store.tls;
    for (const [flag, name] of [
      ["--etcd-ca", ca],
      ["--etcd-cert", cert],
      ["--etcd-key", key],
    ] as const) {
      if (name === undefined) continue;
      await readFile(name).catch((err: NodeJS.ErrnoException) =>
        settings.push(
          new DomainError("invalid_argument", `${flagAndPath(flag, name)}: ${unreadable(err)}`),
        ),
      );
    }
  }
  const declarations: ConfigProblem[] = [];
  if (config.configFile !== undefined) {
    const parsed = file ?? (await loadConfigFile(config.configFile, undefined));
    declarations.push(
      ...parsed.problems.filter((p) => p.path === "credentials" || p.path === "callers"),
      ...(await checkDeclaredCredentials(parsed.name, parsed.credentials, env)).problems,
      ...checkDeclaredCallers(parsed.name, parsed.callers).problems,
    );
  }
  return { tls, settings, declarations };
}

/** checkStartup for a daemon composed in process: throws ConfigInvalid with every problem. */
export async function assertStartup(
  config: ServeConfig,
  env: NodeJS.ProcessEnv,
): Promise<TlsMaterial | undefined> {
  const checked = await checkStartup(config, env);
  const problems = [
    ...checked.settings.map((e) => ({ message: e.message })),
    ...checked.declarations,
  ];
  if (problems.length > 0) throw new ConfigInvalid(problems);
  return checked.tls;
}

function isInside(file: string, dir: string): boolean {
  const rel = path.relative(dir, file);
  return rel !== "" && !rel.startsWith("..") && !path.isAbsolute(rel);
}

/** A directory serve may use: it exists and is writable, or its nearest existing parent is. */
async function creatable(dir: string, flag: string): Promise<DomainError | undefined> {
  const problem = (what: string) =>
    new DomainError("invalid_argument", `${flagAndPath(flag, dir)}: ${what}`);
  let at = dir;
  for (;;) {
    const st = await stat(at).catch((err: NodeJS.ErrnoException) => err);
    if (st instanceof Error) {
      const parent = path.dirname(at);
      const missing = st.code === "ENOENT" || st.code === "ENOTDIR";
      if (!missing || parent === at) return problem(`cannot be used (${st.code})`);
      at = parent;
      continue;
    }
    // `at` exists: a real directory or file, named so the user can look at it.
    const which = at === dir ? "it" : `its parent ${at}`;
    if (!st.isDirectory()) return problem(`${which} is not a directory`);
    const mode = constants.W_OK | constants.X_OK | (at === dir ? constants.R_OK : 0);
    const denied = await access(at, mode).then(
      () => false,
      () => true,
    );
    return denied ? problem(`${which} is not writable by this user`) : undefined;
  }
}

/** The audit log outside the data dir: a writable file, or one its directory lets serve create. */
async function appendable(file: string): Promise<DomainError | undefined> {
  const problem = (what: string) =>
    new DomainError("invalid_argument", `${flagAndPath("--audit-log", file)}: ${what}`);
  const st = await stat(file).catch((err: NodeJS.ErrnoException) => err);
  if (st instanceof Error) {
    if (st.code !== "ENOENT" && st.code !== "ENOTDIR")
      return problem(`cannot be used (${st.code})`);
    const dir = path.dirname(file);
    const parent = await stat(dir).catch(() => undefined);
    if (parent === undefined) return problem("its directory does not exist");
    if (!parent.isDirectory()) return problem(`its directory ${dir} is not a directory`);
    const denied = await access(dir, constants.W_OK | constants.X_OK).then(
      () => false,
      () => true,
    );
    return denied ? problem(`its directory ${dir} is not writable by this user`) : undefined;
  }
  if (st.isDirectory()) return problem("is a directory, not a file");
  const denied = await access(file, constants.W_OK).then(
    () => false,
    () => true,
  );
  return denied ? problem("not writable by this user") : undefined;
}

/**
 * The master keys the environment gives are well formed; with etcd (where
 * serve never creates one) a key is given at all. Never reads key material
 * into a message.
 */
async function masterKeyProblems(config: ServeConfig): Promise<DomainError[]> {
  const problems: DomainError[] = [];
  const file = path.join(config.dataDir, "master.key");
  if (config.masterKey !== undefined && config.masterKey !== "") {
    await loadMasterKey({ envValue: config.masterKey, file, fresh: false }).catch(into(problems));
  } else if (config.store.kind === "etcd") {
    const present = await stat(file).then(
      (s) => s.isFile(),
      () => false,
    );
    if (!present) {
      problems.push(
        new DomainError(
          "invalid_argument",
          "--store etcd: no master key; every daemon of a fleet needs the same one, never created by serve: set CREDBROKER_MASTER_KEY or write it to master.key in the data dir (base64 of 32 random bytes, mode 0600)",
        ),
      );
    }
  }
  if ((config.previousMasterKeys ?? "").trim() !== "") {
    await loadPreviousMasterKeys({
      envValue: config.previousMasterKeys,
      file: `${file}.previous`,
    }).catch(into(problems));
  }
  return problems;
}

/** A rejection handler that keeps a DomainError as a problem (anything else is a bug: rethrown). */
function into(problems: DomainError[]): (err: unknown) => void {
  return (err) => {
    if (!(err instanceof DomainError)) throw err;
    problems.push(err);
  };
}
