//! A plugin: a compiled filter configured and running in the VMs Envoy
//! starts (one per worker, the main thread's, and a configuration canary
//! that is gone once it has configured), with the streams sent through
//! the workers' VMs.
//!
//! [`Plugin::send`] takes a [`Request`] through the whole stream: request
//! headers, body and trailers, the upstream, the response, and the end of
//! the stream. When the filter pauses the stream, the harness delivers
//! what could resume it (callout answers, ticks, queue notifications),
//! jumping the clock to the next timer, until the filter resumes it,
//! answers it, or nothing is left that could.

pub mod connection;

use std::collections::{BTreeMap, VecDeque};
use std::sync::Arc;

use crate::abi::{Action, LogLevel, Pairs, StreamType};
use crate::engine::Filter;
use crate::error::{Error, ErrorKind, Result};
use crate::exchange::Exchange;
use crate::grpc::GrpcAnswer;
use crate::host::{CallResponse, CalloutAnswer, PluginInfo, Stream};
use crate::outcome::{Disposition, Forwarded, LogLine, Outcome};
use crate::profile::{Progress, encode_override};
use crate::request::{Headers, Protocol, Request, UpstreamFailure};
use crate::transcript::{Entry, Transcript};
use crate::vm::Vm;
use crate::world::World;

/// What happens to requests once the filter's VM has failed. Envoy's
/// `failure_policy`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum FailurePolicy {
    /// Answer `503` with details `wasm_fail_stream`. Envoy's default.
    #[default]
    FailClosed,
    /// Let requests through as if the filter were absent.
    FailOpen,
    /// Answer the failing request as [`FailurePolicy::FailClosed`] does,
    /// then start a fresh VM for the worker's next request. Envoy's
    /// `FAIL_RELOAD`, used by `examples/envoy/envoy.yaml`.
    FailReload,
}

/// Identifies an open stream: the worker (VM) and the context id there.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct StreamId {
    /// The worker's index.
    pub worker: usize,
    /// The stream's context id in that worker's VM.
    pub context: u32,
}

/// The clock the plugin starts at: 2026-01-01T00:00:00Z.
pub const DEFAULT_START_NS: u64 = 1_767_225_600 * 1_000_000_000;

/// The most steps one stream may take, and the most events one
/// [`Plugin::advance`] may deliver: a filter that loops on timers cannot
/// hang a test.
const MAX_STEPS: usize = 100_000;

/// How long a paused stream may wait, in the plugin's time, before the
/// harness calls it stalled: Envoy's default stream idle timeout.
const STALL_AFTER_NS: u64 = 300 * 1_000_000_000;

/// Configures a plugin before its VMs start.
#[derive(Debug)]
pub struct PluginBuilder {
    filter: Filter,
    info: PluginInfo,
    workers: usize,
    policy: FailurePolicy,
    record: bool,
    start_ns: u64,
}

impl Filter {
    /// Starts configuring a plugin running this filter.
    pub fn plugin(&self) -> PluginBuilder {
        PluginBuilder {
            filter: self.clone(),
            info: PluginInfo::default(),
            workers: 1,
            policy: FailurePolicy::default(),
            record: true,
            start_ns: DEFAULT_START_NS,
        }
    }
}

impl PluginBuilder {
    /// The plugin configuration. Defaults to empty.
    pub fn configuration(mut self, configuration: impl Into<Vec<u8>>) -> PluginBuilder {
        self.info.configuration = configuration.into();
        self
    }

    /// The VM configuration. Defaults to empty.
    pub fn vm_configuration(mut self, configuration: impl Into<Vec<u8>>) -> PluginBuilder {
        self.info.vm_configuration = configuration.into();
        self
    }

    /// `plugin_name`. Defaults to `plugin`.
    pub fn name(mut self, name: &str) -> PluginBuilder {
        self.info.name = name.into();
        self
    }

    /// `plugin_root_id`. Defaults to empty.
    pub fn root_id(mut self, root_id: &str) -> PluginBuilder {
        self.info.root_id = root_id.into();
        self
    }

    /// `plugin_vm_id`, which also scopes shared queues. Defaults to empty.
    pub fn vm_id(mut self, vm_id: &str) -> PluginBuilder {
        self.info.vm_id = vm_id.into();
        self
    }

    /// The number of workers, each with its own VM. Defaults to 1.
    pub fn workers(mut self, workers: usize) -> PluginBuilder {
        self.workers = workers.max(1);
        self
    }

    /// The failure policy. Defaults to failing closed.
    pub fn failure_policy(mut self, policy: FailurePolicy) -> PluginBuilder {
        self.policy = policy;
        self
    }

    /// The host's log level; lower lines are dropped. Defaults to `info`.
    pub fn log_level(mut self, level: LogLevel) -> PluginBuilder {
        self.info.log_level = level;
        self
    }

    /// The host behaviour to imitate. Defaults to
    /// [`Profile::envoy`](crate::profile::Profile::envoy).
    pub fn profile(mut self, profile: crate::profile::Profile) -> PluginBuilder {
        self.info.profile = profile;
        self
    }

    /// An environment variable the VM sees. Defaults to none.
    pub fn env(mut self, name: &str, value: &str) -> PluginBuilder {
        self.info.environment.push((name.into(), value.into()));
        self
    }

    /// Whether to record transcripts. Defaults to on; benchmarks turn it
    /// off.
    pub fn transcript(mut self, record: bool) -> PluginBuilder {
        self.record = record;
        self
    }

    /// The clock's starting point, in nanoseconds since the epoch.
    /// Defaults to [`DEFAULT_START_NS`].
    pub fn start_time_ns(mut self, now_ns: u64) -> PluginBuilder {
        self.start_ns = now_ns;
        self
    }

