//! The in-process bus: JetStream semantics without a server, for `posbon standalone` and
//! tests. Nothing survives the process.
//!
//! One file (1100 lines) because publishing, fetching, acking and the stream limits all
//! change one private `StreamState` under one lock: its sequences, removed-message
//! placeholders and byte count, and each consumer's pending set and timers.

use std::collections::{BTreeSet, HashMap, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, RwLock};
use std::time::{Duration, Instant, SystemTime};

use async_trait::async_trait;
use bytes::Bytes;
use tokio::sync::{Notify, mpsc};

use crate::subjects::{Discard, Retention};
use crate::subjects::{
    patterns_overlap, subject_matches, validate_name, validate_pattern, validate_subject,
};
use crate::{
    AckReply, Acker, Bus, BusError, BusErrorKind, BusResult, Consumer, ConsumerLag,
    ConsumerOptions, DeliverPolicy, Delivery, Headers, Message, OutgoingMessage, PublishAck,
    StreamConfig, StreamInfo, StreamMessage, StreamReader, Subscription,
};

/// Settings of a [`MemoryBus`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MemoryOptions {
    /// Messages buffered per core subscription; further messages are dropped while it is
    /// full, as NATS does for a slow consumer. Default 65 536.
    pub subscription_capacity: usize,
    /// The largest message (payload plus headers) accepted, like the server's
    /// `max_payload`. Default 1 MiB.
    pub max_payload: usize,
}

impl Default for MemoryOptions {
    fn default() -> Self {
        Self {
            subscription_capacity: 65_536,
            max_payload: 1 << 20,
        }
    }
}

/// An in-process [`Bus`] with the semantics of JetStream: streams capture subjects (with
/// `*` and `>` wildcards), publishes are de-duplicated by `Nats-Msg-Id` within the window
/// and numbered per stream, durable pull consumers (with filter subjects) need explicit
/// acks and redeliver after the ack wait or a nak, up to `max_deliver`.
///
/// Clones share the same streams; a durable consumer opened again resumes where it left
/// off. Streams apply their age, byte and count limits; storage and replicas are ignored.
#[derive(Debug, Clone, Default)]
pub struct MemoryBus {
    inner: Arc<Inner>,
}

#[derive(Debug, Default)]
struct Inner {
    options: MemoryOptions,
    streams: RwLock<HashMap<String, Arc<StreamHandle>>>,
    subscriptions: Mutex<Vec<SubscriptionEntry>>,
    next_subscription: AtomicU64,
}

#[derive(Debug)]
struct SubscriptionEntry {
    id: u64,
    pattern: String,
    sender: mpsc::Sender<Message>,
}

#[derive(Debug)]
struct StreamHandle {
    name: String,
    subjects: RwLock<Vec<String>>,
    state: Mutex<StreamState>,
    /// Woken when a message is stored or a consumer's pending set changes.
    changed: Notify,
}

impl StreamHandle {
    /// True when one of the stream's subjects matches `subject`.
    fn captures(&self, subject: &str) -> bool {
        read(&self.subjects)
            .iter()
            .any(|pattern| subject_matches(pattern, subject))
    }
}

#[derive(Debug)]
struct StreamState {
    config: StreamConfig,
    messages: VecDeque<Stored>,
    /// The sequence of `messages[0]`; `last_sequence + 1` when empty.
    first_sequence: u64,
    last_sequence: u64,
    bytes: u64,
    /// Placeholders of removed messages still in `messages`.
    removed: u64,
    /// Message ids seen within the duplicate window. Ids come from
    /// producers: the hasher is seeded at random (foldhash).
    dedup: HashMap<Arc<str>, u64, foldhash::fast::RandomState>,
    dedup_order: VecDeque<(Instant, Arc<str>)>,
    consumers: HashMap<String, ConsumerState, foldhash::fast::RandomState>,
}

#[derive(Debug)]
struct Stored {
    subject: String,
    headers: Headers,
    payload: Bytes,
    stored_at: Instant,
    published: SystemTime,
    size: u64,
    /// Acknowledged on a work-queue stream: gone, but kept as a placeholder
    /// (without its payload) until it reaches the front, so that sequences
    /// still index the deque.
    removed: bool,
}

