//! `proxy_http_call`: HTTP callouts to scripted upstreams.
//!
//! Like Envoy, the callout belongs to the root context, whichever context
//! makes it, and the answer arrives later through
//! `proxy_on_http_call_response` on the root context. The cluster must be
//! one the test scripted (Envoy requires a known cluster) and the headers
//! must carry `:method`, `:path` and `:authority`; otherwise the call
//! returns `BadArgument` and nothing is sent.

use wasmtime::{Caller, Linker};

use super::{ENV, status};
use crate::abi::{Pairs, Status, decode_pairs};
use crate::host::{HostState, PendingCallout};
use crate::memory;
use crate::transcript::show;

pub(super) fn add(linker: &mut Linker<HostState>) -> wasmtime::Result<()> {
    proxy_http_call(linker)?;
    Ok(())
}

fn proxy_http_call(linker: &mut Linker<HostState>) -> wasmtime::Result<()> {
    linker.func_wrap(
        ENV,
        "proxy_http_call",
        |mut caller: Caller<'_, HostState>,
         upstream_ptr: i32,
         upstream_size: i32,
         headers_ptr: i32,
         headers_size: i32,
         body_ptr: i32,
         body_size: i32,
         trailers_ptr: i32,
         trailers_size: i32,
         timeout_ms: i32,
         token_ptr: i32|
         -> i32 {
            let upstream = memory::read(&mut caller, upstream_ptr, upstream_size);
            let shown = upstream.clone().unwrap_or_default();
            let result = (|| -> Result<u32, Status> {
                let upstream = upstream?;
                let headers = decode_pairs(&memory::read(&mut caller, headers_ptr, headers_size)?);
                let body = memory::read(&mut caller, body_ptr, body_size)?;
                memory::read(&mut caller, trailers_ptr, trailers_size)?;
                memory::write_u32(&mut caller, token_ptr, 0)?;
                let token = dispatch(
                    caller.data_mut(),
                    &upstream,
                    headers,
                    body,
                    timeout_ms.cast_unsigned(),
                )?;
                memory::write_u32(&mut caller, token_ptr, token)?;
                Ok(token)
            })();
            caller.data_mut().note(
                || {
                    format!(
                        "proxy_http_call({}, timeout {}ms)",
                        show(&shown),
                        timeout_ms.cast_unsigned()
                    )
                },
                || match result {
                    Ok(token) => format!("Ok token {token}"),
                    Err(status) => status.name().to_owned(),
                },
            );
            status(result.map(|_| ())).code()
        },
    )?;
    Ok(())
}

fn has(headers: &Pairs, name: &[u8]) -> bool {
    headers.iter().any(|(key, _)| key.as_slice() == name)
}

fn dispatch(
    state: &mut HostState,
    upstream: &[u8],
    headers: Pairs,
    body: Vec<u8>,
    timeout_ms: u32,
) -> Result<u32, Status> {
    let cluster = String::from_utf8(upstream.to_vec()).map_err(|_| Status::BadArgument)?;
    if ![&b":method"[..], b":path", b":authority"]
        .iter()
        .all(|name| has(&headers, name))
    {
        return Err(Status::BadArgument);
    }
    let now = state.now_ns();
    let (answer, delay_ms) = state
        .world
        .lock()
        .next_answer(&cluster)
        .ok_or(Status::BadArgument)?;
    let (answer, delay_ms) = match answer {
        crate::CalloutAnswer::Respond { .. } if delay_ms >= u64::from(timeout_ms) => {
            (crate::CalloutAnswer::Timeout, u64::from(timeout_ms))
        }
        crate::CalloutAnswer::Timeout => (crate::CalloutAnswer::Timeout, u64::from(timeout_ms)),
        other => (other, delay_ms),
    };
    let token = state.next_token;
    state.next_token = state.next_token.wrapping_add(1).max(1);
    let sent = state.info.profile.callout_headers(&headers, timeout_ms);
    state.world.lock().record_callout(&cluster, &sent, &body);
    let due_ns = now.saturating_add(delay_ms.saturating_mul(1_000_000));
    state.callouts.insert(
        token,
        PendingCallout {
            token,
            cluster,
            due_ns,
            answer,
        },
    );
    Ok(token)
}