    /// Starts the VMs as Envoy starts them and configures their root
    /// contexts: first a configuration canary (a VM started and configured
    /// on the main thread to check the configuration, then discarded:
    /// its logs and its effects on shared data, queues and metrics remain,
    /// its timers and callouts die with it), then the main thread's VM
    /// (which ticks and receives queue notifications but never serves a
    /// request), then one VM per worker. In transcripts, VMs `0` to
    /// `workers - 1` are the workers', VM `workers` the main thread's and
    /// VM `workers + 1` the canary.
    ///
    /// # Errors
    ///
    /// Instantiation fails, the filter traps while starting, or it rejects
    /// its VM or plugin configuration (Envoy then refuses the plugin).
    pub fn start(self) -> Result<Plugin> {
        let world = World::new(self.start_ns);
        let info = Arc::new(self.info);
        let mut vms = Vec::with_capacity(self.workers + 1);
        let mut logs = Vec::new();
        let mut transcript = Transcript::new(self.record);
        let start = |index: usize, logs: &mut Vec<LogLine>, transcript: &mut Transcript| {
            let mut vm = Vm::start(
                &self.filter,
                info.clone(),
                world.clone(),
                index,
                self.record,
            )?;
            logs.append(&mut vm.state_mut().logs);
            transcript.append(vm.state_mut().transcript.take());
            Ok::<Vm, Error>(vm)
        };
        drop(start(self.workers + 1, &mut logs, &mut transcript)?);
        let main = start(self.workers, &mut logs, &mut transcript)?;
        for worker in 0..self.workers {
            vms.push(start(worker, &mut logs, &mut transcript)?);
        }
        vms.push(main);
        Ok(Plugin {
            filter: self.filter,
            record: self.record,
            info,
            world,
            vms,
            workers: self.workers,
            policy: self.policy,
            next_worker: 0,
            runs: BTreeMap::new(),
            logs,
            transcript,
            links: connection::Links::default(),
        })
    }
}

/// Where a stream is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Phase {
    Request,
    Upstream,
    Response,
    Complete,
}

/// What reaches the filter in one direction, in order.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Event {
    Headers,
    Data(Vec<u8>, bool),
    Trailers(Pairs),
    /// The upstream closed the connection after its response started: the
    /// stream is reset and ends.
    UpstreamReset,
}

/// Where a stream waiting for its upstream stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum UpstreamWait {
    /// The upstream's answer is due now.
    Due,
    /// The clock moved to the answer; what fell due on the way was
    /// delivered and may have answered the stream.
    Waited,
    /// The answer lies ahead and the harness may not move the clock.
    Blocked,
}

#[derive(Debug)]
struct Run {
    request: Request,
    phase: Phase,
    events: VecDeque<Event>,
    /// Iteration stopped: nothing more reaches the filter or goes on until
    /// the filter resumes this direction.
    waiting: bool,
    /// The headers were paused, so Envoy holds the body back and hands it
    /// over in one piece on resume (a body sent at once, not in chunks).
    held: bool,
    /// The last body callback paused: later chunks add to the buffer.
    buffering: bool,
    /// The body that went on past the filter, per direction.
    passed: Vec<u8>,
    forwarded: Option<Forwarded>,
    /// When the upstream answers (or fails), in the plugin's clock, once
    /// the whole request has passed the filter.
    upstream_due: Option<u64>,
    disposition: Disposition,
    reply_sent: bool,
    logs: Vec<LogLine>,
    transcript: Transcript,
    finished: Option<Outcome>,
}

/// A running plugin.
pub struct Plugin {
    filter: Filter,
    record: bool,
    info: Arc<PluginInfo>,
    world: World,
    /// The workers' VMs, then the main thread's.
    vms: Vec<Vm>,
    workers: usize,
    policy: FailurePolicy,
    next_worker: usize,
    runs: BTreeMap<StreamId, Run>,
    logs: Vec<LogLine>,
    transcript: Transcript,
    /// Open network connections.
    links: connection::Links,
}

impl std::fmt::Debug for Plugin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Plugin")
            .field("name", &self.info.name)
            .field("workers", &self.workers)
            .field("open_streams", &self.runs.len())
            .finish_non_exhaustive()
    }
}

/// Whether a callback's answer stops iteration; a trap counts as no
/// answer, and the failure is picked up before the next step.
fn paused(result: std::result::Result<i32, crate::vm::Trap>) -> bool {
    result.is_ok_and(|code| Action::from_code(code) == Action::Pause)
}

/// Whether the body in `direction` was sent in chunks.
fn framed(run: &Run, direction: StreamType) -> bool {
    let chunks = if direction == StreamType::Request {
        &run.request.body_chunks
    } else {
        &run.request.upstream.body_chunks
    };
    !chunks.is_empty()
}

/// Whether a headers callback's answer stops iteration: as [`paused`],
/// except that `2` (`ContinueAndEndStream`) continues, as Envoy maps it.
fn headers_paused(result: std::result::Result<i32, crate::vm::Trap>) -> bool {
    result.is_ok_and(|code| code != 2 && Action::from_code(code) == Action::Pause)
}

/// The request's events: headers, then the codec's body frames, then
/// trailers if the codec delivers them.
fn request_events(profile: &crate::profile::Profile, request: &Request) -> VecDeque<Event> {
    let delivered = profile.delivers_request_trailers(request.protocol);
    let trailers = delivered && !request.trailers.0.is_empty();
    let mut events = VecDeque::from([Event::Headers]);
    events.extend(body_events(
        profile,
        request.protocol,
        request.body.as_deref(),
        &request.body_chunks,
        trailers,
    ));
    if trailers {
        events.push_back(Event::Trailers(to_pairs(&request.trailers)));
    }
    events
}

