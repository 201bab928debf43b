use super::command::{parse, Kind, MAX_PAYLOAD};
use super::error::{ErrorCode, ALL};
use super::patch::{effective, merge_patch, redacted};
use serde_json::{json, Map, Value};
use std::time::{Duration, SystemTime};

fn now() -> SystemTime {
    SystemTime::UNIX_EPOCH + Duration::from_secs(1_795_000_000)
}

fn code(name: &str, payload: &[u8]) -> (ErrorCode, Option<String>, Option<String>) {
    let e = parse(name, payload, now()).expect_err("must be refused");
    (e.code, e.field, e.id)
}

#[test]
fn bad_command_payloads_get_stable_codes_naming_the_field() {
    use ErrorCode::*;
    let big = format!("{{\"id\":\"x\",\"pad\":\"{}\"}}", "a".repeat(MAX_PAYLOAD));
    let table: Vec<(&str, Vec<u8>, ErrorCode, Option<&str>)> = vec![
        ("start", big.into_bytes(), PayloadTooLarge, None),
        ("start", vec![0xff, 0xfe, b'{'], BadEncoding, None),
        ("start", b"{\"id\": \"a\"".to_vec(), MalformedJson, None),
        ("start", b"".to_vec(), MalformedJson, None),
        ("start", b"[1,2]".to_vec(), NotAnObject, None),
        ("start", b"\"start\"".to_vec(), NotAnObject, None),
        ("start", b"{}".to_vec(), MissingId, Some("id")),
        ("start", b"{\"id\": 7}".to_vec(), WrongType, Some("id")),
        ("start", b"{\"id\": \"\"}".to_vec(), InvalidId, Some("id")),
        ("start", b"{\"id\": \"a/b#\"}".to_vec(), InvalidId, Some("id")),
        ("launch", b"{\"id\": \"c1\"}".to_vec(), UnknownCommand, None),
        ("start", b"{\"id\": \"c1\", \"sk_live_4f9a\": true}".to_vec(), UnknownField, None),
        ("start", b"{\"id\": \"c1\", \"expires_at\": \"2020-01-01T00:00:00Z\"}".to_vec(), Stale, Some("expires_at")),
        ("start", b"{\"id\": \"c1\", \"expires_at\": 1000}".to_vec(), Stale, Some("expires_at")),
        ("start", b"{\"id\": \"c1\", \"expires_at\": \"tomorrow\"}".to_vec(), InvalidValue, Some("expires_at")),
        ("start", b"{\"id\": \"c1\", \"expires_at\": [1]}".to_vec(), WrongType, Some("expires_at")),
        ("configure", b"{\"id\": \"c1\"}".to_vec(), MissingField, Some("config")),
        ("configure", b"{\"id\": \"c1\", \"config\": \"ladder=basic\"}".to_vec(), WrongType, Some("config")),
        ("snapshot", b"{\"id\": \"c1\", \"width\": 10}".to_vec(), InvalidValue, Some("width")),
        ("snapshot", b"{\"id\": \"c1\", \"width\": \"big\"}".to_vec(), WrongType, Some("width")),
        ("stop", format!("{}1{}", "[".repeat(200), "]".repeat(200)).into_bytes(), MalformedJson, None),
    ];
    assert!(table.len() >= 20);
    for (name, payload, want, field) in table {
        let (got, got_field, _) = code(name, &payload);
        assert_eq!((got, got_field.as_deref()), (want, field), "cmd/{name} {:?}", String::from_utf8_lossy(&payload[..payload.len().min(60)]));
    }
}

