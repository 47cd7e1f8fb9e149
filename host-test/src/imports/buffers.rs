//! Byte buffers: bodies, a network connection's data in either direction,
//! a callout's response body, a received gRPC message, and the
//! configuration.
//!
//! Reads are clamped to the buffer as Envoy clamps them. A read of nothing
//! returns `Ok`: for bodies without touching the guest's pointers, for
//! network data after writing a null pointer and a zero size to them (so
//! pointers outside memory fail there). Writes
//! follow Envoy's three cases: replace the whole buffer (`start` 0, `size`
//! at least the length), prepend (`start` 0, `size` 0) or append (`start`
//! at or past the end); anything else is `BadArgument`.

use wasmtime::{Caller, Linker};

use super::{ENV, status};
use crate::abi::{BufferType, Status};
use crate::host::HostState;
use crate::memory;
use crate::transcript::show;

pub(super) fn add(linker: &mut Linker<HostState>) -> wasmtime::Result<()> {
    proxy_get_buffer_bytes(linker)?;
    proxy_set_buffer_bytes(linker)?;
    proxy_get_buffer_status(linker)?;
    Ok(())
}

fn buffer(state: &HostState, kind: BufferType) -> Result<Vec<u8>, Status> {
    match kind {
        BufferType::RequestBody => Ok(state.stream().ok_or(Status::NotFound)?.request_body.clone()),
        BufferType::ResponseBody => Ok(state
            .stream()
            .ok_or(Status::NotFound)?
            .response_body
            .clone()),
        BufferType::CallResponseBody => Ok(state
            .call_response
            .as_ref()
            .ok_or(Status::NotFound)?
            .body
            .clone()),
        BufferType::GrpcReceive => state.grpc_received.message.clone().ok_or(Status::NotFound),
        BufferType::DownstreamData | BufferType::UpstreamData => {
            let (bytes, live) = network_buffer(state, kind)?;
            Ok(if live { bytes.clone() } else { Vec::new() })
        }
        BufferType::VmConfiguration => Ok(state.info.vm_configuration.clone()),
        BufferType::PluginConfiguration if state.configuring == Some(kind) => {
            Ok(state.info.configuration.clone())
        }
        _ => Err(Status::NotFound),
    }
}

/// A network connection's downstream or upstream data, and whether Envoy
/// holds it for the filter now (in the direction's callback, or paused).
/// Outside that it reads as `Ok` with no bytes and writes are
/// `BadArgument`; in an HTTP stream or on a root context it is
/// `NotFound`.
fn network_buffer(state: &HostState, kind: BufferType) -> Result<(&Vec<u8>, bool), Status> {
    let network = state
        .stream()
        .and_then(|stream| stream.network.as_ref())
        .ok_or(Status::NotFound)?;
    Ok(match kind {
        BufferType::UpstreamData => (&network.upstream, network.upstream_live),
        _ => (&network.downstream, network.downstream_live),
    })
}

fn buffer_name(code: i32) -> String {
    BufferType::from_code(code)
        .map_or_else(|| format!("buffer#{code}"), |kind| kind.name().to_owned())
}

fn proxy_get_buffer_bytes(linker: &mut Linker<HostState>) -> wasmtime::Result<()> {
    linker.func_wrap(
        ENV,
        "proxy_get_buffer_bytes",
        |mut caller: Caller<'_, HostState>,
         kind: i32,
         start: i32,
         max: i32,
         ptr_ptr: i32,
         size_ptr: i32| {
            let slice = BufferType::from_code(kind)
                .ok_or(Status::BadArgument)
                .and_then(|kind| buffer(caller.data(), kind))
                .and_then(|bytes| clamp(&bytes, start, max));
            let network = matches!(
                BufferType::from_code(kind),
                Some(BufferType::DownstreamData | BufferType::UpstreamData)
            );
            let result = match &slice {
                // Envoy answers a read of no network data by writing a null
                // pointer and a zero size, so bad pointers still fail.
                Ok(bytes) if bytes.is_empty() && network => {
                    memory::write_u32(&mut caller, ptr_ptr, 0)
                        .and_then(|()| memory::write_u32(&mut caller, size_ptr, 0))
                }
                Ok(bytes) if bytes.is_empty() => Ok(()),
                Ok(bytes) => memory::hand_over(&mut caller, bytes, ptr_ptr, size_ptr)?,
                Err(status) => Err(*status),
            };
            caller.data_mut().note(
                || {
                    format!(
                        "proxy_get_buffer_bytes({}, {start}, {max})",
                        buffer_name(kind)
                    )
                },
                || match (&slice, result) {
                    (Ok(bytes), Ok(())) => format!("Ok {}", show(bytes)),
                    _ => status(result).name().to_owned(),
                },
            );
            wasmtime::Result::Ok(status(result).code())
        },
    )?;
    Ok(())
}

