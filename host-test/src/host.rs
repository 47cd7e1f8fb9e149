//! The state one VM's host functions work on: the contexts the host has
//! created in the guest, the stream each HTTP context carries, the
//! root context's timers and callouts, and what the guest logged.

use std::collections::BTreeMap;
use std::sync::Arc;

use wasmtime::{Memory, TypedFunc};

use crate::abi::{LogLevel, Pairs, StreamType};
use crate::outcome::LogLine;
use crate::profile::{Profile, Progress, PropertyView, StreamView};
use crate::request::{Connection, UpstreamResponse};
use crate::transcript::{Entry, Transcript};
use crate::world::World;

/// A plugin's identity and configuration, shared by its VMs.
#[derive(Clone, Debug)]
pub struct PluginInfo {
    /// `plugin_name`, Envoy's `config.name`. Defaults to `plugin`.
    pub name: String,
    /// `plugin_root_id`, Envoy's `config.root_id`. Defaults to empty.
    pub root_id: String,
    /// `plugin_vm_id`, Envoy's `vm_config.vm_id`. Defaults to empty.
    pub vm_id: String,
    /// The plugin configuration `proxy_on_configure` reads.
    pub configuration: Vec<u8>,
    /// The VM configuration `proxy_on_vm_start` reads.
    pub vm_configuration: Vec<u8>,
    /// Lines below this level are dropped, as Envoy drops them below its
    /// `wasm` logger's level. Defaults to `info`, Envoy's default.
    pub log_level: LogLevel,
    /// Envoy's behaviour.
    pub profile: Profile,
    /// Envoy's environment variables for the VM (`vm_config.environment_variables`).
    pub environment: Vec<(String, String)>,
}

impl Default for PluginInfo {
    fn default() -> PluginInfo {
        PluginInfo {
            name: "plugin".into(),
            root_id: String::new(),
            vm_id: String::new(),
            configuration: Vec::new(),
            vm_configuration: Vec::new(),
            log_level: LogLevel::Info,
            profile: Profile::envoy(),
            environment: Vec::new(),
        }
    }
}

/// The guest's exports the host functions themselves need.
#[derive(Clone)]
pub(crate) struct Guest {
    pub(crate) memory: Memory,
    pub(crate) allocate: TypedFunc<i32, i32>,
}

impl std::fmt::Debug for Guest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Guest").finish_non_exhaustive()
    }
}

/// One HTTP stream's state as the host holds it.
#[derive(Debug, Default)]
pub(crate) struct Stream {
    pub(crate) request_headers: Pairs,
    pub(crate) request_body: Vec<u8>,
    pub(crate) request_trailers: Option<Pairs>,
    pub(crate) response_headers: Option<Pairs>,
    pub(crate) response_body: Vec<u8>,
    pub(crate) response_trailers: Option<Pairs>,
    pub(crate) connection: Connection,
    pub(crate) start_ns: u64,
    /// Properties fixed by the test, already encoded.
    pub(crate) overrides: BTreeMap<String, Vec<u8>>,
    /// Properties the filter set with `proxy_set_property`.
    pub(crate) filter_state: BTreeMap<String, Vec<u8>>,
    pub(crate) local_reply: Option<LocalReply>,
    pub(crate) resume: Option<StreamType>,
    pub(crate) close: bool,
    pub(crate) response_details: Option<String>,
    pub(crate) upstream: UpstreamResponse,
    /// The client sent the body chunked.
    pub(crate) chunked: bool,
    /// How far the stream has come, for the properties that depend on it.
    pub(crate) progress: Progress,
    /// Present when the context is a network (TCP) connection rather than
    /// an HTTP stream.
    pub(crate) network: Option<Network>,
}

/// A network connection's data as the filter sees it.
#[derive(Debug, Default)]
pub(crate) struct Network {
    /// The client's bytes not yet passed on: this callback's chunk, or
    /// everything since the filter paused.
    pub(crate) downstream: Vec<u8>,
    /// The upstream's bytes not yet passed on, likewise.
    pub(crate) upstream: Vec<u8>,
    /// Whether Envoy holds the downstream buffer for the filter: during
    /// the direction's callback, and after it paused. Otherwise the buffer
    /// reads as empty and cannot be written.
    pub(crate) downstream_live: bool,
    /// The same for the upstream buffer.
    pub(crate) upstream_live: bool,
    /// The upstream's address once `tcp_proxy` has connected to it.
    pub(crate) upstream_address: Option<String>,
}

