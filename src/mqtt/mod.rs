//! The MQTT actor: owns the broker connection in its own task. The
//! supervisor hands it [`Outgoing`] messages and hears [`Inbound`] ones over
//! bounded channels, so nothing the broker does can stall the stream.
//!
//! Up: nothing the supervisor publishes is dropped; when the broker takes
//! it more slowly than it comes, the actor stops handing commands over until
//! there is room again, and the broker holds the rest ([`inbox`]).
//! Down: telemetry (QoS 0) is dropped and counted; events and retained
//! messages are held (bounded) and sent on reconnect. Reconnects use capped,
//! jittered backoff. `auto` tries MQTT 5 and falls back to 3.1.1 when the
//! broker turns 5 down or does not answer it (see [`negotiate`]).

mod inbox;
mod link;
mod negotiate;

pub use link::Protocol;

use crate::config::{Mqtt, MqttProtocol};
use crate::control::topics::Topics;
use crate::backoff::Backoff;
use bytes::Bytes;
use inbox::Inbox;
use link::{Ack, Driver, Link, LinkError, Polled, Will};
use negotiate::{Memory, NextAttempt};
use std::future::Future;
use std::pin::Pin;
use std::collections::VecDeque;
use std::time::{Duration, Instant};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tracing::{info, warn};

/// A message for the broker.
#[derive(Clone, Debug)]
pub struct Outgoing {
    pub topic: String,
    pub payload: Bytes,
    pub qos1: bool,
    pub retain: bool,
    /// MQTT 5 correlation data of the command this replies to.
    pub correlation: Option<Bytes>,
    pub content_type: &'static str,
}

impl Outgoing {
    pub fn json(topic: String, value: &impl serde::Serialize, qos1: bool, retain: bool) -> Outgoing {
        let payload = Bytes::from(serde_json::to_vec(value).expect("JSON serialises"));
        Outgoing { topic, payload, qos1, retain, correlation: None, content_type: "application/json" }
    }
}

/// A message from the broker.
#[derive(Clone, Debug)]
pub struct Incoming {
    pub topic: String,
    pub payload: Bytes,
    pub response_topic: Option<String>,
    pub correlation: Option<Bytes>,
    /// The broker sent a retained copy (at subscribe; under MQTT 5 also live).
    pub retain: bool,
}

#[derive(Debug)]
pub enum Inbound {
    /// Connected and subscribed. After an outage: how long it lasted and
    /// what was lost meanwhile; `resumed`: the broker kept the session, so
    /// QoS 1 commands sent meanwhile are delivered now.
    Up { protocol: Protocol, outage: Option<Duration>, dropped: u64, resumed: bool },
    Down { reason: String },
    Message(Incoming),
}

enum Request {
    Publish(Outgoing),
    /// The supervisor has handled the oldest message it was given.
    Handled,
    /// Publish these last words, then disconnect cleanly (no Last Will).
    Close(Vec<Outgoing>),
}

/// The supervisor's side of the actor.
pub struct MqttHandle {
    /// Unbounded, so a reply is never refused: the actor drains it at once
    /// into its own queue, which stays small because commands (the only
    /// source of bursts) are handed over only while there is room.
    tx: mpsc::UnboundedSender<Request>,
    task: JoinHandle<()>,
}

/// Held while disconnected (events, replies, retained state).
const HOLD: usize = 256;
/// Room for what the actor hands over: commands ([`inbox::WITH_SUPERVISOR`])
/// and connection news.
pub const INBOUND_QUEUE: usize = 64;

impl MqttHandle {
    /// Queues a message for the broker; false only once the actor is gone.
    pub fn publish(&self, m: Outgoing) -> bool {
        self.tx.send(Request::Publish(m)).is_ok()
    }

    /// A handle that only publishes, for a task beside the supervisor
    /// (telemetry). Same queue, same order.
    pub fn publisher(&self) -> Publisher {
        Publisher { tx: self.tx.clone() }
    }

    /// Says the oldest message received has been handled (its replies are
    /// queued): it is acknowledged to the broker, which may send the next.
    /// Call once for every [`Inbound::Message`], in order.
    pub fn handled(&self) {
        let _ = self.tx.send(Request::Handled);
    }

    /// Sends `last` (e.g. status offline), disconnects, waits (bounded).
    /// Bounded: if the actor cannot flush in time it is dropped, the
    /// connection closes without DISCONNECT and the broker publishes the
    /// Last Will (`offline`) instead.
    pub async fn close(self, last: Vec<Outgoing>) {
        let MqttHandle { tx, task } = self;
        let abort = task.abort_handle();
        let closed = tokio::time::timeout(link::FLUSH + Duration::from_secs(1), async move {
            let _ = tx.send(Request::Close(last));
            let _ = task.await;
        })
        .await;
        if closed.is_err() {
            abort.abort();
            warn!("MQTT did not close in time; the broker publishes the Last Will");
        }
    }
}