#[derive(Debug)]
struct ConsumerState {
    /// Which creation of the durable this is: replies to deliveries of one that
    /// was replaced ([`ConsumerOptions::restart`]) are ignored, as JetStream does.
    generation: u64,
    filters: Vec<String>,
    options: ConsumerOptions,
    /// The next stream sequence to consider for a first delivery.
    next_sequence: u64,
    /// Delivered and not acknowledged: sequence → (deliveries so far, redelivery due).
    pending: HashMap<u64, (u64, Instant), foldhash::fast::RandomState>,
    /// `(due, sequence)` of every pending entry.
    timers: BTreeSet<(Instant, u64)>,
}

/// `now + duration`, saturating far in the future instead of overflowing.
fn later(now: Instant, duration: Duration) -> Instant {
    now.checked_add(duration)
        .or_else(|| now.checked_add(Duration::from_secs(10 * 365 * 24 * 3600)))
        .unwrap_or(now)
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

fn read<T>(lock: &RwLock<T>) -> std::sync::RwLockReadGuard<'_, T> {
    lock.read().unwrap_or_else(PoisonError::into_inner)
}

fn write<T>(lock: &RwLock<T>) -> std::sync::RwLockWriteGuard<'_, T> {
    lock.write().unwrap_or_else(PoisonError::into_inner)
}

impl MemoryBus {
    /// An empty bus with default options.
    pub fn new() -> Self {
        Self::with_options(MemoryOptions::default())
    }

    /// An empty bus.
    pub fn with_options(options: MemoryOptions) -> Self {
        Self {
            inner: Arc::new(Inner {
                options,
                ..Inner::default()
            }),
        }
    }

    fn stream(&self, name: &str) -> BusResult<Arc<StreamHandle>> {
        read(&self.inner.streams).get(name).cloned().ok_or_else(|| {
            BusError::new(BusErrorKind::NotFound, format!("stream {name} not found"))
        })
    }

    fn stream_for_subject(&self, subject: &str) -> Option<Arc<StreamHandle>> {
        read(&self.inner.streams)
            .values()
            .find(|stream| stream.captures(subject))
            .cloned()
    }

    fn check_message(&self, subject: &str, headers: &Headers, payload: &Bytes) -> BusResult<()> {
        validate_subject(subject)?;
        headers.validate()?;
        let size = payload.len() + headers.wire_size();
        if size > self.inner.options.max_payload {
            return Err(BusError::new(
                BusErrorKind::PayloadTooLarge,
                format!(
                    "message of {size} bytes exceeds the maximum of {}",
                    self.inner.options.max_payload
                ),
            ));
        }
        Ok(())
    }

    /// Hands a copy to every matching core subscription; drops it for full ones.
    fn fan_out(&self, subject: &str, headers: &Headers, payload: &Bytes) {
        let mut subscriptions = lock(&self.inner.subscriptions);
        if subscriptions.is_empty() {
            return;
        }
        subscriptions.retain(|entry| {
            if !subject_matches(&entry.pattern, subject) {
                return !entry.sender.is_closed();
            }
            let message = Message {
                subject: subject.to_owned(),
                headers: headers.clone(),
                payload: payload.clone(),
            };
            !matches!(
                entry.sender.try_send(message),
                Err(mpsc::error::TrySendError::Closed(_))
            )
        });
    }

    /// Stores into the capturing stream, if any; `None` when no stream captures `subject`.
    fn store(
        &self,
        subject: &str,
        headers: Headers,
        payload: Bytes,
    ) -> Option<BusResult<PublishAck>> {
        let stream = self.stream_for_subject(subject)?;
        let ack = {
            let mut state = lock(&stream.state);
            state.append(&stream.name, subject, headers, payload)
        };
        if ack.as_ref().is_ok_and(|ack| !ack.duplicate) {
            stream.changed.notify_waiters();
        }
        Some(ack)
    }

