//! What the VMs of one plugin share: the clock, shared data, shared
//! queues, metrics and scripted upstreams (HTTP and gRPC).
//!
//! Envoy runs one VM per worker thread; a filter sees other workers only
//! through these host facilities. A [`World`] is owned by one
//! [`Plugin`](crate::Plugin) and handed to each of its VMs, so tests that
//! build their own plugins never see each other's state.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};

use crate::abi::{MetricKind, Pairs, Status};
use crate::grpc::{GrpcAnswer, GrpcRecord};
use crate::host::CalloutAnswer;

/// A handle on the shared state; clones refer to the same state.
#[derive(Clone, Debug, Default)]
pub struct World {
    inner: Arc<Mutex<WorldState>>,
}

impl World {
    /// A world whose clock reads `now_ns` nanoseconds since the epoch.
    pub fn new(now_ns: u64) -> World {
        let world = World::default();
        world.lock().clock_ns = now_ns;
        world
    }

    /// Locks the state. A poisoned lock only means another thread panicked
    /// while holding it; the data is still consistent for a test's purposes.
    pub(crate) fn lock(&self) -> MutexGuard<'_, WorldState> {
        self.inner
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// The clock, in nanoseconds since the Unix epoch.
    pub fn now_ns(&self) -> u64 {
        self.lock().clock_ns
    }

    /// Sets the clock. Use [`Plugin::advance`](crate::Plugin::advance) to
    /// move it forward with ticks and callouts firing on the way.
    pub fn set_now_ns(&self, now_ns: u64) {
        self.lock().clock_ns = now_ns;
    }

    /// The current value of a shared-data key and its CAS token.
    pub fn shared_data(&self, key: &str) -> Option<(Vec<u8>, u32)> {
        self.lock().shared.get(key.as_bytes()).cloned()
    }

    /// Scripts the upstream cluster `cluster` to give `answer` after
    /// `delay_ms` of the plugin's clock. Answers queue up in order; the last
    /// one repeats for later callouts.
    pub fn script(&self, cluster: &str, answer: CalloutAnswer, delay_ms: u64) {
        let mut state = self.lock();
        let script = state.upstreams.entry(cluster.to_owned()).or_default();
        script.answers.push_back((answer, delay_ms));
    }

    /// The callouts made so far, in order.
    pub fn callouts(&self) -> Vec<CalloutRecord> {
        self.lock().callouts_made.clone()
    }

    /// Scripts what the gRPC upstream `cluster` does with calls and streams
    /// to `method` (`service/method`, such as `probe.Echo/Say`); an empty
    /// `method` stands for every method not scripted by name. A later
    /// script for the same method replaces the earlier one.
    pub fn script_grpc(&self, cluster: &str, method: &str, answer: GrpcAnswer) {
        self.lock().grpc.script(cluster, method, answer);
    }

    /// The gRPC calls and streams opened so far, in order.
    pub fn grpc_calls(&self) -> Vec<GrpcRecord> {
        self.lock().grpc.records.clone()
    }

    /// Every metric the filter defined, by name.
    pub fn metrics(&self) -> BTreeMap<String, MetricValue> {
        let state = self.lock();
        state
            .metrics
            .iter()
            .map(|metric| (metric.name.clone(), metric.value.clone()))
            .collect()
    }
}

/// The state behind a [`World`].
#[derive(Debug)]
pub(crate) struct WorldState {
    pub(crate) clock_ns: u64,
    shared: HashMap<Vec<u8>, (Vec<u8>, u32)>,
    next_cas: u32,
    queues: Vec<Queue>,
    pub(crate) queue_ready: VecDeque<QueueReady>,
    metrics: Vec<Metric>,
    upstreams: HashMap<String, Script>,
    pub(crate) callouts_made: Vec<CalloutRecord>,
    pub(crate) grpc: crate::grpc::Upstreams,
}

/// The answers a scripted upstream gives, in order; the last repeats.
#[derive(Clone, Debug, Default)]
struct Script {
    answers: VecDeque<(CalloutAnswer, u64)>,
}

/// A callout the filter made, as the upstream received it.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct CalloutRecord {
    /// The cluster named.
    pub cluster: String,
    /// The request headers, pseudo-headers included.
    pub headers: Vec<(String, String)>,
    /// The request body.
    pub body: String,
}

impl Default for WorldState {
    fn default() -> WorldState {
        WorldState {
            clock_ns: 0,
            shared: HashMap::new(),
            next_cas: 1,
            queues: Vec::new(),
            queue_ready: VecDeque::new(),
            metrics: Vec::new(),
            upstreams: HashMap::new(),
            callouts_made: Vec::new(),
            grpc: crate::grpc::Upstreams::default(),
        }
    }
}

