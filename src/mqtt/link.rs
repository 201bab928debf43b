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

/// The largest packet an MQTT 5 connection accepts, announced to the broker
/// (CONNECT Maximum Packet Size), which then drops anything larger for this
/// client instead of sending it. Commands over 64 KiB are refused by the
/// parser (`payload_too_large`); this only bounds what the box reads.
pub const MAX_INCOMING_V5: u32 = 16 * 1024 * 1024;
/// MQTT 3.1.1 cannot announce a limit: a packet over the client's limit
/// would drop the connection, and the broker would redeliver it on every
/// reconnect, cutting the box off its fleet. So a 3.1.1 connection takes
/// anything the protocol can carry (a remaining length of 256 MiB) and the
/// parser refuses it. Cap message sizes on the broker to bound memory.
pub const MAX_INCOMING_V311: usize = 268_435_455;
/// The largest packet sent (a snapshot JPEG is at most 512 KiB).
const MAX_OUTGOING: usize = 1024 * 1024;
const REQUEST_QUEUE: usize = 256;
/// MQTT 5 Receive Maximum: QoS 1 commands the broker may send before the
/// box acknowledges any. Acknowledged only once handled, this window is
/// what holds a burst back at the broker (3.1.1 has the broker's own limit,
/// mosquitto's `max_inflight_messages`, 20).
const RECEIVE_MAXIMUM: u16 = 32;

pub struct Will {
    pub topic: String,
    pub payload: Vec<u8>,
}

pub enum Polled {
    /// CONNACK; `resumed`: the broker kept the session (and what was
    /// queued for it while the box was away).
    Connected { resumed: bool },
    /// A PUBLISH; QoS 1 and 2 ones carry the acknowledgement the box owes
    /// once it has handled them ([`Link::ack`]).
    Message(Incoming, Option<Ack>),
    Nothing,
}

/// The acknowledgement owed for a received QoS 1/2 PUBLISH (its packet id
/// and QoS; the payload is not kept).
#[derive(Debug)]
pub enum Ack {
    V5(Box<v5::mqttbytes::v5::Publish>),
    V311(Box<rumqttc::Publish>),
}

/// rumqttc's request queue is full: try again after the next poll.
#[derive(Debug)]
pub struct Full;

#[derive(Debug)]
pub struct LinkError {
    pub message: String,
    /// What the failure says about the broker's MQTT 5 support.
    pub v5: V5Verdict,
}

/// What a failed MQTT 5 connect says about the broker.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum V5Verdict {
    /// Nothing: the network or the credentials failed, or the session
    /// was already up, or the attempt was not MQTT 5.
    Silent,
    /// The broker answered the CONNECT in a way only a pre-5 broker does:
    /// a "protocol version" refusal, or a CONNACK that does not parse as 5.
    Refused,
    /// The TCP (and TLS) connection was up but no CONNACK came: the broker
    /// timed out or hung up mid-CONNECT. Some 3.1.1 brokers (amqtt) choke
    /// on MQTT 5 CONNECT properties this way; so does a flaky link.
    Inconclusive,
}

/// The sending half of a connection: queues publishes and subscriptions.
pub enum Link {
    V5(v5::AsyncClient),
    V311(rumqttc::AsyncClient),
}

/// The connection itself (rumqttc's event loop). [`Driver::poll`] takes it
/// by value so that an in-flight poll can be kept alive across the actor's
/// other work: dropping one mid-CONNECT would abandon the handshake, and a
/// slow broker would then never be reached.
pub struct Driver {
    inner: Loop,
    /// Whether the current network connection has its CONNACK.
    session_up: bool,
}

enum Loop {
    V5(Box<v5::EventLoop>),
    V311(Box<rumqttc::EventLoop>),
}

