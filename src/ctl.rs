//! `fieldcast ctl`: the operator's side of the MQTT API. Sends one command
//! to a device and prints its reply (exit 0 when ok, 1 when refused, 2 when
//! nothing came back), or `watch`es telemetry, events and status.

use crate::control::topics::Topics;
use crate::exit;
use bytes::Bytes;
use rumqttc::v5::mqttbytes::v5::{Packet, PublishProperties};
use rumqttc::v5::mqttbytes::QoS;
use rumqttc::v5::{AsyncClient, Event, EventLoop, MqttOptions};
use serde_json::Value;
use std::path::PathBuf;
use std::time::Duration;

pub struct Target {
    pub broker: String,
    pub device: String,
    pub prefix: Option<String>,
    pub username: Option<String>,
    /// Read from `FIELDCAST_MQTT_PASSWORD` (never a command-line argument:
    /// those are visible to every user in `ps`).
    pub password: Option<String>,
    pub ca_file: Option<PathBuf>,
    pub timeout: Duration,
}

impl Target {
    fn topics(&self) -> Topics {
        Topics::new(self.prefix.as_deref().unwrap_or(&format!("fieldcast/{}", self.device)))
    }

    /// A client with a fresh random id, or `None` after saying why not.
    fn connect_or_say(&self, role: &str) -> Option<(AsyncClient, EventLoop)> {
        self.connect(&format!("fieldcast-{role}-{:08x}", rand::random::<u32>())).map_err(|e| eprintln!("ctl: {e}")).ok()
    }

    fn connect(&self, client_id: &str) -> Result<(AsyncClient, EventLoop), String> {
        let url = url::Url::parse(&self.broker).map_err(|e| format!("--broker: {e}"))?;
        let tls = matches!(url.scheme(), "mqtts" | "ssl" | "tls");
        if !tls && url.scheme() != "mqtt" && url.scheme() != "tcp" {
            return Err("--broker: scheme must be mqtt:// or mqtts://".into());
        }
        let host = url.host_str().ok_or("--broker: no host")?.trim_matches(['[', ']']).to_string();
        let port = url.port().unwrap_or(if tls { 8883 } else { 1883 });
        let mut o = MqttOptions::new(client_id, host, port);
        o.set_keep_alive(Duration::from_secs(20)).set_max_packet_size(Some(2 * 1024 * 1024));
        if let Some(u) = &self.username {
            o.set_credentials(u, self.password.clone().unwrap_or_default());
        }
        if tls {
            let cfg = crate::tls::client_config(self.ca_file.as_deref(), None).map_err(|e| format!("--ca-file: {e}"))?;
            o.set_transport(rumqttc::Transport::tls_with_config(rumqttc::TlsConfiguration::Rustls(cfg)));
        }
        Ok(AsyncClient::new(o, 16))
    }
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread().enable_all().build().expect("tokio runtime")
}