/// A queue became non-empty: its owner's root context must hear of it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct QueueReady {
    pub(crate) worker: usize,
    pub(crate) root_context: u32,
    pub(crate) token: u32,
}

#[derive(Debug)]
struct Queue {
    vm_id: Vec<u8>,
    name: Vec<u8>,
    worker: usize,
    root_context: u32,
    items: VecDeque<Vec<u8>>,
}

/// A metric's value.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(tag = "type", rename_all = "lowercase")]
pub enum MetricValue {
    /// A counter's total.
    Counter {
        /// The total.
        value: u64,
    },
    /// A gauge's level.
    Gauge {
        /// The level.
        value: i64,
    },
    /// A histogram's samples, in the order recorded.
    Histogram {
        /// The samples.
        samples: Vec<u64>,
    },
}

#[derive(Debug)]
struct Metric {
    name: String,
    value: MetricValue,
}

impl WorldState {
    pub(crate) fn next_answer(&mut self, cluster: &str) -> Option<(CalloutAnswer, u64)> {
        let script = self.upstreams.get_mut(cluster)?;
        if script.answers.len() > 1 {
            script.answers.pop_front()
        } else {
            script.answers.front().cloned()
        }
    }

    pub(crate) fn record_callout(&mut self, cluster: &str, headers: &Pairs, body: &[u8]) {
        let text = |bytes: &[u8]| String::from_utf8_lossy(bytes).into_owned();
        self.callouts_made.push(CalloutRecord {
            cluster: cluster.to_owned(),
            headers: headers.iter().map(|(k, v)| (text(k), text(v))).collect(),
            body: text(body),
        });
    }

    pub(crate) fn get_shared(&self, key: &[u8]) -> Option<(Vec<u8>, u32)> {
        self.shared.get(key).cloned()
    }

    /// Stores a value. A non-zero `cas` must match the key's current token;
    /// each successful write issues a new token.
    pub(crate) fn set_shared(&mut self, key: &[u8], value: &[u8], cas: u32) -> Status {
        if let Some((_, current)) = self.shared.get(key)
            && cas != 0
            && cas != *current
        {
            return Status::CasMismatch;
        }
        let token = self.next_cas;
        self.next_cas = self.next_cas.wrapping_add(1).max(1);
        self.shared.insert(key.to_vec(), (value.to_vec(), token));
        Status::Ok
    }

    /// Registers (or re-registers) a queue owned by a worker's root context
    /// and returns its token.
    pub(crate) fn register_queue(
        &mut self,
        vm_id: &[u8],
        name: &[u8],
        worker: usize,
        root_context: u32,
    ) -> u32 {
        if let Some(index) = self.find_queue(vm_id, name) {
            if let Some(queue) = self.queues.get_mut(index) {
                queue.worker = worker;
                queue.root_context = root_context;
            }
            return token_of(index);
        }
        self.queues.push(Queue {
            vm_id: vm_id.to_vec(),
            name: name.to_vec(),
            worker,
            root_context,
            items: VecDeque::new(),
        });
        token_of(self.queues.len() - 1)
    }

    pub(crate) fn resolve_queue(&self, vm_id: &[u8], name: &[u8]) -> Option<u32> {
        self.find_queue(vm_id, name).map(token_of)
    }

    fn find_queue(&self, vm_id: &[u8], name: &[u8]) -> Option<usize> {
        self.queues
            .iter()
            .position(|queue| queue.vm_id == vm_id && queue.name == name)
    }

    pub(crate) fn enqueue(&mut self, token: u32, value: &[u8]) -> Status {
        let Some(queue) = queue_index(token).and_then(|index| self.queues.get_mut(index)) else {
            return Status::NotFound;
        };
        queue.items.push_back(value.to_vec());
        let ready = QueueReady {
            worker: queue.worker,
            root_context: queue.root_context,
            token,
        };
        self.queue_ready.push_back(ready);
        Status::Ok
    }

    pub(crate) fn dequeue(&mut self, token: u32) -> Result<Vec<u8>, Status> {
        let Some(queue) = queue_index(token).and_then(|index| self.queues.get_mut(index)) else {
            return Err(Status::NotFound);
        };
        queue.items.pop_front().ok_or(Status::Empty)
    }

    /// Defines a metric, or finds the one already defined under that name.
    /// The id encodes the kind in its low two bits, so a guest that mixes
    /// ids up gets `BadArgument` rather than another metric.
    pub(crate) fn define_metric(&mut self, kind: MetricKind, name: &str) -> u32 {
        if let Some(index) = self.metrics.iter().position(|metric| metric.name == name) {
            return metric_id(index, self.metric_kind(index).unwrap_or(kind));
        }
        let value = match kind {
            MetricKind::Counter => MetricValue::Counter { value: 0 },
            MetricKind::Gauge => MetricValue::Gauge { value: 0 },
            MetricKind::Histogram => MetricValue::Histogram {
                samples: Vec::new(),
            },
        };
        self.metrics.push(Metric {
            name: name.to_owned(),
            value,
        });
        metric_id(self.metrics.len() - 1, kind)
    }

