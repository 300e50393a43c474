# Chart, image and Kubernetes targets. The top-level Makefile includes this
# file; every path here is relative to the repository root.
#
# Tools (helm, helm-unittest, kube-apiserver & co., etcd, kwok, ko, crane,
# tilt) are compiled from the Go module proxy once per machine into
# .cache/tools/bin by charts/tools/build.sh. The first run says so and prints
# how long each build took (cold: about 25 minutes in all on 2 cores).

CHARTS_TOOLS_DIR ?= $(CURDIR)/.cache/tools
CHARTS_BIN       := $(CHARTS_TOOLS_DIR)/bin
CHART            := charts/tollgate
CHART_VALUES     := $(wildcard $(CHART)/ci/*-values.yaml)
# Where `make images` writes one OCI image tarball per service.
IMAGES_DIR       ?= $(CURDIR)/.cache/images
# Version stamped into the binaries and used as the image tag.
IMAGE_VERSION    ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
# The control-plane test starts etcd, kube-apiserver & co. on loopback.
CHARTS_TEST_FLAGS ?= -count=1 -timeout=40m

.PHONY: kube-tools chart-tools test-charts chart-lint chart-unittest chart-golden \
        chart-golden-update chart-cluster-test images image-test tilt-check charts-help

kube-tools: ## Build every chart/image/kube tool into .cache/tools (once per machine)
	@charts/tools/build.sh

chart-tools: ## Build only helm and helm-unittest (enough for lint, unit and golden tests)
	@charts/tools/build.sh helm helm-unittest

test-charts: kube-tools ## Everything CI runs for charts/, images and the Tiltfile
	@charts/tools/run-checks.sh

chart-lint: chart-tools ## helm lint --strict with every values file of charts/tollgate/ci
	@set -e; for f in $(CHART_VALUES); do \
	  echo "helm lint --strict -f $$f"; \
	  $(CHARTS_BIN)/helm lint --strict $(CHART) -f $$f; \
	done

chart-unittest: chart-tools ## helm-unittest suites of charts/tollgate/tests
	@$(CHARTS_BIN)/helm-unittest --strict --color=false $(CHART)

chart-golden: chart-tools ## Compare helm template output with charts/tests/testdata/golden
	@cd charts/tests && TOOLS_BIN=$(CHARTS_BIN) GOWORK=off go test -count=1 -run 'TestTemplate|TestSchema' ./...

chart-golden-update: chart-tools ## Regenerate the golden files after a deliberate chart change
	@cd charts/tests && TOOLS_BIN=$(CHARTS_BIN) GOWORK=off go test -count=1 -run 'TestTemplate' ./... -update

chart-cluster-test: kube-tools ## helm install --wait every values case on a local control plane (etcd+apiserver+kwok)
	@cd charts/tests && TOOLS_BIN=$(CHARTS_BIN) GOWORK=off go test $(CHARTS_TEST_FLAGS) -run 'TestCluster' -v ./... 2>&1 | charts_filter

images: ## Build an OCI image per service with ko into .cache/images (no Docker needed)
	@charts/tools/build.sh ko
	@IMAGES_DIR=$(IMAGES_DIR) IMAGE_VERSION=$(IMAGE_VERSION) TOOLS_BIN=$(CHARTS_BIN) charts/images/build.sh

image-test: images ## Check every image: entrypoint, non-root user, platform, size
	@cd charts/tests && IMAGES_DIR=$(IMAGES_DIR) TOOLS_BIN=$(CHARTS_BIN) GOWORK=off go test -count=1 -run 'TestImages' -v ./...

tilt-check: ## Parse the Tiltfile with tilt and check its resources
	@charts/tools/build.sh tilt
	@cd charts/tests && TOOLS_BIN=$(CHARTS_BIN) GOWORK=off go test -count=1 -run 'TestTiltfile' -v ./...