/// Publishes through the MQTT actor (see [`MqttHandle::publisher`]).
#[derive(Clone)]
pub struct Publisher {
    tx: mpsc::UnboundedSender<Request>,
}

impl Publisher {
    /// False once the actor has ended.
    pub fn publish(&self, m: Outgoing) -> bool {
        self.tx.send(Request::Publish(m)).is_ok()
    }
}

#[derive(Debug, thiserror::Error)]
#[error("mqtt.{field}: {source}")]
pub struct SetupError {
    pub field: &'static str,
    #[source]
    pub source: crate::tls::TlsConfigError,
}

/// Starts the actor. `will` is the retained `status` the broker publishes
/// if this process vanishes.
pub fn spawn(cfg: &Mqtt, topics: &Topics, will: Vec<u8>, inbound: mpsc::Sender<Inbound>) -> Result<MqttHandle, SetupError> {
    let tls = if cfg.tls {
        let auth = cfg.client_auth.as_ref().map(|(c, k)| (c.as_path(), k.as_path()));
        let field = if cfg.client_auth.is_some() { "client_cert" } else { "ca_file" };
        Some(crate::tls::client_config(cfg.ca_file.as_deref(), auth).map_err(|source| SetupError { field, source })?)
    } else {
        None
    };
    let (tx, rx) = mpsc::unbounded_channel();
    let protocol = if cfg.protocol == MqttProtocol::V311 { Protocol::V311 } else { Protocol::V5 };
    let will = Will { topic: topics.status(), payload: will };
    let (link, driver) = Link::new(cfg, protocol, &will, tls.clone());
    let actor = Actor {
        link,
        driver: Some(driver),
        settled: cfg.protocol != MqttProtocol::Auto,
        memory: Memory::default(),
        reprobing: false,
        cfg: cfg.clone(),
        tls,
        will,
        filters: vec![topics.commands(), topics.desired()],
        inbound,
        inbox: Inbox::default(),
        generation: 0,
        held: VecDeque::new(),
        dropped: 0,
        connected: false,
        down_since: Some(Instant::now()),
        ever_up: false,
    };
    info!(broker = %cfg.broker_display(), client_id = %cfg.client_id, "MQTT connecting");
    Ok(MqttHandle { tx, task: tokio::spawn(actor.run(rx)) })
}

/// One in-flight [`Driver::poll`].
type Poll = Pin<Box<dyn Future<Output = (Driver, Result<Polled, LinkError>)> + Send>>;

struct Actor {
    link: Link,
    /// The connection, when no poll holds it.
    driver: Option<Driver>,
    /// The protocol is fixed: by the config, or by the broker refusing 5.
    settled: bool,
    /// What `auto` learned about the broker.
    memory: Memory,
    /// Disconnecting from a guessed 3.1.1 connection to try 5 again.
    reprobing: bool,
    cfg: Mqtt,
    tls: Option<std::sync::Arc<tokio_rustls::rustls::ClientConfig>>,
    will: Will,
    filters: Vec<String>,
    inbound: mpsc::Sender<Inbound>,
    /// What the broker sent, on its way to the supervisor.
    inbox: Inbox<(u64, Ack)>,
    /// Counts connections: an acknowledgement owed to an earlier one is
    /// void (the broker redelivers the message on a resumed session).
    generation: u64,
    /// Waiting for room in the client's queue (connected), or for the
    /// connection (down), in order.
    held: VecDeque<Pending>,
    dropped: u64,
    connected: bool,
    down_since: Option<Instant>,
    ever_up: bool,
}

/// Something for the client's request queue.
enum Pending {
    Publish(Outgoing),
    Ack(Ack),
}