/// A body's frames: the codec's for a body sent at once, or one per
/// chunk of a body sent in pieces, then the empty frame that ends the
/// stream unless trailers do.
fn body_events(
    profile: &crate::profile::Profile,
    protocol: Protocol,
    body: Option<&str>,
    chunks: &[String],
    trailers: bool,
) -> Vec<Event> {
    if chunks.is_empty() {
        let frames = profile.request_body_frames(protocol, body.map(str::as_bytes), trailers);
        return frames
            .into_iter()
            .map(|(chunk, eos)| Event::Data(chunk, eos))
            .collect();
    }
    let mut events: Vec<Event> = chunks
        .iter()
        .filter(|chunk| !chunk.is_empty())
        .map(|chunk| Event::Data(chunk.clone().into_bytes(), false))
        .collect();
    match (protocol, events.last_mut()) {
        // HTTP/2's last data frame ends the stream unless trailers follow.
        (Protocol::Http2, Some(Event::Data(_, eos))) => *eos = !trailers,
        _ if !trailers => events.push(Event::Data(Vec::new(), true)),
        _ => {}
    }
    events
}

fn to_pairs(headers: &Headers) -> Pairs {
    headers
        .0
        .iter()
        .map(|(name, value)| {
            (
                name.to_ascii_lowercase().into_bytes(),
                value.as_bytes().to_vec(),
            )
        })
        .collect()
}

fn to_headers(pairs: &Pairs) -> Headers {
    let text = |bytes: &[u8]| String::from_utf8_lossy(bytes).into_owned();
    Headers(
        pairs
            .iter()
            .map(|(name, value)| (text(name), text(value)))
            .collect(),
    )
}

fn without_pseudo(pairs: &Pairs) -> Headers {
    let kept: Pairs = pairs
        .iter()
        .filter(|(name, _)| name.first() != Some(&b':'))
        .cloned()
        .collect();
    to_headers(&kept)
}

impl Plugin {
    /// The state the plugin's VMs share: clock, shared data, metrics,
    /// scripted upstreams.
    pub fn world(&self) -> &World {
        &self.world
    }

    /// Scripts the answer to callouts to `cluster`, immediately.
    pub fn upstream(&mut self, cluster: &str, answer: CalloutAnswer) -> &mut Plugin {
        self.world.script(cluster, answer, 0);
        self
    }

    /// Scripts the answer to callouts to `cluster`, after `delay_ms`.
    pub fn upstream_after(
        &mut self,
        cluster: &str,
        answer: CalloutAnswer,
        delay_ms: u64,
    ) -> &mut Plugin {
        self.world.script(cluster, answer, delay_ms);
        self
    }

    /// Scripts what the gRPC upstream `cluster` does with calls and
    /// streams to `method` (`service/method`, such as `probe.Echo/Say`, or
    /// empty for every other method). A cluster never scripted is unknown:
    /// calls to it get `ParseFailure`, as in Envoy.
    pub fn grpc_upstream(
        &mut self,
        cluster: &str,
        method: &str,
        answer: GrpcAnswer,
    ) -> &mut Plugin {
        self.world.script_grpc(cluster, method, answer);
        self
    }

    /// The number of workers.
    pub fn workers(&self) -> usize {
        self.workers
    }

    /// Why the worker's VM failed, if it did.
    pub fn failure(&self, worker: usize) -> Option<&str> {
        self.vms.get(worker).and_then(|vm| vm.failed.as_deref())
    }

    /// Log lines emitted outside any stream (while starting, on ticks
    /// during [`Plugin::advance`]), taken from the plugin.
    pub fn take_logs(&mut self) -> Vec<LogLine> {
        self.collect_background();
        std::mem::take(&mut self.logs)
    }

    /// The transcript of calls outside any stream, taken from the plugin.
    pub fn take_transcript(&mut self) -> Transcript {
        self.collect_background();
        self.transcript.take()
    }

    fn collect_background(&mut self) {
        for vm in &mut self.vms {
            self.logs.append(&mut vm.state_mut().logs);
            self.transcript.append(vm.state_mut().transcript.take());
        }
    }

    /// Sends a request on the next worker, round-robin, and runs its
    /// stream to the end.
    ///
    /// # Errors
    ///
    /// The request is malformed (a bad time or property override).
    pub fn send(&mut self, request: Request) -> Result<Exchange> {
        let worker = self.next_worker;
        self.next_worker = (self.next_worker + 1) % self.workers;
        self.send_on(worker, request)
    }

    /// Sends a request on the given worker.
    ///
    /// # Errors
    ///
    /// As [`Plugin::send`], or the worker does not exist.
    pub fn send_on(&mut self, worker: usize, request: Request) -> Result<Exchange> {
        let id = self.begin_on(worker, request)?;
        self.finish(id)
    }

    /// Opens a stream on the next worker and runs it until it completes or
    /// must wait, so several streams can be open at once.
    ///
    /// # Errors
    ///
    /// As [`Plugin::send`].
    pub fn begin(&mut self, request: Request) -> Result<StreamId> {
        let worker = self.next_worker;
        self.next_worker = (self.next_worker + 1) % self.workers;
        self.begin_on(worker, request)
    }

