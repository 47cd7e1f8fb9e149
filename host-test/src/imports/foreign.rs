//! Foreign functions: Envoy's extensions to the ABI, called by name
//! through `proxy_call_foreign_function`.
//!
//! Envoy 1.40 registers `compress`, `uncompress`, `declare_property`,
//! `set_envoy_filter_state`, `clear_route_cache`, `expr_create`,
//! `expr_evaluate`, `expr_delete`, `sign` and `verify_signature`; any other
//! name is `NotFound`. Arguments of the protobuf-taking functions are read
//! as Envoy's parser reads them: a message that does not parse is
//! `BadArgument`.
//!
//! Modelled: `compress` and `uncompress` (zlib at the default level, as
//! the zlib-ng Envoy links produces it; the lifecycle corpus compares
//! empty, short, repetitive and mixed texts byte for byte),
//! `declare_property` (a declaration the root
//! context made shapes later `proxy_set_property` calls: a read-only
//! property can be set once per stream), `clear_route_cache` (`Ok`, and
//! the route stays) and the argument checks of the rest.
//!
//! DIFFERENCE: the harness has no CEL interpreter, no filter state object
//! factories and no signature keys: `expr_create` is `Unimplemented` (so
//! `expr_evaluate` never finds a token), `set_envoy_filter_state` is
//! `NotFound` for every key (as Envoy answers for a key no factory
//! claims), and `sign` and `verify_signature` with a key are
//! `Unimplemented`.

use std::collections::BTreeMap;

use wasmtime::{Caller, Linker};

use super::ENV;
use crate::abi::Status;
use crate::host::HostState;
use crate::memory;
use crate::transcript::show;

pub(super) fn add(linker: &mut Linker<HostState>) -> wasmtime::Result<()> {
    proxy_call_foreign_function(linker)
}

/// The properties each context declared with `declare_property`: name to
/// whether it is read-only.
///
/// Envoy keeps declarations on the context that made them but consults
/// only the root context's when a property is set, so a declaration made
/// by a stream context takes a name but shapes nothing.
#[derive(Debug, Default)]
pub(crate) struct Declarations(BTreeMap<u32, BTreeMap<Vec<u8>, bool>>);

impl Declarations {
    /// Whether `root` declared `path` (the raw, NUL-separated path)
    /// read-only.
    pub(crate) fn readonly(&self, root: u32, path: &[u8]) -> bool {
        self.0
            .get(&root)
            .and_then(|declared| declared.get(path))
            .copied()
            .unwrap_or(false)
    }

    fn declare(&mut self, context: u32, name: &[u8], readonly: bool) -> Result<(), Status> {
        let declared = self.0.entry(context).or_default();
        if declared.contains_key(name) {
            return Err(Status::BadArgument);
        }
        declared.insert(name.to_vec(), readonly);
        Ok(())
    }
}

/// What a foreign function answered: its status and, if it produced one,
/// its result.
type Answer = (Status, Option<Vec<u8>>);

/// Runs the function `name`; `None` if Envoy has no function of that name.
fn call(state: &mut HostState, name: &[u8], args: &[u8]) -> Option<Answer> {
    let answer = match name {
        b"compress" => compress(args),
        b"uncompress" => uncompress(args),
        b"declare_property" => (declare_property(state, args), None),
        b"set_envoy_filter_state" => (set_envoy_filter_state(args), None),
        b"clear_route_cache" => (Status::Ok, None),
        b"expr_create" => (Status::Unimplemented, None),
        b"expr_evaluate" => (token_argument(args, Status::NotFound), None),
        b"expr_delete" => (token_argument(args, Status::Ok), None),
        b"sign" => (signing(args, &[2, 4], &[1, 4]), None),
        b"verify_signature" => (signing(args, &[2, 5], &[1, 5]), None),
        _ => return None,
    };
    Some(answer)
}

