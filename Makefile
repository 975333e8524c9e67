# targetlock — every target builds what it needs from pinned sources; only Go is required.

SHELL := /usr/bin/env bash -o pipefail
.SHELLFLAGS := -ec
.DEFAULT_GOAL := help

BIN := $(CURDIR)/bin
export KUBEBUILDER_ASSETS ?= $(BIN)

# The one version of a release: the chart's appVersion. The chart version,
# the image tag and the binaries' version all come from it.
VERSION := $(shell sed -n 's/^appVersion: *"\{0,1\}\([^"]*\)"\{0,1\}$$/\1/p' charts/targetlock/Chart.yaml)
IMAGE_REPOSITORY ?= ghcr.io/targetlock/targetlock
IMAGE_DIR := $(BIN)/image
IMAGE_TAR := $(IMAGE_DIR)/targetlock-$(VERSION).oci.tar
IMAGE_DIGEST_FILE := $(IMAGE_DIR)/targetlock-$(VERSION).digest
DIST := $(CURDIR)/dist/$(VERSION)
IMAGE_PLATFORMS := linux/amd64 linux/arm64
PLUGIN_PLATFORMS := linux/amd64 linux/arm64 darwin/amd64 darwin/arm64
# Where the krew manifest downloads the plugin archives from.
RELEASE_URL ?= https://github.com/targetlock/targetlock/releases/download/v$(VERSION)
GO_LDFLAGS := -s -w -buildid= -X github.com/targetlock/targetlock/internal/version.Version=$(VERSION)

KUBE_VERSION := v1.37.2
ETCD_VERSION := v3.7.0
CONTROLLER_TOOLS_VERSION := v0.23.0
GOLANGCI_LINT_VERSION := v2.15.0
HELM_VERSION := v3.22.0
HELM_DOCS_VERSION := v1.14.2
CYCLONEDX_GOMOD_VERSION := v1.10.0
KREW_VERSION := v0.4.3
PROMETHEUS_VERSION := v0.316.0

# Each tool's file name carries its version, so a version bump rebuilds it;
# envtest and scripts find kube-apiserver and etcd by their plain names
# (symlinks to the versioned files).
KUBE_APISERVER := $(BIN)/kube-apiserver-$(KUBE_VERSION)
ETCD := $(BIN)/etcd-$(ETCD_VERSION)
CONTROLLER_GEN := $(BIN)/controller-gen-$(CONTROLLER_TOOLS_VERSION)
GOLANGCI_LINT := $(BIN)/golangci-lint-$(GOLANGCI_LINT_VERSION)
HELM := $(BIN)/helm-$(HELM_VERSION)
HELM_DOCS := $(BIN)/helm-docs-$(HELM_DOCS_VERSION)
CYCLONEDX_GOMOD := $(BIN)/cyclonedx-gomod-$(CYCLONEDX_GOMOD_VERSION)
PROMTOOL := $(BIN)/promtool-$(PROMETHEUS_VERSION)
VALIDATE_KREW_MANIFEST := $(BIN)/validate-krew-manifest-$(KREW_VERSION)
KREW := $(BIN)/krew-$(KREW_VERSION)
NODE_COMMANDS := kubelet kube-controller-manager kube-scheduler kube-proxy kubectl
NODE_TOOLS := $(foreach t,$(NODE_COMMANDS),$(BIN)/$(t)-$(KUBE_VERSION))
KUBECTL := $(BIN)/kubectl-$(KUBE_VERSION)

# helm's own Makefile sets these; without them helm assumes Kubernetes v1.20
# (`helm template` then refuses the chart's kubeVersion). The k8s minor is that
# of the client-go helm is built on.
K8S_MINOR := $(word 2,$(subst ., ,$(shell go list -m -f '{{.Version}}' k8s.io/client-go)))
HELM_LDFLAGS := -s -w -X helm.sh/helm/v3/internal/version.version=$(HELM_VERSION) \
	-X helm.sh/helm/v3/internal/version.gitTreeState=clean \
	-X helm.sh/helm/v3/pkg/lint/rules.k8sVersionMajor=1 -X helm.sh/helm/v3/pkg/lint/rules.k8sVersionMinor=$(K8S_MINOR) \
	-X helm.sh/helm/v3/pkg/chartutil.k8sVersionMajor=1 -X helm.sh/helm/v3/pkg/chartutil.k8sVersionMinor=$(K8S_MINOR)

