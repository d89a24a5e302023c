#!/usr/bin/env bash
# Installs what the tests need when it is missing: Debian's ZooKeeper and etcd
# (real servers for the integration tests), a JRE for ZooKeeper, MIT
# Kerberos (KDC, kadmin.local, kinit, libkrb5-dev for cgo), and the Go
# tools (buf, protoc plugins, grpcurl) into .tools/bin at pinned versions.
set -euo pipefail
cd "$(dirname "$0")/.."

need_apt=()
[ -f /usr/share/java/zookeeper.jar ] || need_apt+=(zookeeper)
command -v java >/dev/null 2>&1 || need_apt+=(default-jre-headless)
command -v tmux >/dev/null 2>&1 || need_apt+=(tmux) # the interactive sql test
[ -x /usr/bin/etcd ] || need_apt+=(etcd-server)
[ -x /usr/bin/etcdctl ] || need_apt+=(etcd-client) # snapshot save/restore (cluster tests)
# MIT Kerberos: a real KDC for the Kerberos tests (internal/testenv), and
# libgssapi_krb5's headers for gohive's cgo Kerberos build (-tags kerberos).
[ -x /usr/sbin/krb5kdc ] || need_apt+=(krb5-kdc)
[ -x /usr/sbin/kadmin.local ] || need_apt+=(krb5-admin-server)
[ -x /usr/bin/kinit ] || need_apt+=(krb5-user)
[ -f /usr/include/gssapi/gssapi.h ] || need_apt+=(libkrb5-dev)
command -v gcc >/dev/null 2>&1 || need_apt+=(gcc libc6-dev)
# The operator surface: containers (podman with runc: crun fails on hybrid
# cgroups), Prometheus (promtool and a real server), Chromium and npm for
# the console's browser test.
command -v podman >/dev/null 2>&1 || need_apt+=(podman)
command -v runc >/dev/null 2>&1 || need_apt+=(runc)
command -v promtool >/dev/null 2>&1 || need_apt+=(prometheus)
[ -x /usr/bin/chromium ] || need_apt+=(chromium)
command -v npm >/dev/null 2>&1 || need_apt+=(npm)
if [ ${#need_apt[@]} -gt 0 ]; then
  echo "install-deps: apt-get install ${need_apt[*]}"
  SUDO=""; [ "$(id -u)" = 0 ] || SUDO=sudo
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${need_apt[@]}" >/dev/null
fi
# Debian starts the packaged services; the tests run their own on free ports.
for svc in zookeeper etcd krb5-kdc krb5-admin-server prometheus; do
  if command -v systemctl >/dev/null 2>&1 && systemctl is-active --quiet "$svc" 2>/dev/null; then
    systemctl stop "$svc" || true
  fi
done

# Pinned tool versions, one module per go install (they do not share a module).
TOOLS=(
  "google.golang.org/protobuf/cmd/protoc-gen-go@v1.36.12"
  "google.golang.org/grpc/cmd/protoc-gen-go-grpc@v1.6.2"
  "github.com/bufbuild/buf/cmd/buf@v1.75.0"
  "github.com/fullstorydev/grpcurl/cmd/grpcurl@v1.9.4"
  "helm.sh/helm/v3/cmd/helm@v3.22.0"
)
BIN="$PWD/.tools/bin"
mkdir -p "$BIN"
for t in "${TOOLS[@]}"; do
  name=$(basename "${t%@*}")
  stamp="$BIN/.$name.version"
  if [ -x "$BIN/$name" ] && [ "$(cat "$stamp" 2>/dev/null)" = "$t" ]; then continue; fi
  echo "install-deps: go install $t"
  GOBIN="$BIN" GOFLAGS=-buildvcs=false go install "$t"
  echo "$t" > "$stamp"
done

# The console's browser test drives Debian's /usr/bin/chromium with npm
# playwright-core (never a downloaded browser), in a test-local node_modules.
PLAYWRIGHT=playwright-core@1.65.2
if [ "$(cat tests/console/node_modules/.playwright.version 2>/dev/null)" != "$PLAYWRIGHT" ]; then
  echo "install-deps: npm install $PLAYWRIGHT (tests/console)"
  (cd tests/console && PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1 npm install --no-audit --no-fund --no-save "$PLAYWRIGHT" >/dev/null \
    && echo "$PLAYWRIGHT" > node_modules/.playwright.version) \
    || echo "install-deps: npm install $PLAYWRIGHT failed: the console's browser test will skip" >&2
fi
