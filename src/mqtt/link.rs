//! One MQTT connection, MQTT 5 or 3.1.1, behind one small interface: the
//! actor does not care which protocol the broker took.

use super::{Incoming, Outgoing};
use crate::config::Mqtt;
use rumqttc::v5;
use std::sync::Arc;
use std::time::Duration;
use tokio_rustls::rustls::ClientConfig;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Protocol {
    V5,
    V311,
}

impl Protocol {
    pub fn as_str(self) -> &'static str {
        match self {
            Protocol::V5 => "5",
            Protocol::V311 => "3.1.1",
        }
    }
}

/// The largest packet accepted from the broker (commands are refused above
/// 64 KiB by the parser; this only keeps the connection alive for them).
const MAX_INCOMING: usize = 1024 * 1024;
/// The largest packet sent (a snapshot JPEG is at most 512 KiB).
const MAX_OUTGOING: usize = 1024 * 1024;
const REQUEST_QUEUE: usize = 256;

pub struct Will {
    pub topic: String,
    pub payload: Vec<u8>,
}

pub enum Polled {
    Connected,
    Message(Incoming),
    Nothing,
}

#[derive(Debug)]
pub struct LinkError {
    pub message: String,
    /// The broker turned down MQTT 5 itself (worth retrying with 3.1.1).
    pub protocol_rejected: bool,
}

pub enum Link {
    V5(v5::AsyncClient, Box<v5::EventLoop>),
    V311(rumqttc::AsyncClient, Box<rumqttc::EventLoop>),
}

impl Link {
    pub fn new(cfg: &Mqtt, protocol: Protocol, will: &Will, tls: Option<Arc<ClientConfig>>) -> Link {
        let transport = || match &tls {
            Some(c) => rumqttc::Transport::tls_with_config(rumqttc::TlsConfiguration::Rustls(c.clone())),
            None => rumqttc::Transport::tcp(),
        };
        let creds = cfg.username.as_ref().map(|u| (u.clone(), cfg.password.as_ref().map(|p| p.expose().to_string()).unwrap_or_default()));
        match protocol {
            Protocol::V5 => {
                let mut o = v5::MqttOptions::new(&cfg.client_id, &cfg.host, cfg.port);
                o.set_keep_alive(cfg.keepalive).set_clean_start(true).set_transport(transport());
                o.set_max_packet_size(Some(MAX_INCOMING as u32));
                o.set_last_will(v5::mqttbytes::v5::LastWill::new(&will.topic, will.payload.clone(), v5::mqttbytes::QoS::AtLeastOnce, true, None));
                if let Some((u, p)) = creds {
                    o.set_credentials(u, p);
                }
                let (c, e) = v5::AsyncClient::new(o, REQUEST_QUEUE);
                Link::V5(c, Box::new(e))
            }
            Protocol::V311 => {
                let mut o = rumqttc::MqttOptions::new(&cfg.client_id, &cfg.host, cfg.port);
                o.set_keep_alive(cfg.keepalive).set_clean_session(true).set_transport(transport());
                o.set_max_packet_size(MAX_INCOMING, MAX_OUTGOING);
                o.set_last_will(rumqttc::LastWill::new(&will.topic, will.payload.clone(), rumqttc::QoS::AtLeastOnce, true));
                if let Some((u, p)) = creds {
                    o.set_credentials(u, p);
                }
                let (c, e) = rumqttc::AsyncClient::new(o, REQUEST_QUEUE);
                Link::V311(c, Box::new(e))
            }
        }
    }

    pub fn protocol(&self) -> Protocol {
        match self {
            Link::V5(..) => Protocol::V5,
            Link::V311(..) => Protocol::V311,
        }
    }