KUBE_LDFLAGS := -X k8s.io/component-base/version.gitVersion=$(KUBE_VERSION) \
	-X k8s.io/component-base/version.gitMajor=1 \
	-X k8s.io/component-base/version.gitMinor=37 \
	-X k8s.io/component-base/version.gitTreeState=clean \
	-X k8s.io/component-base/version.buildDate=1970-01-01T00:00:00Z

GO_TEST_FLAGS ?=

##@ General

.PHONY: help
help: ## Show this help.
	@awk 'BEGIN {FS = ":.*##"; printf "Usage: make \033[36m<target>\033[0m\n"} /^[a-zA-Z0-9_-]+:.*?##/ { printf "  \033[36m%-21s\033[0m %s\n", $$1, $$2 } /^##@/ { printf "\n\033[1m%s\033[0m\n", substr($$0, 5) }' $(MAKEFILE_LIST)

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
verify-generated: $(CONTROLLER_GEN) ## Fail if a generated file differs from what generate/manifests produce (checked in a copy; the tree is not touched).
	@tmp=$$(mktemp -d) && trap 'rm -rf $$tmp' EXIT && \
	tar -c --exclude=./bin --exclude=./dist --exclude=./.git . | tar -x -C $$tmp && \
	$(MAKE) --no-print-directory -C $$tmp generate manifests CONTROLLER_GEN=$(CONTROLLER_GEN) >/dev/null && \
	stale=0 && for f in $(GENERATED); do diff -ru $$f $$tmp/$$f || stale=1; done && \
	if [ $$stale = 1 ]; then echo "generated files are stale: run make generate manifests and commit them"; exit 1; fi

.PHONY: chart-docs
chart-docs: $(HELM_DOCS) ## Generate charts/targetlock/README.md from values.yaml (helm-docs) and README.md.gotmpl.
	$(HELM_DOCS) --chart-search-root charts --template-files README.md.gotmpl --log-level warning

.PHONY: verify-chart-docs
verify-chart-docs: $(HELM_DOCS) ## Fail if the chart README differs from what helm-docs generates (checked in a copy; the tree is not touched).
	@tmp=$$(mktemp -d) && trap 'rm -rf $$tmp' EXIT && cp -r charts $$tmp/ && \
	$(HELM_DOCS) --chart-search-root $$tmp/charts --template-files README.md.gotmpl --log-level warning && \
	diff -u charts/targetlock/README.md $$tmp/charts/targetlock/README.md || \
	{ echo "charts/targetlock/README.md is stale: run make chart-docs and commit it"; exit 1; }

.PHONY: build
build: ## Build the binaries into bin/.
	go build -ldflags "-X github.com/targetlock/targetlock/internal/version.Version=$(VERSION)" -o $(BIN)/ ./cmd/...

##@ Testing

.PHONY: test
test: tools verify-generated verify-chart-docs build helm-lint test-alerts ## Run every test (unit + integration on a real API server) with -race.
	go vet ./...
	go test -race -count=1 $(GO_TEST_FLAGS) ./...
	cd test/chart && go vet ./... && go test -race -count=1 $(GO_TEST_FLAGS) ./...
	cd test/e2e && go vet ./...

.PHONY: test-alerts
test-alerts: $(PROMTOOL) $(HELM) ## promtool check rules and test rules (test/alerts) on the chart's rendered PrometheusRule; prints alerts: rules= tests= passed=.
	cd hack/promtool && go run ./testalerts --helm $(HELM) --promtool $(PROMTOOL) --chart $(CURDIR)/charts/targetlock --tests '$(CURDIR)/test/alerts/*.test.yaml'