fn clamp(bytes: &[u8], start: i32, max: i32) -> Result<Vec<u8>, Status> {
    let start = usize::try_from(start.cast_unsigned()).map_err(|_| Status::BadArgument)?;
    let max = usize::try_from(max.cast_unsigned()).map_err(|_| Status::BadArgument)?;
    start.checked_add(max).ok_or(Status::BadArgument)?;
    let end = start.saturating_add(max).min(bytes.len());
    Ok(bytes.get(start..end).unwrap_or_default().to_vec())
}

fn proxy_set_buffer_bytes(linker: &mut Linker<HostState>) -> wasmtime::Result<()> {
    linker.func_wrap(
        ENV,
        "proxy_set_buffer_bytes",
        |mut caller: Caller<'_, HostState>,
         kind: i32,
         start: i32,
         size: i32,
         data_ptr: i32,
         data_size: i32|
         -> i32 {
            let data = memory::read(&mut caller, data_ptr, data_size);
            let shown = data.clone().unwrap_or_default();
            let result = data.and_then(|data| {
                let kind = BufferType::from_code(kind).ok_or(Status::BadArgument)?;
                set(
                    caller.data_mut(),
                    kind,
                    start.cast_unsigned(),
                    size.cast_unsigned(),
                    &data,
                )
            });
            caller.data_mut().note(
                || {
                    format!(
                        "proxy_set_buffer_bytes({}, {start}, {size}, {})",
                        buffer_name(kind),
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

fn set(
    state: &mut HostState,
    kind: BufferType,
    start: u32,
    size: u32,
    data: &[u8],
) -> Result<(), Status> {
    let target = match kind {
        BufferType::RequestBody => &mut state.stream_mut().ok_or(Status::NotFound)?.request_body,
        BufferType::ResponseBody => &mut state.stream_mut().ok_or(Status::NotFound)?.response_body,
        BufferType::GrpcReceive => state
            .grpc_received
            .message
            .as_mut()
            .ok_or(Status::NotFound)?,
        BufferType::DownstreamData | BufferType::UpstreamData => {
            let network = state
                .stream_mut()
                .and_then(|stream| stream.network.as_mut())
                .ok_or(Status::NotFound)?;
            let (target, live) = match kind {
                BufferType::UpstreamData => (&mut network.upstream, network.upstream_live),
                _ => (&mut network.downstream, network.downstream_live),
            };
            if !live {
                return Err(Status::BadArgument);
            }
            target
        }
        BufferType::CallResponseBody
        | BufferType::VmConfiguration
        | BufferType::PluginConfiguration => {
            return Err(Status::BadArgument);
        }
        _ => return Err(Status::NotFound),
    };
    let (start, size) = (start as usize, size as usize);
    if start == 0 && size == 0 {
        target.splice(0..0, data.iter().copied());
    } else if start == 0 && size >= target.len() {
        *target = data.to_vec();
    } else if start >= target.len() {
        target.extend_from_slice(data);
    } else {
        return Err(Status::BadArgument);
    }
    Ok(())
}

fn proxy_get_buffer_status(linker: &mut Linker<HostState>) -> wasmtime::Result<()> {
    linker.func_wrap(
        ENV,
        "proxy_get_buffer_status",
        |mut caller: Caller<'_, HostState>, kind: i32, length_ptr: i32, flags_ptr: i32| -> i32 {
            let result = BufferType::from_code(kind)
                .ok_or(Status::BadArgument)
                .and_then(|kind| buffer(caller.data(), kind))
                .and_then(|bytes| {
                    memory::write_u32(&mut caller, length_ptr, crate::abi::len_u32(bytes.len()))?;
                    memory::write_u32(&mut caller, flags_ptr, 0)
                });
            caller.data_mut().note(
                || format!("proxy_get_buffer_status({})", buffer_name(kind)),
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

    #[test]
    fn reads_are_clamped_to_the_buffer() {
        assert_eq!(clamp(b"hello", 1, 100), Ok(b"ello".to_vec()));
        assert_eq!(clamp(b"hello", 9, 1), Ok(Vec::new()));
        assert_eq!(clamp(b"hello", -1, 2), Ok(Vec::new()));
    }
}