    /// Opens a stream on the given worker.
    ///
    /// # Errors
    ///
    /// As [`Plugin::send_on`].
    pub fn begin_on(&mut self, worker: usize, request: Request) -> Result<StreamId> {
        if worker >= self.workers {
            return Err(Error::invalid(format!("no worker `{worker}`")));
        }
        self.collect_background();
        self.reload_if_failed(worker)?;
        if let Some(time) = &request.time {
            self.world
                .set_now_ns(time.unix_nanos().map_err(Error::invalid)?);
        }
        let mut overrides = BTreeMap::new();
        for (path, value) in &request.properties {
            overrides.insert(
                path.clone(),
                encode_override(path, value).map_err(Error::invalid)?,
            );
        }
        let vm = self
            .vms
            .get_mut(worker)
            .ok_or_else(|| Error::invalid(format!("no worker `{worker}`")))?;
        let context = vm.next_context();
        let id = StreamId { worker, context };
        let profile = &self.info.profile;
        let request_headers = profile.request_headers(&request, context);
        let chunked = profile.upstream_chunked(&request, &request_headers);
        let stream = Stream {
            request_headers,
            connection: request.connection.clone(),
            start_ns: self.world.now_ns(),
            overrides,
            upstream: request.upstream.clone(),
            chunked,
            progress: Progress {
                // HTTP/2 has no `connection` header.
                client_closes: request.protocol == Protocol::Http1
                    && request
                        .headers
                        .get("connection")
                        .is_some_and(|value| value.eq_ignore_ascii_case("close")),
                protocol: request.protocol,
                ..Progress::default()
            },
            ..Stream::default()
        };
        let record = vm.state().transcript.is_enabled();
        let events = request_events(profile, &request);
        let mut run = Run {
            request,
            phase: Phase::Request,
            events,
            waiting: false,
            held: false,
            buffering: false,
            passed: Vec::new(),
            forwarded: None,
            upstream_due: None,
            disposition: Disposition::Forwarded,
            reply_sent: false,
            logs: Vec::new(),
            transcript: Transcript::new(record),
            finished: None,
        };
        if vm.failed.is_none() {
            vm.state_mut().streams.insert(context, stream);
            let _ = vm.context_create(context);
        } else {
            vm.state_mut().streams.insert(context, stream);
        }
        run.finished = self.drive(id, &mut run, false);
        self.runs.insert(id, run);
        Ok(id)
    }

    /// Runs an open stream to its end, delivering callout answers, ticks
    /// and queue notifications while it waits.
    ///
    /// # Errors
    ///
    /// No stream `id` is open.
    pub fn finish(&mut self, id: StreamId) -> Result<Exchange> {
        let mut run = self
            .runs
            .remove(&id)
            .ok_or(ErrorKind::UnknownStream(id.context))?;
        let outcome = match run.finished.take() {
            Some(outcome) => outcome,
            None => self
                .drive(id, &mut run, true)
                .unwrap_or_else(|| self.stalled(id, &mut run)),
        };
        Ok(Exchange {
            outcome,
            transcript: run.transcript,
        })
    }

    /// Moves the clock forward by `millis`, firing ticks, answering
    /// callouts and delivering queue notifications that fall due on the
    /// way, in time order. At most 100,000 events are delivered (a tick
    /// every millisecond for 100 seconds); past that the clock jumps to
    /// the target and later timers fire from there.
    pub fn advance(&mut self, millis: u64) {
        let target = self
            .world
            .now_ns()
            .saturating_add(millis.saturating_mul(1_000_000));
        for _ in 0..MAX_STEPS {
            if !self.pump(target) {
                break;
            }
            // A tick may have resumed a network connection.
            self.collect_background();
            self.settle_links();
        }
        self.world.set_now_ns(target.max(self.world.now_ns()));
        self.collect_background();
    }

    /// Under [`FailurePolicy::FailReload`], replaces a failed VM with a
    /// fresh one before the worker's next request.
    fn reload_if_failed(&mut self, worker: usize) -> Result<()> {
        let failed = self.vms.get(worker).is_some_and(|vm| vm.failed.is_some());
        if !failed || self.policy != FailurePolicy::FailReload {
            return Ok(());
        }
        let mut vm = Vm::start(
            &self.filter,
            self.info.clone(),
            self.world.clone(),
            worker,
            self.record,
        )?;
        self.logs.append(&mut vm.state_mut().logs);
        self.transcript.append(vm.state_mut().transcript.take());
        if let Some(slot) = self.vms.get_mut(worker) {
            *slot = vm;
        }
        Ok(())
    }

    fn collect(&mut self, run: &mut Run) {
        for vm in &mut self.vms {
            run.logs.append(&mut vm.state_mut().logs);
            run.transcript.append(vm.state_mut().transcript.take());
        }
    }

    /// The stream's VM. Ids are only made by `begin_on` for existing
    /// workers, and workers are never removed, so this is always `Some`;
    /// callers treat `None` as a stream that is gone.
    fn vm(&mut self, id: StreamId) -> Option<&mut Vm> {
        self.vms.get_mut(id.worker)
    }

    fn stream(&mut self, id: StreamId) -> Option<&mut Stream> {
        self.vm(id)?.state_mut().streams.get_mut(&id.context)
    }

    /// Takes the stream's state out of its VM; a default one if it is gone.
    fn take_stream(&mut self, id: StreamId) -> Stream {
        self.vm(id)
            .and_then(|vm| vm.state_mut().streams.remove(&id.context))
            .unwrap_or_default()
    }

    /// Ends the stream's context in the filter, if its VM still runs.
    fn finish_context(&mut self, id: StreamId) {
        let now = self.world.now_ns();
        if let Some(stream) = self.stream(id) {
            stream.progress.logging = true;
            stream.progress.end_ns = Some(now);
        }
        if let Some(vm) = self.vm(id) {
            let _ = vm.finish_context(id.context);
        }
    }

