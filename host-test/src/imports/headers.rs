//! Header and trailer maps: request, response, a callout's response, and
//! the metadata of a gRPC callback.
//!
//! Names are lowercased on the way in, as Envoy's header maps do, and
//! pseudo-headers stay ahead of the others. A map that does not exist at
//! this point of the stream (response headers during the request, trailers
//! the client did not send, a callout's headers outside its callback, any
//! HTTP map on a network connection) gives `BadArgument`, Envoy's answer.

use wasmtime::{Caller, Linker};

use super::{ENV, status};
use crate::abi::{MapType, Pairs, Status, decode_pairs, encode_pairs};
use crate::host::HostState;
use crate::memory;
use crate::transcript::show;

pub(super) fn add(linker: &mut Linker<HostState>) -> wasmtime::Result<()> {
    proxy_get_header_map_pairs(linker)?;
    proxy_set_header_map_pairs(linker)?;
    proxy_get_header_map_value(linker)?;
    proxy_add_header_map_value(linker)?;
    proxy_replace_header_map_value(linker)?;
    proxy_remove_header_map_value(linker)?;
    proxy_get_header_map_size(linker)?;
    Ok(())
}

fn map(state: &HostState, map_type: MapType) -> Option<&Pairs> {
    let http = !matches!(
        map_type,
        MapType::CallResponseHeaders | MapType::CallResponseTrailers
    );
    if http && state.in_network() {
        return None;
    }
    match map_type {
        MapType::CallResponseHeaders => state.call_response.as_ref()?.headers.as_ref(),
        MapType::CallResponseTrailers => state.call_response.as_ref()?.trailers.as_ref(),
        MapType::RequestHeaders => Some(&state.stream()?.request_headers),
        MapType::RequestTrailers => state.stream()?.request_trailers.as_ref(),
        MapType::ResponseHeaders => state.stream()?.response_headers.as_ref(),
        MapType::ResponseTrailers => state.stream()?.response_trailers.as_ref(),
        MapType::GrpcInitialMetadata => state.grpc_received.initial_metadata.as_ref(),
        MapType::GrpcTrailingMetadata => state.grpc_received.trailing_metadata.as_ref(),
    }
}

fn map_mut(state: &mut HostState, map_type: MapType) -> Option<&mut Pairs> {
    let http = !matches!(
        map_type,
        MapType::CallResponseHeaders | MapType::CallResponseTrailers
    );
    if http && state.in_network() {
        return None;
    }
    match map_type {
        MapType::CallResponseHeaders => state.call_response.as_mut()?.headers.as_mut(),
        MapType::CallResponseTrailers => state.call_response.as_mut()?.trailers.as_mut(),
        MapType::RequestHeaders => Some(&mut state.stream_mut()?.request_headers),
        MapType::RequestTrailers => state.stream_mut()?.request_trailers.as_mut(),
        MapType::ResponseHeaders => state.stream_mut()?.response_headers.as_mut(),
        MapType::ResponseTrailers => state.stream_mut()?.response_trailers.as_mut(),
        MapType::GrpcInitialMetadata => state.grpc_received.initial_metadata.as_mut(),
        MapType::GrpcTrailingMetadata => state.grpc_received.trailing_metadata.as_mut(),
    }
}

fn decode(code: i32) -> Result<MapType, Status> {
    MapType::from_code(code).ok_or(Status::BadArgument)
}

fn map_name(code: i32) -> String {
    MapType::from_code(code).map_or_else(|| format!("map#{code}"), |map| map.name().to_owned())
}

/// Adds a header, keeping pseudo-headers ahead of the others.
pub(crate) fn add_value(pairs: &mut Pairs, name: Vec<u8>, value: Vec<u8>) {
    if name.first() == Some(&b':') {
        let at = pairs
            .iter()
            .take_while(|(key, _)| key.first() == Some(&b':'))
            .count();
        pairs.insert(at, (name, value));
    } else {
        pairs.push((name, value));
    }
}

/// Replaces every value of a header with one: Envoy removes them all and
/// adds the new value at the end (pseudo-headers at the end of their
/// block).
pub(crate) fn replace_value(pairs: &mut Pairs, name: Vec<u8>, value: Vec<u8>) {
    pairs.retain(|(key, _)| *key != name);
    add_value(pairs, name, value);
}