/// zlib's `compress` at its default level.
fn compress(args: &[u8]) -> Answer {
    let mut out = vec![0; zlib_rs::compress_bound(args.len())];
    let (compressed, code) =
        zlib_rs::compress_slice(&mut out, args, zlib_rs::DeflateConfig::default());
    if code != zlib_rs::ReturnCode::Ok {
        return (Status::SerializationFailure, None);
    }
    (Status::Ok, Some(compressed.to_vec()))
}

/// The most `uncompress` inflates to; Envoy sets no bound, the harness
/// stops a decompression bomb here.
const UNCOMPRESS_LIMIT: usize = 1 << 28;

/// zlib's `uncompress`, retried with twice the room while the output does
/// not fit, as Envoy does.
fn uncompress(args: &[u8]) -> Answer {
    let mut room = args.len().saturating_mul(2).saturating_add(2);
    while room <= UNCOMPRESS_LIMIT {
        let mut out = vec![0; room];
        let (inflated, code) =
            zlib_rs::decompress_slice(&mut out, args, zlib_rs::InflateConfig::default());
        match code {
            zlib_rs::ReturnCode::Ok => return (Status::Ok, Some(inflated.to_vec())),
            zlib_rs::ReturnCode::BufError if inflated.len() == room => room *= 2,
            _ => break,
        }
    }
    (Status::SerializationFailure, None)
}

/// `DeclarePropertyArguments`: `name` (1), `readonly` (2), `type` (3),
/// `schema` (4), `span` (5). The type, schema and span are accepted and
/// not modelled: a declared property reads back as the bytes set.
fn declare_property(state: &mut HostState, args: &[u8]) -> Status {
    let Some(fields) = parse(args, &[1]) else {
        return Status::BadArgument;
    };
    let name = last_bytes(&fields, 1).unwrap_or_default();
    let readonly = last_varint(&fields, 2).is_some_and(|value| value != 0);
    let context = state.context();
    match state.declared.declare(context, name, readonly) {
        Ok(()) => Status::Ok,
        Err(status) => status,
    }
}

/// `SetEnvoyFilterStateArguments`: `path` (1), `value` (2). No filter
/// state object factory exists in the harness, so every key is unknown.
fn set_envoy_filter_state(args: &[u8]) -> Status {
    match parse(args, &[1, 2]) {
        Some(_) => Status::NotFound,
        None => Status::BadArgument,
    }
}

/// `expr_evaluate` and `expr_delete` take a 4-byte token; any other size
/// is `BadArgument`.
fn token_argument(args: &[u8], otherwise: Status) -> Status {
    if args.len() == 4 {
        otherwise
    } else {
        Status::BadArgument
    }
}

/// `sign` and `verify_signature`: exactly one of a DER key and a PEM key
/// (the `keys` field numbers) must be given; `strings` are the fields
/// declared `string`.
fn signing(args: &[u8], keys: &[u32], strings: &[u32]) -> Status {
    let Some(fields) = parse(args, strings) else {
        return Status::BadArgument;
    };
    let given = keys
        .iter()
        .filter(|number| last_bytes(&fields, **number).is_some_and(|key| !key.is_empty()))
        .count();
    if given == 1 {
        Status::Unimplemented
    } else {
        Status::BadArgument
    }
}

/// One field of a protobuf message on the wire.
#[derive(Debug, PartialEq, Eq)]
enum Value<'a> {
    Varint(u64),
    Bytes(&'a [u8]),
    Fixed,
}

/// Reads a base-128 varint at the start of `bytes`: its value and length.
fn varint(bytes: &[u8]) -> Option<(u64, usize)> {
    let mut value = 0u64;
    for (index, byte) in bytes.iter().enumerate().take(10) {
        value |= u64::from(byte & 0x7f) << (7 * index);
        if byte & 0x80 == 0 {
            return Some((value, index + 1));
        }
    }
    None
}