    /// Drives a stream; `None` if it must wait and `pump` is off, or if it
    /// stalled.
    fn drive(&mut self, id: StreamId, run: &mut Run, pump: bool) -> Option<Outcome> {
        let waiting_since = self.world.now_ns();
        for _ in 0..MAX_STEPS {
            self.collect(run);
            if self.vm(id).is_none_or(|vm| vm.failed.is_some()) {
                return Some(self.fail(id, run));
            }
            if let Some(outcome) = self.apply_stream_requests(id, run) {
                return Some(outcome);
            }
            let direction = match run.phase {
                Phase::Request => StreamType::Request,
                Phase::Response => StreamType::Response,
                Phase::Upstream => {
                    match self.wait_for_upstream(id, run, pump) {
                        UpstreamWait::Due => {
                            self.forward(id, run);
                            self.deliver_due();
                        }
                        UpstreamWait::Waited => {}
                        UpstreamWait::Blocked => return None,
                    }
                    continue;
                }
                Phase::Complete => return Some(self.complete(id, run)),
            };
            if run.waiting && run.events.contains(&Event::UpstreamReset) {
                // The upstream's reset does not wait for the filter.
                self.upstream_reset(id, run);
                continue;
            }
            if run.waiting {
                if self.take_resume(id, direction) {
                    self.release(id, run, direction);
                    continue;
                }
                let horizon = waiting_since.saturating_add(STALL_AFTER_NS);
                if !pump || !self.pump(horizon) {
                    return None;
                }
                continue;
            }
            match run.events.pop_front() {
                Some(event) => {
                    // A body sent in chunks leaves time after the headers
                    // and between chunks for what is already due.
                    let pause_after = !matches!(event, Event::Data(_, true) | Event::Trailers(_))
                        && framed(run, direction);
                    self.deliver(id, run, direction, event);
                    if pause_after && !run.waiting {
                        self.deliver_due();
                    }
                }
                None if direction == StreamType::Request => run.phase = Phase::Upstream,
                None => run.phase = Phase::Complete,
            }
        }
        None
    }

    /// Whether the upstream's answer (or failure) is due. While it is not,
    /// and the harness may move the clock, delivers what falls due before
    /// it (which may answer the stream another way) and moves the clock to
    /// it.
    fn wait_for_upstream(&mut self, id: StreamId, run: &mut Run, pump: bool) -> UpstreamWait {
        let now = self.world.now_ns();
        let due = match run.upstream_due {
            Some(due) => due,
            None => {
                let info = Arc::clone(&self.info);
                let profile = &info.profile;
                let delay_ms = self.stream(id).map_or(0, |stream| {
                    profile
                        .upstream_plan(&stream.upstream, &stream.request_headers)
                        .0
                });
                let due = now.saturating_add(delay_ms.saturating_mul(1_000_000));
                *run.upstream_due.insert(due)
            }
        };
        if now >= due {
            return UpstreamWait::Due;
        }
        if !pump {
            return UpstreamWait::Blocked;
        }
        for _ in 0..MAX_STEPS {
            if !self.pump(due) {
                break;
            }
        }
        if self.world.now_ns() < due {
            self.world.set_now_ns(due);
        }
        UpstreamWait::Waited
    }

    /// While the request travels to the upstream and back, Envoy's event
    /// loop runs: what is already due (callout answers without delay,
    /// queue notifications, ticks whose time has come) is delivered before
    /// the response. Events that arrive together from the client, or from
    /// the upstream, are handed to the filter without such a pause.
    fn deliver_due(&mut self) {
        let now = self.world.now_ns();
        for _ in 0..MAX_STEPS {
            if !self.pump(now) {
                break;
            }
        }
    }

    /// Whether the filter resumed `direction`; clears the request.
    fn take_resume(&mut self, id: StreamId, direction: StreamType) -> bool {
        let Some(stream) = self.stream(id) else {
            return false;
        };
        let resumed = stream.resume == Some(direction);
        stream.resume = None;
        resumed
    }

    /// The filter resumed: buffered body goes on, and a body held back
    /// behind paused headers arrives in one piece.
    fn release(&mut self, id: StreamId, run: &mut Run, direction: StreamType) {
        run.waiting = false;
        self.headers_visible(id, direction, false);
        if run.buffering {
            let buffer = self
                .body_mut(id, direction)
                .map(std::mem::take)
                .unwrap_or_default();
            run.passed.extend(buffer);
            run.buffering = false;
        }
        if run.held {
            run.held = false;
            let mut data = Vec::new();
            let mut end = None;
            while let Some(Event::Data(chunk, eos)) = run.events.front() {
                data.extend_from_slice(chunk);
                end = Some(*eos);
                run.events.pop_front();
            }
            if let Some(eos) = end {
                run.events.push_front(Event::Data(data, eos));
            }
        }
    }

    /// Envoy's filter holds a header map only while its headers callback
    /// runs, or while it stays stopped there.
    fn headers_visible(&mut self, id: StreamId, direction: StreamType, visible: bool) {
        if let Some(stream) = self.stream(id) {
            match direction {
                StreamType::Response => stream.progress.response_headers_visible = visible,
                _ => stream.progress.request_headers_visible = visible,
            }
        }
    }

    /// Records the response body bytes that went on to the client.
    fn note_sent(&mut self, id: StreamId, run: &Run) {
        let sent = run.passed.len();
        if let Some(stream) = self.stream(id).filter(|_| run.phase != Phase::Request) {
            stream.progress.sent = sent;
        }
    }

    fn body_mut(&mut self, id: StreamId, direction: StreamType) -> Option<&mut Vec<u8>> {
        let stream = self.stream(id)?;
        Some(match direction {
            StreamType::Response => &mut stream.response_body,
            _ => &mut stream.request_body,
        })
    }

