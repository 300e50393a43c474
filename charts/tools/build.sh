#!/usr/bin/env bash
# Builds the pinned tools the chart checks need, once per machine.
#
#   charts/tools/build.sh [TOOL...]     (no TOOL: all of them)
#
# Every tool is compiled from source through the Go module proxy; nothing is
# downloaded as a prebuilt binary. Each tool lives in its own module under
# charts/tools/<tool>/ because their dependency graphs disagree (kubernetes,
# kwok, helm and tilt each pin a different k8s.io/* line).
#
# Binaries land in $TOOLS_DIR/bin (default: <repo>/.cache/tools/bin, which git
# ignores). A stamp per tool records a hash of its go.mod, go.sum and build
# flags; a tool is rebuilt only when that hash changes. A lock file keeps two
# concurrent runs from building the same thing twice.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/../.." && pwd)"
TOOLS_DIR="${TOOLS_DIR:-$repo/.cache/tools}"
bin="$TOOLS_DIR/bin"
stamps="$TOOLS_DIR/stamps"
mkdir -p "$bin" "$stamps"

kube_version=v1.35.4
kube_ldflags="-s -w \
 -X k8s.io/component-base/version.gitVersion=$kube_version \
 -X k8s.io/component-base/version.gitMajor=1 \
 -X k8s.io/component-base/version.gitMinor=35 \
 -X k8s.io/component-base/version.gitTreeState=clean \
 -X k8s.io/client-go/pkg/version.gitVersion=$kube_version \
 -X k8s.io/client-go/pkg/version.gitMajor=1 \
 -X k8s.io/client-go/pkg/version.gitMinor=35"

# tool -> "packages|ldflags|estimate of a cold build on 2 cores"
declare -A spec=(
  [kube]="k8s.io/kubernetes/cmd/kube-apiserver k8s.io/kubernetes/cmd/kube-controller-manager k8s.io/kubernetes/cmd/kube-scheduler k8s.io/kubernetes/cmd/kubectl|$kube_ldflags|25-50 min"
  [etcd]="./cmd/etcd|-s -w|~5 min"
  [kwok]="sigs.k8s.io/kwok/cmd/kwok|-s -w -X sigs.k8s.io/kwok/pkg/consts.Version=v0.8.0|~10 min"
  [helm]="helm.sh/helm/v3/cmd/helm|-s -w -X helm.sh/helm/v3/internal/version.version=v3.22.0 -X helm.sh/helm/v3/pkg/chartutil.k8sVersionMajor=1 -X helm.sh/helm/v3/pkg/chartutil.k8sVersionMinor=35|5-15 min"
  [helm-unittest]="github.com/helm-unittest/helm-unittest/cmd/helm-unittest|-s -w|~3 min"
  [ko]="github.com/google/ko github.com/google/go-containerregistry/cmd/crane|-s -w|~3 min"
  [tilt]="github.com/tilt-dev/tilt/cmd/tilt|-s -w -X main.version=0.34.0|~15 min"
)
order=(kube etcd kwok helm helm-unittest ko tilt)

build_one() {
  local tool="$1" dir="$here/$1"
  local entry="${spec[$tool]:-}"
  if [[ -z "$entry" || ! -f "$dir/go.mod" ]]; then
    echo "tools: unknown tool '$tool' (known: ${order[*]})" >&2
    return 2
  fi
  local pkgs ldflags estimate
  IFS='|' read -r pkgs ldflags estimate <<<"$entry"
  local sum
  sum="$(cat "$dir/go.mod" "$dir/go.sum" <(echo "$pkgs|$ldflags|$(go env GOVERSION)|cgo=$([[ $tool == tilt ]] && echo 1 || echo 0)") | sha256sum | cut -c1-16)"
  if [[ -f "$stamps/$tool" && "$(cat "$stamps/$tool")" == "$sum" ]]; then
    return 0
  fi
  echo "tools: building $tool into $bin (first build on this machine: $estimate on 2 cores; later runs reuse it)"
  local start=$SECONDS
  # Static binaries, except tilt: its Tiltfile parser (tree-sitter) needs cgo.
  local cgo=0
  [[ "$tool" != tilt ]] || cgo=1
  (
    cd "$dir"
    # GOWORK=off: these modules are not part of the repository's go.work.
    # GOFLAGS is replaced, not extended: the environment's flags are not ours.
    env GOWORK=off GOFLAGS=-mod=readonly CGO_ENABLED=$cgo \
      go build -buildvcs=false -trimpath -ldflags "$ldflags" -o "$bin/" $pkgs
  )
  local took=$((SECONDS - start))
  echo "$sum" >"$stamps/$tool"
  printf 'tools: built %s in %dm%02ds\n' "$tool" $((took / 60)) $((took % 60))
}

tools=("$@")
[[ ${#tools[@]} -gt 0 ]] || tools=("${order[@]}")

exec 9>"$TOOLS_DIR/.lock"
if ! flock -n 9; then
  echo "tools: another build holds $TOOLS_DIR/.lock; waiting for it"
  flock 9
fi
for t in "${tools[@]}"; do
  build_one "$t"
done