    /// [`Bus::publish_many`]: like one `publish` per message, in order, but
    /// a run of messages for the same stream is stored under one lock, and
    /// each stream's waiters are woken once, after the whole batch.
    fn publish_batch(&self, messages: Vec<OutgoingMessage>) -> Vec<BusResult<PublishAck>> {
        let mut results: Vec<Option<BusResult<PublishAck>>> = Vec::with_capacity(messages.len());
        // The stream of each message that passed the checks.
        let mut targets: Vec<Option<Arc<StreamHandle>>> = Vec::with_capacity(messages.len());
        for m in &messages {
            let target = match self.check_message(&m.subject, &m.headers, &m.payload) {
                Err(e) => Err(e),
                Ok(()) => {
                    self.fan_out(&m.subject, &m.headers, &m.payload);
                    // Streams never share a subject: when the last message's
                    // stream captures this subject it is the one.
                    let last = targets.iter().rev().flatten().next();
                    match last.filter(|s| s.captures(&m.subject)) {
                        Some(stream) => Ok(Arc::clone(stream)),
                        None => self.stream_for_subject(&m.subject).ok_or_else(|| {
                            BusError::new(
                                BusErrorKind::NoStream,
                                format!("no stream captures subject {}", m.subject),
                            )
                        }),
                    }
                }
            };
            match target {
                Ok(stream) => {
                    targets.push(Some(stream));
                    results.push(None);
                }
                Err(e) => {
                    targets.push(None);
                    results.push(Some(Err(e)));
                }
            }
        }
        let mut woken: Vec<Arc<StreamHandle>> = Vec::new();
        let mut messages = messages.into_iter().zip(targets).enumerate().peekable();
        while let Some((i, (m, target))) = messages.next() {
            let Some(stream) = target else { continue };
            let mut stored = false;
            {
                // This message and the following ones of the same stream, under one lock.
                let mut state = lock(&stream.state);
                let mut next = Some((i, m));
                while let Some((i, m)) = next.take() {
                    let ack = state.append(&stream.name, &m.subject, m.headers, m.payload);
                    stored |= ack.as_ref().is_ok_and(|ack| !ack.duplicate);
                    results[i] = Some(ack);
                    next = messages
                        .next_if(|(_, (_, t))| t.as_ref().is_some_and(|t| Arc::ptr_eq(t, &stream)))
                        .map(|(i, (m, _))| (i, m));
                }
            }
            if stored && !woken.iter().any(|w| Arc::ptr_eq(w, &stream)) {
                woken.push(stream);
            }
        }
        for stream in woken {
            stream.changed.notify_waiters();
        }
        results
            .into_iter()
            .map(|r| r.unwrap_or_else(|| Err(BusError::invalid("message was not stored"))))
            .collect()
    }
}

impl StreamState {
    fn new(config: StreamConfig) -> Self {
        Self {
            config,
            messages: VecDeque::new(),
            first_sequence: 1,
            last_sequence: 0,
            bytes: 0,
            removed: 0,
            dedup: HashMap::default(),
            dedup_order: VecDeque::new(),
            consumers: HashMap::default(),
        }
    }

    fn append(
        &mut self,
        stream: &str,
        subject: &str,
        headers: Headers,
        payload: Bytes,
    ) -> BusResult<PublishAck> {
        let now = Instant::now();
        self.expire_dedup(now);
        if let Some(id) = headers.msg_id()
            && let Some(&sequence) = self.dedup.get(id)
        {
            return Ok(PublishAck {
                stream: stream.to_owned(),
                sequence,
                duplicate: true,
            });
        }
        let size = crate::message_size(subject, &headers, &payload) as u64;
        if self.config.discard == Discard::New {
            self.apply_limits(now);
            let over_bytes = self
                .config
                .max_bytes
                .is_some_and(|max| self.bytes.saturating_add(size) > max);
            let over_count = self
                .config
                .max_messages
                .is_some_and(|max| self.live() >= max);
            if over_bytes || over_count {
                return Err(BusError::new(
                    BusErrorKind::Full,
                    format!(
                        "publish to {subject}: stream {stream} is full (maximum {} exceeded): retry once its consumers caught up",
                        if over_bytes { "bytes" } else { "messages" }
                    ),
                ));
            }
        }
        self.last_sequence += 1;
        let sequence = self.last_sequence;
        if self.messages.is_empty() {
            self.first_sequence = sequence;
        }
        self.bytes += size;
        let msg_id: Option<Arc<str>> = headers.msg_id().map(Arc::from);
        self.messages.push_back(Stored {
            subject: subject.to_owned(),
            headers,
            payload,
            stored_at: now,
            published: SystemTime::now(),
            size,
            removed: false,
        });
        if let Some(id) = msg_id {
            self.dedup.insert(Arc::clone(&id), sequence);
            self.dedup_order.push_back((now, id));
        }
        self.apply_limits(now);
        Ok(PublishAck {
            stream: stream.to_owned(),
            sequence,
            duplicate: false,
        })
    }