    /// Hands one event to the filter and applies its answer.
    fn deliver(&mut self, id: StreamId, run: &mut Run, direction: StreamType, event: Event) {
        let ctx = id.context;
        let last = run.events.is_empty();
        let request = direction == StreamType::Request;
        if let Some(stream) = self.stream(id) {
            stream.resume = None;
        }
        match event {
            Event::Headers => {
                let count = self.stream(id).map_or(0, |s| {
                    if request {
                        s.request_headers.len()
                    } else {
                        s.response_headers.as_ref().map_or(0, Vec::len)
                    }
                });
                self.headers_visible(id, direction, true);
                let Some(vm) = self.vm(id) else { return };
                let result = if request {
                    vm.request_headers(ctx, count, last)
                } else {
                    vm.response_headers(ctx, count, last)
                };
                if headers_paused(result) {
                    run.waiting = true;
                    // A body sent in pauses arrives after the resume, frame
                    // by frame; one sent at once waits behind the headers.
                    run.held = !framed(run, direction);
                } else {
                    self.headers_visible(id, direction, false);
                }
            }
            Event::Data(chunk, eos) => {
                let buffering = run.buffering;
                if let Some(stream) = self.stream(id).filter(|_| request) {
                    stream.progress.received += chunk.len();
                }
                let size = match self.body_mut(id, direction) {
                    Some(buffer) => {
                        if !buffering {
                            buffer.clear();
                        }
                        buffer.extend_from_slice(&chunk);
                        buffer.len()
                    }
                    None => 0,
                };
                let Some(vm) = self.vm(id) else { return };
                let result = if request {
                    vm.request_body(ctx, size, eos)
                } else {
                    vm.response_body(ctx, size, eos)
                };
                if paused(result) {
                    run.buffering = true;
                    run.waiting = eos;
                } else {
                    let buffer = self
                        .body_mut(id, direction)
                        .map(std::mem::take)
                        .unwrap_or_default();
                    run.passed.extend(buffer);
                    run.buffering = false;
                    self.note_sent(id, run);
                }
            }
            Event::UpstreamReset => self.upstream_reset(id, run),
            Event::Trailers(pairs) => {
                let count = pairs.len();
                if let Some(stream) = self.stream(id) {
                    if request {
                        stream.request_trailers = Some(pairs);
                    } else {
                        stream.response_trailers = Some(pairs);
                    }
                }
                let Some(vm) = self.vm(id) else { return };
                let result = if request {
                    vm.request_trailers(ctx, count)
                } else {
                    vm.response_trailers(ctx, count)
                };
                if paused(result) {
                    run.waiting = true;
                } else if run.buffering {
                    let buffer = self
                        .body_mut(id, direction)
                        .map(std::mem::take)
                        .unwrap_or_default();
                    run.passed.extend(buffer);
                    run.buffering = false;
                }
            }
        }
    }

    /// Acts on what the filter asked of the stream: a local response or a
    /// reset.
    fn apply_stream_requests(&mut self, id: StreamId, run: &mut Run) -> Option<Outcome> {
        let info = Arc::clone(&self.info);
        let profile = &info.profile;
        let stream = self.stream(id)?;
        if stream.close {
            stream.close = false;
            return Some(self.reset(id, run));
        }
        let reply = stream.local_reply.take()?;
        if run.reply_sent {
            return None;
        }
        run.reply_sent = true;
        run.disposition = Disposition::LocalReply;
        stream.response_headers =
            Some(profile.local_reply_headers(reply.status, &reply.body, &reply.headers));
        stream.response_body.clear();
        stream.response_trailers = None;
        stream.response_details = Some(reply.details);
        stream.resume = None;
        run.waiting = false;
        run.held = false;
        run.buffering = false;
        run.passed.clear();
        if run.phase == Phase::Response {
            // The response is already on its way through the filter: Envoy
            // replaces it without running the filter again.
            run.passed = reply.body;
            run.events.clear();
            run.phase = Phase::Complete;
        } else {
            run.events = VecDeque::from([Event::Headers]);
            if !reply.body.is_empty() {
                run.events.push_back(Event::Data(reply.body, true));
            }
            run.phase = Phase::Response;
        }
        None
    }

    /// The request reaches the upstream, which answers with the scripted
    /// response, or fails as scripted and the router answers for it.
    fn forward(&mut self, id: StreamId, run: &mut Run) {
        let info = Arc::clone(&self.info);
        let profile = &info.profile;
        let body = std::mem::take(&mut run.passed);
        run.phase = Phase::Response;
        run.buffering = false;
        run.held = false;
        let Some(stream) = self.stream(id) else {
            return;
        };
        stream.progress.forwarded = true;
        let forwarded = Forwarded {
            headers: to_headers(&profile.upstream_request_headers(
                &stream.request_headers,
                stream.chunked,
                &body,
            )),
            body: String::from_utf8_lossy(&body).into_owned(),
            trailers: stream
                .request_trailers
                .as_ref()
                .map(to_headers)
                .unwrap_or_default(),
        };
        let upstream = stream.upstream.clone();
        let (_, failure) = profile.upstream_plan(&upstream, &stream.request_headers);
        stream.response_body.clear();
        stream.response_trailers = None;
        if run.transcript.is_enabled() {
            run.transcript.push(Entry::Note(match failure {
                Some(UpstreamFailure::Refused) => "upstream refuses the connection".to_owned(),
                _ => format!(
                    "upstream receives {} {}",
                    run.request.method,
                    forwarded.headers.get(":path").unwrap_or_default()
                ),
            }));
        }
        if failure != Some(UpstreamFailure::Refused) {
            run.forwarded = Some(forwarded);
        }
        if let Some(reply) = failure.and_then(|failure| profile.router_reply(failure)) {
            // The router answers for the upstream; its reply passes through
            // the filter's response callbacks.
            stream.progress.upstream_failure = failure;
            stream.response_headers =
                Some(profile.local_reply_headers(reply.status, reply.body.as_bytes(), &Vec::new()));
            stream.response_details = Some(reply.details.to_owned());
            run.disposition = Disposition::UpstreamFailed;
            run.events = VecDeque::from([
                Event::Headers,
                Event::Data(reply.body.as_bytes().to_vec(), true),
            ]);
            if run.transcript.is_enabled() {
                let note = format!("upstream fails: the router answers {}", reply.status);
                run.transcript.push(Entry::Note(note));
            }
            return;
        }
        let sends_trailers = !upstream.trailers.0.is_empty();
        stream.response_headers = Some(profile.upstream_response_headers(
            upstream.status,
            &upstream.headers.0,
            upstream.body.as_deref(),
            sends_trailers,
        ));
        stream.response_details = Some("via_upstream".into());
        run.events = VecDeque::from([Event::Headers]);
        if failure == Some(UpstreamFailure::ResetAfterResponseStarted) {
            // What was sent before the reset, then the reset.
            if let Some(body) = upstream.body.filter(|body| !body.is_empty()) {
                run.events.push_back(Event::Data(body.into_bytes(), false));
            }
            run.events.push_back(Event::UpstreamReset);
            return;
        }
        // The cluster's codec drops trailers unless it enables them.
        let trailers =
            (sends_trailers && profile.upstream_trailers).then(|| to_pairs(&upstream.trailers));
        run.events.extend(body_events(
            profile,
            Protocol::Http1,
            upstream.body.as_deref(),
            &upstream.body_chunks,
            trailers.is_some(),
        ));
        if let Some(trailers) = trailers {
            run.events.push_back(Event::Trailers(trailers));
        }
    }

