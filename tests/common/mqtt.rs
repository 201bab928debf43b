//! A dashboard stand-in: an MQTT 5 client that records every message it
//! sees (topic, payload, retain flag, arrival time, correlation data), so
//! tests judge what the device actually published. It reconnects and
//! resubscribes by itself when the broker goes away and comes back.
//!
//! TLS is configured here (rustls + ring, trusting only the given CA), not
//! with the crate's own TLS code: the judge does not share the code it judges.

use bytes::Bytes;
use rumqttc::v5::mqttbytes::v5::{Packet, PublishProperties, SubscribeReasonCode};
use rumqttc::v5::mqttbytes::QoS;
use rumqttc::v5::{Client, ConnectionError, Event, MqttOptions};
use serde_json::Value;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio_rustls::rustls;

/// Payloads up to this size are accepted. rumqttc v5 also announces it to
/// the broker (CONNECT Maximum Packet Size), which then silently drops
/// anything bigger for us; its default (10 KiB, not announced) would make
/// the client disconnect on a snapshot.
const MAX_PACKET: u32 = 4 * 1024 * 1024;

/// One received PUBLISH.
#[derive(Clone, Debug)]
pub struct Msg {
    pub topic: String,
    pub payload: Vec<u8>,
    pub retain: bool,
    pub at: Instant,
    pub correlation: Option<Vec<u8>>,
    /// MQTT 5 response topic, if the publisher set one.
    pub response_topic: Option<String>,
}

impl Msg {
    /// The payload as JSON, if it is JSON.
    pub fn json(&self) -> Option<Value> {
        serde_json::from_slice(&self.payload).ok()
    }
}

/// A recording subscriber (and publisher) on one broker.
pub struct Watcher {
    client: Client,
    log: Arc<Mutex<Vec<Msg>>>,
    stop: Arc<AtomicBool>,
}

/// A rustls client config trusting only `ca` (no system roots).
fn tls_config(ca: Option<&Path>) -> rustls::ClientConfig {
    let mut roots = rustls::RootCertStore::empty();
    if let Some(ca) = ca {
        let pem = std::fs::read(ca).expect("read CA file");
        for cert in rustls_pemfile::certs(&mut pem.as_slice()) {
            roots.add(cert.expect("CA PEM")).expect("add CA certificate");
        }
    }
    rustls::ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth()
}

fn options(url: &str, ca: Option<&Path>, creds: Option<(&str, &str)>) -> MqttOptions {
    let u = url::Url::parse(url).expect("broker url");
    let id = format!("test-{:08x}", rand::random::<u32>());
    let mut o = MqttOptions::new(id, u.host_str().expect("host"), u.port().expect("port"));
    o.set_keep_alive(Duration::from_secs(10)).set_max_packet_size(Some(MAX_PACKET));
    if let Some((user, pass)) = creds {
        o.set_credentials(user, pass);
    }
    if u.scheme() == "mqtts" {
        let cfg = rumqttc::TlsConfiguration::Rustls(Arc::new(tls_config(ca)));
        o.set_transport(rumqttc::Transport::tls_with_config(cfg));
    }
    o
}

fn record(p: rumqttc::v5::mqttbytes::v5::Publish) -> Msg {
    let props = p.properties.unwrap_or_default();
    Msg {
        topic: String::from_utf8_lossy(&p.topic).into_owned(),
        payload: p.payload.to_vec(),
        retain: p.retain,
        at: Instant::now(),
        correlation: props.correlation_data.map(|b| b.to_vec()),
        response_topic: props.response_topic,
    }
}

impl Watcher {
    /// Connects and subscribes to `filter` (QoS 1); panics if that takes over 10 s.
    /// `ca` is the only trusted root for `mqtts://`; `creds` is (user, password).
    pub fn connect(url: &str, ca: Option<&Path>, creds: Option<(&str, &str)>, filter: &str) -> Watcher {
        Watcher::try_connect(url, ca, creds, filter).unwrap_or_else(|e| panic!("watcher on {url}: {e}"))
    }

