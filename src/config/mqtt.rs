//! The `[mqtt]` section: broker, identity, TLS, topics, telemetry period.

use super::raw::RawMqtt;
use super::types::{Mqtt, MqttProtocol, Secret};
use super::validate::{valid_id, Errors};
use std::time::Duration;

pub(super) fn mqtt(m: RawMqtt, device_id: &str, e: &mut Errors) -> Option<Mqtt> {
    let n = e.0.len();
    let Some(broker) = m.broker else {
        e.add("mqtt.broker", "is required when [mqtt] is present (e.g. \"mqtts://broker.example.com:8883\")");
        return None;
    };
    let endpoint = broker_endpoint(&broker).map_err(|msg| e.add("mqtt.broker", msg)).ok();
    let client_id = m.client_id.unwrap_or_else(|| device_id.to_string());
    if !valid_id(&client_id) {
        e.add("mqtt.client_id", "must be 1-64 characters of a-z, A-Z, 0-9, '-' or '_'");
    }
    if m.password.is_some() && m.username.is_none() {
        e.add("mqtt.password", "needs mqtt.username");
    }
    if m.username.as_deref().is_some_and(|u| u.is_empty() || u.len() > 256) {
        e.add("mqtt.username", "must be 1-256 characters");
    }
    let tls = endpoint.as_ref().is_some_and(|(tls, _, _)| *tls);
    let client_auth = match (m.client_cert, m.client_key) {
        (Some(c), Some(k)) => Some((c, k)),
        (None, None) => None,
        (Some(_), None) => {
            e.add("mqtt.client_key", "is required with mqtt.client_cert");
            None
        }
        (None, Some(_)) => {
            e.add("mqtt.client_cert", "is required with mqtt.client_key");
            None
        }
    };
    if !tls && endpoint.is_some() && (m.ca_file.is_some() || client_auth.is_some()) {
        e.add("mqtt.broker", "ca_file / client_cert need an mqtts:// broker");
    }
    let prefix = m.prefix.unwrap_or_else(|| format!("fieldcast/{device_id}"));
    let prefix = prefix.trim_end_matches('/').to_string();
    if let Err(msg) = check_prefix(&prefix) {
        e.add("mqtt.prefix", msg);
    }
    let telemetry = m.telemetry_seconds.unwrap_or(5);
    if !(1..=3600).contains(&telemetry) {
        e.add("mqtt.telemetry_seconds", "is outside 1..3600");
    }
    let keepalive = m.keepalive_seconds.unwrap_or(30);
    if !(5..=600).contains(&keepalive) {
        e.add("mqtt.keepalive_seconds", "is outside 5..600");
    }
    let session_expiry = m.session_expiry_seconds.unwrap_or(600);
    if session_expiry > 86_400 {
        e.add("mqtt.session_expiry_seconds", "is outside 0..86400");
    }
    let protocol = match m.protocol.as_deref().unwrap_or("auto") {
        "auto" => MqttProtocol::Auto,
        "5" | "5.0" => MqttProtocol::V5,
        "3.1.1" | "4" => MqttProtocol::V311,
        _ => {
            e.add("mqtt.protocol", "expected one of: auto, 5, 3.1.1");
            MqttProtocol::Auto
        }
    };
    if e.0.len() > n {
        return None;
    }
    let (tls, host, port) = endpoint?;
    Some(Mqtt {
        tls,
        host,
        port,
        client_id,
        username: m.username,
        password: m.password.map(Secret::new),
        ca_file: m.ca_file,
        client_auth,
        prefix,
        telemetry: Duration::from_secs(telemetry),
        protocol,
        keepalive: Duration::from_secs(keepalive),
        session_expiry: Duration::from_secs(session_expiry),
        autostart: m.autostart.unwrap_or(true),
    })
}

/// `mqtt://host[:port]` or `mqtts://host[:port]` -> (tls, host, port).
/// Credentials in the URL are refused (they belong in username/password,
/// where they are kept secret) and the message never echoes the URL.
fn broker_endpoint(s: &str) -> Result<(bool, String, u16), String> {
    let url = url::Url::parse(s).map_err(|e| format!("is not a URL ({e})"))?;
    let tls = match url.scheme() {
        "mqtt" | "tcp" => false,
        "mqtts" | "ssl" | "tls" => true,
        _ => return Err("has a scheme other than mqtt:// or mqtts://".into()),
    };
    if !url.username().is_empty() || url.password().is_some() {
        return Err("credentials in the URL are not supported; use mqtt.username and mqtt.password".into());
    }
    if !(url.path().is_empty() || url.path() == "/") || url.query().is_some() {
        return Err("must be scheme://host[:port] with no path or query".into());
    }
    let host = url.host_str().filter(|h| !h.is_empty()).ok_or("has no host")?;
    let host = host.trim_start_matches('[').trim_end_matches(']').to_string();
    Ok((tls, host, url.port().unwrap_or(if tls { 8883 } else { 1883 })))
}

