//! One VM: a `Store` holding the filter's instance and its host state, and
//! the calls into the filter's `proxy_on_*` exports.
//!
//! The VM lifecycle follows Envoy: instantiate, run `_initialize` (or
//! `_start`), create the root context (id 1), `proxy_on_vm_start`, then
//! `proxy_on_configure`. A trap in any call marks the VM failed; Envoy
//! never calls a failed VM again, and neither does the harness.

use std::sync::Arc;

use wasmtime::{Instance, Store, TypedFunc, WasmParams, WasmResults};

use crate::abi::len_u32;
use crate::engine::Filter;
use crate::error::{Error, ErrorKind, Result};
use crate::grpc::{GrpcEvent, GrpcEventKind};
use crate::host::{GrpcReceived, Guest, HostState, PluginInfo};
use crate::transcript::Entry;
use crate::world::World;

type Export<P, R> = Option<TypedFunc<P, R>>;

/// The filter's exports, looked up once per VM.
struct Exports {
    on_context_create: Export<(i32, i32), ()>,
    on_vm_start: Export<(i32, i32), i32>,
    on_configure: Export<(i32, i32), i32>,
    on_request_headers: Export<(i32, i32, i32), i32>,
    on_request_body: Export<(i32, i32, i32), i32>,
    on_request_trailers: Export<(i32, i32), i32>,
    on_response_headers: Export<(i32, i32, i32), i32>,
    on_response_body: Export<(i32, i32, i32), i32>,
    on_response_trailers: Export<(i32, i32), i32>,
    on_done: Export<i32, i32>,
    on_log: Export<i32, ()>,
    on_delete: Export<i32, ()>,
    on_tick: Export<i32, ()>,
    on_queue_ready: Export<(i32, i32), ()>,
    on_http_call_response: Export<(i32, i32, i32, i32, i32), ()>,
    on_grpc_receive_initial_metadata: Export<(i32, i32, i32), ()>,
    on_grpc_receive: Export<(i32, i32, i32), ()>,
    on_grpc_receive_trailing_metadata: Export<(i32, i32, i32), ()>,
    on_grpc_close: Export<(i32, i32, i32), ()>,
    on_new_connection: Export<i32, i32>,
    on_downstream_data: Export<(i32, i32, i32), i32>,
    on_upstream_data: Export<(i32, i32, i32), i32>,
    on_downstream_connection_close: Export<(i32, i32), ()>,
    on_upstream_connection_close: Export<(i32, i32), ()>,
}

/// A VM's call into the filter trapped; the VM is now failed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Trap(pub String);

/// One running VM.
pub(crate) struct Vm {
    pub(crate) store: Store<HostState>,
    exports: Exports,
    pub(crate) failed: Option<String>,
    next_context: u32,
}

fn typed<P: WasmParams, R: WasmResults>(
    store: &mut Store<HostState>,
    instance: &Instance,
    name: &str,
) -> Result<Export<P, R>> {
    if instance.get_func(&mut *store, name).is_none() {
        return Ok(None);
    }
    instance
        .get_typed_func::<P, R>(&mut *store, name)
        .map(Some)
        .map_err(|e| Error::wasm(format!("export `{name}` has an unexpected signature"), &e))
}

