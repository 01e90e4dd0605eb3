#!/usr/bin/env bash
# Installs the Debian packages the tests need, when missing. Called by
# `npm test` and .ci/run, so no test ever skips for want of a tool.
set -euo pipefail

need=()
command -v curl >/dev/null 2>&1 || need+=(curl)

if ((${#need[@]} > 0)); then
  echo "test-deps: installing ${need[*]}" >&2
  sudo=""
  [ "$(id -u)" = 0 ] || sudo="sudo"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${need[@]}"
fi
