# consumer-auth: build, test, demo, benchmark. Every target installs what it needs.
SHELL := /bin/bash
.DEFAULT_GOAL := build

WASM_TARGET := wasm32-wasip1
WASM_OUT    := target/$(WASM_TARGET)/release/consumer_auth.wasm
WASM        := filters/consumer_auth.wasm
CLIPPY      := cargo clippy --all-targets -- -D warnings

.PHONY: build toolchain test lint unit harness-tests clean size

toolchain:
	@rustup target list --installed | grep -qx $(WASM_TARGET) || rustup target add $(WASM_TARGET)
	@rustup component list --installed | grep -q '^clippy' || rustup component add clippy

# The release filter: LTO, panic=abort, stripped (see [profile.release] in Cargo.toml).
build: toolchain
	cargo build --release --target $(WASM_TARGET) -p consumer-auth
	@mkdir -p filters
	cp $(WASM_OUT) $(WASM)
	@echo "$(WASM): $$(stat -c %s $(WASM)) bytes"

lint: toolchain
	$(CLIPPY)
	cargo clippy --release --target $(WASM_TARGET) -p consumer-auth -- -D warnings
	cargo fmt -p consumer-auth -p proxy-wasm-harness --check

# Native unit tests of the engine (no proxy, no wasm).
unit:
	cargo test -p consumer-auth --lib

# The real .wasm through the wasmtime proxy-wasm host.
harness-tests: build
	cargo test -p proxy-wasm-harness
	CONSUMER_AUTH_WASM=$(CURDIR)/$(WASM) cargo test -p consumer-auth --test '*'

test: build lint unit harness-tests

clean:
	cargo clean
	rm -f $(WASM)