    /// Messages held (placeholders of removed ones not counted).
    fn live(&self) -> u64 {
        self.messages.len() as u64 - self.removed
    }

    /// Removes an acknowledged message of a work-queue stream.
    fn remove(&mut self, sequence: u64) {
        let Some(index) = sequence
            .checked_sub(self.first_sequence)
            .and_then(|i| usize::try_from(i).ok())
        else {
            return;
        };
        if let Some(stored) = self.messages.get_mut(index)
            && !stored.removed
        {
            stored.removed = true;
            stored.payload = Bytes::new();
            stored.headers = Headers::new();
            self.bytes -= stored.size;
            self.removed += 1;
        }
        while self.messages.front().is_some_and(|m| m.removed) {
            self.messages.pop_front();
            self.removed -= 1;
            self.first_sequence += 1;
        }
    }

    fn expire_dedup(&mut self, now: Instant) {
        let window = self.config.duplicate_window;
        while let Some((at, _)) = self.dedup_order.front() {
            if now.duration_since(*at) < window {
                break;
            }
            if let Some((_, id)) = self.dedup_order.pop_front() {
                self.dedup.remove(&id);
            }
        }
    }

    fn apply_limits(&mut self, now: Instant) {
        while let Some(front) = self.messages.front() {
            let too_old = self
                .config
                .max_age
                .is_some_and(|age| now.duration_since(front.stored_at) > age);
            let too_big = self.config.max_bytes.is_some_and(|max| self.bytes > max);
            let too_many = self
                .config
                .max_messages
                .is_some_and(|max| self.live() > max);
            if !(front.removed || too_old || too_big || too_many) {
                break;
            }
            if let Some(gone) = self.messages.pop_front() {
                if gone.removed {
                    self.removed -= 1;
                } else {
                    self.bytes -= gone.size;
                }
                self.first_sequence += 1;
            }
        }
    }

    fn message(&self, sequence: u64) -> Option<&Stored> {
        let index = sequence.checked_sub(self.first_sequence)?;
        self.messages
            .get(usize::try_from(index).ok()?)
            .filter(|m| !m.removed)
    }

    fn info(&self, name: &str) -> StreamInfo {
        StreamInfo {
            name: name.to_owned(),
            messages: self.live(),
            bytes: self.bytes,
            first_sequence: if self.last_sequence == 0 {
                0
            } else {
                self.first_sequence
            },
            last_sequence: self.last_sequence,
            consumers: self.consumers.len(),
            leader: None,
            replicas: 1,
        }
    }