    fn metric_kind(&self, index: usize) -> Option<MetricKind> {
        self.metrics.get(index).map(|metric| match metric.value {
            MetricValue::Counter { .. } => MetricKind::Counter,
            MetricValue::Gauge { .. } => MetricKind::Gauge,
            MetricValue::Histogram { .. } => MetricKind::Histogram,
        })
    }

    fn metric_mut(&mut self, id: u32) -> Option<&mut MetricValue> {
        let index = usize::try_from(id >> 2).ok()?;
        let metric = self.metrics.get_mut(index)?;
        Some(&mut metric.value)
    }

    /// Counters only grow, by a positive offset; gauges move either way;
    /// histograms take no increments.
    pub(crate) fn increment_metric(&mut self, id: u32, offset: i64) -> Status {
        match self.metric_mut(id) {
            None => Status::NotFound,
            Some(MetricValue::Counter { value }) if offset > 0 => {
                *value = value.saturating_add(offset.unsigned_abs());
                Status::Ok
            }
            Some(MetricValue::Gauge { value }) => {
                *value = value.saturating_add(offset);
                Status::Ok
            }
            Some(_) => Status::BadArgument,
        }
    }

    /// Counters add the value, gauges take it, histograms record it.
    pub(crate) fn record_metric(&mut self, id: u32, recorded: u64) -> Status {
        match self.metric_mut(id) {
            None => Status::NotFound,
            Some(MetricValue::Counter { value }) => {
                *value = value.saturating_add(recorded);
                Status::Ok
            }
            Some(MetricValue::Gauge { value }) => {
                *value = i64::try_from(recorded).unwrap_or(i64::MAX);
                Status::Ok
            }
            Some(MetricValue::Histogram { samples }) => {
                samples.push(recorded);
                Status::Ok
            }
        }
    }

    /// Reads a counter or a gauge; histograms have no single value.
    pub(crate) fn get_metric(&mut self, id: u32) -> Result<u64, Status> {
        match self.metric_mut(id) {
            None => Err(Status::NotFound),
            Some(MetricValue::Counter { value }) => Ok(*value),
            Some(MetricValue::Gauge { value }) => Ok(value.cast_unsigned()),
            Some(MetricValue::Histogram { .. }) => Err(Status::BadArgument),
        }
    }
}

fn token_of(index: usize) -> u32 {
    u32::try_from(index).map_or(u32::MAX, |index| index.saturating_add(1))
}

fn queue_index(token: u32) -> Option<usize> {
    usize::try_from(token.checked_sub(1)?).ok()
}

fn metric_id(index: usize, kind: MetricKind) -> u32 {
    let kind = match kind {
        MetricKind::Counter => 0,
        MetricKind::Gauge => 1,
        MetricKind::Histogram => 2,
    };
    u32::try_from(index).unwrap_or(u32::MAX >> 2) << 2 | kind
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn compare_and_swap_rejects_a_stale_token() {
        let mut state = WorldState::default();
        assert_eq!(state.set_shared(b"k", b"1", 0), Status::Ok);
        let (_, first) = state.get_shared(b"k").unwrap();
        assert_eq!(state.set_shared(b"k", b"2", first), Status::Ok);
        assert_eq!(state.set_shared(b"k", b"3", first), Status::CasMismatch);
        assert_eq!(state.get_shared(b"k").unwrap().0, b"2");
    }

    #[test]
    fn counters_refuse_negative_increments() {
        let mut state = WorldState::default();
        let id = state.define_metric(MetricKind::Counter, "c");
        assert_eq!(state.increment_metric(id, -1), Status::BadArgument);
        assert_eq!(state.increment_metric(id, 2), Status::Ok);
        assert_eq!(state.get_metric(id), Ok(2));
        assert_eq!(state.define_metric(MetricKind::Counter, "c"), id);
    }

    #[test]
    fn queues_deliver_in_order_and_report_empty() {
        let mut state = WorldState::default();
        let token = state.register_queue(b"vm", b"q", 0, 1);
        assert_eq!(state.resolve_queue(b"vm", b"q"), Some(token));
        assert_eq!(state.enqueue(token, b"a"), Status::Ok);
        assert_eq!(state.enqueue(token, b"b"), Status::Ok);
        assert_eq!(state.dequeue(token), Ok(b"a".to_vec()));
        assert_eq!(state.dequeue(token), Ok(b"b".to_vec()));
        assert_eq!(state.dequeue(token), Err(Status::Empty));
        assert_eq!(state.dequeue(99), Err(Status::NotFound));
    }
}