impl Actor {
    async fn run(mut self, mut rx: mpsc::UnboundedReceiver<Request>) {
        let policy = Backoff { initial: Duration::from_millis(500), max: Duration::from_secs(30) };
        let mut backoff = policy.schedule();
        let mut retry_at: Option<tokio::time::Instant> = None;
        let mut polling: Option<Poll> = None;
        let mut up_since: Option<Instant> = None;
        let mut reprobe_at: Option<tokio::time::Instant> = None;
        loop {
            if polling.is_none() && retry_at.is_none() {
                polling = self.driver.take().map(|d| Box::pin(d.poll()) as Poll);
            }
            // The next command goes to the supervisor only while the outgoing
            // side has room for what it will answer (see `inbox`).
            let hand_over = self.inbox.ready(self.held.len()) && !self.inbound.is_closed();
            let to_supervisor = self.inbound.clone();
            tokio::select! {
                req = rx.recv() => match req {
                    Some(Request::Publish(m)) => self.send(m),
                    Some(Request::Handled) => self.handled(),
                    Some(Request::Close(last)) => return self.close(last, polling).await,
                    None => return self.close(Vec::new(), polling).await,
                },
                permit = to_supervisor.reserve(), if hand_over => {
                    if let (Ok(permit), Some(item)) = (permit, self.inbox.take()) {
                        permit.send(item);
                    }
                }
                _ = sleep_until(retry_at) => retry_at = None,
                // On 3.1.1 by a guess: leave cleanly (no Last Will) and try 5.
                _ = sleep_until(reprobe_at) => {
                    reprobe_at = None;
                    info!("on MQTT 3.1.1 since 5 got no answer: disconnecting to try 5 again");
                    self.reprobing = true;
                    self.link.disconnect();
                }
                (driver, polled) = in_flight(&mut polling) => {
                    polling = None;
                    self.driver = Some(driver);
                    if self.connected {
                        self.flush();
                    }
                    match polled {
                        Ok(Polled::Connected { resumed }) => {
                            up_since = Some(Instant::now());
                            let protocol = self.link.protocol();
                            self.memory.connected(protocol);
                            if protocol == Protocol::V311 && !self.settled {
                                reprobe_at = Some(tokio::time::Instant::now() + self.memory.reprobe_in());
                            }
                            self.up(resumed);
                        }
                        Ok(Polled::Message(m, ack)) => {
                            // Not acknowledged yet: the broker holds back what
                            // comes after, beyond its window, until it is handled.
                            if !self.inbox.message(m, ack.map(|a| (self.generation, a))) {
                                warn!("too many QoS 0 messages waiting: one was dropped (send commands at QoS 1)");
                            }
                        }
                        Ok(Polled::Nothing) => {}
                        Err(e) => {
                            // Only a connection that stayed up proves the broker
                            // healthy: one that dies at once (a broker that takes
                            // the CONNECT and then drops every session) must not
                            // turn the backoff into a reconnect loop.
                            if stayed_up(up_since.take().map(|t| t.elapsed())) {
                                backoff.reset();
                            }
                            self.down(&e.message);
                            reprobe_at = None;
                            if std::mem::take(&mut self.reprobing) {
                                self.relink(Protocol::V5);
                                continue;
                            }
                            match self.memory.failed(self.settled, self.link.protocol(), e.v5) {
                                NextAttempt::Same => {}
                                NextAttempt::V311Now { settled } => {
                                    if settled {
                                        warn!("the broker refused MQTT 5; using 3.1.1 from now on");
                                    } else {
                                        warn!("no CONNACK to MQTT 5; trying 3.1.1 for this connection");
                                    }
                                    self.settled = settled;
                                    self.relink(Protocol::V311);
                                    continue;
                                }
                                NextAttempt::BackToV5 => self.relink(Protocol::V5),
                            }
                            retry_at = Some(tokio::time::Instant::now() + backoff.next_delay());
                        }
                    }
                },
            }
        }
    }

    fn relink(&mut self, protocol: Protocol) {
        let (link, driver) = Link::new(&self.cfg, protocol, &self.will, self.tls.clone());
        (self.link, self.driver) = (link, Some(driver));
    }

    fn up(&mut self, resumed: bool) {
        self.connected = true;
        self.generation += 1;
        for f in &self.filters {
            if let Err(e) = self.link.subscribe(f) {
                warn!(error = %e, "MQTT subscribe failed");
            }
        }
        let outage = self.down_since.take().filter(|_| self.ever_up).map(|t| t.elapsed());
        self.ever_up = true;
        info!(protocol = self.link.protocol().as_str(), outage_ms = outage.map(|d| d.as_millis() as u64), session_resumed = resumed, "MQTT connected");
        let dropped = std::mem::take(&mut self.dropped);
        self.inbox.news(Inbound::Up { protocol: self.link.protocol(), outage, dropped, resumed });
        // The supervisor answers Up with a fresh birth `status`; a held one is stale.
        let status = &self.will.topic;
        self.held.retain(|h| !matches!(h, Pending::Publish(m) if &m.topic == status));
        self.flush();
    }