impl Vm {
    /// Instantiates the filter and runs it up to a configured root context.
    pub(crate) fn start(
        filter: &Filter,
        info: Arc<PluginInfo>,
        world: World,
        worker: usize,
        record: bool,
    ) -> Result<Vm> {
        let state = HostState::new(worker, info, world, record);
        let mut store = Store::new(filter.wasmtime_engine(), state);
        let instance = filter
            .linker()
            .instantiate(&mut store, &filter.module)
            .map_err(|e| Error::wasm("instantiating module", &e))?;
        let memory = instance
            .get_memory(&mut store, "memory")
            .ok_or_else(|| Error::from(ErrorKind::MissingExport("memory".into())))?;
        let allocate = match typed::<i32, i32>(&mut store, &instance, "proxy_on_memory_allocate")? {
            Some(allocate) => allocate,
            None => typed::<i32, i32>(&mut store, &instance, "malloc")?.ok_or_else(|| {
                Error::from(ErrorKind::MissingExport("proxy_on_memory_allocate".into()))
            })?,
        };
        store.data_mut().guest = Some(Guest { memory, allocate });
        let exports = Exports {
            on_context_create: typed(&mut store, &instance, "proxy_on_context_create")?,
            on_vm_start: typed(&mut store, &instance, "proxy_on_vm_start")?,
            on_configure: typed(&mut store, &instance, "proxy_on_configure")?,
            on_request_headers: typed(&mut store, &instance, "proxy_on_request_headers")?,
            on_request_body: typed(&mut store, &instance, "proxy_on_request_body")?,
            on_request_trailers: typed(&mut store, &instance, "proxy_on_request_trailers")?,
            on_response_headers: typed(&mut store, &instance, "proxy_on_response_headers")?,
            on_response_body: typed(&mut store, &instance, "proxy_on_response_body")?,
            on_response_trailers: typed(&mut store, &instance, "proxy_on_response_trailers")?,
            on_done: typed(&mut store, &instance, "proxy_on_done")?,
            on_log: typed(&mut store, &instance, "proxy_on_log")?,
            on_delete: typed(&mut store, &instance, "proxy_on_delete")?,
            on_tick: typed(&mut store, &instance, "proxy_on_tick")?,
            on_queue_ready: typed(&mut store, &instance, "proxy_on_queue_ready")?,
            on_http_call_response: typed(&mut store, &instance, "proxy_on_http_call_response")?,
            on_grpc_receive_initial_metadata: typed(
                &mut store,
                &instance,
                "proxy_on_grpc_receive_initial_metadata",
            )?,
            on_grpc_receive: typed(&mut store, &instance, "proxy_on_grpc_receive")?,
            on_grpc_receive_trailing_metadata: typed(
                &mut store,
                &instance,
                "proxy_on_grpc_receive_trailing_metadata",
            )?,
            on_grpc_close: typed(&mut store, &instance, "proxy_on_grpc_close")?,
            on_new_connection: typed(&mut store, &instance, "proxy_on_new_connection")?,
            on_downstream_data: typed(&mut store, &instance, "proxy_on_downstream_data")?,
            on_upstream_data: typed(&mut store, &instance, "proxy_on_upstream_data")?,
            on_downstream_connection_close: typed(
                &mut store,
                &instance,
                "proxy_on_downstream_connection_close",
            )?,
            on_upstream_connection_close: typed(
                &mut store,
                &instance,
                "proxy_on_upstream_connection_close",
            )?,
        };
        let mut vm = Vm {
            store,
            exports,
            failed: None,
            next_context: 2,
        };
        vm.initialize(&instance)?;
        vm.configure()?;
        Ok(vm)
    }

    fn initialize(&mut self, instance: &Instance) -> Result<()> {
        for name in ["_initialize", "_start"] {
            if let Some(init) = typed::<(), ()>(&mut self.store, instance, name)? {
                let result = self.call(name.to_owned(), |store| init.call(store, ()));
                return result
                    .map_err(|trap| Error::invalid(format!("`{name}` trapped: {}", trap.0)));
            }
        }
        Ok(())
    }

    fn configure(&mut self) -> Result<()> {
        let root = self.root();
        let vm_config = len_u32(self.store.data().info.vm_configuration.len()).cast_signed();
        let config = len_u32(self.store.data().info.configuration.len()).cast_signed();
        let trapped =
            |trap: Trap| Error::invalid(format!("the filter trapped while starting: {}", trap.0));
        if let Some(create) = self.exports.on_context_create.clone() {
            self.call_on(root, format!("proxy_on_context_create({root}, 0)"), |s| {
                create.call(s, (root.cast_signed(), 0))
            })
            .map_err(trapped)?;
        }
        if let Some(start) = self.exports.on_vm_start.clone() {
            self.store.data_mut().configuring = Some(crate::abi::BufferType::VmConfiguration);
            let ok = self.call_on(
                root,
                format!("proxy_on_vm_start({root}, {vm_config})"),
                |s| start.call(s, (root.cast_signed(), vm_config)),
            );
            self.store.data_mut().configuring = None;
            if ok.map_err(trapped)? == 0 {
                return Err(ErrorKind::VmStartRejected.into());
            }
        }
        if let Some(configure) = self.exports.on_configure.clone() {
            self.store.data_mut().configuring = Some(crate::abi::BufferType::PluginConfiguration);
            let ok = self.call_on(root, format!("proxy_on_configure({root}, {config})"), |s| {
                configure.call(s, (root.cast_signed(), config))
            });
            self.store.data_mut().configuring = None;
            if ok.map_err(trapped)? == 0 {
                return Err(ErrorKind::ConfigureRejected.into());
            }
        }
        Ok(())
    }

