//! One reader of ALERTS per API process, fanned out to every feed client.
//!
//! A JetStream stream admits a limited number of consumers (nats-server
//! 2.15 gives every stream 1,000 by default), and each consumer costs the
//! server work per message: a consumer per feed client would stop the feed
//! at about a thousand clients across all API replicas. So each API process
//! reads ALERTS once, from the newest message on, and hands every message to
//! its clients through a broadcast channel; a client that resumes from an
//! older sequence (`Last-Event-ID`, `since`) first reads the stream itself
//! up to where the broadcast was when it subscribed, then joins it. A
//! client that falls more than [`BUFFER`] messages behind is ended and
//! resumes with `Last-Event-ID` like after any disconnect.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Weak};
use std::time::Duration;

use futures::Stream;
use posbon_bus::subjects::{ALERTS_ALL, ALERTS_STREAM, subject_matches};
use posbon_bus::{Bus, BusError, StreamMessage, StreamReader};
use tokio::sync::broadcast;

/// Messages a client may fall behind the live position before it is ended.
pub(crate) const BUFFER: usize = 4096;

/// The shared reader of ALERTS and its broadcast.
#[derive(Debug)]
pub(crate) struct LiveAlerts {
    bus: Arc<dyn Bus>,
    sender: broadcast::Sender<Arc<StreamMessage>>,
    /// The sequence of the last message broadcast.
    position: AtomicU64,
    started: AtomicBool,
    start_lock: tokio::sync::Mutex<()>,
}

impl LiveAlerts {
    /// The fan-out over `bus`; its reader starts with the first subscriber.
    pub(crate) fn new(bus: Arc<dyn Bus>) -> Arc<Self> {
        let (sender, _) = broadcast::channel(BUFFER);
        Arc::new(Self {
            bus,
            sender,
            position: AtomicU64::new(0),
            started: AtomicBool::new(false),
            start_lock: tokio::sync::Mutex::new(()),
        })
    }

    async fn start(self: &Arc<Self>) -> Result<(), BusError> {
        if self.started.load(Ordering::Acquire) {
            return Ok(());
        }
        let _guard = self.start_lock.lock().await;
        if self.started.load(Ordering::Acquire) {
            return Ok(());
        }
        let last = self.bus.stream_info(ALERTS_STREAM).await?.last_sequence;
        self.position.store(last, Ordering::Release);
        tokio::spawn(read(Arc::downgrade(self), last));
        self.started.store(true, Ordering::Release);
        Ok(())
    }

    /// The ALERTS messages on `subjects` after `after` (`None`: from the
    /// next one), in order, live. Ends when the client falls too far behind
    /// or the stream cannot be read (the client resumes from its last id).
    pub(crate) async fn subscribe(
        self: &Arc<Self>,
        subjects: Vec<String>,
        after: Option<u64>,
    ) -> Result<impl Stream<Item = StreamMessage> + Send + use<>, BusError> {
        self.start().await?;
        let receiver = self.sender.subscribe();
        let live = self.position.load(Ordering::Acquire);
        let catch_up = match after {
            Some(after) if after < live => Some(
                self.bus
                    .read_stream(ALERTS_STREAM, vec![ALERTS_ALL.to_owned()], after + 1)
                    .await?,
            ),
            _ => None,
        };
        let state = Follow {
            catch_up,
            receiver,
            live,
            last: after.unwrap_or(live),
            subjects,
        };
        Ok(futures::stream::unfold(state, Follow::next))
    }
}

/// One client's position: reading the stream to catch up, then the broadcast.
struct Follow {
    catch_up: Option<Box<dyn StreamReader>>,
    receiver: broadcast::Receiver<Arc<StreamMessage>>,
    /// Where the broadcast was when the client subscribed.
    live: u64,
    /// The last sequence handed out or skipped.
    last: u64,
    subjects: Vec<String>,
}

impl Follow {
    fn wanted(&self, message: &StreamMessage) -> bool {
        self.subjects
            .iter()
            .any(|pattern| subject_matches(pattern, &message.subject))
    }