    /// [`Watcher::connect`], but an error (the last connection error, or a
    /// refused subscription) instead of a panic: at once if the broker or
    /// the TLS handshake refuses, else when not subscribed within 10 s.
    pub fn try_connect(url: &str, ca: Option<&Path>, creds: Option<(&str, &str)>, filter: &str) -> Result<Watcher, String> {
        let (client, mut conn) = Client::new(options(url, ca, creds), 256);
        let log = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let subscribed = Arc::new(AtomicBool::new(false));
        // Refused by the broker or the TLS handshake: retrying will not help.
        let refused = Arc::new(AtomicBool::new(false));
        let last_error = Arc::new(Mutex::new(String::from("no answer")));
        let (log2, stop2, sub2, refused2, err2, client2, filter) = (
            log.clone(),
            stop.clone(),
            subscribed.clone(),
            refused.clone(),
            last_error.clone(),
            client.clone(),
            filter.to_string(),
        );
        std::thread::spawn(move || {
            // Polling again after an error reconnects (clean start: resubscribe).
            for ev in conn.iter() {
                if stop2.load(Ordering::Relaxed) {
                    break;
                }
                match ev {
                    Ok(Event::Incoming(Packet::ConnAck(_))) => {
                        let _ = client2.try_subscribe(filter.clone(), QoS::AtLeastOnce);
                    }
                    Ok(Event::Incoming(Packet::SubAck(ack))) => {
                        if ack.return_codes.iter().all(|c| matches!(c, SubscribeReasonCode::Success(_))) {
                            sub2.store(true, Ordering::Relaxed);
                        } else {
                            *err2.lock().unwrap() = format!("subscription refused: {:?}", ack.return_codes);
                            refused2.store(true, Ordering::Relaxed);
                        }
                    }
                    Ok(Event::Incoming(Packet::Publish(p))) => log2.lock().unwrap().push(record(p)),
                    Ok(_) => {}
                    Err(e) => {
                        *err2.lock().unwrap() = e.to_string();
                        if matches!(e, ConnectionError::ConnectionRefused(_) | ConnectionError::Tls(_)) {
                            refused2.store(true, Ordering::Relaxed);
                        }
                        std::thread::sleep(Duration::from_millis(200));
                    }
                }
            }
        });
        let w = Watcher { client, log, stop };
        let done = || subscribed.load(Ordering::Relaxed) || refused.load(Ordering::Relaxed);
        if super::wait_for(Duration::from_secs(10), done) && subscribed.load(Ordering::Relaxed) {
            Ok(w)
        } else {
            Err(format!("not subscribed: {}", last_error.lock().unwrap()))
        }
    }

    /// Everything received so far, oldest first.
    pub fn messages(&self) -> Vec<Msg> {
        self.log.lock().unwrap().clone()
    }

    /// Everything received on exactly `topic`.
    pub fn on(&self, topic: &str) -> Vec<Msg> {
        self.messages().into_iter().filter(|m| m.topic == topic).collect()
    }

    /// Forgets everything received so far.
    pub fn clear(&self) {
        self.log.lock().unwrap().clear();
    }

    /// The first message (received before or within `timeout`) matching `pred`.
    pub fn wait_msg(&self, timeout: Duration, pred: impl Fn(&Msg) -> bool) -> Option<Msg> {
        let mut found = None;
        super::wait_for(timeout, || {
            found = self.log.lock().unwrap().iter().find(|m| pred(m)).cloned();
            found.is_some()
        });
        found
    }

    /// The first JSON message on `topic` matching `pred`.
    pub fn wait_json(&self, timeout: Duration, topic: &str, pred: impl Fn(&Value) -> bool) -> Option<Value> {
        self.wait_msg(timeout, |m| m.topic == topic && m.json().is_some_and(|v| pred(&v))).and_then(|m| m.json())
    }

    /// Publishes at QoS 1.
    pub fn publish(&self, topic: &str, payload: &[u8], retain: bool) {
        self.publish_qos(topic, payload, retain, true);
    }

    /// Publishes at QoS 1 (`qos1`) or 0. Queued: this does not wait for the broker.
    pub fn publish_qos(&self, topic: &str, payload: &[u8], retain: bool, qos1: bool) {
        let qos = if qos1 { QoS::AtLeastOnce } else { QoS::AtMostOnce };
        self.client.publish(topic, qos, retain, payload.to_vec()).expect("publish");
    }

    /// A QoS 1 request with MQTT 5 response topic and correlation data.
    pub fn publish_with_response(&self, topic: &str, payload: &[u8], response_topic: &str, correlation: &[u8]) {
        let props = PublishProperties {
            response_topic: Some(response_topic.to_string()),
            correlation_data: Some(Bytes::copy_from_slice(correlation)),
            ..Default::default()
        };
        self.client.publish_with_properties(topic, QoS::AtLeastOnce, false, payload.to_vec(), props).expect("publish");
    }

    /// Every message as `topic payload` (lossy UTF-8), one per line, for scanning for secrets.
    pub fn all_text(&self) -> String {
        self.messages().iter().map(|m| format!("{} {}\n", m.topic, String::from_utf8_lossy(&m.payload))).collect()
    }
}

impl Drop for Watcher {
    /// Disconnects; the polling thread ends at its next event.
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        let _ = self.client.try_disconnect();
    }
}
