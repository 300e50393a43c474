#!/usr/bin/env bash
# Builds one OCI image per service with ko, without a Docker engine.
#
#   IMAGES_DIR=.cache/images IMAGE_VERSION=v1.2.3 charts/images/build.sh [SERVICE...]
#
# 1. crane serves a throwaway registry on 127.0.0.1 (the base never leaves
#    this machine).
# 2. The base image is made from scratch: one layer with /etc/passwd and
#    /etc/group (user nonroot, uid 65532), the CA bundle and /tmp; platform
#    linux/amd64, user 65532. No shell, no package manager.
# 3. ko compiles each service statically (CGO_ENABLED=0, GOWORK=off, version
#    stamped by ldflags) onto that base and writes $IMAGES_DIR/<service>.tar,
#    tagged <KO_DOCKER_REPO>/<service>:<IMAGE_VERSION>.
#
# charts/tests/images_test.go then checks every tarball.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/../.." && pwd)"
TOOLS_BIN="${TOOLS_BIN:-$repo/.cache/tools/bin}"
IMAGES_DIR="${IMAGES_DIR:-$repo/.cache/images}"
IMAGE_VERSION="${IMAGE_VERSION:-dev}"
export KO_DOCKER_REPO="${KO_DOCKER_REPO:-ghcr.io/tollgate}"
CA_BUNDLE="${CA_BUNDLE:-/etc/ssl/certs/ca-certificates.crt}"
services=("$@")
[[ ${#services[@]} -gt 0 ]] || services=(auth-server mcp-gateway actions-api capability-core dev-idp)

TOOLS_BIN="$(cd "$TOOLS_BIN" && pwd)"
mkdir -p "$IMAGES_DIR" && IMAGES_DIR="$(cd "$IMAGES_DIR" && pwd)"
crane="$TOOLS_BIN/crane"
ko="$TOOLS_BIN/ko"
for b in "$crane" "$ko"; do
  [[ -x "$b" ]] || { echo "images: $b is missing; run charts/tools/build.sh ko" >&2; exit 1; }
done
if [[ ! -s "$CA_BUNDLE" ]]; then
  echo "images: no CA bundle at $CA_BUNDLE (apt-get install ca-certificates, or set CA_BUNDLE)" >&2
  exit 1
fi

work="$(mktemp -d)"
registry_pid=""
cleanup() {
  # wait reports the registry's SIGTERM (143); under set -e that must not
  # become the script's exit status after every image was built.
  if [[ -n "$registry_pid" ]]; then
    kill "$registry_pid" 2>/dev/null || true
    wait "$registry_pid" 2>/dev/null || true
  fi
  rm -rf "$work"
}
trap cleanup EXIT

# A free loopback port for the registry.
port="$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])' 2>/dev/null || echo 5917)"
"$crane" registry serve --address "127.0.0.1:$port" >"$work/registry.log" 2>&1 &
registry_pid=$!
for _ in $(seq 50); do
  "$crane" catalog "127.0.0.1:$port" >/dev/null 2>&1 && break
  sleep 0.2
done
"$crane" catalog "127.0.0.1:$port" >/dev/null || { cat "$work/registry.log" >&2; exit 1; }

# The base layer, reproducible: fixed owners and times, sorted entries.
root="$work/rootfs"
mkdir -p "$root/etc/ssl/certs" "$root/tmp" "$root/home/nonroot"
printf 'root:x:0:0:root:/root:/sbin/nologin\nnonroot:x:65532:65532:nonroot:/home/nonroot:/sbin/nologin\n' >"$root/etc/passwd"
printf 'root:x:0:\nnonroot:x:65532:\n' >"$root/etc/group"
cp "$CA_BUNDLE" "$root/etc/ssl/certs/ca-certificates.crt"
chmod 1777 "$root/tmp"
tar --sort=name --mtime=@0 --numeric-owner --owner=0 --group=0 -C "$root" -cf "$work/base.tar" etc tmp
tar --mtime=@0 --numeric-owner --owner=65532 --group=65532 -C "$root" -rf "$work/base.tar" home
base="127.0.0.1:$port/tollgate/base"
"$crane" append --oci-empty-base -f "$work/base.tar" -t "$base:layer" >/dev/null 2>"$work/crane.log" || { cat "$work/crane.log" >&2; exit 1; }
"$crane" mutate "$base:layer" --set-platform linux/amd64 -u 65532 -t "$base:latest" >/dev/null 2>>"$work/crane.log" || { cat "$work/crane.log" >&2; exit 1; }

mkdir -p "$IMAGES_DIR"

for s in "${services[@]}"; do
  dir="$repo/services/$s"
  [[ -d "$dir/cmd/$s" ]] || { echo "images: $dir/cmd/$s does not exist" >&2; exit 1; }
  # One ko configuration per service: ko resolves every build's main package
  # from the working directory, which is the service's own module.
  mkdir -p "$work/ko/$s"
  cat >"$work/ko/$s/.ko.yaml" <<KO
defaultBaseImage: $base:latest
defaultPlatforms: [linux/amd64]
builds:
  - id: $s
    main: ./cmd/$s
    env: [CGO_ENABLED=0, GOWORK=off]
    flags: [-trimpath]
    ldflags:
      - -s -w
      - -X github.com/tollgate/tollgate/services/platform/buildinfo.Version=$IMAGE_VERSION
KO
  start=$SECONDS
  (
    cd "$dir"
    GOWORK=off KO_CONFIG_PATH="$work/ko/$s/.ko.yaml" GOFLAGS=-mod=readonly \
      "$ko" build "./cmd/$s" --base-import-paths --push=false --sbom=none \
      --tags="$IMAGE_VERSION" --platform=linux/amd64 \
      --tarball="$IMAGES_DIR/$s.tar" >"$work/$s.ref" 2>"$work/$s.log" \
      || { cat "$work/$s.log" >&2; exit 1; }
  )
  printf 'images: %s -> %s (%s, %ds)\n' "$s" "$IMAGES_DIR/$s.tar" "$(du -h "$IMAGES_DIR/$s.tar" | cut -f1)" $((SECONDS - start))
done