/// The fields of a protobuf message, or `None` where Envoy's parser
/// rejects it: a truncated field, an unknown wire type, field number 0, a
/// group that does not close, or invalid UTF-8 in one of the `strings`
/// fields (proto3 strings). Unknown fields are kept, as the parser keeps
/// them.
fn parse<'a>(mut bytes: &'a [u8], strings: &[u32]) -> Option<Vec<(u32, Value<'a>)>> {
    let mut fields = Vec::new();
    let mut groups: Vec<u64> = Vec::new();
    while !bytes.is_empty() {
        let (tag, used) = varint(bytes)?;
        bytes = bytes.get(used..)?;
        let number = tag >> 3;
        if number == 0 || number > u64::from(u32::MAX >> 3) {
            return None;
        }
        let value = match tag & 7 {
            0 => {
                let (value, used) = varint(bytes)?;
                bytes = bytes.get(used..)?;
                Value::Varint(value)
            }
            1 | 5 => {
                let size = if tag & 7 == 1 { 8 } else { 4 };
                bytes = bytes.get(size..)?;
                Value::Fixed
            }
            2 => {
                let (size, used) = varint(bytes)?;
                let size = usize::try_from(size).ok()?;
                let end = used.checked_add(size)?;
                let value = bytes.get(used..end)?;
                bytes = bytes.get(end..)?;
                Value::Bytes(value)
            }
            3 => {
                groups.push(number);
                continue;
            }
            4 => {
                if groups.pop() != Some(number) {
                    return None;
                }
                continue;
            }
            _ => return None,
        };
        if !groups.is_empty() {
            continue;
        }
        let number = u32::try_from(number).ok()?;
        if let Value::Bytes(text) = value
            && strings.contains(&number)
            && std::str::from_utf8(text).is_err()
        {
            return None;
        }
        fields.push((number, value));
    }
    groups.is_empty().then_some(fields)
}

fn last_bytes<'a>(fields: &[(u32, Value<'a>)], number: u32) -> Option<&'a [u8]> {
    fields.iter().rev().find_map(|(n, value)| match value {
        Value::Bytes(bytes) if *n == number => Some(*bytes),
        _ => None,
    })
}

