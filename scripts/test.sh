#!/usr/bin/env bash
# The test command (README, .ci/run): installs what is missing (ZooKeeper,
# etcd, buf, protoc plugins, grpcurl), checks that gen/ is what proto/
# generates, vets, and runs every test with the race detector: unit tests and
# the integration tests that start real ZooKeeper, etcd, HS2 simulators and
# hiveqd processes on free loopback ports.
#
#   scripts/test.sh              the default suite (about 10 minutes on 2 cores)
#   scripts/test.sh ./registry/  only some packages (go test patterns)
#   CHAOS=1 scripts/test.sh      adds the chaos suite in short mode
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$PWD/.tools/bin:$PATH"

scripts/install-deps.sh

if [ -d .git ] || git rev-parse --git-dir >/dev/null 2>&1; then
  echo "== gen/ is reproducible"
  (cd proto && buf lint && buf generate)
  if ! git diff --quiet --exit-code -- gen || [ -n "$(git status --porcelain -- gen)" ]; then
    git status --short -- gen
    echo "gen/ differs from what proto/ generates: run scripts/gen.sh and commit" >&2
    exit 1
  fi
fi

# The wire stays backward compatible: proto/ against the last released API,
# a buf image committed at proto/breaking-baseline.binpb (works without git
# history or the schema registry). Refresh it only on a deliberate break:
#   (cd proto && buf build -o breaking-baseline.binpb)
echo "== buf breaking"
(cd proto && buf breaking --against breaking-baseline.binpb)

echo "== go vet"
go vet ./...

pkgs=("$@")
[ ${#pkgs[@]} -gt 0 ] || pkgs=(./...)
tags=()
[ "${CHAOS:-}" = "" ] || tags=(-tags chaos)
echo "== go test -race ${pkgs[*]}"
go test -race -count=1 -timeout 20m "${tags[@]}" "${pkgs[@]}"

# Kerberos with third-party clients: gohive's cgo build over MIT's
# libgssapi_krb5 (-tags kerberos) against the simulator and a real MIT KDC.
if [ $# -eq 0 ]; then
  echo "== go test -race -tags kerberos -run Kerberos ./hs2sim/..."
  CGO_ENABLED=1 go test -race -count=1 -timeout 10m -tags kerberos -run Kerberos ./hs2sim/...
fi