fn proxy_get_header_map_pairs(linker: &mut Linker<HostState>) -> wasmtime::Result<()> {
    linker.func_wrap(
        ENV,
        "proxy_get_header_map_pairs",
        |mut caller: Caller<'_, HostState>, map: i32, ptr_ptr: i32, size_ptr: i32| {
            let pairs = decode(map).and_then(|kind| {
                self::map(caller.data(), kind)
                    .cloned()
                    .ok_or(Status::BadArgument)
            });
            let result = match &pairs {
                Ok(pairs) => {
                    memory::hand_over(&mut caller, &encode_pairs(pairs), ptr_ptr, size_ptr)?
                }
                Err(status) => Err(*status),
            };
            let count = pairs.as_ref().map_or(0, Vec::len);
            caller.data_mut().note(
                || format!("proxy_get_header_map_pairs({})", map_name(map)),
                || format!("{} ({count} pairs)", status(result).name()),
            );
            wasmtime::Result::Ok(status(result).code())
        },
    )?;
    Ok(())
}

fn proxy_set_header_map_pairs(linker: &mut Linker<HostState>) -> wasmtime::Result<()> {
    linker.func_wrap(
        ENV,
        "proxy_set_header_map_pairs",
        |mut caller: Caller<'_, HostState>, map: i32, ptr: i32, size: i32| -> i32 {
            let result = set_pairs(&mut caller, map, ptr, size);
            caller.data_mut().note(
                || format!("proxy_set_header_map_pairs({})", map_name(map)),
                || status(result).name().to_owned(),
            );
            status(result).code()
        },
    )?;
    Ok(())
}

fn set_pairs(
    caller: &mut Caller<'_, HostState>,
    map: i32,
    ptr: i32,
    size: i32,
) -> Result<(), Status> {
    let kind = decode(map)?;
    let bytes = memory::read(caller, ptr, size)?;
    let target = map_mut(caller.data_mut(), kind).ok_or(Status::BadArgument)?;
    target.clear();
    for (name, value) in decode_pairs(&bytes) {
        add_value(target, name.to_ascii_lowercase(), value);
    }
    Ok(())
}

fn proxy_get_header_map_value(linker: &mut Linker<HostState>) -> wasmtime::Result<()> {
    linker.func_wrap(
        ENV,
        "proxy_get_header_map_value",
        |mut caller: Caller<'_, HostState>,
         map: i32,
         key_ptr: i32,
         key_size: i32,
         ptr_ptr: i32,
         size_ptr: i32| {
            let key = memory::read(&mut caller, key_ptr, key_size);
            let value = key.clone().and_then(|key| {
                let pairs = self::map(caller.data(), decode(map)?).ok_or(Status::BadArgument)?;
                let key = key.to_ascii_lowercase();
                let found = pairs.iter().find(|(name, _)| *name == key);
                found
                    .map(|(_, value)| value.clone())
                    .ok_or(Status::NotFound)
            });
            let result = match &value {
                Ok(value) => memory::hand_over(&mut caller, value, ptr_ptr, size_ptr)?,
                Err(status) => Err(*status),
            };
            caller.data_mut().note(
                || {
                    format!(
                        "proxy_get_header_map_value({}, {})",
                        map_name(map),
                        show(&key.unwrap_or_default())
                    )
                },
                || match (&value, result) {
                    (Ok(value), Ok(())) => format!("Ok {}", show(value)),
                    _ => status(result).name().to_owned(),
                },
            );
            wasmtime::Result::Ok(status(result).code())
        },
    )?;
    Ok(())
}

/// Reads a name and value pair of arguments and changes the map with `edit`.
fn edit_map(
    caller: &mut Caller<'_, HostState>,
    args: [i32; 5],
    edit: fn(&mut Pairs, Vec<u8>, Vec<u8>),
) -> (Result<(), Status>, Vec<u8>, Vec<u8>) {
    let [map, key_ptr, key_size, value_ptr, value_size] = args;
    let key = memory::read(caller, key_ptr, key_size);
    let value = memory::read(caller, value_ptr, value_size);
    let shown = (
        key.clone().unwrap_or_default(),
        value.clone().unwrap_or_default(),
    );
    let result = (|| {
        let kind = decode(map)?;
        let (key, value) = (key?, value?);
        let target = map_mut(caller.data_mut(), kind).ok_or(Status::BadArgument)?;
        edit(target, key.to_ascii_lowercase(), value);
        Ok(())
    })();
    (result, shown.0, shown.1)
}