fn last_varint(fields: &[(u32, Value<'_>)], number: u32) -> Option<u64> {
    fields.iter().rev().find_map(|(n, value)| match value {
        Value::Varint(value) if *n == number => Some(*value),
        _ => None,
    })
}

/// Hands a result to the guest as Envoy does: the result is allocated in
/// guest memory (even when empty) only if the guest gave a place for its
/// address; the address and size are written wherever the guest gave a
/// place, zero when there is no result.
fn hand_result(
    caller: &mut Caller<'_, HostState>,
    result: Option<&[u8]>,
    (results_ptr, results_size_ptr): (i32, i32),
) -> memory::Outcome {
    let mut address = 0;
    if results_ptr != 0
        && let Some(bytes) = result
    {
        match allocate(caller, bytes)? {
            Ok(placed) => address = placed,
            Err(status) => return Ok(Err(status)),
        }
    }
    let size = result.map_or(0, <[u8]>::len);
    let size = u32::try_from(size).map_err(|_| wasmtime::format_err!("result too large"))?;
    if results_ptr != 0
        && let Err(status) = memory::write_u32(caller, results_ptr, address)
    {
        return Ok(Err(status));
    }
    if results_size_ptr != 0
        && let Err(status) = memory::write_u32(caller, results_size_ptr, size)
    {
        return Ok(Err(status));
    }
    Ok(Ok(()))
}

/// Copies `bytes` into memory the guest allocates; its address.
fn allocate(caller: &mut Caller<'_, HostState>, bytes: &[u8]) -> memory::Outcome<u32> {
    let size = i32::try_from(bytes.len()).map_err(|_| wasmtime::format_err!("result too large"))?;
    let Some(allocate) = caller.data().guest.as_ref().map(|g| g.allocate.clone()) else {
        return Ok(Err(Status::InternalFailure));
    };
    let address = allocate.call(&mut *caller, size)?;
    if address == 0 {
        return Ok(Err(Status::InvalidMemoryAccess));
    }
    Ok(memory::write(caller, address, bytes).map(|()| address.cast_unsigned()))
}

fn proxy_call_foreign_function(linker: &mut Linker<HostState>) -> wasmtime::Result<()> {
    linker.func_wrap(
        ENV,
        "proxy_call_foreign_function",
        |mut caller: Caller<'_, HostState>,
         name_ptr: i32,
         name_size: i32,
         args_ptr: i32,
         args_size: i32,
         results_ptr: i32,
         results_size_ptr: i32|
         -> wasmtime::Result<i32> {
            let name = memory::read(&mut caller, name_ptr, name_size);
            let args = memory::read(&mut caller, args_ptr, args_size);
            let answer = match (&name, &args) {
                (Ok(name), Ok(args)) => call(caller.data_mut(), name, args),
                _ => None,
            };
            let status = match (&name, &args, &answer) {
                (Err(_), _, _) | (_, Err(_), _) => Status::InvalidMemoryAccess,
                (_, _, None) => Status::NotFound,
                (_, _, Some((status, result))) => {
                    let places = (results_ptr, results_size_ptr);
                    match hand_result(&mut caller, result.as_deref(), places)? {
                        Ok(()) => *status,
                        Err(failure) => failure,
                    }
                }
            };
            caller.data_mut().note(
                || {
                    format!(
                        "proxy_call_foreign_function({}, {})",
                        show(&name.clone().unwrap_or_default()),
                        show(&args.clone().unwrap_or_default())
                    )
                },
                || match (&answer, status) {
                    (Some((_, Some(bytes))), Status::Ok) => format!("Ok {}", show(bytes)),
                    _ => status.name().to_owned(),
                },
            );
            Ok(status.code())
        },
    )?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn compress_matches_zlib_for_a_short_text() {
        let (status, out) = compress(b"hello");
        assert_eq!(status, Status::Ok);
        let hex: String = out
            .unwrap_or_default()
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        assert_eq!(hex, "789ccb48cdc9c90700062c0215");
    }

    #[test]
    fn uncompress_inverts_compress_and_rejects_garbage() {
        let text = b"abcabcabcabcabcabcabcabcabcabcabcabcabcabcabcabc".repeat(40);
        let (_, packed) = compress(&text);
        let packed = packed.unwrap_or_default();
        assert_eq!(uncompress(&packed), (Status::Ok, Some(text)));
        assert_eq!(uncompress(b"hello"), (Status::SerializationFailure, None));
        assert_eq!(uncompress(b""), (Status::SerializationFailure, None));
        let truncated = packed.get(..packed.len() - 3).unwrap_or_default();
        assert_eq!(uncompress(truncated), (Status::SerializationFailure, None));
    }

    #[test]
    fn protobuf_arguments_parse_as_envoy_parses_them() {
        assert_eq!(parse(b"", &[1]), Some(vec![]));
        let fields = parse(b"\x0a\x02ab\x10\x01", &[1]).unwrap_or_default();
        assert_eq!(last_bytes(&fields, 1), Some(&b"ab"[..]));
        assert_eq!(last_varint(&fields, 2), Some(1));
        // Truncated, wire type 7, field 0, an unopened group, bad UTF-8.
        for bad in [
            &b"\x0a\x05ab"[..],
            b"\x0f",
            b"\x00\x01",
            b"\x0c",
            b"\x0a\x01\xff",
        ] {
            assert_eq!(parse(bad, &[1]), None, "{bad:?}");
        }
        // An unknown group is skipped whole.
        assert_eq!(parse(b"\x1b\x08\x01\x1c", &[1]), Some(vec![]));
    }
}