    /// Takes up to `max` deliveries for `consumer`: due redeliveries first, then new
    /// messages. Returns them and the next time a redelivery falls due.
    fn take(
        &mut self,
        consumer: &str,
        max: usize,
        max_bytes: usize,
        acker: &Arc<ConsumerRef>,
    ) -> BusResult<(Vec<Delivery>, Option<Instant>)> {
        let now = Instant::now();
        self.apply_limits(now);
        let first_sequence = self.first_sequence;
        let last_sequence = self.last_sequence;
        let Self {
            consumers,
            messages,
            ..
        } = self;
        let state = consumers
            .get_mut(consumer)
            .ok_or_else(|| consumer_gone(consumer))?;
        let message = |sequence: u64| -> Option<&Stored> {
            let index = sequence.checked_sub(first_sequence)?;
            messages
                .get(usize::try_from(index).ok()?)
                .filter(|m| !m.removed)
        };
        let ack_wait = state.options.ack_wait;
        // Room for what can be delivered: the redeliveries due, then new
        // messages up to the ack-pending limit.
        let fresh = last_sequence
            .saturating_add(1)
            .saturating_sub(state.next_sequence.max(first_sequence));
        let room = state
            .options
            .max_ack_pending
            .saturating_sub(state.pending.len());
        let expected = usize::try_from(fresh)
            .unwrap_or(usize::MAX)
            .min(room)
            .saturating_add(state.timers.len().min(64));
        let mut out = Vec::with_capacity(expected.min(max));
        // Bytes taken so far; a message that would pass `max_bytes` ends the
        // batch unless it is the first.
        let mut bytes = 0u64;
        let fits = |bytes: u64, stored: &Stored, taken: usize| {
            taken == 0 || bytes.saturating_add(stored.size) <= max_bytes as u64
        };

        while out.len() < max {
            let Some(&(due, sequence)) = state.timers.first() else {
                break;
            };
            if due > now {
                break;
            }
            let stored = message(sequence);
            if stored.is_some_and(|stored| !fits(bytes, stored, out.len())) {
                break;
            }
            state.timers.pop_first();
            let Some(stored) = stored else {
                // Removed by a stream limit.
                state.pending.remove(&sequence);
                continue;
            };
            let Some(entry) = state.pending.get_mut(&sequence) else {
                continue;
            };
            if state
                .options
                .max_deliver
                .is_some_and(|max_deliver| entry.0 >= max_deliver)
            {
                state.pending.remove(&sequence);
                continue;
            }
            entry.0 += 1;
            entry.1 = later(now, ack_wait);
            state.timers.insert((entry.1, sequence));
            bytes = bytes.saturating_add(stored.size);
            out.push(delivery(stored, sequence, entry.0, acker));
        }

        if state.next_sequence < first_sequence {
            state.next_sequence = first_sequence;
        }
        while out.len() < max
            && state.pending.len() < state.options.max_ack_pending
            && state.next_sequence <= last_sequence
        {
            let sequence = state.next_sequence;
            let Some(stored) = message(sequence) else {
                state.next_sequence += 1;
                continue;
            };
            if !matches_filters(&state.filters, &stored.subject) {
                state.next_sequence += 1;
                continue;
            }
            if !fits(bytes, stored, out.len()) {
                break;
            }
            state.next_sequence += 1;
            bytes = bytes.saturating_add(stored.size);
            let due = later(now, ack_wait);
            state.pending.insert(sequence, (1, due));
            state.timers.insert((due, sequence));
            out.push(delivery(stored, sequence, 1, acker));
        }
        let next_due = state.timers.first().map(|&(due, _)| due);
        Ok((out, next_due))
    }
}

fn consumer_gone(name: &str) -> BusError {
    BusError::new(BusErrorKind::NotFound, format!("consumer {name} not found"))
}

fn matches_filters(filters: &[String], subject: &str) -> bool {
    filters.is_empty()
        || filters
            .iter()
            .any(|filter| subject_matches(filter, subject))
}

fn delivery(stored: &Stored, sequence: u64, delivered: u64, acker: &Arc<ConsumerRef>) -> Delivery {
    Delivery {
        subject: stored.subject.clone(),
        headers: stored.headers.clone(),
        payload: stored.payload.clone(),
        stream_sequence: sequence,
        delivered,
        published: stored.published,
        acker: Acker::Memory(AckRef(Arc::clone(acker))),
    }
}

/// The stream and name of a consumer, shared by its handle and its deliveries.
#[derive(Debug)]
struct ConsumerRef {
    stream: Arc<StreamHandle>,
    name: String,
    /// The [`ConsumerState::generation`] its deliveries belong to.
    generation: u64,
}

/// Generations of consumers, unique in the process.
static GENERATIONS: AtomicU64 = AtomicU64::new(1);

/// Acknowledges deliveries of the in-memory bus.
pub(crate) struct AckRef(Arc<ConsumerRef>);

impl AckRef {
    pub(crate) fn respond(&self, sequence: u64, reply: AckReply) -> BusResult<()> {
        let consumer = &self.0;
        let wake = {
            let mut stream = lock(&consumer.stream.state);
            let work_queue = stream.config.retention == Retention::WorkQueue;
            if work_queue && matches!(reply, AckReply::Ack | AckReply::Term) {
                let pending = stream
                    .consumers
                    .get(&consumer.name)
                    .is_some_and(|c| c.pending.contains_key(&sequence));
                if pending {
                    stream.remove(sequence);
                }
            }
            let state = stream
                .consumers
                .get_mut(&consumer.name)
                .ok_or_else(|| consumer_gone(&consumer.name))?;
            // Like JetStream, a reply for a message no longer pending (or delivered
            // by a consumer since replaced) is ignored.
            if state.generation != consumer.generation {
                return Ok(());
            }
            let Some(entry) = state.pending.get_mut(&sequence) else {
                return Ok(());
            };
            state.timers.remove(&(entry.1, sequence));
            match reply {
                AckReply::Ack | AckReply::Term => {
                    let was_full = state.pending.len() >= state.options.max_ack_pending;
                    state.pending.remove(&sequence);
                    was_full
                }
                AckReply::Nak(delay) => {
                    entry.1 = later(Instant::now(), delay);
                    state.timers.insert((entry.1, sequence));
                    true
                }
                AckReply::Progress => {
                    entry.1 = later(Instant::now(), state.options.ack_wait);
                    state.timers.insert((entry.1, sequence));
                    false
                }
            }
        };
        if wake {
            consumer.stream.changed.notify_waiters();
        }
        Ok(())
    }
}

