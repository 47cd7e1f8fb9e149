#!/usr/bin/env bash
# Runs the plugin's integration tests compiled for wasm32-wasip1, the
# target warden.wasm is built for, under wasmtime (plugin/examples/run_wasi.py):
# the same assertions as natively, on the code generation a proxy runs.
# Needs examples/setup.sh first (the wasmtime Python package in .venv/).
set -euo pipefail
cd "$(dirname "$0")/../.."

tests=$(cargo test -p warden --tests --target wasm32-wasip1 --no-run --message-format=json \
  | python3 -c '
import json, sys
for line in sys.stdin:
    message = json.loads(line)
    if message.get("reason") == "compiler-artifact" and message.get("executable") \
            and message["profile"]["test"] and message["target"]["kind"] == ["test"]:
        print(message["executable"])
')

failed=0
for test in $tests; do
  echo "== $(basename "$test") (wasm32-wasip1)"
  .venv/bin/python plugin/examples/run_wasi.py "$test" --quiet || failed=1
done
exit $failed