.PHONY: lint
lint: $(GOLANGCI_LINT) helm-lint ## Run golangci-lint (root, test/chart, test/e2e and hack/promtool modules) and helm lint.
	$(GOLANGCI_LINT) run ./...
	cd test/chart && $(GOLANGCI_LINT) run --config $(CURDIR)/.golangci.yml ./...
	cd test/e2e && $(GOLANGCI_LINT) run --config $(CURDIR)/.golangci.yml ./...
	cd hack/promtool && $(GOLANGCI_LINT) run --config $(CURDIR)/.golangci.yml ./...
	@# One concept per file: a file under pkg/ or cmd/ past 350 lines holds more than one.
	@long=$$(git ls-files 'pkg/*.go' 'cmd/*.go' | grep -v zz_generated | xargs wc -l | awk '$$2 != "total" && $$1 > 350'); \
	if [ -n "$$long" ]; then echo "files over 350 lines (split them by concern):"; echo "$$long"; exit 1; fi

.PHONY: helm-lint
helm-lint: $(HELM) ## Lint the chart in each certificate mode with the helm CLI.
	$(HELM) lint --strict --namespace targetlock-system charts/targetlock
	$(HELM) lint --strict --namespace targetlock-system charts/targetlock --set certs.mode=helm,metrics.grafanaDashboard.enabled=true,metrics.serviceMonitor.enabled=true
	$(HELM) lint --strict --namespace targetlock-system charts/targetlock --set mode=kubernaut,metrics.serviceMonitor.enabled=true,metrics.prometheusRule.enabled=true
	$(HELM) lint --strict --namespace targetlock-system charts/targetlock --set certs.mode=manual,certs.manual.secretName=tls,certs.manual.caBundle=LS0tLS1CRUdJTiBDRVJUSUZJQ0FURS0tLS0tCk1BPT0KLS0tLS1FTkQgQ0VSVElGSUNBVEUtLS0tLQo=,crds.install=false

.PHONY: e2e
e2e: tools node-tools release ## Install the release on a real single-node cluster (kubelet, containerd): chart from an OCI registry, plugin from its archive run by kubectl; storm, upgrade, uninstall. Needs root.
	BIN=$(BIN) HELM=$(HELM) KUBECTL=$(KUBECTL) RELEASE_DIR=$(DIST) VERSION=$(VERSION) IMAGE_REPOSITORY=$(IMAGE_REPOSITORY) \
	IMAGE_DIGEST=$$(cat $(IMAGE_DIGEST_FILE)) KUBE_VERSION=$(KUBE_VERSION) hack/e2e/run.sh

DEMO_FLAGS ?=

.PHONY: demo
demo: tools build ## Run the whole system on a local control plane under a storm; DEMO_FLAGS=--keep leaves it up.
	go run ./test/demo $(DEMO_FLAGS)

.PHONY: bench
bench: tools build ## Measure lock overhead, handoff, admission, throughput, safety under faults and a 100k-CREATE soak; report in bench/report/. BENCH_ARGS="--only soak" runs some sections.
	go run ./test/bench --out bench/report $(BENCH_ARGS)

.PHONY: bench-quick
bench-quick: tools build ## Every bench section at small scale (under 3 minutes).
	go run ./test/bench --out bench/report --quick $(BENCH_ARGS)

##@ Release

.PHONY: image
image: ## Build the image index (linux/amd64 and linux/arm64, both binaries, static, non-root, no shell) as an OCI tarball without a daemon; prints its digest.
	@mkdir -p $(IMAGE_DIR)/rootfs
	for p in $(IMAGE_PLATFORMS); do \
		CGO_ENABLED=0 GOOS=$${p%/*} GOARCH=$${p#*/} go build -trimpath -ldflags "$(GO_LDFLAGS)" -o $(IMAGE_DIR)/rootfs/$${p%/*}_$${p#*/}/ ./cmd/orchestrator ./cmd/webhook; \
	done
	@cd hack/image && go run . --repository $(IMAGE_REPOSITORY) --tag $(VERSION) $(foreach p,$(IMAGE_PLATFORMS),--platform $(p)) \
		--file $(IMAGE_DIR)/rootfs/{os}_{arch}/orchestrator:/orchestrator --file $(IMAGE_DIR)/rootfs/{os}_{arch}/webhook:/webhook \
		--label org.opencontainers.image.version=$(VERSION) --label org.opencontainers.image.source=https://github.com/targetlock/targetlock \
		--out $(IMAGE_TAR) --digest-file $(IMAGE_DIGEST_FILE)
	@echo "image: $(IMAGE_TAR)"