fn check_prefix(p: &str) -> Result<(), String> {
    if p.is_empty() || p.len() > 200 {
        return Err("must be 1-200 characters".into());
    }
    if p.contains(['+', '#', '\0']) {
        return Err("must not contain the wildcards `+`/`#`".into());
    }
    if p.starts_with('/') || p.starts_with('$') || p.contains("//") {
        return Err("must not start with `/` or `$` or hold an empty level".into());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn broker_urls() {
        assert_eq!(broker_endpoint("mqtt://127.0.0.1").unwrap(), (false, "127.0.0.1".into(), 1883));
        assert_eq!(broker_endpoint("mqtts://broker.example.com").unwrap(), (true, "broker.example.com".into(), 8883));
        assert_eq!(broker_endpoint("mqtts://localhost:9883/").unwrap(), (true, "localhost".into(), 9883));
        let e = broker_endpoint("mqtt://user:hunter2@host").unwrap_err();
        assert!(e.contains("credentials") && !e.contains("hunter2"), "{e}");
        assert!(broker_endpoint("http://host").unwrap_err().contains("scheme"));
        let e = broker_endpoint("mqtt://only-user@host").unwrap_err();
        assert!(e.contains("credentials") && !e.contains("only-user"), "{e}");
        assert!(broker_endpoint("mqtt://host/topic").is_err());
        assert!(broker_endpoint("not a url").is_err());
    }

    fn fields_in_error(raw: RawMqtt) -> Vec<String> {
        let mut e = Errors(Vec::new());
        let m = mqtt(raw, "box-1", &mut e);
        assert_eq!(m.is_none(), !e.0.is_empty());
        e.0.into_iter().map(|f| f.field).collect()
    }

    #[test]
    fn each_bad_value_is_named_by_its_field_and_defaults_are_sane() {
        let ok = || RawMqtt { broker: Some("mqtt://127.0.0.1".into()), ..Default::default() };
        let mut e = Errors(Vec::new());
        let m = mqtt(ok(), "box-1", &mut e).expect("valid");
        assert_eq!((m.client_id.as_str(), m.prefix.as_str()), ("box-1", "fieldcast/box-1"));
        assert_eq!((m.telemetry.as_secs(), m.keepalive.as_secs(), m.session_expiry.as_secs()), (5, 30, 600));
        assert_eq!(m.protocol, MqttProtocol::Auto);
        let clean = mqtt(RawMqtt { session_expiry_seconds: Some(0), ..ok() }, "box-1", &mut e).expect("0 is a clean session");
        assert!(clean.session_expiry.is_zero());
        let table: Vec<(RawMqtt, &str)> = vec![
            (RawMqtt { broker: None, ..ok() }, "mqtt.broker"),
            (RawMqtt { broker: Some("http://x".into()), ..ok() }, "mqtt.broker"),
            (RawMqtt { client_id: Some("a b".into()), ..ok() }, "mqtt.client_id"),
            (RawMqtt { password: Some("pw".into()), ..ok() }, "mqtt.password"),
            (RawMqtt { client_cert: Some("c.pem".into()), ..ok() }, "mqtt.client_key"),
            (RawMqtt { ca_file: Some("ca.pem".into()), ..ok() }, "mqtt.broker"),
            (RawMqtt { prefix: Some("a/#".into()), ..ok() }, "mqtt.prefix"),
            (RawMqtt { telemetry_seconds: Some(0), ..ok() }, "mqtt.telemetry_seconds"),
            (RawMqtt { keepalive_seconds: Some(4), ..ok() }, "mqtt.keepalive_seconds"),
            (RawMqtt { session_expiry_seconds: Some(86_401), ..ok() }, "mqtt.session_expiry_seconds"),
            (RawMqtt { protocol: Some("3".into()), ..ok() }, "mqtt.protocol"),
        ];
        for (raw, field) in table {
            assert_eq!(fields_in_error(raw), vec![field.to_string()], "{field}");
        }
    }

    #[test]
    fn prefixes() {
        assert!(check_prefix("fieldcast/box-1").is_ok());
        assert!(check_prefix("fleet/+/x").is_err());
        assert!(check_prefix("a//b").is_err());
        assert!(check_prefix("$SYS/x").is_err());
        assert!(check_prefix("").is_err());
    }
}
