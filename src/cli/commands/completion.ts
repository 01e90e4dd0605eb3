import {
  type ClientCommand,
  CONNECTION_FLAGS,
  NAMESPACE_FLAG,
  runClientCommand,
} from "../client-command.js";
import { EXIT } from "../exit-codes.js";
import type { FlagSpec } from "../flags.js";
import type { Io } from "../io.js";
import { FLAGS as AUDIT_FLAGS } from "./audit.js";
import { SUBCOMMANDS as CALLER_SUBCOMMANDS } from "./caller.js";
import { SUBCOMMANDS as CRED_SUBCOMMANDS } from "./cred.js";
import { EXEC } from "./exec.js";
import { FETCH } from "./fetch.js";
import { SUBCOMMANDS as KEY_SUBCOMMANDS } from "./key.js";
import { FLAGS as REPAIR_FLAGS } from "./repair.js";
import { SERVE_FLAGS } from "./serve.js";
import { SIGN } from "./sign.js";
import { STATUS } from "./status.js";

/** What a positional argument or a flag's value completes to. */
type Completes = "namespace" | "credential" | "file" | "nothing" | { words: string[] };

/** One command the shell completes: its flags (the commands' own specs) and its positional argument. */
interface Leaf {
  readonly flags: readonly FlagSpec[];
  readonly arg: Completes;
}

type Tree = Record<string, Leaf | Record<string, Leaf>>;

const SHELLS = ["bash", "zsh", "fish"] as const;
const HELP: FlagSpec = { name: "help", short: "h", kind: "boolean", help: "show this help" };

function clientLeaf(c: Omit<ClientCommand, "command">, arg: Completes): Leaf {
  return { flags: [...c.flags, ...CONNECTION_FLAGS], arg };
}

/** A command group; `names` lists the subcommands whose NAME is an existing credential. */
function group(
  subcommands: Record<string, Omit<ClientCommand, "command">>,
  names: readonly string[] = [],
): Record<string, Leaf> {
  return Object.fromEntries(
    Object.entries(subcommands).map(([name, c]) => [
      name,
      clientLeaf(c, names.includes(name) ? "credential" : "nothing"),
    ]),
  );
}

/** Every command, built from the flag specs the commands parse with, so completion cannot drift. */
function commandTree(): Tree {
  return {
    serve: { flags: SERVE_FLAGS, arg: "nothing" },
    status: clientLeaf(STATUS, "nothing"),
    cred: group(CRED_SUBCOMMANDS, ["get", "update", "delete", "verify"]),
    sign: clientLeaf(SIGN, "nothing"),
    fetch: clientLeaf(FETCH, "nothing"),
    exec: clientLeaf(EXEC, "nothing"),
    caller: group(CALLER_SUBCOMMANDS),
    audit: { tail: { flags: AUDIT_FLAGS, arg: "nothing" } },
    key: group(KEY_SUBCOMMANDS),
    config: { check: { flags: [HELP], arg: "file" } },
    repair: { flags: REPAIR_FLAGS, arg: "nothing" },
    version: { flags: [], arg: "nothing" },
    completion: Object.fromEntries(SHELLS.map((s) => [s, { flags: [], arg: "nothing" }])),
    help: { flags: [], arg: "nothing" },
  };
}

function isLeaf(node: Leaf | Record<string, Leaf>): node is Leaf {
  return Array.isArray((node as Leaf).flags);
}

/** Every completable command path ("serve", "cred create") with its leaf. */
function leaves(tree: Tree): [string, Leaf][] {
  return Object.entries(tree).flatMap(([name, node]) =>
    isLeaf(node)
      ? [[name, node] as [string, Leaf]]
      : Object.entries(node).map(([sub, leaf]) => [`${name} ${sub}`, leaf] as [string, Leaf]),
  );
}

/** What a flag's value completes to, from its name and value placeholder. */
function valueCompletion(flag: FlagSpec): Completes | undefined {
  if (flag.kind === "boolean") return undefined;
  const value = flag.value ?? "";
  if (flag.name === "namespace" || value === "NS") return "namespace";
  if (/credential$/.test(flag.name) && /NAME/.test(value)) return "credential";
  if (value === "FILE" || value === "DIR" || /-(file|dir|cert|key|ca|log)$/.test(flag.name)) {
    return "file";
  }
  if (/^[a-z0-9-]+(\|[a-z0-9-]+)+$/.test(value)) return { words: value.split("|") };
  return "nothing";
}

const flagWords = (f: FlagSpec) => [`--${f.name}`, ...(f.short ? [`-${f.short}`] : [])];