    /// The upstream closed the connection mid-response: what the filter
    /// still buffers is lost, and the stream ends reset.
    fn upstream_reset(&mut self, id: StreamId, run: &mut Run) {
        let details = self.info.profile.reset_after_response_details();
        if let Some(stream) = self.stream(id) {
            stream.progress.upstream_failure = Some(UpstreamFailure::ResetAfterResponseStarted);
            stream.response_details = Some(details.to_owned());
            stream.response_body.clear();
        }
        run.buffering = false;
        run.waiting = false;
        run.events.clear();
        run.disposition = Disposition::UpstreamFailed;
        if run.transcript.is_enabled() {
            let note = "upstream closes the connection mid-response: the stream is reset";
            run.transcript.push(Entry::Note(note.to_owned()));
        }
    }

    fn complete(&mut self, id: StreamId, run: &mut Run) -> Outcome {
        self.note_sent(id, run);
        self.finish_context(id);
        self.collect(run);
        let stream = self.take_stream(id);
        self.outcome(run, &stream)
    }

    fn outcome(&self, run: &mut Run, stream: &Stream) -> Outcome {
        let headers = stream.response_headers.clone().unwrap_or_default();
        let status = headers
            .iter()
            .find(|(name, _)| name == b":status")
            .and_then(|(_, value)| std::str::from_utf8(value).ok()?.parse().ok());
        let mut client_headers = without_pseudo(&headers);
        // The HTTP/1.1 codec writes its own `transfer-encoding` last.
        if let Some(at) = client_headers
            .0
            .iter()
            .position(|(name, _)| name.eq_ignore_ascii_case("transfer-encoding"))
        {
            let encoding = client_headers.0.remove(at);
            client_headers.0.push(encoding);
        }
        // Trailers reach an HTTP/1.1 client only when its codec enables
        // them.
        let client_trailers =
            stream.progress.protocol == Protocol::Http2 || self.info.profile.http1_trailers;
        if stream.response_headers.is_some()
            && client_headers.get("content-length").is_none()
            && run.passed.is_empty()
        {
            client_headers.0.push(("content-length".into(), "0".into()));
        }
        Outcome {
            disposition: run.disposition,
            status,
            details: stream.response_details.clone().unwrap_or_default(),
            headers: client_headers,
            body: String::from_utf8_lossy(&run.passed).into_owned(),
            trailers: stream
                .response_trailers
                .as_ref()
                .filter(|_| client_trailers)
                .map(to_headers)
                .unwrap_or_default(),
            upstream: run.forwarded.take(),
            logs: std::mem::take(&mut run.logs),
        }
    }

    /// The filter reset the stream: the client gets no response.
    fn reset(&mut self, id: StreamId, run: &mut Run) -> Outcome {
        self.finish_context(id);
        self.collect(run);
        let mut stream = self.take_stream(id);
        stream.response_headers = None;
        stream.response_details = Some("filter_reset".into());
        run.passed.clear();
        run.disposition = Disposition::Reset;
        self.outcome(run, &stream)
    }

    fn stalled(&mut self, id: StreamId, run: &mut Run) -> Outcome {
        self.collect(run);
        if run.transcript.is_enabled() {
            run.transcript.push(Entry::Note(
                "stream stalled: paused, and nothing left can resume it".into(),
            ));
        }
        self.finish_context(id);
        self.collect(run);
        let mut stream = self.take_stream(id);
        stream.response_headers = None;
        stream.response_details = None;
        run.passed.clear();
        run.disposition = Disposition::Stalled;
        self.outcome(run, &stream)
    }

    /// The stream's VM failed: the failure policy answers.
    fn fail(&mut self, id: StreamId, run: &mut Run) -> Outcome {
        self.collect(run);
        let info = Arc::clone(&self.info);
        let profile = &info.profile;
        if self.policy == FailurePolicy::FailOpen {
            return self.fail_open(id, run);
        }
        let mut stream = self.take_stream(id);
        let (status, details) = profile.failure_reply();
        stream.response_headers = Some(profile.local_reply_headers(status, b"", &Vec::new()));
        stream.response_trailers = None;
        stream.response_details = Some(details.into());
        run.passed.clear();
        run.disposition = Disposition::VmFailed;
        self.outcome(run, &stream)
    }

