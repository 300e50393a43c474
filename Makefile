# Tollgate — one Makefile for the whole fleet. `make` lists the targets.
SHELL := bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := help
MAKEFLAGS += --no-print-directory

# Pinned tools, run through the Go toolchain (nothing else is downloaded).
BUF_VERSION := v1.75.0
BUF := go run github.com/bufbuild/buf/cmd/buf@$(BUF_VERSION)

# Every module of the workspace (go.work), as directories relative to the root.
MODULES = $(shell go list -m -f '{{.Dir}}' | sed "s|^$(CURDIR)/||")
GO_TEST_FLAGS ?= -race -count=1 -timeout 20m
VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
LDFLAGS := -X github.com/tollgate/tollgate/services/platform/buildinfo.Version=$(VERSION)

.PHONY: help
help: ## List the targets
	@# The name column is as wide as the longest target name (charts.mk's included).
	@awk 'BEGIN {FS = ":.*## "} /^[a-zA-Z0-9_.-]+:.*## / {n[++c] = $$1; d[c] = $$2; if (length($$1) > w) w = length($$1)} \
	  END {for (i = 1; i <= c; i++) printf "  \033[36m%-" w "s\033[0m %s\n", n[i], d[i]}' $(MAKEFILE_LIST)

.PHONY: dev
dev: ## Run the whole fleet locally on http://localhost:4000 (Ctrl-C stops it; PUBLIC_URL=https://<tunnel> DEV_ALLOWED_ORIGINS=... DEV_FLAGS='-free-ports -var var/second')
	@echo "make dev: building tollgate-dev, then every service (go build; on a cold Go module cache only 'go: downloading' lines for many minutes)"
	@go build -ldflags '$(LDFLAGS)' -o var/bin/tollgate-dev ./services/platform/cmd/tollgate-dev
	VERSION=$(VERSION) var/bin/tollgate-dev -root . $(DEV_FLAGS)

# make token: what `tollgate-dev token` signs in with (see docs/development.md).
# RESOURCE empty sends no resource, as a GPT Action does (the client's first
# resource is the audience); ORIGIN empty is the origin in $(VAR)/dev/clients.json.
CLIENT ?= local-test
RESOURCE ?=
SCOPE ?= openid profile email
ORIGIN ?=
VAR ?= var
.PHONY: token
token: ## Print an access token of the dev user (CLIENT=local-test|gpt-actions RESOURCE=mcp|actions|URL SCOPE=... ORIGIN=http://host:port VAR=var NO_PKCE=1 JSON=1)
	@go build -o var/bin/tollgate-dev ./services/platform/cmd/tollgate-dev
	@var/bin/tollgate-dev token -root . -var '$(VAR)' --client '$(CLIENT)' --scope '$(SCOPE)' $(if $(RESOURCE),--resource '$(RESOURCE)') $(if $(ORIGIN),--origin '$(ORIGIN)') $(if $(NO_PKCE),--no-pkce) $(if $(JSON),--json)

.PHONY: test
test: test-go $(if $(wildcard charts/charts.mk),test-charts cluster-e2e-test) ## Run every test (Go modules with -race, chart checks, the chart on a real node with tilt ci)

# e2e's packages each start a whole fleet on ports picked free beforehand:
# run them one at a time, or two fleets can race for the same port.
SERIAL_MODULES := e2e

.PHONY: test-go
test-go: conformance-deps ## Run the Go tests of every module with -race
	@failed=""; for m in $(MODULES); do echo "== go test $$m"; \
	  p=""; case " $(SERIAL_MODULES) " in *" $$m "*) p="-p 1";; esac; \
	  (cd $$m && go test $(GO_TEST_FLAGS) $$p ./...) || failed="$$failed $$m"; done; \
	if [ -n "$$failed" ]; then echo "FAILED:$$failed"; exit 1; fi

.PHONY: conformance-deps
conformance-deps: ## Install the pinned MCP conformance suite and Node 22 (npm) into .cache/conformance
	@e2e/conformance/install.sh