impl Network {
    /// One direction's buffer (the upstream's with `upstream`, else the
    /// client's) and whether it is live.
    pub(crate) fn side(&mut self, upstream: bool) -> (&mut Vec<u8>, &mut bool) {
        if upstream {
            (&mut self.upstream, &mut self.upstream_live)
        } else {
            (&mut self.downstream, &mut self.downstream_live)
        }
    }
}

/// A local response the filter asked for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct LocalReply {
    pub(crate) status: u32,
    pub(crate) details: String,
    pub(crate) body: Vec<u8>,
    pub(crate) headers: Pairs,
}

/// An HTTP callout waiting for its answer.
#[derive(Clone, Debug)]
pub(crate) struct PendingCallout {
    pub(crate) token: u32,
    pub(crate) cluster: String,
    pub(crate) due_ns: u64,
    pub(crate) answer: CalloutAnswer,
}

/// How a scripted upstream answers a callout.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CalloutAnswer {
    /// A response.
    Respond {
        /// Status code.
        status: u16,
        /// Headers other than `:status`.
        headers: Vec<(String, String)>,
        /// Body.
        body: Vec<u8>,
        /// Trailers.
        trailers: Vec<(String, String)>,
    },
    /// No answer before the callout's timeout; Envoy then reports a
    /// failure: no headers, no body.
    Timeout,
    /// The connection fails (reset or refused); reported like a timeout.
    Fail,
}

/// The response to a callout, readable while `proxy_on_http_call_response`
/// runs.
#[derive(Clone, Debug, Default)]
pub(crate) struct CallResponse {
    pub(crate) headers: Option<Pairs>,
    pub(crate) body: Vec<u8>,
    pub(crate) trailers: Option<Pairs>,
}

/// The message or metadata of the gRPC callback running now.
#[derive(Clone, Debug, Default)]
pub(crate) struct GrpcReceived {
    pub(crate) message: Option<Vec<u8>>,
    pub(crate) initial_metadata: Option<Pairs>,
    pub(crate) trailing_metadata: Option<Pairs>,
}

/// Per-VM state behind the host functions.
#[derive(Debug)]
pub struct HostState {
    pub(crate) worker: usize,
    pub(crate) info: Arc<PluginInfo>,
    pub(crate) world: World,
    pub(crate) guest: Option<Guest>,
    pub(crate) root_context: u32,
    /// The context the host is calling into.
    pub(crate) active: u32,
    /// The context the guest chose with `proxy_set_effective_context`.
    pub(crate) effective: Option<u32>,
    pub(crate) streams: BTreeMap<u32, Stream>,
    /// The configuration buffer readable now, during `proxy_on_vm_start`
    /// or `proxy_on_configure`.
    pub(crate) configuring: Option<crate::abi::BufferType>,
    pub(crate) tick_period_ms: u32,
    pub(crate) next_tick_ns: Option<u64>,
    pub(crate) callouts: BTreeMap<u32, PendingCallout>,
    pub(crate) next_token: u32,
    pub(crate) call_response: Option<CallResponse>,
    /// The root context's gRPC calls and streams.
    pub(crate) grpc: crate::grpc::Calls,
    /// What a gRPC callback can read while it runs.
    pub(crate) grpc_received: GrpcReceived,
    /// `proxy_get_status`: the last gRPC close's code, kept afterwards,
    /// and its message, only while `proxy_on_grpc_close` runs.
    pub(crate) grpc_status: (u32, Option<Vec<u8>>),
    pub(crate) logs: Vec<LogLine>,
    pub(crate) transcript: Transcript,
    pub(crate) random_state: u64,
    pub(crate) done_called: bool,
    /// The properties contexts declared with the `declare_property`
    /// foreign function.
    pub(crate) declared: crate::imports::Declarations,
}

impl HostState {
    pub(crate) fn new(
        worker: usize,
        info: Arc<PluginInfo>,
        world: World,
        record: bool,
    ) -> HostState {
        HostState {
            worker,
            info,
            world,
            guest: None,
            root_context: 1,
            active: 0,
            effective: None,
            streams: BTreeMap::new(),
            configuring: None,
            tick_period_ms: 0,
            next_tick_ns: None,
            callouts: BTreeMap::new(),
            next_token: 1,
            call_response: None,
            grpc: crate::grpc::Calls::default(),
            grpc_received: GrpcReceived::default(),
            grpc_status: (0, None),
            logs: Vec::new(),
            transcript: Transcript::new(record),
            random_state: 0x9e37_79b9_7f4a_7c15 ^ (worker as u64),
            done_called: false,
            declared: crate::imports::Declarations::default(),
        }
    }

