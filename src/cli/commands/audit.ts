import { open, readFile, stat } from "node:fs/promises";
import path from "node:path";
import { flagAndPath, unreadable } from "../../config/shown-path.js";
import { dataDirFlag, dataDirOf } from "../data-dir.js";
import { EXIT } from "../exit-codes.js";
import { type FlagSpec, helpText, parseFlags, UsageError } from "../flags.js";
import type { Io } from "../io.js";

const DECISIONS = ["allow", "deny", "error", "attempt"] as const;

export const FLAGS: readonly FlagSpec[] = [
  dataDirFlag("the daemon's data dir (its audit.log is read)"),
  {
    name: "audit-log",
    kind: "string",
    value: "FILE",
    env: "CREDBROKER_AUDIT_LOG",
    help: "read this file instead",
  },
  {
    name: "namespace",
    short: "n",
    kind: "string",
    value: "NS",
    help: 'only lines about this namespace ("" is the workspace)',
  },
  {
    name: "credential",
    short: "c",
    kind: "string",
    value: "[NS/]NAME",
    help: "only lines about this credential (a rename's old or new name)",
  },
  { name: "caller", kind: "string", value: "NAME", help: "only lines of this caller" },
  {
    name: "decision",
    kind: "string",
    value: DECISIONS.join("|"),
    help: "only lines with this decision",
  },
  { name: "lines", kind: "string", value: "N", default: "20", help: "how many of the last lines" },
  { name: "follow", short: "f", kind: "boolean", help: "keep printing new lines" },
  { name: "help", short: "h", kind: "boolean", help: "show this help" },
];

const USAGE = "credbroker audit tail [flags]";
const ABOUT =
  "Prints the last audit lines (JSON, one per line), filtered. Reads the file\n" +
  "directly; the daemon need not run.";

/** `credbroker audit tail …`: returns the exit code. */
export async function auditCommand(argv: readonly string[], io: Io): Promise<number> {
  const [sub, ...rest] = argv;
  if (sub !== "tail") {
    io.err(`Usage: ${USAGE}\n`);
    return sub === "--help" || sub === "-h" ? EXIT.ok : EXIT.usage;
  }
  try {
    const flags = parseFlags(FLAGS, rest, io.env);
    if (flags.bool("help")) {
      io.out(helpText(USAGE, ABOUT, FLAGS));
      return EXIT.ok;
    }
    const n = Number(flags.string("lines"));
    if (!Number.isInteger(n) || n < 1) throw new UsageError("--lines: a positive number");
    const logFlag = flags.string("audit-log");
    const file = logFlag ?? path.join(dataDirOf(flags, io.env), "audit.log");
    const { namespace: ns, name } = credentialFilter(
      flags.string("namespace"),
      flags.string("credential"),
    );
    const caller = flags.string("caller");
    const decision = flags.string("decision");
    if (decision !== undefined && !(DECISIONS as readonly string[]).includes(decision)) {
      throw new UsageError(`--decision: one of ${DECISIONS.join(", ")}`);
    }
    const keep = (line: string): boolean => {
      if (line === "") return false;
      let e: {
        namespace?: string;
        credential?: string;
        newName?: string;
        caller?: string;
        decision?: string;
      };
      try {
        e = JSON.parse(line) as typeof e;
      } catch {
        return false;
      }
      return (
        (name === undefined || e.credential === name || e.newName === name) &&
        (ns === undefined || e.namespace === ns) &&
        (caller === undefined || e.caller === caller) &&
        (decision === undefined || e.decision === decision)
      );
    };
    const text = await readFile(file, "utf8").catch((err: NodeJS.ErrnoException) => {
      // The path is named only when it exists: a value typed after a flag may be a secret.
      const where =
        logFlag !== undefined
          ? flagAndPath("--audit-log", file)
          : `audit.log in ${flagAndPath("the data dir", path.dirname(file))}`;
      throw new UsageError(`${where}: ${unreadable(err)}`);
    });
    for (const line of text.split("\n").filter(keep).slice(-n)) io.out(`${line}\n`);
    if (!flags.bool("follow")) return EXIT.ok;
    let offset = Buffer.byteLength(text);
    let partial = "";
    for (;;) {
      await new Promise((r) => setTimeout(r, 500));
      const size = (await stat(file)).size;
      if (size <= offset) continue;
      const handle = await open(file, "r");
      const buf = Buffer.alloc(size - offset);
      await handle.read(buf, 0, buf.length, offset);
      await handle.close();
      offset = size;
      const chunk = partial + buf.toString("utf8");
      const parts = chunk.split("\n");
      partial = parts.pop() ?? "";
      for (const line of parts.filter(keep)) io.out(`${line}\n`);
    }
  } catch (err) {
    io.err(`credbroker audit tail: ${(err as Error).message}\n`);
    return err instanceof UsageError ? EXIT.usage : EXIT.error;
  }
}

/** The namespace and name to keep lines of, from -n NS and -c [NS/]NAME. */
function credentialFilter(
  namespace: string | undefined,
  ref: string | undefined,
): { namespace: string | undefined; name: string | undefined } {
  const slash = ref?.indexOf("/") ?? -1;
  if (ref === undefined || slash < 0) return { namespace, name: ref };
  if (namespace !== undefined) {
    throw new UsageError("--namespace: give the namespace once, as -n NS -c NAME or -c NS/NAME");
  }
  return { namespace: ref.slice(0, slash), name: ref.slice(slash + 1) };
}
