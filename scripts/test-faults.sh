#!/usr/bin/env bash
# `npm run test:faults`: the fault-injection suites under test/faults (kill -9
# under load, damaged table files, a full disk, …). Kept out of `npm test`:
# they kill and restart daemons, mount a small tmpfs (root or passwordless
# sudo) and take about a minute.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/node-runtime.sh
use_supported_node

bash scripts/test-deps.sh
npx tsc -p tsconfig.json
# Faults run the `credbroker` bin (repair); tsc writes new files without the x bit.
chmod +x dist/src/cli/main.js
mapfile -t files < <(find dist/test/faults -name '*.test.js' | sort)
if ((${#files[@]} == 0)); then
  echo "no test files found under dist/test/faults" >&2
  exit 1
fi
exec node --test --test-reporter=spec "$@" "${files[@]}"
