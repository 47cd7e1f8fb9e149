#!/usr/bin/env python3
"""Runs a wasm32-wasip1 program built from this crate outside a proxy.

Usage: python3 run_wasi.py PROGRAM.wasm [ARGS...]

Needs the `wasmtime` package from PyPI (pip install wasmtime). The
proxy-wasm host functions the filter imports are stubbed (they return 0):
the token code under test never calls them. The crate's directory is
preopened at its own path, so tests that read `tests/vectors/` find them.

Used for the `verify_bench` example (the cost inside a Wasm VM) and for the
token test binaries (`cargo test --target wasm32-wasip1 --no-run`).
"""

import os
import sys

from wasmtime import Engine, Func, FuncType, Linker, Module, Store, WasiConfig

CRATE = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def main():
    program = sys.argv[1]
    engine = Engine()
    store = Store(engine)
    wasi = WasiConfig()
    wasi.argv = [os.path.basename(program)] + sys.argv[2:]
    wasi.inherit_stdout()
    wasi.inherit_stderr()
    wasi.preopen_dir(CRATE, CRATE)
    store.set_wasi(wasi)

    linker = Linker(engine)
    linker.define_wasi()
    module = Module.from_file(engine, program)
    for item in module.imports:
        if item.module == "env" and isinstance(item.type, FuncType):
            linker.define(store, "env", item.name, Func(store, item.type, stub(item.type)))

    instance = linker.instantiate(store, module)
    try:
        instance.exports(store)["_start"](store)
    except Exception as exit_or_trap:  # WASI exit arrives as an exception
        code = getattr(exit_or_trap, "code", None)
        if code is None:
            raise
        sys.exit(code)


def stub(func_type):
    count = len(func_type.results)

    def call(*_args):
        if count == 0:
            return None
        return 0 if count == 1 else tuple([0] * count)

    return call


if __name__ == "__main__":
    main()