#[derive(Debug)]
struct MemoryConsumer {
    consumer: Arc<ConsumerRef>,
}

#[async_trait]
impl Consumer for MemoryConsumer {
    async fn fetch_bounded(
        &self,
        max: usize,
        max_bytes: usize,
        expires: Duration,
    ) -> BusResult<Vec<Delivery>> {
        if max == 0 {
            return Ok(Vec::new());
        }
        let stream = &self.consumer.stream;
        let deadline = later(Instant::now(), expires);
        loop {
            let changed = stream.changed.notified();
            tokio::pin!(changed);
            changed.as_mut().enable();
            let (deliveries, next_due) =
                lock(&stream.state).take(&self.consumer.name, max, max_bytes, &self.consumer)?;
            if !deliveries.is_empty() {
                return Ok(deliveries);
            }
            let now = Instant::now();
            if now >= deadline {
                return Ok(deliveries);
            }
            let wake = next_due.map_or(deadline, |due| due.clamp(now, deadline));
            tokio::select! {
                () = &mut changed => {}
                () = tokio::time::sleep_until(wake.into()) => {}
            }
        }
    }

    async fn pending(&self) -> BusResult<ConsumerLag> {
        let mut state = lock(&self.consumer.stream.state);
        state.apply_limits(Instant::now());
        let consumer = state
            .consumers
            .get(&self.consumer.name)
            .ok_or_else(|| consumer_gone(&self.consumer.name))?;
        let start = consumer.next_sequence.max(state.first_sequence);
        let undelivered = if consumer.filters.is_empty() {
            // The stream holds every sequence from `first_sequence` to
            // `last_sequence`: no need to look at them.
            state.last_sequence.saturating_add(1).saturating_sub(start)
        } else {
            (start..=state.last_sequence)
                .filter_map(|sequence| state.message(sequence))
                .filter(|stored| matches_filters(&consumer.filters, &stored.subject))
                .count() as u64
        };
        Ok(ConsumerLag {
            undelivered,
            ack_pending: consumer.pending.len() as u64,
        })
    }

    fn stream(&self) -> &str {
        &self.consumer.stream.name
    }

    fn name(&self) -> &str {
        &self.consumer.name
    }
}

#[derive(Debug)]
struct MemorySubscription {
    id: u64,
    receiver: mpsc::Receiver<Message>,
    bus: Arc<Inner>,
}

#[async_trait]
impl Subscription for MemorySubscription {
    async fn next(&mut self) -> Option<Message> {
        self.receiver.recv().await
    }
}

impl Drop for MemorySubscription {
    fn drop(&mut self) {
        lock(&self.bus.subscriptions).retain(|entry| entry.id != self.id);
    }
}

#[derive(Debug)]
struct MemoryReader {
    stream: Arc<StreamHandle>,
    filters: Vec<String>,
    next_sequence: u64,
}

#[async_trait]
impl StreamReader for MemoryReader {
    async fn next(&mut self) -> Option<BusResult<StreamMessage>> {
        loop {
            let changed = self.stream.changed.notified();
            tokio::pin!(changed);
            changed.as_mut().enable();
            {
                let mut state = lock(&self.stream.state);
                state.apply_limits(Instant::now());
                self.next_sequence = self.next_sequence.max(state.first_sequence);
                while self.next_sequence <= state.last_sequence {
                    let sequence = self.next_sequence;
                    self.next_sequence += 1;
                    if let Some(stored) = state.message(sequence)
                        && matches_filters(&self.filters, &stored.subject)
                    {
                        return Some(Ok(StreamMessage {
                            subject: stored.subject.clone(),
                            headers: stored.headers.clone(),
                            payload: stored.payload.clone(),
                            sequence,
                            published: stored.published,
                        }));
                    }
                }
            }
            changed.await;
        }
    }
}