impl Link {
    pub fn new(cfg: &Mqtt, protocol: Protocol, will: &Will, tls: Option<Arc<ClientConfig>>) -> (Link, Driver) {
        let transport = || match &tls {
            Some(c) => rumqttc::Transport::tls_with_config(rumqttc::TlsConfiguration::Rustls(c.clone())),
            None => rumqttc::Transport::tcp(),
        };
        let creds = cfg.username.as_ref().map(|u| (u.clone(), cfg.password.as_ref().map(|p| p.expose().to_string()).unwrap_or_default()));
        match protocol {
            Protocol::V5 => {
                let mut o = v5::MqttOptions::new(&cfg.client_id, &cfg.host, cfg.port);
                let expiry = cfg.session_expiry.as_secs() as u32;
                o.set_keep_alive(cfg.keepalive).set_clean_start(expiry == 0).set_transport(transport());
                o.set_session_expiry_interval((expiry > 0).then_some(expiry));
                o.set_max_packet_size(Some(MAX_INCOMING_V5));
                o.set_receive_maximum(Some(RECEIVE_MAXIMUM)).set_manual_acks(true);
                o.set_last_will(v5::mqttbytes::v5::LastWill::new(&will.topic, will.payload.clone(), v5::mqttbytes::QoS::AtLeastOnce, true, None));
                if let Some((u, p)) = creds {
                    o.set_credentials(u, p);
                }
                o.set_network_options(network_options());
                let (c, e) = v5::AsyncClient::new(o, REQUEST_QUEUE);
                (Link::V5(c), Driver { inner: Loop::V5(Box::new(e)), session_up: false })
            }
            Protocol::V311 => {
                let mut o = rumqttc::MqttOptions::new(&cfg.client_id, &cfg.host, cfg.port);
                // 3.1.1 has no expiry: the broker's own limit applies.
                o.set_keep_alive(cfg.keepalive).set_clean_session(cfg.session_expiry.is_zero()).set_transport(transport());
                o.set_max_packet_size(MAX_INCOMING_V311, MAX_OUTGOING).set_manual_acks(true);
                o.set_last_will(rumqttc::LastWill::new(&will.topic, will.payload.clone(), rumqttc::QoS::AtLeastOnce, true));
                if let Some((u, p)) = creds {
                    o.set_credentials(u, p);
                }
                let (c, mut e) = rumqttc::AsyncClient::new(o, REQUEST_QUEUE);
                e.set_network_options(network_options());
                (Link::V311(c), Driver { inner: Loop::V311(Box::new(e)), session_up: false })
            }
        }
    }

    pub fn protocol(&self) -> Protocol {
        match self {
            Link::V5(..) => Protocol::V5,
            Link::V311(..) => Protocol::V311,
        }
    }

    /// Subscribes at QoS 1. Under MQTT 5 with No Local (the box never
    /// needs its own messages back) and Retain As Published, so the box sees
    /// that a command was published retained even when it arrives live.
    pub fn subscribe(&self, filter: &str) -> Result<(), String> {
        match self {
            Link::V5(c) => {
                let mut f = v5::mqttbytes::v5::Filter::new(filter, v5::mqttbytes::QoS::AtLeastOnce);
                f.nolocal = true;
                f.preserve_retain = true;
                c.try_subscribe_many([f]).map_err(|e| e.to_string())
            }
            Link::V311(c) => c.try_subscribe(filter, rumqttc::QoS::AtLeastOnce).map_err(|e| e.to_string()),
        }
    }

    /// Queues a publish; fails when the client's queue is full. The topic
    /// must be one a client may publish to ([`crate::control::topics::publishable`]).
    pub fn publish(&self, m: &Outgoing) -> Result<(), Full> {
        match self {
            Link::V5(c) => {
                let qos = if m.qos1 { v5::mqttbytes::QoS::AtLeastOnce } else { v5::mqttbytes::QoS::AtMostOnce };
                let props = v5::mqttbytes::v5::PublishProperties {
                    correlation_data: m.correlation.clone(),
                    content_type: Some(m.content_type.to_string()),
                    payload_format_indicator: Some(u8::from(m.content_type.starts_with("application/json"))),
                    ..Default::default()
                };
                c.try_publish_with_properties(m.topic.clone(), qos, m.retain, m.payload.clone(), props).map_err(|_| Full)
            }
            Link::V311(c) => {
                let qos = if m.qos1 { rumqttc::QoS::AtLeastOnce } else { rumqttc::QoS::AtMostOnce };
                c.try_publish(m.topic.clone(), qos, m.retain, m.payload.clone()).map_err(|_| Full)
            }
        }
    }

    /// Queues the acknowledgement of a handled message. One owed to another
    /// connection's client (before a protocol switch) is dropped: that
    /// broker session redelivers the message instead.
    pub fn ack(&self, a: &Ack) -> Result<(), Full> {
        match (self, a) {
            (Link::V5(c), Ack::V5(p)) => c.try_ack(p).map_err(|_| Full),
            (Link::V311(c), Ack::V311(p)) => c.try_ack(p).map_err(|_| Full),
            _ => Ok(()),
        }
    }

    pub fn disconnect(&self) {
        let _ = match self {
            Link::V5(c) => c.try_disconnect().map_err(|e| e.to_string()),
            Link::V311(c) => c.try_disconnect().map_err(|e| e.to_string()),
        };
    }
}