    async fn next(mut self) -> Option<(StreamMessage, Self)> {
        loop {
            if let Some(reader) = &mut self.catch_up {
                if self.last >= self.live {
                    self.catch_up = None;
                    continue;
                }
                match reader.next().await {
                    Some(Ok(message)) => {
                        if message.sequence <= self.last {
                            continue;
                        }
                        self.last = message.sequence;
                        if self.wanted(&message) {
                            return Some((message, self));
                        }
                        continue;
                    }
                    Some(Err(err)) => {
                        tracing::warn!(error = %err, "feed catch-up failed; the client will resume");
                        return None;
                    }
                    None => return None,
                }
            }
            match self.receiver.recv().await {
                Ok(message) => {
                    if message.sequence <= self.last {
                        continue;
                    }
                    self.last = message.sequence;
                    if self.wanted(&message) {
                        return Some(((*message).clone(), self));
                    }
                }
                Err(broadcast::error::RecvError::Lagged(missed)) => {
                    tracing::info!(
                        missed,
                        "a feed client fell behind; it resumes with Last-Event-ID"
                    );
                    return None;
                }
                Err(broadcast::error::RecvError::Closed) => return None,
            }
        }
    }
}

/// Reads ALERTS from after `last` and broadcasts every message, until the
/// fan-out is dropped; a failed reader is opened again from where it was.
async fn read(live: Weak<LiveAlerts>, mut last: u64) {
    let mut backoff = Duration::from_millis(200);
    // A gap seen once and read again: (the last sequence before it, the
    // sequence after it).
    let mut gap_read_again: Option<(u64, u64)> = None;
    loop {
        let Some(alerts) = live.upgrade() else { return };
        let reader = alerts
            .bus
            .read_stream(ALERTS_STREAM, vec![ALERTS_ALL.to_owned()], last + 1)
            .await;
        drop(alerts);
        let mut reader = match reader {
            Ok(reader) => reader,
            Err(err) => {
                tracing::warn!(error = %err, "cannot read ALERTS for the feed; retrying");
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(5));
                continue;
            }
        };
        backoff = Duration::from_millis(200);
        loop {
            // Wake up now and then to notice that the API is gone, or that
            // the reader stopped short of the stream.
            let next = tokio::time::timeout(Duration::from_secs(2), reader.next()).await;
            let Some(alerts) = live.upgrade() else { return };
            match next {
                // Quiet for a while: make sure the reader has not stopped
                // short of the stream's end (an ordered reader can lose its
                // place while the stream's leader changes); if it has, read
                // from where it is again.
                Err(_) => match alerts.bus.stream_info(ALERTS_STREAM).await {
                    Ok(info) if info.last_sequence > last => {
                        tracing::warn!(
                            after = last,
                            stream_last = info.last_sequence,
                            "the ALERTS reader fell silent short of the stream's end; reading again"
                        );
                        break;
                    }
                    _ => continue,
                },
                Ok(Some(Ok(message))) => {
                    if message.sequence <= last {
                        continue;
                    }
                    // The reader covers every subject of ALERTS, so its
                    // sequences are consecutive unless messages were removed.
                    // An ordered reader can skip messages while the stream's
                    // leader changes (seen under SIGKILL in the cluster
                    // test): read a gap again once before believing it.
                    if message.sequence > last + 1
                        && last > 0
                        && gap_read_again != Some((last, message.sequence))
                    {
                        tracing::warn!(
                            after = last,
                            next = message.sequence,
                            "the ALERTS reader skipped messages; reading them again"
                        );
                        gap_read_again = Some((last, message.sequence));
                        break;
                    }
                    last = message.sequence;
                    alerts.position.store(last, Ordering::Release);
                    // No receiver: nobody listens now, which is fine.
                    let _ = alerts.sender.send(Arc::new(message));
                }
                Ok(Some(Err(err))) => {
                    tracing::warn!(error = %err, "reading ALERTS for the feed failed; reopening");
                    break;
                }
                Ok(None) => return,
            }
        }
    }
}
