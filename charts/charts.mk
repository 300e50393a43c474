# Chart, image and Kubernetes targets. The top-level Makefile includes this
# file (`include charts/charts.mk`); every path is relative to the repository
# root. docs/deployment/testing.md describes the checks.
#
# Tools (helm, helm-unittest, kube-apiserver, kube-controller-manager,
# kube-scheduler, kubectl, etcd, kwok, ko, crane, tilt) are compiled from the
# Go module proxy once per user and pin into
# ${XDG_CACHE_HOME:-~/.cache}/tollgate/tools/<tool>@<pin>/ by
# charts/tools/build.sh, which links them into .cache/tools/bin and says
# whether each was warm or cold and how long a build took.

CHARTS_TOOLS_BIN  ?= $(CURDIR)/.cache/tools/bin
CHART             := charts/tollgate
# Where `make images` writes one OCI image tarball per service.
IMAGES_DIR        ?= $(CURDIR)/.cache/images
# Version stamped into the binaries and used as the image tag.
IMAGE_VERSION     ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
# go test flags of the chart checks; the control-plane test needs a few minutes.
CHARTS_TEST_FLAGS ?= -count=1 -timeout=45m -v

# The chart tests module is not in go.work: run it on its own. CHARTS_STRICT
# turns a missing tool or image into a failure instead of a skip.
charts_go_test = cd charts/tests && GOWORK=off CHARTS_STRICT=1 TOOLS_BIN=$(CHARTS_TOOLS_BIN) \
	IMAGES_DIR=$(IMAGES_DIR) IMAGE_VERSION=$(IMAGE_VERSION) go test $(CHARTS_TEST_FLAGS)

.PHONY: kube-tools chart-tools test-charts chart-lint chart-unittest chart-golden \
	chart-golden-update chart-cluster-test images image-test tilt-check cluster-tools cluster-node-e2e cluster-e2e cluster-e2e-test

kube-tools: ## Build every chart/image/kube tool into the per-user tool cache, linked into .cache/tools/bin (once per pin; 25-60 min cold on 2 cores)
	@charts/tools/build.sh

chart-tools: ## Build only helm and helm-unittest (enough for lint, unit and golden tests)
	@charts/tools/build.sh helm helm-unittest

test-charts: kube-tools images ## Every chart, image, control-plane and Tiltfile check (what CI runs)
	@$(charts_go_test) ./...

chart-lint: chart-tools ## helm lint --strict with every values file of charts/tollgate/ci
	@$(charts_go_test) -run 'TestLint' ./...

chart-unittest: chart-tools ## helm-unittest suites of charts/tollgate/tests
	@$(charts_go_test) -run 'TestHelmUnittest' ./...

chart-golden: chart-tools ## helm template matrix against charts/tests/testdata/golden, refusals, hardening
	@$(charts_go_test) -run 'TestTemplate|TestRendered' ./...

chart-golden-update: chart-tools ## Rewrite the golden files and the chart README's values table after a deliberate chart change
	@$(charts_go_test) -run 'TestTemplateGolden|TestValuesReadme' ./... -update

chart-cluster-test: kube-tools ## helm install --wait every values case on etcd + kube-apiserver + kwok on loopback
	@$(charts_go_test) -run 'TestCluster' ./...

images: ## Build an OCI image per service with ko + crane into .cache/images (no Docker)
	@charts/tools/build.sh ko
	@IMAGES_DIR=$(IMAGES_DIR) IMAGE_VERSION=$(IMAGE_VERSION) TOOLS_BIN=$(CHARTS_TOOLS_BIN) charts/images/build.sh

image-test: images ## Check every image: entrypoint, non-root user, platform, no shell, version, size
	@$(charts_go_test) -run 'TestImages' ./...

tilt-check: ## Evaluate the Tiltfile with tilt and check its resources
	@charts/tools/build.sh tilt helm
	@$(charts_go_test) -run 'TestTiltfile' ./...

cluster-tools: ## Build what the real-cluster test adds: kubelet, kube-proxy (kube module), CoreDNS, Traefik, and Tilt for tilt ci
	@charts/tools/build.sh kube etcd helm coredns traefik tilt

# The real-cluster tests need root, containerd, runc, the CNI plugins, nft and
# iptables (.ci/run installs them); docs/deployment/testing.md#the-real-cluster-test.
# Under make test, a machine without root or those packages skips them loudly
# (CI, with CI set, fails instead); make cluster-e2e always fails.
cluster_go_test = cd charts/tests && GOWORK=off CHARTS_STRICT=1 CLUSTER_E2E=1 $(CLUSTER_E2E_ENV) \
	TOOLS_BIN=$(CHARTS_TOOLS_BIN) IMAGES_DIR=$(IMAGES_DIR) IMAGE_VERSION=$(IMAGE_VERSION) go test -count=1 -timeout=40m -v

cluster-node-e2e: ## A real node (containerd + kubelet + kube-proxy), CoreDNS, the network guard and the teardown (make test runs it)
	@charts/tools/build.sh kube etcd coredns
	@$(cluster_go_test) -run '^TestRealNode$$' .

cluster-e2e: CLUSTER_E2E_ENV = CLUSTER_E2E_STRICT=1
cluster-e2e: cluster-tools images ## The chart on a real node: CoreDNS, Traefik, the e2e flow through the ingress, upgrade, tilt ci (fails without root)
	@$(cluster_go_test) -run '^TestReal(Node|Cluster)$$' .

# What make test runs: the same two tests, skipped loudly without root or the
# packages (failed when CI is set), like cluster-node-e2e.
cluster-e2e-test: cluster-tools images ## Same as cluster-e2e, but skips without root (make test runs it)
	@$(cluster_go_test) -run '^TestReal(Node|Cluster)$$' .