    /// The context host calls act on: the effective context if the guest
    /// set one that still exists, otherwise the one being called.
    pub(crate) fn context(&self) -> u32 {
        match self.effective {
            Some(id) if id == self.root_context || self.streams.contains_key(&id) => id,
            _ => self.active,
        }
    }

    /// The stream the current context carries, HTTP or network.
    pub(crate) fn stream(&self) -> Option<&Stream> {
        self.streams.get(&self.context())
    }

    /// Whether the current context is a network (TCP) connection.
    pub(crate) fn in_network(&self) -> bool {
        self.stream().is_some_and(|stream| stream.network.is_some())
    }

    pub(crate) fn stream_mut(&mut self) -> Option<&mut Stream> {
        let id = self.context();
        self.streams.get_mut(&id)
    }

    /// Records a host call in the transcript.
    pub(crate) fn note(&mut self, call: impl FnOnce() -> String, result: impl FnOnce() -> String) {
        if self.transcript.is_enabled() {
            self.transcript.push(Entry::HostCall {
                call: call(),
                result: result(),
            });
        }
    }

    pub(crate) fn log(&mut self, level: LogLevel, message: String) {
        if level >= self.info.log_level {
            self.logs.push(LogLine {
                level: level.name().to_owned(),
                message,
            });
        }
    }

    pub(crate) fn now_ns(&self) -> u64 {
        self.world.now_ns()
    }

    /// Reads a property: the test's overrides first, then what the filter
    /// set, then the profile's computed value.
    pub(crate) fn property(&self, path: &[u8]) -> Result<Vec<u8>, crate::abi::Status> {
        let parts: Vec<&[u8]> = path.split(|&byte| byte == 0).collect();
        let dotted = parts
            .iter()
            .map(|part| String::from_utf8_lossy(part))
            .collect::<Vec<_>>()
            .join(".");
        let stream = self.stream();
        if let Some(stream) = stream {
            if let Some(value) = stream.overrides.get(&dotted) {
                return Ok(value.clone());
            }
            if let Some(network) = &stream.network {
                return self.network_property(stream, network, &parts);
            }
            if let Some(value) = stream.filter_state.get(&dotted) {
                return Ok(value.clone());
            }
        }
        let view = PropertyView {
            plugin_name: &self.info.name,
            root_id: &self.info.root_id,
            vm_id: &self.info.vm_id,
            stream: stream.map(|stream| StreamView {
                request_headers: &stream.request_headers,
                response_headers: stream.response_headers.as_ref(),
                response_trailers: stream.response_trailers.as_ref(),
                connection: &stream.connection,
                start_ns: stream.start_ns,
                response_details: stream.response_details.as_deref(),
                progress: &stream.progress,
                filter_state: &stream.filter_state,
            }),
        };
        self.info.profile.property(&view, &parts)
    }

    /// A property of a network connection, as Envoy computes it there. What
    /// the filter set with `proxy_set_property` does not read back in
    /// Envoy's network filter, and does not here.
    fn network_property(
        &self,
        stream: &Stream,
        network: &Network,
        parts: &[&[u8]],
    ) -> Result<Vec<u8>, crate::abi::Status> {
        let view = crate::profile::NetworkView {
            plugin_name: &self.info.name,
            root_id: &self.info.root_id,
            vm_id: &self.info.vm_id,
            connection: &stream.connection,
            start_ns: stream.start_ns,
            upstream_address: network.upstream_address.as_deref(),
        };
        self.info.profile.network_property(&view, parts)
    }

    /// A deterministic stream of random bytes, so runs repeat exactly.
    pub(crate) fn random_bytes(&mut self, len: usize) -> Vec<u8> {
        let mut out = Vec::with_capacity(len);
        while out.len() < len {
            self.random_state ^= self.random_state << 13;
            self.random_state ^= self.random_state >> 7;
            self.random_state ^= self.random_state << 17;
            out.extend_from_slice(&self.random_state.to_le_bytes());
        }
        out.truncate(len);
        out
    }
}
