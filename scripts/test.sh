#!/usr/bin/env bash
# The one test command (`npm test`): install missing tools, type-check and
# build, then run every test file with node:test.
set -euo pipefail
cd "$(dirname "$0")/.."
# Node 24 from the project cache when the machine's node is older than 22.
source scripts/node-runtime.sh
use_supported_node

bash scripts/test-deps.sh
npx tsc -p tsconfig.json
# The `credbroker` bin (npx credbroker, as the README runs it) must be executable;
# tsc writes new files without the x bit.
chmod +x dist/src/cli/main.js
# test/faults runs on its own (`npm run test:faults`, scripts/test-faults.sh).
mapfile -t files < <(find dist/test -path dist/test/faults -prune -o -name '*.test.js' -print | sort)
if ((${#files[@]} == 0)); then
  echo "no test files found under dist/test" >&2
  exit 1
fi
exec node --test --test-reporter=spec "$@" "${files[@]}"
