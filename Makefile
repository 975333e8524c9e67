# targetlock — every target builds what it needs from pinned sources; only Go is required.

SHELL := /usr/bin/env bash -o pipefail
.SHELLFLAGS := -ec
.DEFAULT_GOAL := help

BIN := $(CURDIR)/bin
export KUBEBUILDER_ASSETS ?= $(BIN)

KUBE_VERSION := v1.37.2
CONTROLLER_TOOLS_VERSION := v0.23.0
GOLANGCI_LINT_VERSION := v2.15.0

KUBE_APISERVER := $(BIN)/kube-apiserver
ETCD := $(BIN)/etcd
CONTROLLER_GEN := $(BIN)/controller-gen
GOLANGCI_LINT := $(BIN)/golangci-lint
HELM := $(BIN)/helm
HELM_VERSION := v3.22.0

KUBE_LDFLAGS := -X k8s.io/component-base/version.gitVersion=$(KUBE_VERSION) \
	-X k8s.io/component-base/version.gitMajor=1 \
	-X k8s.io/component-base/version.gitMinor=37 \
	-X k8s.io/component-base/version.gitTreeState=clean \
	-X k8s.io/component-base/version.buildDate=1970-01-01T00:00:00Z

GO_TEST_FLAGS ?=

##@ General

.PHONY: help
help: ## Show this help.
	@awk 'BEGIN {FS = ":.*##"; printf "Usage: make \033[36m<target>\033[0m\n"} /^[a-zA-Z_-]+:.*?##/ { printf "  \033[36m%-12s\033[0m %s\n", $$1, $$2 } /^##@/ { printf "\n\033[1m%s\033[0m\n", substr($$0, 5) }' $(MAKEFILE_LIST)

##@ Development

.PHONY: generate
generate: $(CONTROLLER_GEN) ## Generate deepcopy code for the API types.
	$(CONTROLLER_GEN) object paths=./api/...

.PHONY: manifests
manifests: $(CONTROLLER_GEN) ## Generate CRDs and RBAC under config/.
	$(CONTROLLER_GEN) crd paths=./api/... output:crd:artifacts:config=config/crd/bases
	$(CONTROLLER_GEN) rbac:roleName=targetlock-orchestrator paths=./pkg/orchestrator/... output:rbac:artifacts:config=config/rbac/orchestrator
	hack/chart-crds.sh

GENERATED := api/v1alpha1/zz_generated.deepcopy.go config/crd/bases config/rbac/orchestrator/role.yaml charts/targetlock/templates/crds

.PHONY: verify-generated
verify-generated: $(CONTROLLER_GEN) ## Fail if a generated file differs from what generate/manifests produce.
	@before=$$(mktemp -d); cp -r --parents $(GENERATED) $$before; \
	$(MAKE) --no-print-directory generate manifests >/dev/null; \
	stale=0; for f in $(GENERATED); do diff -ru $$before/$$f $$f || stale=1; done; rm -rf $$before; \
	if [ $$stale = 1 ]; then echo "generated files were stale (now regenerated): commit them"; exit 1; fi

.PHONY: build
build: ## Build the binaries into bin/.
	go build -o $(BIN)/ ./cmd/...

.PHONY: test
test: tools verify-generated build helm-lint ## Run every test (unit + integration on a real API server) with -race.
	go vet ./...
	go test -race -count=1 $(GO_TEST_FLAGS) ./...

.PHONY: lint
lint: $(GOLANGCI_LINT) helm-lint ## Run golangci-lint and helm lint.
	$(GOLANGCI_LINT) run ./...

.PHONY: helm-lint
helm-lint: $(HELM) ## Lint the chart in each certificate mode with the helm CLI.
	$(HELM) lint --strict charts/targetlock
	$(HELM) lint --strict charts/targetlock --set certs.mode=helm
	$(HELM) lint --strict charts/targetlock --set certs.mode=manual,certs.manual.secretName=tls,certs.manual.caBundle=eA==,crds.install=false

DEMO_FLAGS ?=

.PHONY: demo
demo: tools build ## Run the whole system on a local control plane under a storm; DEMO_FLAGS=--keep leaves it up.
	go run ./test/demo $(DEMO_FLAGS)

.PHONY: bench
bench: tools build ## Measure lock overhead, handoff, admission, throughput, safety under faults and a 100k-CREATE soak; report in bench/report/. BENCH_ARGS="--only soak" runs some sections.
	go run ./test/bench --out bench/report $(BENCH_ARGS)

.PHONY: bench-quick
bench-quick: tools build ## Every bench section at small scale (under 5 minutes).
	go run ./test/bench --out bench/report --quick $(BENCH_ARGS)

##@ Tools

.PHONY: tools
tools: $(KUBE_APISERVER) $(ETCD) $(CONTROLLER_GEN) ## Build kube-apiserver, etcd and controller-gen from pinned sources (idempotent).

$(KUBE_APISERVER): hack/tools/go.mod
	cd hack/tools && go build -ldflags "$(KUBE_LDFLAGS)" -o $@ k8s.io/kubernetes/cmd/kube-apiserver

$(ETCD): hack/tools/go.mod
	cd hack/tools && go build -o $@ go.etcd.io/etcd/server/v3

$(CONTROLLER_GEN):
	GOBIN=$(BIN) go install sigs.k8s.io/controller-tools/cmd/controller-gen@$(CONTROLLER_TOOLS_VERSION)

$(GOLANGCI_LINT):
	GOBIN=$(BIN) go install github.com/golangci/golangci-lint/v2/cmd/golangci-lint@$(GOLANGCI_LINT_VERSION)

$(HELM):
	GOBIN=$(BIN) go install helm.sh/helm/v3/cmd/helm@$(HELM_VERSION)
