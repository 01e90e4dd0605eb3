/**
 * The import rules of src/ (docs/ARCHITECTURE.md, "Map"). Layers, lowest first:
 *
 *   gen ← core ← providers ← store, bindings, http, audit, forward ← auth, config,
 *       metadata ← api ← daemon ← cli;   client ← gen only (it ships to applications)
 *
 * A folder may import its own files, `gen/`, and the folders listed for it
 * below, nothing else. One cloud never imports another. Checked by
 * `npm run lint` and .ci/run; test/lint/layers.test.ts
 * shows a wrong-way import fails it.
 */

/** What each folder of src/ may import besides itself and gen/. */
const MAY_IMPORT = {
  core: [],
  providers: ["core"],
  store: ["core"],
  bindings: ["core", "providers"],
  http: ["core"],
  audit: ["core"],
  forward: ["core"],
  auth: ["core", "store"],
  config: ["core", "store", "http"],
  metadata: ["core", "providers", "bindings", "http", "audit"],
  api: ["core", "providers", "store", "bindings", "http", "audit", "auth", "forward"],
  daemon: [
    "core",
    "providers",
    "store",
    "bindings",
    "http",
    "audit",
    "auth",
    "config",
    "metadata",
    "api",
    "forward",
  ],
  cli: ["core", "store", "config", "client", "daemon"],
  // ships to applications: gen/ and packages only, never the daemon's modules
  client: [],
};

const layerRules = Object.entries(MAY_IMPORT).map(([folder, allowed]) => ({
  name: `layer-${folder}`,
  comment: `src/${folder}/ may import only ${["gen", folder, ...allowed].join(", ")} (docs/ARCHITECTURE.md, "Map")`,
  severity: "error",
  from: { path: `^src/${folder}/` },
  to: {
    path: "^src/",
    pathNot: [`^src/${folder}/`, ...allowed.map((a) => `^src/${a}/`)],
  },
}));

/** Subfolders that are one of a kind each: they import what their folder shares, never each other. */
const APART = [
  ["one-cloud-per-folder", "providers", "a provider imports providers/*.ts (the interface), never another cloud"],
  ["store-backends-apart", "store", "a store backend imports what both share (src/store/*.ts), never the other"],
  ["metadata-protocols-apart", "metadata", "a metadata protocol imports the shared guards, never another protocol"],
];

const apartRules = APART.map(([name, folder, comment]) => ({
  name,
  comment,
  severity: "error",
  from: { path: `^src/${folder}/([^/]+)/` },
  to: { path: `^src/${folder}/[^/]+/`, pathNot: `^src/${folder}/$1/` },
}));

/** @type {import('dependency-cruiser').IConfiguration} */
module.exports = {
  forbidden: [
    ...layerRules,
    ...apartRules,
    {
      name: "shared-below-subfolders",
      comment: "what the clouds, store backends or metadata protocols share (the folder's own *.ts) never imports one of them",
      severity: "error",
      from: { path: "^src/(providers|store|metadata)/[^/]+\\.ts$" },
      to: { path: "^src/$1/[^/]+/" },
    },
    {
      name: "core-is-pure",
      comment: "src/core/ does no I/O: no file system, network or processes",
      severity: "error",
      from: { path: "^src/core/" },
      to: {
        dependencyTypes: ["core"],
        path: "^(node:)?(fs|fs/promises|net|http|http2|https|tls|dgram|child_process|worker_threads)$",
      },
    },
    {
      name: "gen-is-generated",
      comment: "gen/ is buf's output and imports nothing of src/",
      severity: "error",
      from: { path: "^gen/" },
      to: { path: "^src/" },
    },
    {
      name: "no-circular",
      comment: "no import cycles between files (and so none between folders)",
      severity: "error",
      from: {},
      to: { circular: true },
    },
  ],
  options: {
    doNotFollow: { path: "node_modules" },
    exclude: { path: "^(dist|node_modules)/" },
    tsPreCompilationDeps: true,
    tsConfig: { fileName: "tsconfig.json" },
    enhancedResolveOptions: {
      exportsFields: ["exports"],
      conditionNames: ["import", "require", "node", "default", "types"],
      extensions: [".ts", ".js"],
    },
  },
};