    /// Drives the connection: connects when down, then yields what arrived.
    pub async fn poll(&mut self) -> Result<Polled, LinkError> {
        match self {
            Link::V5(_, e) => match e.poll().await {
                Ok(v5::Event::Incoming(v5::mqttbytes::v5::Packet::ConnAck(_))) => Ok(Polled::Connected),
                Ok(v5::Event::Incoming(v5::mqttbytes::v5::Packet::Publish(p))) => {
                    let props = p.properties.unwrap_or_default();
                    Ok(Polled::Message(Incoming {
                        topic: String::from_utf8_lossy(&p.topic).into_owned(),
                        payload: p.payload,
                        response_topic: props.response_topic,
                        correlation: props.correlation_data,
                    }))
                }
                Ok(_) => Ok(Polled::Nothing),
                Err(err) => Err(LinkError { message: err.to_string(), protocol_rejected: v5_refused(&err) }),
            },
            Link::V311(_, e) => match e.poll().await {
                Ok(rumqttc::Event::Incoming(rumqttc::Packet::ConnAck(_))) => Ok(Polled::Connected),
                Ok(rumqttc::Event::Incoming(rumqttc::Packet::Publish(p))) => {
                    Ok(Polled::Message(Incoming { topic: p.topic, payload: p.payload, response_topic: None, correlation: None }))
                }
                Ok(_) => Ok(Polled::Nothing),
                Err(err) => Err(LinkError { message: err.to_string(), protocol_rejected: false }),
            },
        }
    }

    pub fn subscribe(&self, filter: &str) -> Result<(), String> {
        match self {
            Link::V5(c, _) => c.try_subscribe(filter, v5::mqttbytes::QoS::AtLeastOnce).map_err(|e| e.to_string()),
            Link::V311(c, _) => c.try_subscribe(filter, rumqttc::QoS::AtLeastOnce).map_err(|e| e.to_string()),
        }
    }

    /// Queues a publish; fails when the client's queue is full.
    pub fn publish(&self, m: &Outgoing) -> Result<(), String> {
        match self {
            Link::V5(c, _) => {
                let qos = if m.qos1 { v5::mqttbytes::QoS::AtLeastOnce } else { v5::mqttbytes::QoS::AtMostOnce };
                let props = v5::mqttbytes::v5::PublishProperties {
                    correlation_data: m.correlation.clone(),
                    content_type: Some(m.content_type.to_string()),
                    payload_format_indicator: Some(u8::from(m.content_type.starts_with("application/json"))),
                    ..Default::default()
                };
                c.try_publish_with_properties(m.topic.clone(), qos, m.retain, m.payload.clone(), props).map_err(|e| e.to_string())
            }
            Link::V311(c, _) => {
                let qos = if m.qos1 { rumqttc::QoS::AtLeastOnce } else { rumqttc::QoS::AtMostOnce };
                c.try_publish(m.topic.clone(), qos, m.retain, m.payload.clone()).map_err(|e| e.to_string())
            }
        }
    }

    pub fn disconnect(&self) {
        let _ = match self {
            Link::V5(c, _) => c.try_disconnect().map_err(|e| e.to_string()),
            Link::V311(c, _) => c.try_disconnect().map_err(|e| e.to_string()),
        };
    }
}

/// How long a graceful disconnect may take to flush.
pub const FLUSH: Duration = Duration::from_secs(2);

/// Whether a failed MQTT 5 connect means "this broker does not speak 5":
/// it said so in its CONNACK, or answered with something that is not an
/// MQTT 5 CONNACK (a 3.1.1 broker's refusal does not parse as one).
/// Network and authentication failures are not: 3.1.1 would fail the same.
fn v5_refused(err: &v5::ConnectionError) -> bool {
    use v5::ConnectionError as E;
    use v5::mqttbytes::v5::ConnectReturnCode as C;
    matches!(
        err,
        E::ConnectionRefused(C::UnsupportedProtocolVersion | C::RefusedProtocolVersion)
            | E::NotConnAck(_)
            | E::MqttState(v5::StateError::Deserialization(_))
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use v5::ConnectionError as E;
    use v5::mqttbytes::v5::ConnectReturnCode as C;

    #[test]
    fn only_a_protocol_refusal_triggers_the_3_1_1_fallback() {
        assert!(v5_refused(&E::ConnectionRefused(C::UnsupportedProtocolVersion)));
        assert!(v5_refused(&E::MqttState(v5::StateError::Deserialization(v5::mqttbytes::Error::MalformedPacket))));
        assert!(!v5_refused(&E::ConnectionRefused(C::BadUserNamePassword)));
        assert!(!v5_refused(&E::ConnectionRefused(C::NotAuthorized)));
        assert!(!v5_refused(&E::Io(std::io::Error::from(std::io::ErrorKind::ConnectionRefused))));
    }
}
