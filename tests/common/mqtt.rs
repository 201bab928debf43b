//! A dashboard stand-in: an MQTT 5 client that records every message it
//! sees (topic, payload, retain flag, arrival time), so tests judge what the
//! device actually published. It reconnects and resubscribes by itself.

use bytes::Bytes;
use rumqttc::v5::mqttbytes::v5::{Packet, PublishProperties};
use rumqttc::v5::mqttbytes::QoS;
use rumqttc::v5::{Client, Event, MqttOptions};
use serde_json::Value;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

#[derive(Clone, Debug)]
pub struct Msg {
    pub topic: String,
    pub payload: Vec<u8>,
    pub retain: bool,
    pub at: Instant,
    pub correlation: Option<Vec<u8>>,
}

impl Msg {
    pub fn json(&self) -> Option<Value> {
        serde_json::from_slice(&self.payload).ok()
    }
}

pub struct Watcher {
    client: Client,
    log: Arc<Mutex<Vec<Msg>>>,
    subscribed: Arc<AtomicBool>,
    stop: Arc<AtomicBool>,
}

fn options(url: &str, ca: Option<&Path>, creds: Option<(&str, &str)>) -> MqttOptions {
    let u = url::Url::parse(url).expect("broker url");
    let tls = u.scheme() == "mqtts";
    let id = format!("test-{:08x}", rand::random::<u32>());
    let mut o = MqttOptions::new(id, u.host_str().unwrap(), u.port().unwrap());
    o.set_keep_alive(Duration::from_secs(10)).set_max_packet_size(Some(4 * 1024 * 1024));
    if let Some((user, pass)) = creds {
        o.set_credentials(user, pass);
    }
    if tls {
        let cfg = fieldcast::tls::client_config(ca, None).expect("tls config");
        o.set_transport(rumqttc::Transport::tls_with_config(rumqttc::TlsConfiguration::Rustls(cfg)));
    }
    o
}

impl Watcher {
    /// Connects and subscribes to `filter`; panics if that takes over 10 s.
    pub fn connect(url: &str, ca: Option<&Path>, creds: Option<(&str, &str)>, filter: &str) -> Watcher {
        Watcher::try_connect(url, ca, creds, filter).unwrap_or_else(|e| panic!("watcher: {e}"))
    }

    pub fn try_connect(url: &str, ca: Option<&Path>, creds: Option<(&str, &str)>, filter: &str) -> Result<Watcher, String> {
        let (client, mut conn) = Client::new(options(url, ca, creds), 256);
        let log = Arc::new(Mutex::new(Vec::new()));
        let subscribed = Arc::new(AtomicBool::new(false));
        let stop = Arc::new(AtomicBool::new(false));
        let last_error = Arc::new(Mutex::new(String::new()));
        {
            let (log, subscribed, stop, client, filter, last_error) =
                (log.clone(), subscribed.clone(), stop.clone(), client.clone(), filter.to_string(), last_error.clone());
            std::thread::spawn(move || {
                for ev in conn.iter() {
                    if stop.load(Ordering::Relaxed) {
                        break;
                    }
                    match ev {
                        Ok(Event::Incoming(Packet::ConnAck(_))) => {
                            let _ = client.try_subscribe(filter.clone(), QoS::AtLeastOnce);
                        }
                        Ok(Event::Incoming(Packet::SubAck(_))) => subscribed.store(true, Ordering::Relaxed),
                        Ok(Event::Incoming(Packet::Publish(p))) => log.lock().unwrap().push(Msg {
                            topic: String::from_utf8_lossy(&p.topic).into_owned(),
                            payload: p.payload.to_vec(),
                            retain: p.retain,
                            at: Instant::now(),
                            correlation: p.properties.and_then(|pp| pp.correlation_data).map(|b| b.to_vec()),
                        }),
                        Ok(_) => {}
                        Err(e) => {
                            *last_error.lock().unwrap() = e.to_string();
                            std::thread::sleep(Duration::from_millis(200));
                        }
                    }
                }
            });
        }
        let w = Watcher { client, log, subscribed, stop };
        if super::wait_for(Duration::from_secs(10), || w.subscribed.load(Ordering::Relaxed)) {
            Ok(w)
        } else {
            Err(format!("not subscribed within 10 s: {}", last_error.lock().unwrap()))
        }
    }

    pub fn messages(&self) -> Vec<Msg> {
        self.log.lock().unwrap().clone()
    }

    pub fn on(&self, topic: &str) -> Vec<Msg> {
        self.messages().into_iter().filter(|m| m.topic == topic).collect()
    }

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

    pub fn publish(&self, topic: &str, payload: &[u8], retain: bool) {
        self.client.publish(topic, QoS::AtLeastOnce, retain, payload.to_vec()).expect("publish");
    }

    pub fn publish_with_response(&self, topic: &str, payload: &[u8], response_topic: &str, correlation: &[u8]) {
        let props = PublishProperties {
            response_topic: Some(response_topic.to_string()),
            correlation_data: Some(Bytes::copy_from_slice(correlation)),
            ..Default::default()
        };
        self.client.publish_with_properties(topic, QoS::AtLeastOnce, false, payload.to_vec(), props).expect("publish");
    }

    /// Every message as text, one per line, for scanning for secrets.
    pub fn all_text(&self) -> String {
        self.messages().iter().map(|m| format!("{} {}\n", m.topic, String::from_utf8_lossy(&m.payload))).collect()
    }
}

impl Drop for Watcher {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        let _ = self.client.try_disconnect();
    }
}
