#!/usr/bin/env bash
# Builds the hiveqd and hs2sim images (make image): static binaries
# (CGO_ENABLED=0) into dist/image/ with the host's CA certificates and a
# minimal /etc/passwd, then deploy/Containerfile's two targets with podman
# (or docker). On hosts where crun fails on the cgroup layout, podman runs
# with --runtime runc; base images are never pulled (FROM scratch).
#   scripts/image.sh [TAG]       default TAG: dev
set -euo pipefail
cd "$(dirname "$0")/.."
tag=${1:-dev}
out=dist/image
rm -rf "$out" && mkdir -p "$out"
CGO_ENABLED=0 go build -trimpath -ldflags="-s -w" -o "$out/" ./cmd/hiveqd ./cmd/hs2sim
cp deploy/image/passwd deploy/image/group "$out/"
cp /etc/ssl/certs/ca-certificates.crt "$out/"
if command -v podman >/dev/null; then
  engine=(podman --runtime runc)
elif command -v docker >/dev/null; then
  engine=(docker)
else
  echo "image: neither podman nor docker is installed" >&2
  exit 1
fi
for target in hs2sim hiveqd; do
  "${engine[@]}" build --pull=never -f deploy/Containerfile --target "$target" -t "localhost/$target:$tag" "$out"
done
echo "built localhost/hiveqd:$tag and localhost/hs2sim:$tag"
