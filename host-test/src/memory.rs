//! Reading and writing guest memory on behalf of host functions.
//!
//! Every pointer and size comes from the guest and is checked: an access
//! outside linear memory yields `InvalidMemoryAccess`, as Envoy returns,
//! never a host panic. Values handed to the guest are placed in memory the
//! guest allocates itself through `proxy_on_memory_allocate` (or `malloc`),
//! which the guest then owns.

use wasmtime::Caller;

use crate::abi::Status;
use crate::host::HostState;

/// A host call's outcome: a status for the guest, or a trap raised while
/// calling back into the guest (its allocator failed), which ends the call.
pub(crate) type Outcome<T = ()> = wasmtime::Result<Result<T, Status>>;

fn span(ptr: i32, len: i32) -> Option<(usize, usize)> {
    let start = usize::try_from(ptr.cast_unsigned()).ok()?;
    let len = usize::try_from(len.cast_unsigned()).ok()?;
    Some((start, start.checked_add(len)?))
}

/// Copies `len` bytes at `ptr` out of guest memory.
pub(crate) fn read(
    caller: &mut Caller<'_, HostState>,
    ptr: i32,
    len: i32,
) -> Result<Vec<u8>, Status> {
    let memory = caller
        .data()
        .guest
        .as_ref()
        .map(|guest| guest.memory)
        .ok_or(Status::InternalFailure)?;
    let (start, end) = span(ptr, len).ok_or(Status::InvalidMemoryAccess)?;
    memory
        .data(&*caller)
        .get(start..end)
        .map(<[u8]>::to_vec)
        .ok_or(Status::InvalidMemoryAccess)
}

/// Writes `bytes` at `ptr` in guest memory.
pub(crate) fn write(
    caller: &mut Caller<'_, HostState>,
    ptr: i32,
    bytes: &[u8],
) -> Result<(), Status> {
    let memory = caller
        .data()
        .guest
        .as_ref()
        .map(|guest| guest.memory)
        .ok_or(Status::InternalFailure)?;
    let len = i32::try_from(bytes.len()).map_err(|_| Status::InvalidMemoryAccess)?;
    let (start, end) = span(ptr, len).ok_or(Status::InvalidMemoryAccess)?;
    let target = memory
        .data_mut(&mut *caller)
        .get_mut(start..end)
        .ok_or(Status::InvalidMemoryAccess)?;
    target.copy_from_slice(bytes);
    Ok(())
}

/// Writes a little-endian `u32` at `ptr`.
pub(crate) fn write_u32(
    caller: &mut Caller<'_, HostState>,
    ptr: i32,
    value: u32,
) -> Result<(), Status> {
    write(caller, ptr, &value.to_le_bytes())
}

/// Writes a little-endian `u64` at `ptr`.
pub(crate) fn write_u64(
    caller: &mut Caller<'_, HostState>,
    ptr: i32,
    value: u64,
) -> Result<(), Status> {
    write(caller, ptr, &value.to_le_bytes())
}

/// Hands `bytes` to the guest: allocates them in guest memory, copies them
/// there and stores the pointer and size at `ptr_ptr` and `size_ptr`. An
/// empty value is handed over as a null pointer and size zero, without an
/// allocation, as Envoy does.
pub(crate) fn hand_over(
    caller: &mut Caller<'_, HostState>,
    bytes: &[u8],
    ptr_ptr: i32,
    size_ptr: i32,
) -> Outcome {
    let size = u32::try_from(bytes.len()).map_err(|_| wasmtime::format_err!("value too large"))?;
    let mut pointer = 0u32;
    if !bytes.is_empty() {
        let Some(allocate) = caller
            .data()
            .guest
            .as_ref()
            .map(|guest| guest.allocate.clone())
        else {
            return Ok(Err(Status::InternalFailure));
        };
        let address = allocate.call(&mut *caller, size.cast_signed())?;
        if address == 0 {
            return Ok(Err(Status::InvalidMemoryAccess));
        }
        if let Err(status) = write(caller, address, bytes) {
            return Ok(Err(status));
        }
        pointer = address.cast_unsigned();
    }
    if let Err(status) = write_u32(caller, ptr_ptr, pointer) {
        return Ok(Err(status));
    }
    Ok(write_u32(caller, size_ptr, size))
}

/// Reads guest memory as text for error messages and transcripts.
pub(crate) fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}
