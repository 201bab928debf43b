//! The MQTT test harness itself, against a real mosquitto: retained
//! messages, TLS with (and without) the test CA, password auth and the
//! device ACL, reconnecting across a broker restart, MQTT 5 request
//! properties. The device tests (`mqtt_control`) rely on all of this.

mod common;

use common::mosquitto::{device_acl, Mosquitto, MosquittoOptions};
use common::mqtt::Watcher;
use std::time::{Duration, Instant};

const T: Duration = Duration::from_secs(5);

#[test]
fn a_retained_message_reaches_a_watcher_that_connects_later() {
    let broker = Mosquitto::start();
    let first = Watcher::connect(&broker.url(), None, None, "fieldcast/#");
    first.publish("fieldcast/dev-a/status", br#"{"online": true}"#, true);
    // Live delivery to a v5 subscriber clears the flag (retain-as-published is off).
    let live = first.wait_msg(T, |m| m.topic == "fieldcast/dev-a/status").expect("own publish delivered");
    assert!(!live.retain, "live delivery carried retain");

    let late = Watcher::connect(&broker.url(), None, None, "fieldcast/+/status");
    let kept = late.wait_json(T, "fieldcast/dev-a/status", |v| v["online"] == true).expect("retained message");
    assert_eq!(kept["online"], true);
    assert!(late.on("fieldcast/dev-a/status").iter().all(|m| m.retain), "retained copy without the retain flag");
    assert!(late.all_text().contains(r#"fieldcast/dev-a/status {"online": true}"#), "{}", late.all_text());

    // Big payloads (a snapshot) pass both ways; QoS 0 works too.
    let jpeg = vec![0xA5u8; 300 * 1024];
    first.publish_qos("fieldcast/dev-a/snapshot", &jpeg, false, false);
    let got = late.wait_msg(T, |m| m.topic == "fieldcast/dev-a/snapshot");
    assert!(got.is_none(), "outside the late watcher's filter");
    let got = first.wait_msg(T, |m| m.topic == "fieldcast/dev-a/snapshot").expect("300 KB payload");
    assert_eq!(got.payload, jpeg);
    first.clear();
    assert!(first.messages().is_empty());
}

#[test]
fn tls_works_with_the_test_ca_and_is_refused_without_it() {
    let broker = Mosquitto::start_with(MosquittoOptions { tls: true, ..Default::default() });
    assert!(broker.tls_url().starts_with("mqtts://localhost:") && broker.tls_port().is_some());
    let ca = broker.ca_file().expect("test CA");
    let w = Watcher::connect(&broker.tls_url(), Some(&ca), None, "fieldcast/#");
    w.publish("fieldcast/dev-a/hello", b"over tls", false);
    let m = w.wait_msg(T, |m| m.topic == "fieldcast/dev-a/hello").expect("own publish over TLS");
    assert_eq!(m.payload, b"over tls");
    assert!(broker.log().contains(&format!("on port {}", broker.tls_port().unwrap())), "{}", broker.log());

    // No trusted root: the handshake fails and nothing is subscribed.
    let t0 = Instant::now();
    let err = Watcher::try_connect(&broker.tls_url(), None, None, "fieldcast/#").err().expect("connected without the CA");
    eprintln!("without the CA after {:?}: {err}", t0.elapsed());
    assert!(err.contains("UnknownIssuer"), "{err}");
    // The plain listener still answers plain MQTT.
    Watcher::connect(&broker.url(), None, None, "fieldcast/#");
}

#[test]
fn the_device_acl_confines_a_device_to_its_own_topics() {
    let users = [("dev-a", "pw-a"), ("dashboard", "pw-d")];
    let broker = Mosquitto::start_with(MosquittoOptions {
        users: users.iter().map(|(u, p)| (u.to_string(), p.to_string())).collect(),
        acl: Some(device_acl("dev-a", "dashboard")),
        ..Default::default()
    });
    let dash = Watcher::connect(&broker.url(), None, Some(("dashboard", "pw-d")), "fieldcast/#");
    // mosquitto 2.0.11 grants the too-wide subscription and filters on delivery.
    let dev = Watcher::connect(&broker.url(), None, Some(("dev-a", "pw-a")), "fieldcast/#");

    dev.publish("fieldcast/dev-b/x", b"not mine", false);
    dev.publish("fieldcast/dev-a/x", b"mine", false);
    dash.publish("fieldcast/dev-b/cmd", b"for b", false);
    dash.publish("fieldcast/dev-a/cmd", b"for a", false);
    assert!(dash.wait_msg(T, |m| m.topic == "fieldcast/dev-a/x" && m.payload == b"mine").is_some(), "allowed publish lost");
    assert!(dev.wait_msg(T, |m| m.topic == "fieldcast/dev-a/cmd").is_some(), "device did not get its command");
    std::thread::sleep(Duration::from_millis(500));
    assert!(dash.on("fieldcast/dev-b/x").is_empty(), "a device published outside its topics");
    let seen: Vec<String> = dev.messages().into_iter().map(|m| m.topic).collect();
    assert!(seen.iter().all(|t| t.starts_with("fieldcast/dev-a/")), "device read another device's topics: {seen:?}");

    let wrong = Watcher::try_connect(&broker.url(), None, Some(("dev-a", "nope")), "fieldcast/dev-a/#");
    let err = wrong.err().expect("wrong password accepted");
    eprintln!("wrong password: {err}");
    assert!(err.contains("NotAuthorized"), "{err}");
    let anonymous = Watcher::try_connect(&broker.url(), None, None, "fieldcast/#");
    assert!(anonymous.err().expect("anonymous client accepted").contains("NotAuthorized"));
}

#[test]
fn a_watcher_reconnects_and_resubscribes_after_a_broker_restart() {
    let mut broker = Mosquitto::start();
    let port = broker.port();
    let w = Watcher::connect(&broker.url(), None, None, "fieldcast/#");
    w.publish("fieldcast/dev-a/status", b"before", true);
    assert!(w.wait_msg(T, |m| m.payload == b"before").is_some());

    broker.stop();
    assert!(!broker.is_running() && !common::port_accepts(port));
    broker.restart();
    assert!(broker.is_running() && broker.port() == port && broker.url().ends_with(&format!(":{port}")));
    let back = Instant::now();

    // Publish until the watcher has resubscribed and the message comes through.
    let publisher = Watcher::connect(&broker.url(), None, None, "other/#");
    let got = (0..20).find_map(|_| {
        publisher.publish("fieldcast/dev-a/after", b"after", false);
        w.wait_msg(Duration::from_millis(500), |m| m.payload == b"after")
    });
    let got = got.expect("watcher did not reconnect");
    assert!(got.at > back);
    eprintln!("MEASURED watcher back after restart: {:?}", got.at - back);
    // Persistence is off: the restarted broker forgot the retained status.
    let late = Watcher::connect(&broker.url(), None, None, "fieldcast/#");
    assert!(late.wait_msg(Duration::from_secs(1), |m| m.payload == b"before").is_none(), "retained message survived");
}

#[test]
fn response_topic_and_correlation_data_reach_a_v5_subscriber() {
    let broker = Mosquitto::start();
    let device = Watcher::connect(&broker.url(), None, None, "fieldcast/dev-a/cmd/#");
    let dash = Watcher::connect(&broker.url(), None, None, "fieldcast/dev-a/reply/#");
    dash.publish_with_response("fieldcast/dev-a/cmd/start", br#"{"id":"1"}"#, "fieldcast/dev-a/reply/inbox", b"corr-42");
    let req = device.wait_msg(T, |m| m.topic == "fieldcast/dev-a/cmd/start").expect("request delivered");
    assert_eq!(req.correlation.as_deref(), Some(&b"corr-42"[..]));
    assert_eq!(req.response_topic.as_deref(), Some("fieldcast/dev-a/reply/inbox"));
    assert_eq!(req.json().unwrap()["id"], "1");
    // A plain publish carries neither.
    dash.publish("fieldcast/dev-a/cmd/stop", b"{}", false);
    let plain = device.wait_msg(T, |m| m.topic == "fieldcast/dev-a/cmd/stop").expect("plain publish");
    assert!(plain.correlation.is_none() && plain.response_topic.is_none());
}