.PHONY: release
release: image $(HELM) $(CYCLONEDX_GOMOD) $(VALIDATE_KREW_MANIFEST) $(KREW) ## Write into dist/VERSION/ the chart package (pinned to the image index digest), image index, plugin archives, krew manifest, SBOM, LICENSE, CHANGELOG and SHA256SUMS.
	rm -rf $(DIST) && mkdir -p $(DIST)
	tmp=$$(mktemp -d) && trap 'rm -rf $$tmp' EXIT && cp -r charts/targetlock $$tmp/ && \
	sed -i 's|^  digest: ""$$|  digest: "'$$(cat $(IMAGE_DIGEST_FILE))'"|' $$tmp/targetlock/values.yaml && \
	grep -q "digest: \"sha256:" $$tmp/targetlock/values.yaml && \
	$(HELM) package $$tmp/targetlock --version $(VERSION) --app-version $(VERSION) -d $(DIST)
	cp $(IMAGE_TAR) LICENSE CHANGELOG.md $(DIST)/
	@# Each plugin archive holds the binary and LICENSE, reproducibly (names sorted, time 0, owner root).
	for p in $(PLUGIN_PLATFORMS); do \
		d=$(BIN)/plugin/$${p%/*}_$${p#*/} && mkdir -p $$d && cp LICENSE $$d/ && \
		CGO_ENABLED=0 GOOS=$${p%/*} GOARCH=$${p#*/} go build -trimpath -ldflags "$(GO_LDFLAGS)" -o $$d/ ./cmd/kubectl-targetlock && \
		tar -C $$d --sort=name --mtime=@0 --owner=0 --group=0 --numeric-owner -c kubectl-targetlock LICENSE | gzip -n > $(DIST)/kubectl-targetlock_$(VERSION)_$${p%/*}_$${p#*/}.tar.gz; \
	done
	hack/release/krew-manifest.sh $(VERSION) $(RELEASE_URL) $(DIST)
	$(MAKE) --no-print-directory verify-krew-manifest
	$(CYCLONEDX_GOMOD) mod -json -licenses=false -noserial -notimestamp -output $(DIST)/targetlock-$(VERSION).sbom.cdx.json .
	cd $(DIST) && sha256sum * > SHA256SUMS && sha256sum --check --quiet SHA256SUMS
	@echo "release $(VERSION) in $(DIST):" && cat $(DIST)/SHA256SUMS
	@echo "image index $(IMAGE_REPOSITORY):$(VERSION)@$$(cat $(IMAGE_DIGEST_FILE)) ($(IMAGE_PLATFORMS))"

.PHONY: verify-krew-manifest
verify-krew-manifest: $(VALIDATE_KREW_MANIFEST) $(KREW) ## Check dist/VERSION/targetlock.yaml with krew's validator, and install each platform's archive with krew (offline, --archive).
	$(VALIDATE_KREW_MANIFEST) -manifest $(DIST)/targetlock.yaml -skip-install
	tmp=$$(mktemp -d) && trap 'rm -rf $$tmp' EXIT && for p in $(PLUGIN_PLATFORMS); do \
		root=$$tmp/$${p%/*}_$${p#*/} && \
		KREW_ROOT=$$root KREW_OS=$${p%/*} KREW_ARCH=$${p#*/} $(KREW) install --no-update-index --manifest $(DIST)/targetlock.yaml \
			--archive $(DIST)/kubectl-targetlock_$(VERSION)_$${p%/*}_$${p#*/}.tar.gz >/dev/null 2>$$tmp/log || { cat $$tmp/log; exit 1; }; \
		test -x $$root/bin/kubectl-targetlock && test -n "$$(find $$root/store -name LICENSE)" && echo "krew installs $$p"; \
	done

