# The two commands of the README, and the steps they are made of.
# Every target installs what it needs first (examples/setup.sh).

WASM := target/wasm32-wasip1/release/warden.wasm
# Seconds each fuzz target runs in `make test`.
FUZZ_SECONDS ?= 30

.PHONY: demo test setup wasm lint fuzz

## Envoy with Warden and the demo policy on 127.0.0.1:10000, and a tour.
demo:
	examples/envoy/demo.sh

## Every check and every test, as CI runs them.
test: setup lint wasm
	cargo test --workspace --no-fail-fast
	bash plugin/tests/on-wasm.sh
	bash plugin/fuzz/run.sh $(FUZZ_SECONDS)

setup:
	bash examples/setup.sh

wasm:
	cargo build --release --target wasm32-wasip1 -p warden
	@ls -l $(WASM)

## Every fuzz target for FUZZ_SECONDS, seeded from the test vectors.
fuzz:
	bash plugin/fuzz/run.sh $(FUZZ_SECONDS)

lint:
	cargo fmt --all --check
	cargo clippy --workspace --all-targets -- -D warnings
	cargo clippy -p warden --target wasm32-wasip1 -- -D warnings
	RUSTDOCFLAGS="-D warnings" cargo doc --no-deps -p warden -p warden-policy