fn proxy_add_header_map_value(linker: &mut Linker<HostState>) -> wasmtime::Result<()> {
    link_edit(linker, "proxy_add_header_map_value", add_value)
}

fn proxy_replace_header_map_value(linker: &mut Linker<HostState>) -> wasmtime::Result<()> {
    link_edit(linker, "proxy_replace_header_map_value", replace_value)
}

/// Registers a host call that edits one header of a map with `edit`, and
/// notes it in the transcript under `name`.
fn link_edit(
    linker: &mut Linker<HostState>,
    name: &'static str,
    edit: fn(&mut Pairs, Vec<u8>, Vec<u8>),
) -> wasmtime::Result<()> {
    linker.func_wrap(
        ENV,
        name,
        move |mut caller: Caller<'_, HostState>,
              map: i32,
              kp: i32,
              ks: i32,
              vp: i32,
              vs: i32|
              -> i32 {
            let (result, key, value) = edit_map(&mut caller, [map, kp, ks, vp, vs], edit);
            caller.data_mut().note(
                || {
                    format!(
                        "{name}({}, {}, {})",
                        map_name(map),
                        show(&key),
                        show(&value)
                    )
                },
                || status(result).name().to_owned(),
            );
            status(result).code()
        },
    )?;
    Ok(())
}

fn proxy_remove_header_map_value(linker: &mut Linker<HostState>) -> wasmtime::Result<()> {
    linker.func_wrap(
        ENV,
        "proxy_remove_header_map_value",
        |mut caller: Caller<'_, HostState>, map: i32, key_ptr: i32, key_size: i32| -> i32 {
            let key = memory::read(&mut caller, key_ptr, key_size);
            let shown = key.clone().unwrap_or_default();
            let result = (|| {
                let kind = decode(map)?;
                let key = key?.to_ascii_lowercase();
                let target = map_mut(caller.data_mut(), kind).ok_or(Status::BadArgument)?;
                target.retain(|(name, _)| *name != key);
                Ok(())
            })();
            caller.data_mut().note(
                || {
                    format!(
                        "proxy_remove_header_map_value({}, {})",
                        map_name(map),
                        show(&shown)
                    )
                },
                || status(result).name().to_owned(),
            );
            status(result).code()
        },
    )?;
    Ok(())
}

/// Envoy's byte size of a map: the names and values, without separators.
fn proxy_get_header_map_size(linker: &mut Linker<HostState>) -> wasmtime::Result<()> {
    linker.func_wrap(
        ENV,
        "proxy_get_header_map_size",
        |mut caller: Caller<'_, HostState>, map: i32, size_ptr: i32| -> i32 {
            let size = decode(map).and_then(|kind| {
                let pairs = self::map(caller.data(), kind).ok_or(Status::BadArgument)?;
                Ok(pairs
                    .iter()
                    .map(|(name, value)| name.len() + value.len())
                    .sum::<usize>())
            });
            let result = size.and_then(|size| {
                memory::write_u32(&mut caller, size_ptr, crate::abi::len_u32(size))
            });
            caller.data_mut().note(
                || format!("proxy_get_header_map_size({})", map_name(map)),
                || status(result).name().to_owned(),
            );
            status(result).code()
        },
    )?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pairs(items: &[(&str, &str)]) -> Pairs {
        items
            .iter()
            .map(|(k, v)| (k.as_bytes().to_vec(), v.as_bytes().to_vec()))
            .collect()
    }

    #[test]
    fn pseudo_headers_stay_in_front() {
        let mut map = pairs(&[(":path", "/"), ("a", "1")]);
        add_value(&mut map, b":method".to_vec(), b"GET".to_vec());
        assert_eq!(
            map,
            pairs(&[(":path", "/"), (":method", "GET"), ("a", "1")])
        );
    }

    #[test]
    fn replace_moves_the_header_to_the_end() {
        let mut map = pairs(&[("a", "1"), ("b", "2"), ("a", "3")]);
        replace_value(&mut map, b"a".to_vec(), b"9".to_vec());
        assert_eq!(map, pairs(&[("b", "2"), ("a", "9")]));
        replace_value(&mut map, b"c".to_vec(), b"4".to_vec());
        assert_eq!(map, pairs(&[("b", "2"), ("a", "9"), ("c", "4")]));
    }
}