    pub(crate) fn root(&self) -> u32 {
        self.store.data().root_context
    }

    pub(crate) fn state(&self) -> &HostState {
        self.store.data()
    }

    pub(crate) fn state_mut(&mut self) -> &mut HostState {
        self.store.data_mut()
    }

    /// Allocates the next context id; ids are shared by roots and streams.
    pub(crate) fn next_context(&mut self) -> u32 {
        let id = self.next_context;
        self.next_context = self.next_context.saturating_add(1);
        id
    }

    /// Calls into the guest with `active` as the current context,
    /// recording the call and marking the VM failed on a trap.
    fn call_on<R: std::fmt::Debug>(
        &mut self,
        active: u32,
        rendered: String,
        run: impl FnOnce(&mut Store<HostState>) -> wasmtime::Result<R>,
    ) -> std::result::Result<R, Trap> {
        let state = self.store.data_mut();
        state.active = active;
        state.effective = None;
        self.call(rendered, run)
    }

    fn call<R: std::fmt::Debug>(
        &mut self,
        rendered: String,
        run: impl FnOnce(&mut Store<HostState>) -> wasmtime::Result<R>,
    ) -> std::result::Result<R, Trap> {
        if let Some(reason) = &self.failed {
            return Err(Trap(reason.clone()));
        }
        let worker = self.store.data().worker;
        self.store.data_mut().transcript.push(Entry::Enter {
            worker,
            call: rendered,
        });
        let result = run(&mut self.store);
        self.store.data_mut().effective = None;
        match result {
            Ok(value) => {
                self.store.data_mut().transcript.push(Entry::Return {
                    value: format!("{value:?}"),
                });
                Ok(value)
            }
            Err(error) => {
                let reason = format!("{error:#}");
                let transcript = &mut self.store.data_mut().transcript;
                transcript.push(Entry::Return {
                    value: "trap".into(),
                });
                transcript.push(Entry::Note(format!("vm failed: {reason}")));
                self.failed = Some(reason.clone());
                Err(Trap(reason))
            }
        }
    }

    /// Calls the export `f` with `args` on the context `active`, recording
    /// the call as `rendered`; a filter without the export is not called,
    /// and the call gives the default result (`0` for a status).
    fn call_export<P: WasmParams, R: WasmResults + Default + std::fmt::Debug>(
        &mut self,
        active: u32,
        f: Export<P, R>,
        rendered: String,
        args: P,
    ) -> std::result::Result<R, Trap> {
        match f {
            Some(f) => self.call_on(active, rendered, |s| f.call(s, args)),
            None => Ok(R::default()),
        }
    }

    pub(crate) fn context_create(&mut self, id: u32) -> std::result::Result<(), Trap> {
        let root = self.root();
        self.call_export(
            id,
            self.exports.on_context_create.clone(),
            format!("proxy_on_context_create({id}, {root})"),
            (id.cast_signed(), root.cast_signed()),
        )
    }

    pub(crate) fn request_headers(
        &mut self,
        id: u32,
        count: usize,
        end: bool,
    ) -> std::result::Result<i32, Trap> {
        self.call_export(
            id,
            self.exports.on_request_headers.clone(),
            format!("proxy_on_request_headers({id}, {count}, {end})"),
            stream_args(id, count, end),
        )
    }

    pub(crate) fn request_body(
        &mut self,
        id: u32,
        size: usize,
        end: bool,
    ) -> std::result::Result<i32, Trap> {
        self.call_export(
            id,
            self.exports.on_request_body.clone(),
            format!("proxy_on_request_body({id}, {size}, {end})"),
            stream_args(id, size, end),
        )
    }