/// Sends `cmd/<name>` with `body` (a JSON object; `id` added when absent).
pub fn command(t: &Target, name: &str, body: Option<&str>, snapshot_out: Option<PathBuf>) -> i32 {
    let mut body: Value = match body.map(serde_json::from_str).transpose() {
        Ok(v) => v.unwrap_or_else(|| Value::Object(Default::default())),
        Err(e) => {
            eprintln!("ctl: the command body is not JSON: {e}");
            return exit::USAGE;
        }
    };
    let Some(obj) = body.as_object_mut() else {
        eprintln!("ctl: the command body must be a JSON object");
        return exit::USAGE;
    };
    let id = match obj.get("id").and_then(Value::as_str) {
        Some(id) => id.to_string(),
        None => {
            let id = format!("ctl-{:016x}", rand::random::<u64>());
            obj.insert("id".into(), Value::String(id.clone()));
            id
        }
    };
    let topics = t.topics();
    let reply_topic = topics.reply(Some(&id));
    let Some((client, mut events)) = t.connect_or_say("ctl") else { return exit::USAGE };
    runtime().block_on(async move {
        let _ = client.subscribe(reply_topic.clone(), QoS::AtLeastOnce).await;
        if snapshot_out.is_some() {
            let _ = client.subscribe(topics.snapshot(), QoS::AtMostOnce).await;
        }
        let mut sent = false;
        let mut snapshot: Option<Bytes> = None;
        let mut reply: Option<Value> = None;
        let deadline = tokio::time::Instant::now() + t.timeout;
        loop {
            let ev = match tokio::time::timeout_at(deadline, events.poll()).await {
                Err(_) => {
                    eprintln!("ctl: no reply from {} within {:?}", t.device, t.timeout);
                    return 2;
                }
                Ok(Err(e)) => {
                    eprintln!("ctl: MQTT: {e}");
                    return 2;
                }
                Ok(Ok(ev)) => ev,
            };
            match ev {
                Event::Incoming(Packet::SubAck(_)) if !sent => {
                    sent = true;
                    let props = PublishProperties {
                        response_topic: Some(reply_topic.clone()),
                        correlation_data: Some(Bytes::from(id.clone())),
                        ..Default::default()
                    };
                    let payload = serde_json::to_vec(&body).expect("json");
                    if let Err(e) = client.publish_with_properties(topics.command(name), QoS::AtLeastOnce, false, payload, props).await {
                        eprintln!("ctl: cannot publish: {e}");
                        return 2;
                    }
                }
                Event::Incoming(Packet::Publish(p)) if p.topic == reply_topic.as_bytes() => {
                    reply = serde_json::from_slice(&p.payload).ok();
                }
                Event::Incoming(Packet::Publish(p)) => snapshot = Some(p.payload),
                _ => {}
            }
            let Some(r) = &reply else { continue };
            let want_snapshot = snapshot_out.is_some() && r["ok"] == Value::Bool(true) && name == "snapshot";
            if want_snapshot && snapshot.is_none() {
                continue;
            }
            println!("{}", serde_json::to_string_pretty(r).expect("json"));
            if let (true, Some(path), Some(jpeg)) = (want_snapshot, &snapshot_out, &snapshot)
                && let Err(e) = std::fs::write(path, jpeg)
            {
                eprintln!("ctl: cannot write {}: {e}", path.display());
                return 1;
            }
            let _ = client.disconnect().await;
            return if r["ok"] == Value::Bool(true) { 0 } else { 1 };
        }
    })
}

/// Prints status, events, config/reported and telemetry as they arrive.
pub fn watch(t: &Target, count: Option<usize>) -> i32 {
    let topics = t.topics();
    let Some((client, mut events)) = t.connect_or_say("watch") else { return exit::USAGE };
    runtime().block_on(async move {
        let filters = [topics.status(), topics.events(), topics.telemetry(), topics.reported(), topics.snapshot()];
        let mut seen = 0;
        loop {
            let ev = tokio::select! {
                _ = tokio::signal::ctrl_c() => return 0,
                ev = events.poll() => ev,
            };
            match ev {
                Ok(Event::Incoming(Packet::ConnAck(_))) => {
                    for f in &filters {
                        let _ = client.subscribe(f.clone(), QoS::AtLeastOnce).await;
                    }
                }
                Ok(Event::Incoming(Packet::Publish(p))) => {
                    let topic = String::from_utf8_lossy(&p.topic);
                    let body = match serde_json::from_slice::<Value>(&p.payload) {
                        Ok(v) => v.to_string(),
                        Err(_) => format!("<{} bytes>", p.payload.len()),
                    };
                    println!("{} {topic}{} {body}", humantime::format_rfc3339_seconds(std::time::SystemTime::now()), if p.retain { " (retained)" } else { "" });
                    seen += 1;
                    if count.is_some_and(|c| seen >= c) {
                        return 0;
                    }
                }
                Ok(_) => {}
                Err(e) => {
                    eprintln!("ctl: MQTT: {e}; retrying");
                    tokio::time::sleep(Duration::from_secs(1)).await;
                }
            }
        }
    })
}