.PHONY: test-conformance conformance
test-conformance: conformance-deps ## Run only the MCP conformance suite (server scenarios against a fleet with MCP_CONFORMANCE_FIXTURES=true, authorization scenarios), the TypeScript SDK client, the MCP Inspector CLI and openid-client as a relying party
	cd e2e && go test $(GO_TEST_FLAGS) -v ./conformance/
conformance: test-conformance ## Same as test-conformance (fails on any failed check not listed as expected)

.PHONY: bench
bench: ## Run the Go benchmarks (the token-endpoint and mcp-gateway side-by-side runs included)
	@# Only the packages that declare a benchmark: -bench on the others would
	@# still run their TestMain (the e2e packages start whole fleets, and the
	@# conformance package refuses to start without the pinned suite).
	@for m in $(MODULES); do \
	  pkgs=$$(cd $$m && { grep -rl --include='*_test.go' '^func Benchmark' . || true; } | xargs -r -n1 dirname | sort -u); \
	  if [ -n "$$pkgs" ]; then (cd $$m && go test -run '^$$' -bench . $(BENCHFLAGS) $$pkgs); fi; \
	done

BENCHFLAGS ?= -benchmem

.PHONY: bench-smoke
bench-smoke: ## make bench once through, each benchmark one iteration and a short load (CI: keeps make bench working; its figures mean nothing)
	TOLLGATE_BENCH_GRANTS=40 TOLLGATE_BENCH_DURATION=1s TOLLGATE_BENCH_ROUNDS=1 $(MAKE) bench BENCHFLAGS='-benchtime 1x'

.PHONY: bench-mcp
bench-mcp: ## Only the mcp-gateway side-by-side run: bare mcp-go echo vs authenticated tools/call, req/s, p99, ratios
	cd services/mcp-gateway && go test -run '^$$' -bench BenchmarkSideBySide -benchtime 1x ./internal/gateway/

.PHONY: build
# Go patterns take no "*" ("./services/*/cmd/..." is refused in a
# workspace: "directory prefix services/*/cmd does not contain modules"), so
# make lists the modules' cmd directories itself.
build: ## Build every service binary into bin/
	go build -ldflags '$(LDFLAGS)' -o bin/ $(patsubst %,./%/...,$(wildcard services/*/cmd))

.PHONY: build-isolated
build-isolated: ## Build and vet (tests included) each module on its own (GOWORK=off), as container builds do; fail on a go.mod that go mod tidy would change
	@for m in $(MODULES); do echo "== GOWORK=off go build $$m"; (cd $$m && GOWORK=off go mod tidy -diff && GOWORK=off go build ./... && GOWORK=off go vet ./...) || exit 1; done

.PHONY: generate
generate: ## Regenerate protobuf code from proto/ and the example backend's proto/
	cd proto && $(BUF) generate
	cd services/example-backend && $(BUF) generate

.PHONY: lint
lint: ## gofmt, go vet and buf lint
	@bad=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$bad" ]; then echo "gofmt needed:"; echo "$$bad"; exit 1; fi
	@for m in $(MODULES); do (cd $$m && go vet ./...); done
	cd proto && $(BUF) lint
	cd services/example-backend && $(BUF) lint

# Directories of committed generated code that `make verify` checks.
GENERATED := proto/gen services/example-backend/gen
.PHONY: verify
verify: lint generate build build-isolated ## Lint, then fail if generated code drifts from its source; build every binary (workspace and each module alone)
	@git diff --exit-code -- $(GENERATED) || { echo "generated code is stale: run 'make generate' and commit"; exit 1; }
	@test -z "$$(git status --porcelain -- $(GENERATED))" || { git status --porcelain -- $(GENERATED); echo "untracked generated files: run 'make generate' and commit"; exit 1; }

BASE_URL ?= http://localhost:4000
OUT ?= var/actions.openapi.json
.PHONY: openapi
openapi: ## Export the GPT Actions OpenAPI document (BASE_URL=... OUT=...)
	@mkdir -p $(dir $(OUT))
	go run ./services/actions-api/cmd/actions-api openapi -base-url '$(BASE_URL)' -out '$(OUT)'

.PHONY: clean
clean: ## Remove local state and build output (var/, bin/)
	rm -rf var bin

-include charts/charts.mk
