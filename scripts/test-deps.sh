#!/usr/bin/env bash
# Installs the Debian packages the tests need, when missing. Called by
# `npm test` and .ci/run, so no test ever skips for want of a tool.
#
# - curl: the README's CLI session.
# - nghttp2-client: h2load, the C load generator the load test and
#   `npm run bench` drive the daemon with (raw gRPC and Connect frames).
# - python3-swift: OpenStack Swift (proxy, account, container and object
#   servers, s3api and tempauth middlewares, the ring builder), run by
#   test/support/swift.ts as a real SigV4-verifying S3 on 127.0.0.1. Only the
#   python package, without recommends: the swift, swift-proxy,
#   swift-account, swift-container and swift-object packages add nothing the
#   tests need (their /usr/bin scripts are two-line wrappers around the
#   python entry points the harness calls itself) but do pull in rsyslog and
#   uwsgi and enable and start systemd units / init scripts on install.
#   python3-swift and its dependencies ship no service; its postinst only adds
#   a `swift` system user and /var/{lib,log,backups}/swift.
# - etcd-server: /usr/bin/etcd (3.4), which test/support/etcd.ts runs as a
#   one-member cluster on free 127.0.0.1 ports with a temp data dir, for the
#   etcd CredentialStore. Its postinst adds an `etcd` user and enables
#   etcd.service (on a host with systemd it starts Debian's default member on
#   localhost:2379, which the tests never use).
# - zsh, fish: the completion test checks the scripts `credbroker completion
#   zsh|fish` print with the shells themselves.
# - awscli: the README's "Try it" section (run by
#   test/e2e/readme-try-it.test.ts) uses `aws`; any aws v1 or v2 already on
#   PATH will do.
# - systemd: systemd-analyze, which test/deploy/systemd.test.ts runs (verify,
#   security --offline) on deploy/systemd/credbroker.service; offline, it
#   needs no running systemd.
#
# moto_server (moto 5.x, a Python AWS emulator; test/support/moto.ts runs it
# as a SigV4-verifying STS) is not a Debian package: it comes with the
# machine's pyenv Python (CI's too). It is only checked here, never
# installed: when it is missing or broken this script fails, naming the fix.
set -euo pipefail

sudo=""
[ "$(id -u)" = 0 ] || sudo="sudo"

installed() {
  [ "$(dpkg-query -W -f='${db:Status-Status}' "$1" 2>/dev/null)" = installed ]
}

need=()
command -v curl >/dev/null 2>&1 || need+=(curl)
command -v h2load >/dev/null 2>&1 || need+=(nghttp2-client)
# The TLS tests make their own CA and certificates.
command -v openssl >/dev/null 2>&1 || need+=(openssl)
[ -x /usr/bin/etcd ] || need+=(etcd-server)
command -v zsh >/dev/null 2>&1 || need+=(zsh)
command -v fish >/dev/null 2>&1 || need+=(fish)
command -v aws >/dev/null 2>&1 || need+=(awscli)
command -v systemd-analyze >/dev/null 2>&1 || need+=(systemd)
need_swift=()
installed python3-swift || need_swift+=(python3-swift)

if ((${#need[@]} + ${#need_swift[@]} > 0)); then
  echo "test-deps: installing ${need[*]} ${need_swift[*]}" >&2
  $sudo apt-get update -qq
  if ((${#need[@]} > 0)); then
    $sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}"
  fi
  if ((${#need_swift[@]} > 0)); then
    $sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
      "${need_swift[@]}"
  fi
fi

if ! command -v moto_server >/dev/null 2>&1 || ! moto_server --help >/dev/null 2>&1; then
  cat >&2 <<'EOF'
test-deps: ERROR: moto_server (moto 5.x) is missing or does not run.
  The STS-facing tests (test/e2e/sts-moto.test.ts) run against it as a
  third-party, signature-verifying STS. Install it into the Python on PATH:
    python3 -m pip install 'moto[server]>=5,<6'
  and check that `moto_server --help` works.
EOF
  exit 1
fi