// ---- bash (zsh loads the same function through bashcompinit) ----

function bashCompletes(c: Completes, indent: string): string {
  if (c === "namespace") return `${indent}_credbroker_daemon namespaces`;
  if (c === "credential") return `${indent}_credbroker_daemon credentials`;
  if (c === "file") return `${indent}COMPREPLY=($(compgen -f -- "$cur"))`;
  if (c === "nothing") return `${indent}:`;
  return `${indent}COMPREPLY=($(compgen -W "${c.words.join(" ")}" -- "$cur"))`;
}

function bashScript(tree: Tree): string {
  const groups = Object.entries(tree).filter(([, n]) => !isLeaf(n));
  const paths = leaves(tree).map(([path, leaf]) => {
    const values = leaf.flags
      .map((f) => [f, valueCompletion(f)] as const)
      .filter((e): e is [FlagSpec, Completes] => e[1] !== undefined)
      .map(
        ([f, c]) =>
          `        ${flagWords(f).join("|")})\n${bashCompletes(c, "          ")}\n          return 0 ;;`,
      );
    return [
      `    "${path}")`,
      ...(values.length ? ["      case $prev in", ...values, "      esac"] : []),
      `      if [[ $cur == -* ]]; then`,
      `        COMPREPLY=($(compgen -W "${leaf.flags.flatMap(flagWords).join(" ")}" -- "$cur"))`,
      "        return 0",
      "      fi",
      bashCompletes(leaf.arg, "      "),
      "      ;;",
    ].join("\n");
  });
  return `# credbroker completion for bash: source it, e.g. in ~/.bashrc:
#   source <(credbroker completion bash)
# Commands and flags are built in; namespaces and credential names come from
# the daemon (credbroker __complete), when it is reachable.

_credbroker_daemon() {
  local IFS=$'\\n'
  COMPREPLY=($(compgen -W "$("\${COMP_WORDS[0]}" __complete "$1" "\${COMP_WORDS[@]:1:COMP_CWORD-1}" 2>/dev/null)" -- "$cur"))
}

_credbroker() {
  local cur=\${COMP_WORDS[COMP_CWORD]} prev=\${COMP_WORDS[COMP_CWORD-1]} path=\${COMP_WORDS[1]-}
  COMPREPLY=()
  if ((COMP_CWORD == 1)); then
    COMPREPLY=($(compgen -W "${Object.keys(tree).join(" ")}" -- "$cur"))
    return 0
  fi
  case $path in
${groups
  .map(
    ([name, node]) => `    ${name})
      if ((COMP_CWORD == 2)); then
        COMPREPLY=($(compgen -W "${Object.keys(node).join(" ")}" -- "$cur"))
        return 0
      fi
      path="$path \${COMP_WORDS[2]}" ;;`,
  )
  .join("\n")}
  esac
  case $path in
${paths.join("\n")}
  esac
  return 0
}

complete -o default -F _credbroker credbroker
`;
}

function zshScript(tree: Tree): string {
  return `#compdef credbroker
# credbroker completion for zsh: source it, e.g. in ~/.zshrc:
#   source <(credbroker completion zsh)
# It is the bash completion, loaded through zsh's bashcompinit.
autoload -U +X compinit && { (( $+functions[compdef] )) || compinit }
autoload -U +X bashcompinit && bashcompinit
${bashScript(tree).replace(
  "_credbroker() {\n",
  // ksh_arrays: the bash function indexes COMP_WORDS from 0.
  "_credbroker() {\n  [[ -n $ZSH_VERSION ]] && setopt localoptions ksh_arrays\n",
)}`;
}

// ---- fish ----

const fishQuote = (s: string) => `'${s.replace(/\\/g, "\\\\").replace(/'/g, "\\'")}'`;