    /// Sends what is held, in order, until the client's queue is full.
    fn flush(&mut self) {
        while let Some(p) = self.held.front() {
            let queued = match p {
                Pending::Publish(m) => self.link.publish(m),
                Pending::Ack(a) => self.link.ack(a),
            };
            if queued.is_err() {
                return;
            }
            self.held.pop_front();
        }
    }

    /// The supervisor is done with its oldest message: acknowledge it, after
    /// the replies it queued (they are ahead of it in `held`).
    fn handled(&mut self) {
        let Some((generation, ack)) = self.inbox.handled() else { return };
        if self.connected && generation == self.generation {
            self.held.push_back(Pending::Ack(ack));
            self.flush();
        }
    }

    fn down(&mut self, reason: &str) {
        if self.connected || self.down_since.is_none() {
            warn!(%reason, "MQTT connection lost; the stream is unaffected");
            self.connected = false;
            self.down_since = Some(Instant::now());
            // A backlog may hold telemetry; it is stale by the time we are back.
            // Acknowledgements are void: the broker redelivers instead.
            let telemetry = self.held.iter().filter(|h| matches!(h, Pending::Publish(m) if !m.qos1 && !m.retain)).count();
            self.held.retain(|h| matches!(h, Pending::Publish(m) if m.qos1 || m.retain));
            self.dropped += telemetry as u64;
            self.inbox.news(Inbound::Down { reason: reason.to_string() });
        }
    }

    fn send(&mut self, m: Outgoing) {
        if !crate::control::topics::publishable(&m.topic) {
            // rumqttc would refuse it forever (and block what follows).
            warn!("not a topic a client may publish to: message dropped");
            return;
        }
        if self.connected {
            // In order behind anything the client's queue could not take yet.
            self.held.push_back(Pending::Publish(m));
            self.flush();
            return;
        }
        self.hold(m);
    }

    /// Keeps what matters for later; telemetry is only worth sending fresh.
    fn hold(&mut self, m: Outgoing) {
        if !m.qos1 && !m.retain {
            self.dropped += 1;
            return;
        }
        if m.retain {
            self.held.retain(|h| !matches!(h, Pending::Publish(x) if x.retain && x.topic == m.topic));
        }
        if self.held.len() >= HOLD {
            self.held.pop_front();
            self.dropped += 1;
        }
        self.held.push_back(Pending::Publish(m));
    }

    async fn close(mut self, last: Vec<Outgoing>, polling: Option<Poll>) {
        if !self.connected {
            return;
        }
        // The last words go after what is still held, in order; DISCONNECT
        // only once everything is queued in the client.
        self.held.extend(last.into_iter().map(Pending::Publish));
        let mut polling = polling;
        let mut driver = self.driver.take();
        let clean = tokio::time::timeout(link::FLUSH, async {
            let mut disconnecting = false;
            loop {
                self.flush();
                if self.held.is_empty() && !disconnecting {
                    self.link.disconnect();
                    disconnecting = true;
                }
                let (d, polled) = match (polling.take(), driver.take()) {
                    (Some(p), _) => p.await,
                    (None, Some(d)) => d.poll().await,
                    (None, None) => return false,
                };
                if polled.is_err() {
                    // After DISCONNECT the broker closes the connection.
                    return disconnecting;
                }
                driver = Some(d);
            }
        })
        .await;
        if clean == Ok(true) {
            info!("MQTT disconnected");
        } else {
            warn!("MQTT closed before everything was sent; the broker publishes the Last Will");
        }
    }
}

/// A connection up this long proved the broker healthy: the next failure
/// starts the backoff again from its first step.
const STABLE: Duration = Duration::from_secs(10);

fn stayed_up(up_for: Option<Duration>) -> bool {
    up_for.is_some_and(|d| d >= STABLE)
}

/// The in-flight poll's outcome; never, when there is none.
async fn in_flight(polling: &mut Option<Poll>) -> (Driver, Result<Polled, LinkError>) {
    match polling {
        Some(p) => p.await,
        None => std::future::pending().await,
    }
}

async fn sleep_until(t: Option<tokio::time::Instant>) {
    match t {
        Some(t) => tokio::time::sleep_until(t).await,
        None => std::future::pending().await,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_connection_that_stayed_up_resets_the_backoff() {
        assert!(!stayed_up(None), "never connected");
        assert!(!stayed_up(Some(Duration::ZERO)), "died at once");
        assert!(!stayed_up(Some(STABLE - Duration::from_millis(1))));
        assert!(stayed_up(Some(STABLE)));
        assert!(stayed_up(Some(Duration::from_secs(3600))));
    }
}
