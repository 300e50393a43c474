#!/usr/bin/env bash
# Builds one service's image with ko and imports it into containerd, for a
# node whose kubelet uses that containerd: no Docker engine, no registry.
# The Tiltfile runs it for image_loader: containerd (docs/deployment/tilt.md).
#
#   EXPECTED_REF=<registry>/<path>/<service>:<tag> \
#   CONTAINERD_ADDRESS=/run/containerd/containerd.sock \
#     charts/images/containerd-load.sh SERVICE
#
# EXPECTED_REF is the reference Tilt expects (custom_build); the image is
# built by charts/images/build.sh (the release images' recipe) with
# KO_DOCKER_REPO and IMAGE_VERSION taken from it, then imported with
# `ctr images import` into CONTAINERD_NAMESPACE (default k8s.io, the
# namespace the CRI plugin serves to the kubelet). Needs ctr and permission
# on the containerd socket (root, usually).
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
usage="usage: EXPECTED_REF=<repo>/<service>:<tag> $0 SERVICE"
service="${1:?$usage}"
ref="${EXPECTED_REF:?$usage}"
address="${CONTAINERD_ADDRESS:-/run/containerd/containerd.sock}"
namespace="${CONTAINERD_NAMESPACE:-k8s.io}"

name="${ref%:*}"
tag="${ref##*:}"
if [[ "$name" == "$ref" || "$tag" == */* || "${name##*/}" != "$service" || "$name" != */* ]]; then
  echo "containerd-load: EXPECTED_REF=$ref is not <repo>/$service:<tag>" >&2
  exit 2
fi
command -v ctr >/dev/null || { echo "containerd-load: ctr not found (apt-get install containerd)" >&2; exit 1; }
[[ -S "$address" ]] || { echo "containerd-load: no containerd socket at $address (set CONTAINERD_ADDRESS)" >&2; exit 1; }

out="$(mktemp -d)"
trap 'rm -rf "$out"' EXIT
KO_DOCKER_REPO="${name%/*}" IMAGES_DIR="$out" IMAGE_VERSION="$tag" "$here/build.sh" "$service"
ctr --address "$address" -n "$namespace" images import "$out/$service.tar"
echo "containerd-load: $ref imported into $address ($namespace)"