impl Driver {
    /// Drives the connection: connects when down, then yields what arrived.
    pub async fn poll(mut self) -> (Driver, Result<Polled, LinkError>) {
        let polled = match &mut self.inner {
            Loop::V5(e) => match e.poll().await {
                Ok(v5::Event::Incoming(v5::mqttbytes::v5::Packet::ConnAck(c))) => Ok(Polled::Connected { resumed: c.session_present }),
                Ok(v5::Event::Incoming(v5::mqttbytes::v5::Packet::Publish(mut p))) => {
                    let props = p.properties.take().unwrap_or_default();
                    let m = Incoming {
                        topic: String::from_utf8_lossy(&p.topic).into_owned(),
                        payload: std::mem::take(&mut p.payload),
                        response_topic: props.response_topic,
                        correlation: props.correlation_data,
                        retain: p.retain,
                    };
                    let ack = (p.qos != v5::mqttbytes::QoS::AtMostOnce).then(|| Ack::V5(Box::new(p)));
                    Ok(Polled::Message(m, ack))
                }
                Ok(_) => Ok(Polled::Nothing),
                Err(err) => {
                    let v5 = if self.session_up { V5Verdict::Silent } else { v5_verdict(&err) };
                    Err(LinkError { message: err.to_string(), v5 })
                }
            },
            Loop::V311(e) => match e.poll().await {
                Ok(rumqttc::Event::Incoming(rumqttc::Packet::ConnAck(c))) => Ok(Polled::Connected { resumed: c.session_present }),
                Ok(rumqttc::Event::Incoming(rumqttc::Packet::Publish(mut p))) => {
                    let m = Incoming {
                        topic: std::mem::take(&mut p.topic),
                        payload: std::mem::take(&mut p.payload),
                        response_topic: None,
                        correlation: None,
                        retain: p.retain,
                    };
                    let ack = (p.qos != rumqttc::QoS::AtMostOnce).then(|| Ack::V311(Box::new(p)));
                    Ok(Polled::Message(m, ack))
                }
                Ok(_) => Ok(Polled::Nothing),
                Err(err) => Err(LinkError { message: err.to_string(), v5: V5Verdict::Silent }),
            },
        };
        match &polled {
            Ok(Polled::Connected { .. }) => self.session_up = true,
            Err(_) => self.session_up = false,
            _ => {}
        }
        (self, polled)
    }
}

/// `TCP_NODELAY`: a reply is one small packet that must go out now. With
/// Nagle on, it waits for the ACK of the previous one, which the broker's
/// delayed ACK holds back for about 40 ms: every command took 40 ms longer.
/// The connect timeout stays rumqttc's 5 s (the MQTT 5 probe relies on it).
fn network_options() -> rumqttc::NetworkOptions {
    let mut n = rumqttc::NetworkOptions::new();
    n.set_tcp_nodelay(true);
    n
}

/// How long a graceful disconnect may take to flush.
pub const FLUSH: Duration = Duration::from_secs(2);

/// What a failed MQTT 5 connect (no CONNACK accepted yet) says about the
/// broker. Refused: it said so in its CONNACK, or answered with something
/// that is not an MQTT 5 CONNACK (a 3.1.1 broker's refusal does not parse
/// as one). Inconclusive: the connection was up and then timed out or was
/// dropped before any CONNACK. Anything else (refused TCP, DNS, TLS, bad
/// credentials) is Silent: 3.1.1 would fail the same way.
fn v5_verdict(err: &v5::ConnectionError) -> V5Verdict {
    use std::io::ErrorKind as K;
    use v5::ConnectionError as E;
    use v5::mqttbytes::v5::ConnectReturnCode as C;
    match err {
        E::ConnectionRefused(C::UnsupportedProtocolVersion | C::RefusedProtocolVersion)
        | E::NotConnAck(_)
        | E::MqttState(v5::StateError::Deserialization(_)) => V5Verdict::Refused,
        E::Timeout(_) | E::MqttState(v5::StateError::ConnectionAborted) => V5Verdict::Inconclusive,
        E::Io(io) | E::MqttState(v5::StateError::Io(io))
            if matches!(io.kind(), K::UnexpectedEof | K::ConnectionReset | K::ConnectionAborted | K::BrokenPipe) =>
        {
            V5Verdict::Inconclusive
        }
        _ => V5Verdict::Silent,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use v5::ConnectionError as E;
    use v5::mqttbytes::v5::ConnectReturnCode as C;

    #[test]
    fn only_what_a_pre_5_broker_does_counts_against_mqtt_5() {
        use std::io::{Error, ErrorKind as K};
        let refused = [
            E::ConnectionRefused(C::UnsupportedProtocolVersion),
            E::MqttState(v5::StateError::Deserialization(v5::mqttbytes::Error::MalformedPacket)),
        ];
        for e in refused {
            assert_eq!(v5_verdict(&e), V5Verdict::Refused, "{e}");
        }
        let inconclusive = [
            E::MqttState(v5::StateError::ConnectionAborted),
            E::Io(Error::from(K::UnexpectedEof)),
            E::Io(Error::from(K::ConnectionReset)),
        ];
        for e in inconclusive {
            assert_eq!(v5_verdict(&e), V5Verdict::Inconclusive, "{e}");
        }
        let silent = [
            E::ConnectionRefused(C::BadUserNamePassword),
            E::ConnectionRefused(C::NotAuthorized),
            E::Io(Error::from(K::ConnectionRefused)),
            E::Io(Error::from(K::NotFound)),
        ];
        for e in silent {
            assert_eq!(v5_verdict(&e), V5Verdict::Silent, "{e}");
        }
    }
}
