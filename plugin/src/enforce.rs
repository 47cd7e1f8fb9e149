//! The proxy-wasm layer.