.PHONY: release-push
release-push: $(HELM) ## Push dist/VERSION/'s chart (helm push) and image index to REGISTRY (e.g. REGISTRY=registry.example/targetlock; PUSH_FLAGS=--plain-http without TLS); run make release first.
	@test -n "$(REGISTRY)" || { echo "set REGISTRY, e.g. make release-push REGISTRY=registry.example/targetlock"; exit 1; }
	$(HELM) push $(DIST)/targetlock-$(VERSION).tgz oci://$(REGISTRY)/charts $(PUSH_FLAGS)
	cd hack/image && go run . push --tar $(DIST)/$(notdir $(IMAGE_TAR)) --ref $(REGISTRY)/targetlock:$(VERSION) $(PUSH_FLAGS)

##@ Tools

.PHONY: tools
tools: $(KUBE_APISERVER) $(ETCD) $(CONTROLLER_GEN) ## Build kube-apiserver, etcd and controller-gen from pinned sources (idempotent).

.PHONY: node-tools
node-tools: $(NODE_TOOLS) ## Build kubelet, kube-controller-manager, kube-scheduler, kube-proxy and kubectl from pinned sources (for make e2e).

$(KUBE_APISERVER): hack/tools/go.mod
	cd hack/tools && go build -ldflags "$(KUBE_LDFLAGS)" -o $@ k8s.io/kubernetes/cmd/kube-apiserver
	ln -sf $(notdir $@) $(BIN)/kube-apiserver

$(ETCD): hack/tools/go.mod
	cd hack/tools && go build -o $@ go.etcd.io/etcd/server/v3
	ln -sf $(notdir $@) $(BIN)/etcd

# One go build for the five, so they share the compilation of what they share.
$(NODE_TOOLS) &: hack/tools/go.mod
	tmp=$$(mktemp -d) && trap 'rm -rf $$tmp' EXIT && cd hack/tools && \
	CGO_ENABLED=0 go build -ldflags "$(KUBE_LDFLAGS)" -o $$tmp/ $(foreach t,$(NODE_COMMANDS),k8s.io/kubernetes/cmd/$(t)) && \
	for t in $(NODE_COMMANDS); do mv $$tmp/$$t $(BIN)/$$t-$(KUBE_VERSION); done

# go install names the file after the command; versioned here.
define go-install
	mkdir -p $(dir $(1)) && tmp=$$(mktemp -d) && trap 'rm -rf $$tmp' EXIT && GOBIN=$$tmp go install $(3) $(2) && mv $$tmp/$(notdir $(firstword $(subst @, ,$(2)))) $(1)
endef

$(CONTROLLER_GEN):
	$(call go-install,$@,sigs.k8s.io/controller-tools/cmd/controller-gen@$(CONTROLLER_TOOLS_VERSION))

$(GOLANGCI_LINT):
	$(call go-install,$@,github.com/golangci/golangci-lint/v2/cmd/golangci-lint@$(GOLANGCI_LINT_VERSION))

$(HELM):
	$(call go-install,$@,helm.sh/helm/v3/cmd/helm@$(HELM_VERSION),-trimpath -ldflags "$(HELM_LDFLAGS)")

$(HELM_DOCS):
	$(call go-install,$@,github.com/norwoodj/helm-docs/cmd/helm-docs@$(HELM_DOCS_VERSION),-ldflags "-X main.version=$(HELM_DOCS_VERSION)")

# promtool from its own module (hack/promtool), so that Prometheus's
# dependencies stay out of the root module.
$(PROMTOOL): hack/promtool/go.mod
	cd hack/promtool && go build -trimpath -ldflags "-s -w -X github.com/prometheus/common/version.Version=$(PROMETHEUS_VERSION:v%=%)" -o $@ github.com/prometheus/prometheus/cmd/promtool

$(CYCLONEDX_GOMOD):
	$(call go-install,$@,github.com/CycloneDX/cyclonedx-gomod/cmd/cyclonedx-gomod@$(CYCLONEDX_GOMOD_VERSION))

$(VALIDATE_KREW_MANIFEST):
	$(call go-install,$@,sigs.k8s.io/krew/cmd/validate-krew-manifest@$(KREW_VERSION))

$(KREW):
	$(call go-install,$@,sigs.k8s.io/krew/cmd/krew@$(KREW_VERSION))