#[async_trait]
impl Bus for MemoryBus {
    async fn ensure_streams(&self, streams: &[StreamConfig]) -> BusResult<()> {
        for config in streams {
            config.validate()?;
        }
        let mut existing = write(&self.inner.streams);
        for (index, config) in streams.iter().enumerate() {
            let others = existing
                .values()
                .filter(|stream| stream.name != config.name)
                .flat_map(|stream| read(&stream.subjects).clone())
                .chain(
                    streams[..index]
                        .iter()
                        .filter(|other| other.name != config.name)
                        .flat_map(|other| other.subjects.iter().cloned()),
                )
                .collect::<Vec<_>>();
            if let Some((mine, theirs)) = config.subjects.iter().find_map(|mine| {
                others
                    .iter()
                    .find(|theirs| patterns_overlap(mine, theirs))
                    .map(|theirs| (mine, theirs))
            }) {
                return Err(BusError::new(
                    BusErrorKind::Rejected,
                    format!(
                        "stream {}: subject {mine} overlaps {theirs} of another stream",
                        config.name
                    ),
                ));
            }
        }
        for config in streams {
            match existing.get(&config.name) {
                Some(stream) => {
                    *write(&stream.subjects) = config.subjects.clone();
                    let mut state = lock(&stream.state);
                    state.config = config.clone();
                    state.apply_limits(Instant::now());
                }
                None => {
                    existing.insert(
                        config.name.clone(),
                        Arc::new(StreamHandle {
                            name: config.name.clone(),
                            subjects: RwLock::new(config.subjects.clone()),
                            state: Mutex::new(StreamState::new(config.clone())),
                            changed: Notify::new(),
                        }),
                    );
                }
            }
        }
        Ok(())
    }

    async fn publish(
        &self,
        subject: &str,
        headers: Headers,
        payload: Bytes,
    ) -> BusResult<PublishAck> {
        self.check_message(subject, &headers, &payload)?;
        self.fan_out(subject, &headers, &payload);
        self.store(subject, headers, payload).unwrap_or_else(|| {
            Err(BusError::new(
                BusErrorKind::NoStream,
                format!("no stream captures subject {subject}"),
            ))
        })
    }

    async fn publish_many(&self, messages: Vec<OutgoingMessage>) -> Vec<BusResult<PublishAck>> {
        self.publish_batch(messages)
    }

    async fn consumer(
        &self,
        stream: &str,
        durable: &str,
        filter_subjects: Vec<String>,
        options: ConsumerOptions,
    ) -> BusResult<Box<dyn Consumer>> {
        validate_name(durable)
            .map_err(|err| BusError::invalid(format!("invalid consumer name: {err}")))?;
        options.validate()?;
        for filter in &filter_subjects {
            validate_pattern(filter)?;
        }
        let handle = self.stream(stream)?;
        let generation = {
            let mut state = lock(&handle.state);
            let start = match options.deliver_policy {
                DeliverPolicy::All => state.first_sequence,
                DeliverPolicy::New => state.last_sequence + 1,
                DeliverPolicy::FromSequence(sequence) => sequence.max(state.first_sequence),
            };
            if options.restart {
                state.consumers.remove(durable);
            }
            match state.consumers.get_mut(durable) {
                Some(existing) => {
                    // Where a consumer starts matters only when it is created.
                    let deliver_policy = existing.options.deliver_policy;
                    existing.filters = filter_subjects;
                    existing.options = ConsumerOptions {
                        deliver_policy,
                        ..options
                    };
                    existing.generation
                }
                None => {
                    let generation = GENERATIONS.fetch_add(1, Ordering::Relaxed);
                    state.consumers.insert(
                        durable.to_owned(),
                        ConsumerState {
                            generation,
                            filters: filter_subjects,
                            options,
                            next_sequence: start,
                            pending: HashMap::default(),
                            timers: BTreeSet::new(),
                        },
                    );
                    generation
                }
            }
        };
        Ok(Box::new(MemoryConsumer {
            consumer: Arc::new(ConsumerRef {
                stream: handle,
                name: durable.to_owned(),
                generation,
            }),
        }))
    }