#[test]
fn errors_after_the_id_carry_it_and_never_quote_values() {
    let (_, _, id) = code("launch", br#"{"id": "c-9"}"#);
    assert_eq!(id.as_deref(), Some("c-9"));
    let e = parse("start", br#"{"id": "c1", "expires_at": "sk_live_SECRET"}"#, now()).unwrap_err();
    assert!(!e.to_string().contains("SECRET"), "{e}");
    let e = parse("start", br#"{"id": "c1", "x": "sk_live_SECRET""#, now()).unwrap_err();
    assert!(!e.to_string().contains("SECRET"), "{e}");
    // A key pasted as a field name is not repeated either.
    for name in ["start", "configure", "snapshot"] {
        let e = parse(name, br#"{"id": "c1", "config": {}, "sk_live_SECRET": 1}"#, now()).unwrap_err();
        assert_eq!(e.code, ErrorCode::UnknownField);
        assert!(e.message.contains("takes only: id, expires_at") && !format!("{e} {e:?}").contains("SECRET"), "{e:?}");
    }
}

#[test]
fn without_a_synchronised_clock_nothing_is_refused_as_stale() {
    let boot = SystemTime::UNIX_EPOCH + Duration::from_secs(60);
    let c = parse("start", br#"{"id": "a1", "expires_at": "2020-01-01T00:00:00Z"}"#, boot).unwrap();
    assert_eq!(c.kind, Kind::Start);
}

#[test]
fn good_commands_parse() {
    let c = parse("start", br#"{"id": "a1", "expires_at": "2099-01-01T00:00:00Z"}"#, now()).unwrap();
    assert_eq!((c.id.as_str(), c.kind), ("a1", Kind::Start));
    let c = parse("snapshot", br#"{"id": "a2", "width": 321}"#, now()).unwrap();
    assert_eq!(c.kind, Kind::Snapshot { width: 320 });
    let c = parse("configure", br#"{"id": "a3", "config": {"ladder": {"profile": "basic"}}}"#, now()).unwrap();
    assert!(matches!(c.kind, Kind::Configure { ref patch } if patch["ladder"]["profile"] == "basic"));
}

#[test]
fn codes_serialise_to_their_listed_names() {
    for (c, name) in ALL {
        assert_eq!(serde_json::to_value(c).unwrap(), json!(name));
        assert_eq!(c.as_str(), *name);
    }
}

fn obj(v: Value) -> Map<String, Value> {
    v.as_object().unwrap().clone()
}

#[test]
fn merge_patch_merges_objects_replaces_lists_and_null_removes() {
    let mut t = obj(json!({"ladder": {"profile": "basic", "gop_seconds": 2}, "destination": [{"name": "a"}]}));
    merge_patch(&mut t, &obj(json!({"ladder": {"gop_seconds": null, "profile": "single"}, "destination": [{"name": "b"}]})));
    assert_eq!(Value::Object(t), json!({"ladder": {"profile": "single"}, "destination": [{"name": "b"}]}));
}

#[test]
fn an_overlay_is_validated_whole_with_every_field_named() {
    let base = toml::Table::new();
    let ok = effective(&base, &obj(json!({"ladder": {"profile": "basic"}}))).unwrap();
    assert_eq!(ok.ladder.rungs.len(), 3);
    let e = effective(&base, &obj(json!({"ladder": {"gop_seconds": 99, "rungs": [{"name": "a", "width": 641, "height": 360, "bitrate_kbps": 800}]}})))
        .unwrap_err();
    assert_eq!(e.code, ErrorCode::InvalidConfig);
    let fields: Vec<&str> = e.fields.iter().map(|f| f.field.as_str()).collect();
    assert!(fields.contains(&"config.ladder.gop_seconds") && fields.contains(&"config.ladder.rungs[0].width"), "{fields:?}");
    let e = effective(&base, &obj(json!({"ladder": {"bogus": 1}}))).unwrap_err();
    assert_eq!((e.code, e.field.as_deref()), (ErrorCode::UnknownField, Some("config.ladder")));
    assert!(e.message.contains("allowed here: profile, rungs") && !e.message.contains("bogus"), "{e:?}");
    let e = effective(&base, &obj(json!({"sk_live_4f9a": 1}))).unwrap_err();
    assert_eq!((e.code, e.field.as_deref()), (ErrorCode::UnknownField, Some("config")));
    // A key that is not a field of ours is never part of a field path.
    let e = effective(&base, &obj(json!({"ladder": {"sk_live_4f9a": [null]}}))).unwrap_err();
    assert_eq!((e.code, e.field.as_deref()), (ErrorCode::InvalidValue, Some("config.ladder.?")));
    let e = effective(&base, &obj(json!({"ladder": {"gop_seconds": "two"}}))).unwrap_err();
    assert_eq!((e.code, e.field.as_deref()), (ErrorCode::InvalidConfig, Some("config.ladder.gop_seconds")));
    let e = effective(&base, &obj(json!({"mqtt": {"broker": "mqtt://evil"}}))).unwrap_err();
    assert_eq!((e.code, e.field.as_deref()), (ErrorCode::ForbiddenField, Some("config.mqtt")));
    let e = effective(&base, &obj(json!({"destination": [null]}))).unwrap_err();
    assert_eq!((e.code, e.field.as_deref()), (ErrorCode::InvalidValue, Some("config.destination[0]")));
}

#[test]
fn a_ladder_profile_in_the_overlay_replaces_the_files_rungs_and_rungs_replace_its_profile() {
    let with_rungs: toml::Table =
        "[ladder]
gop_seconds = 1
rungs = [{ name = \"a\", width = 640, height = 360, bitrate_kbps = 800 }]
".parse().unwrap();
    let c = effective(&with_rungs, &obj(json!({"ladder": {"profile": "basic"}}))).unwrap();
    assert_eq!(c.ladder.rungs.iter().map(|r| r.name.as_str()).collect::<Vec<_>>(), ["720p", "540p", "360p"]);
    assert_eq!(c.ladder.gop_seconds, 1.0, "the rest of the file's ladder stays");
    let with_profile: toml::Table = "[ladder]\nprofile = \"standard\"\n".parse().unwrap();
    let rungs = json!({"ladder": {"rungs": [{"name": "b", "width": 320, "height": 180, "bitrate_kbps": 300}]}});
    let c = effective(&with_profile, &obj(rungs)).unwrap();
    assert_eq!(c.ladder.rungs.iter().map(|r| r.name.as_str()).collect::<Vec<_>>(), ["b"]);
    // Both in one layer are still refused.
    let both = json!({"ladder": {"profile": "basic", "rungs": [{"name": "b", "width": 320, "height": 180, "bitrate_kbps": 300}]}});
    let e = effective(&toml::Table::new(), &obj(both)).unwrap_err();
    assert_eq!(e.field.as_deref(), Some("config.ladder"));
}

#[test]
fn redaction_hides_keys_passwords_and_url_tokens() {
    let o = obj(json!({"destination": [{"name": "a", "key": "sk_SECRET1", "url": "rtmp://h/live?token=SECRET2", "stream": "{rung}_{key}"}]}));
    let text = Value::Object(redacted(&o)).to_string();
    assert!(!text.contains("SECRET"), "{text}");
    assert!(text.contains("{rung}_{key}") && text.contains("\"name\":\"a\""), "{text}");
    // A key written into the template is hidden by the same rule as check-config's.
    let o = obj(json!({"destination": [{"stream": "sk4live9_{rung}"}]}));
    let text = Value::Object(redacted(&o)).to_string();
    assert!(text.contains("\"***_{rung}\"") && !text.contains("sk4live9"), "{text}");
}