    pub(crate) fn request_trailers(
        &mut self,
        id: u32,
        count: usize,
    ) -> std::result::Result<i32, Trap> {
        self.call_export(
            id,
            self.exports.on_request_trailers.clone(),
            format!("proxy_on_request_trailers({id}, {count})"),
            (id.cast_signed(), len_u32(count).cast_signed()),
        )
    }

    pub(crate) fn response_headers(
        &mut self,
        id: u32,
        count: usize,
        end: bool,
    ) -> std::result::Result<i32, Trap> {
        self.call_export(
            id,
            self.exports.on_response_headers.clone(),
            format!("proxy_on_response_headers({id}, {count}, {end})"),
            stream_args(id, count, end),
        )
    }

    pub(crate) fn response_body(
        &mut self,
        id: u32,
        size: usize,
        end: bool,
    ) -> std::result::Result<i32, Trap> {
        self.call_export(
            id,
            self.exports.on_response_body.clone(),
            format!("proxy_on_response_body({id}, {size}, {end})"),
            stream_args(id, size, end),
        )
    }

    pub(crate) fn response_trailers(
        &mut self,
        id: u32,
        count: usize,
    ) -> std::result::Result<i32, Trap> {
        self.call_export(
            id,
            self.exports.on_response_trailers.clone(),
            format!("proxy_on_response_trailers({id}, {count})"),
            (id.cast_signed(), len_u32(count).cast_signed()),
        )
    }

    fn on_log(&mut self, id: u32) -> std::result::Result<(), Trap> {
        self.call_export(
            id,
            self.exports.on_log.clone(),
            format!("proxy_on_log({id})"),
            id.cast_signed(),
        )
    }

    fn on_done(&mut self, id: u32) -> std::result::Result<i32, Trap> {
        self.call_export(
            id,
            self.exports.on_done.clone(),
            format!("proxy_on_done({id})"),
            id.cast_signed(),
        )
    }

    fn on_delete(&mut self, id: u32) -> std::result::Result<(), Trap> {
        self.call_export(
            id,
            self.exports.on_delete.clone(),
            format!("proxy_on_delete({id})"),
            id.cast_signed(),
        )
    }

    /// Ends a context as Envoy ends an HTTP stream's: `proxy_on_log`, then
    /// `proxy_on_done`, then `proxy_on_delete`.
    pub(crate) fn finish_context(&mut self, id: u32) -> std::result::Result<(), Trap> {
        self.on_log(id)?;
        self.on_done(id)?;
        self.on_delete(id)
    }

    pub(crate) fn new_connection(&mut self, id: u32) -> std::result::Result<i32, Trap> {
        self.call_export(
            id,
            self.exports.on_new_connection.clone(),
            format!("proxy_on_new_connection({id})"),
            id.cast_signed(),
        )
    }

    pub(crate) fn downstream_data(
        &mut self,
        id: u32,
        size: usize,
        end: bool,
    ) -> std::result::Result<i32, Trap> {
        self.call_export(
            id,
            self.exports.on_downstream_data.clone(),
            format!("proxy_on_downstream_data({id}, {size}, {end})"),
            stream_args(id, size, end),
        )
    }

    pub(crate) fn upstream_data(
        &mut self,
        id: u32,
        size: usize,
        end: bool,
    ) -> std::result::Result<i32, Trap> {
        self.call_export(
            id,
            self.exports.on_upstream_data.clone(),
            format!("proxy_on_upstream_data({id}, {size}, {end})"),
            stream_args(id, size, end),
        )
    }

    /// `proxy_on_downstream_connection_close` or, with `upstream`,
    /// `proxy_on_upstream_connection_close`; `peer` is the ABI's close
    /// type (0 unknown, 1 local, 2 remote).
    pub(crate) fn connection_close(
        &mut self,
        id: u32,
        upstream: bool,
        peer: u32,
    ) -> std::result::Result<(), Trap> {
        let (f, name) = if upstream {
            (
                self.exports.on_upstream_connection_close.clone(),
                "proxy_on_upstream_connection_close",
            )
        } else {
            (
                self.exports.on_downstream_connection_close.clone(),
                "proxy_on_downstream_connection_close",
            )
        };
        self.call_export(
            id,
            f,
            format!("{name}({id}, {peer})"),
            (id.cast_signed(), peer.cast_signed()),
        )
    }