    async fn subscribe(&self, subject: &str) -> BusResult<Box<dyn Subscription>> {
        validate_pattern(subject)?;
        let (sender, receiver) = mpsc::channel(self.inner.options.subscription_capacity.max(1));
        let id = self.inner.next_subscription.fetch_add(1, Ordering::Relaxed);
        lock(&self.inner.subscriptions).push(SubscriptionEntry {
            id,
            pattern: subject.to_owned(),
            sender,
        });
        Ok(Box::new(MemorySubscription {
            id,
            receiver,
            bus: Arc::clone(&self.inner),
        }))
    }

    async fn consumer_lag(&self, stream: &str, durable: &str) -> BusResult<ConsumerLag> {
        let handle = self.stream(stream)?;
        MemoryConsumer {
            consumer: Arc::new(ConsumerRef {
                stream: handle,
                name: durable.to_owned(),
                // Asks how far it is behind; never replies to a delivery.
                generation: 0,
            }),
        }
        .pending()
        .await
    }

    async fn read_stream(
        &self,
        stream: &str,
        filter_subjects: Vec<String>,
        start_sequence: u64,
    ) -> BusResult<Box<dyn StreamReader>> {
        for filter in &filter_subjects {
            validate_pattern(filter)?;
        }
        let handle = self.stream(stream)?;
        Ok(Box::new(MemoryReader {
            stream: handle,
            filters: filter_subjects,
            next_sequence: start_sequence.max(1),
        }))
    }

    async fn core_publish(&self, subject: &str, headers: Headers, payload: Bytes) -> BusResult<()> {
        self.check_message(subject, &headers, &payload)?;
        self.fan_out(subject, &headers, &payload);
        self.store(subject, headers, payload);
        Ok(())
    }

    async fn stream_info(&self, stream: &str) -> BusResult<StreamInfo> {
        let handle = self.stream(stream)?;
        let mut state = lock(&handle.state);
        state.apply_limits(Instant::now());
        Ok(state.info(&handle.name))
    }

    async fn health(&self) -> BusResult<()> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn limits_remove_the_oldest() {
        let bus = MemoryBus::new();
        bus.ensure_streams(&[StreamConfig::new("L", vec!["l.>".into()]).with_max_messages(3)])
            .await
            .unwrap();
        for i in 0..5 {
            bus.publish(&format!("l.{i}"), Headers::new(), Bytes::new())
                .await
                .unwrap();
        }
        let info = bus.stream_info("L").await.unwrap();
        assert_eq!(
            (info.messages, info.first_sequence, info.last_sequence),
            (3, 3, 5)
        );
        let consumer = bus
            .consumer("L", "c", vec![], ConsumerOptions::default())
            .await
            .unwrap();
        let got = consumer.fetch(10, Duration::ZERO).await.unwrap();
        assert_eq!(
            got.iter().map(|d| d.stream_sequence).collect::<Vec<_>>(),
            [3, 4, 5]
        );
    }

    #[tokio::test]
    async fn max_age_and_bytes() {
        let bus = MemoryBus::new();
        bus.ensure_streams(&[StreamConfig::new("A", vec!["a".into()])
            .with_max_age(Duration::from_millis(50))
            .with_duplicate_window(Duration::from_millis(10))])
            .await
            .unwrap();
        bus.publish("a", Headers::new(), Bytes::new())
            .await
            .unwrap();
        tokio::time::sleep(Duration::from_millis(80)).await;
        let info = bus.stream_info("A").await.unwrap();
        assert_eq!((info.messages, info.first_sequence), (0, 2));

        bus.ensure_streams(&[StreamConfig::new("B", vec!["b".into()]).with_max_bytes(10)])
            .await
            .unwrap();
        bus.publish("b", Headers::new(), Bytes::from_static(b"12345678"))
            .await
            .unwrap();
        bus.publish("b", Headers::new(), Bytes::from_static(b"1"))
            .await
            .unwrap();
        let info = bus.stream_info("B").await.unwrap();
        assert_eq!((info.messages, info.first_sequence), (1, 2));
    }

    #[tokio::test]
    async fn payload_limit() {
        let bus = MemoryBus::with_options(MemoryOptions {
            max_payload: 4,
            ..MemoryOptions::default()
        });
        bus.ensure_streams(&[StreamConfig::new("P", vec!["p".into()])])
            .await
            .unwrap();
        let err = bus
            .publish("p", Headers::new(), Bytes::from_static(b"12345"))
            .await
            .unwrap_err();
        assert_eq!(err.kind(), BusErrorKind::PayloadTooLarge);
        assert!(!err.is_retryable());
    }
}