function fishScript(tree: Tree): string {
  const lines = [
    "# credbroker completion for fish: credbroker completion fish | source",
    "# (or save it as ~/.config/fish/completions/credbroker.fish)",
    "function __credbroker_at",
    "    set -l w (commandline -opc)",
    '    test (count $argv) -eq 1; and test "$w[2]" = $argv[1]; and return',
    '    test (count $argv) -eq 2; and test "$w[2]" = $argv[1]; and test "$w[3]" = $argv[2]',
    "end",
    "function __credbroker_daemon",
    "    set -l w (commandline -opc)",
    "    $w[1] __complete $argv[1] $w[2..-1] 2>/dev/null",
    "end",
    "complete -c credbroker -f",
    `complete -c credbroker -n __fish_use_subcommand -a ${fishQuote(Object.keys(tree).join(" "))}`,
  ];
  const fishArgs = (c: Completes): string =>
    c === "namespace"
      ? " -x -a '(__credbroker_daemon namespaces)'"
      : c === "credential"
        ? " -x -a '(__credbroker_daemon credentials)'"
        : c === "file"
          ? " -r -F"
          : c === "nothing"
            ? " -x"
            : ` -x -a ${fishQuote(c.words.join(" "))}`;
  for (const [name, node] of Object.entries(tree)) {
    if (isLeaf(node)) continue;
    const subs = Object.keys(node).join(" ");
    lines.push(
      `complete -c credbroker -n ${fishQuote(`__fish_seen_subcommand_from ${name}; and not __fish_seen_subcommand_from ${subs}`)} -a ${fishQuote(subs)}`,
    );
  }
  for (const [path, leaf] of leaves(tree)) {
    const at = `-n ${fishQuote(`__credbroker_at ${path}`)}`;
    for (const f of leaf.flags) {
      const value = valueCompletion(f);
      lines.push(
        `complete -c credbroker ${at} -l ${f.name}${f.short ? ` -s ${f.short}` : ""}${value ? fishArgs(value) : ""} -d ${fishQuote(f.help.split("\n")[0] ?? "")}`,
      );
    }
    if (leaf.arg !== "nothing") lines.push(`complete -c credbroker ${at}${fishArgs(leaf.arg)}`);
  }
  return `${lines.join("\n")}\n`;
}

/** `credbroker completion bash|zsh|fish`: prints the script. */
export async function completionCommand(argv: readonly string[], io: Io): Promise<number> {
  const usage =
    "Usage: credbroker completion bash|zsh|fish\n\nPrints a shell completion script (source <(credbroker completion bash)).\n";
  const [shell, ...rest] = argv;
  if (shell === "--help" || shell === "-h") {
    io.out(usage);
    return EXIT.ok;
  }
  if (rest.length > 0 || !SHELLS.some((s) => s === shell)) {
    io.err(usage);
    return EXIT.usage;
  }
  const tree = commandTree();
  io.out(
    shell === "bash" ? bashScript(tree) : shell === "zsh" ? zshScript(tree) : fishScript(tree),
  );
  return EXIT.ok;
}

/** The flags of the command line being completed that say which daemon, token and namespace to ask. */
const PASSED_ON = new Set(["--addr", "--token-file", "--namespace", "-n"]);

/** At most this long for one completion: a shell waits on it. */
const COMPLETE_TIMEOUT_MS = 2000;

/**
 * `credbroker __complete namespaces|credentials WORDS…` (hidden; the scripts
 * call it): names from the daemon, one a line, and nothing at all, exit 0,
 * when it is unreachable or refuses.
 */
export async function hiddenCompleteCommand(argv: readonly string[], io: Io): Promise<number> {
  const [what, ...words] = argv;
  const flags: string[] = [];
  for (let i = 0; i < words.length; i++) {
    const word = words[i] ?? "";
    const eq = word.indexOf("=");
    if (word.startsWith("--") && eq > 0 && PASSED_ON.has(word.slice(0, eq))) flags.push(word);
    else if (PASSED_ON.has(word) && i + 1 < words.length) flags.push(word, words[++i] ?? "");
  }
  const names: string[] = [];
  const quiet: Io = { ...io, out: (t) => names.push(t), err: () => undefined };
  const list: Omit<ClientCommand, "command"> | undefined =
    what === "credentials"
      ? {
          args: "",
          about: "",
          flags: [NAMESPACE_FLAG],
          async run(ctx) {
            const res = await ctx
              .client()
              .credentials.listCredentials({ namespace: ctx.namespace, pageSize: 1000 });
            for (const c of res.credentials) ctx.io.out(`${c.name}\n`);
          },
        }
      : what === "namespaces"
        ? {
            args: "",
            about: "",
            flags: [NAMESPACE_FLAG],
            async run(ctx) {
              const res = await ctx.client().callers.listCallers({});
              const namespaces = new Set(res.callers.flatMap((c) => c.namespaces));
              for (const ns of [...namespaces].filter(Boolean).sort()) ctx.io.out(`${ns}\n`);
            },
          }
        : undefined;
  if (list === undefined) return EXIT.usage;
  const timeout = new Promise<void>((resolve) => setTimeout(resolve, COMPLETE_TIMEOUT_MS).unref());
  const done = runClientCommand({ ...list, command: "credbroker __complete" }, flags, quiet);
  if ((await Promise.race([done, timeout])) === EXIT.ok) io.out(names.join(""));
  return EXIT.ok;
}