    /// Ends a context as Envoy ends a network connection's:
    /// `proxy_on_done`, then `proxy_on_log`, then `proxy_on_delete`.
    pub(crate) fn finish_connection(&mut self, id: u32) -> std::result::Result<(), Trap> {
        self.on_done(id)?;
        self.on_log(id)?;
        self.on_delete(id)
    }

    pub(crate) fn tick(&mut self) -> std::result::Result<(), Trap> {
        let root = self.root();
        self.call_export(
            root,
            self.exports.on_tick.clone(),
            format!("proxy_on_tick({root})"),
            root.cast_signed(),
        )
    }

    pub(crate) fn queue_ready(&mut self, token: u32) -> std::result::Result<(), Trap> {
        let root = self.root();
        self.call_export(
            root,
            self.exports.on_queue_ready.clone(),
            format!("proxy_on_queue_ready({root}, {token})"),
            (root.cast_signed(), token.cast_signed()),
        )
    }

    pub(crate) fn http_call_response(
        &mut self,
        token: u32,
        headers: usize,
        body: usize,
        trailers: usize,
    ) -> std::result::Result<(), Trap> {
        let root = self.root();
        self.call_export(
            root,
            self.exports.on_http_call_response.clone(),
            format!(
                "proxy_on_http_call_response({root}, token {token}, {headers}, {body}, {trailers})"
            ),
            (
                root.cast_signed(),
                token.cast_signed(),
                len_u32(headers).cast_signed(),
                len_u32(body).cast_signed(),
                len_u32(trailers).cast_signed(),
            ),
        )
    }

    /// Delivers a gRPC event to the root context, which owns every call
    /// and stream: what the callback may read is set for its duration, and
    /// a close sets the status `proxy_get_status` reports (the code stays
    /// afterwards, the message does not). A filter without the export
    /// hears nothing, as in Envoy.
    pub(crate) fn grpc_event(&mut self, event: GrpcEvent) -> std::result::Result<(), Trap> {
        let root = self.root();
        let token = event.token;
        let message = matches!(event.kind, GrpcEventKind::Message(_));
        let close = matches!(event.kind, GrpcEventKind::Close(..));
        let (export, name, size) = {
            let exports = &self.exports;
            let state = self.store.data_mut();
            match event.kind {
                GrpcEventKind::InitialMetadata(pairs) => {
                    let count = len_u32(pairs.len());
                    state.grpc_received.initial_metadata = Some(pairs);
                    (
                        exports.on_grpc_receive_initial_metadata.clone(),
                        "proxy_on_grpc_receive_initial_metadata",
                        count,
                    )
                }
                GrpcEventKind::Message(message) => {
                    let size = len_u32(message.len());
                    state.grpc_received.message = Some(message);
                    (
                        exports.on_grpc_receive.clone(),
                        "proxy_on_grpc_receive",
                        size,
                    )
                }
                GrpcEventKind::TrailingMetadata(pairs) => {
                    let count = len_u32(pairs.len());
                    state.grpc_received.trailing_metadata = Some(pairs);
                    (
                        exports.on_grpc_receive_trailing_metadata.clone(),
                        "proxy_on_grpc_receive_trailing_metadata",
                        count,
                    )
                }
                GrpcEventKind::Close(code, message) => {
                    state.grpc_status = (code, Some(message));
                    (exports.on_grpc_close.clone(), "proxy_on_grpc_close", code)
                }
            }
        };
        let result = self.call_export(
            root,
            export,
            format!("{name}({root}, token {token}, {size})"),
            (root.cast_signed(), token.cast_signed(), size.cast_signed()),
        );
        let state = self.store.data_mut();
        state.grpc_received = GrpcReceived::default();
        state.grpc_status.1 = None;
        state.grpc.delivered(token, message, close);
        result
    }
}

/// The arguments of a stream or connection callback: the context, a count
/// or size, and whether the stream ends.
fn stream_args(id: u32, size: usize, end: bool) -> (i32, i32, i32) {
    (
        id.cast_signed(),
        len_u32(size).cast_signed(),
        i32::from(end),
    )
}