    /// Failing open: the rest of the stream passes as if the filter were
    /// absent.
    fn fail_open(&mut self, id: StreamId, run: &mut Run) -> Outcome {
        if run.phase == Phase::Request {
            for event in std::mem::take(&mut run.events) {
                if let Event::Data(chunk, _) = event {
                    run.passed.extend(chunk);
                }
            }
            if run.buffering {
                let buffer = self
                    .body_mut(id, StreamType::Request)
                    .map(std::mem::take)
                    .unwrap_or_default();
                run.passed.extend(buffer);
            }
            self.forward(id, run);
        }
        if run.buffering {
            let buffer = self
                .body_mut(id, StreamType::Response)
                .map(std::mem::take)
                .unwrap_or_default();
            run.passed.extend(buffer);
        }
        for event in std::mem::take(&mut run.events) {
            match event {
                Event::Data(chunk, _) => run.passed.extend(chunk),
                Event::Trailers(pairs) => {
                    if let Some(stream) = self.stream(id) {
                        stream.response_trailers = Some(pairs);
                    }
                }
                Event::Headers => {}
                Event::UpstreamReset => self.upstream_reset(id, run),
            }
        }
        let stream = self.take_stream(id);
        self.outcome(run, &stream)
    }

    /// Delivers the next event due at or before `horizon`: a queue
    /// notification, else the earliest gRPC event, callout answer or tick
    /// (a gRPC event first among equals), moving the clock to it. Returns whether anything was delivered.
    fn pump(&mut self, horizon: u64) -> bool {
        let ready = self.world.lock().queue_ready.pop_front();
        if let Some(ready) = ready {
            if let Some(vm) = self.vms.get_mut(ready.worker)
                && ready.root_context == vm.root()
            {
                let _ = vm.queue_ready(ready.token);
            }
            return true;
        }
        let mut next: Option<(u64, usize, Option<u32>)> = None;
        for (worker, vm) in self.vms.iter().enumerate() {
            if vm.failed.is_some() {
                continue;
            }
            let state = vm.state();
            for callout in state.callouts.values() {
                if next.is_none_or(|(due, ..)| callout.due_ns < due) {
                    next = Some((callout.due_ns, worker, Some(callout.token)));
                }
            }
            if let Some(due) = state.next_tick_ns
                && next.is_none_or(|(best, ..)| due < best)
            {
                next = Some((due, worker, None));
            }
        }
        let mut grpc: Option<(u64, usize)> = None;
        for (worker, vm) in self.vms.iter().enumerate() {
            if let Some(due) = vm.state().grpc.next_due().filter(|_| vm.failed.is_none())
                && grpc.is_none_or(|(best, _)| due < best)
            {
                grpc = Some((due, worker));
            }
        }
        if let Some((due, worker)) = grpc
            && due <= horizon
            && next.is_none_or(|(best, ..)| due <= best)
        {
            return self.deliver_grpc(due, worker);
        }
        let Some((due, worker, token)) = next else {
            return false;
        };
        if due > horizon {
            return false;
        }
        if due > self.world.now_ns() {
            self.world.set_now_ns(due);
        }
        let Some(vm) = self.vms.get_mut(worker) else {
            return false;
        };
        match token {
            Some(token) => deliver_callout(vm, token),
            None => {
                let state = vm.state_mut();
                let period = u64::from(state.tick_period_ms) * 1_000_000;
                state.next_tick_ns = (period > 0).then(|| due.saturating_add(period));
                let _ = vm.tick();
            }
        }
        true
    }
}

impl Plugin {
    /// Delivers the earliest gRPC event of `worker`'s VM, due at `due`.
    fn deliver_grpc(&mut self, due: u64, worker: usize) -> bool {
        if due > self.world.now_ns() {
            self.world.set_now_ns(due);
        }
        let Some(vm) = self.vms.get_mut(worker) else {
            return false;
        };
        let Some(event) = vm.state_mut().grpc.take_next() else {
            return false;
        };
        let _ = vm.grpc_event(event);
        true
    }
}

/// Answers a callout the way Envoy's async client does: a response, or
/// for a timeout or connection failure the router's own `504` or `503`.
fn deliver_callout(vm: &mut Vm, token: u32) {
    let Some(callout) = vm.state_mut().callouts.remove(&token) else {
        return;
    };
    let text = |status: u16, body: &str| CallResponse {
        headers: Some(vec![
            (b":status".to_vec(), status.to_string().into_bytes()),
            (
                b"content-length".to_vec(),
                body.len().to_string().into_bytes(),
            ),
            (b"content-type".to_vec(), b"text/plain".to_vec()),
        ]),
        body: body.as_bytes().to_vec(),
        trailers: None,
    };
    let response = match callout.answer {
        CalloutAnswer::Respond {
            status,
            headers,
            body,
            trailers,
        } => {
            let mut pairs: Pairs = vec![(b":status".to_vec(), status.to_string().into_bytes())];
            pairs.extend(to_pairs(&Headers(headers)));
            if !pairs.iter().any(|(name, _)| name == b"content-length") {
                pairs.push((
                    b"content-length".to_vec(),
                    body.len().to_string().into_bytes(),
                ));
            }
            let trailers = (!trailers.is_empty()).then(|| to_pairs(&Headers(trailers)));
            CallResponse {
                headers: Some(pairs),
                body,
                trailers,
            }
        }
        CalloutAnswer::Timeout => text(504, "upstream request timeout"),
        CalloutAnswer::Fail => text(
            503,
            "upstream connect error or disconnect/reset before headers. reset reason: remote connection failure",
        ),
    };
    let counts = (
        response.headers.as_ref().map_or(0, Vec::len),
        response.body.len(),
        response.trailers.as_ref().map_or(0, Vec::len),
    );
    if vm.state().transcript.is_enabled() {
        let note = format!("callout {token} to `{}` answered", callout.cluster);
        vm.state_mut().transcript.push(Entry::Note(note));
    }
    vm.state_mut().call_response = Some(response);
    let _ = vm.http_call_response(token, counts.0, counts.1, counts.2);
    vm.state_mut().call_response = None;
}
