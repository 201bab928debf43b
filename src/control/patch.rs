//! Remote configuration: a JSON overlay laid over the config file. Patches
//! follow JSON merge patch (RFC 7386: objects merge, `null` removes a key,
//! anything else, lists included, replaces). The result is validated by the
//! same rules as the file, whole, before anything is applied.

use super::error::{CommandError, ErrorCode, FieldProblem};
use crate::config::{self, Config, ConfigError, ProblemKind};
use crate::config::url::DestinationUrl;
use serde_json::{Map, Value};

/// Sections a dashboard may change. The rest (identity, broker, paths) would
/// let one bad message cut the box off its fleet, so only the file sets them.
pub const REMOTE_SECTIONS: &[&str] = &["source", "audio", "ladder", "destination", "recording", "egress"];
const LOCAL_ONLY: &[&str] = &["device_id", "board", "board_dir", "state_dir", "mqtt", "http"];

/// Refuses fields only the config file may set.
pub fn check_sections(patch: &Map<String, Value>) -> Result<(), CommandError> {
    match patch.keys().find(|k| LOCAL_ONLY.contains(&k.as_str())) {
        Some(k) => Err(CommandError::field(
            ErrorCode::ForbiddenField,
            format!("config.{k}"),
            format!("only the config file on the box sets `{k}`; remote config may change {}", REMOTE_SECTIONS.join(", ")),
        )),
        None => Ok(()),
    }
}

/// RFC 7386 merge of `patch` into `target`.
pub fn merge_patch(target: &mut Map<String, Value>, patch: &Map<String, Value>) {
    for (k, v) in patch {
        match v {
            Value::Null => {
                target.remove(k);
            }
            Value::Object(p) => {
                let slot = target.entry(k.clone()).or_insert_with(|| Value::Object(Map::new()));
                if !slot.is_object() {
                    *slot = Value::Object(Map::new());
                }
                let Value::Object(t) = slot else { unreachable!() };
                merge_patch(t, p);
            }
            v => {
                target.insert(k.clone(), v.clone());
            }
        }
    }
}

/// The config file's table with `overlay` on top, validated.
pub fn effective(base: &toml::Table, overlay: &Map<String, Value>) -> Result<Config, CommandError> {
    check_sections(overlay)?;
    let toml::Value::Table(over) = to_toml(&Value::Object(overlay.clone()), "config")? else {
        unreachable!("an object converts to a table")
    };
    let mut table = base.clone();
    config::merge(&mut table, over);
    config::from_value(table, "remote config").map_err(invalid)
}

fn invalid(e: ConfigError) -> CommandError {
    let errors = e.field_errors();
    let fields: Vec<FieldProblem> = errors
        .iter()
        .map(|f| {
            let field = if f.field == "config" { f.field.clone() } else { format!("config.{}", f.field) };
            FieldProblem { field, message: f.message.clone() }
        })
        .collect();
    let Some(first) = fields.first().cloned() else {
        return CommandError::new(ErrorCode::InvalidConfig, e.to_string());
    };
    let code = if errors[0].kind == ProblemKind::UnknownField { ErrorCode::UnknownField } else { ErrorCode::InvalidConfig };
    let message = if fields.len() == 1 { first.message.clone() } else { format!("{} (and {} more)", first.message, fields.len() - 1) };
    CommandError { field: Some(first.field), message, fields, ..CommandError::new(code, "") }
}

/// JSON -> TOML. TOML has no null and no integers beyond i64. `path` is
/// made of field names of ours only: a key that is not one (it could be a
/// value typed as a key) ends the path with `?`.
fn to_toml(v: &Value, path: &str) -> Result<toml::Value, CommandError> {
    let bad = |m: String| CommandError::field(ErrorCode::InvalidValue, path, m);
    let key_path = |k: &str| if path.ends_with('?') { path.to_string() } else if config::schema::is_field_name(k) { format!("{path}.{k}") } else { format!("{path}.?") };
    Ok(match v {
        Value::Null => return Err(bad("null is only allowed as an object member (it removes the key)".into())),
        Value::Bool(b) => toml::Value::Boolean(*b),
        Value::Number(n) => match (n.as_i64(), n.as_f64()) {
            (Some(i), _) => toml::Value::Integer(i),
            (None, Some(_)) if n.is_u64() => return Err(bad("number too large".into())),
            (None, Some(f)) => toml::Value::Float(f),
            _ => return Err(bad("not a representable number".into())),
        },
        Value::String(s) => toml::Value::String(s.clone()),
        Value::Array(a) => {
            let at = |i: usize| if path.ends_with('?') { path.to_string() } else { format!("{path}[{i}]") };
            toml::Value::Array(a.iter().enumerate().map(|(i, x)| to_toml(x, &at(i))).collect::<Result<_, _>>()?)
        }
        Value::Object(o) => toml::Value::Table(
            o.iter().map(|(k, x)| Ok((k.clone(), to_toml(x, &key_path(k))?))).collect::<Result<_, CommandError>>()?,
        ),
    })
}

/// The overlay with secrets hidden, for `config/reported`, replies and logs:
/// stream keys and passwords become `***`, URLs lose their tokens.
pub fn redacted(overlay: &Map<String, Value>) -> Map<String, Value> {
    overlay.iter().map(|(k, v)| (k.clone(), redact_value(k, v))).collect()
}

fn redact_value(key: &str, v: &Value) -> Value {
    match v {
        Value::Object(o) => Value::Object(redacted(o)),
        Value::Array(a) => Value::Array(a.iter().map(|x| redact_value(key, x)).collect()),
        Value::String(s) if is_secret_key(key) && !s.is_empty() => Value::String("***".into()),
        Value::String(s) if key == "url" || key == "backup_url" => {
            Value::String(DestinationUrl::parse(s).map(|u| u.to_string()).unwrap_or_else(|_| "***".into()))
        }
        Value::String(s) if key == "stream" || key == "streamid" || key == "track_path" => Value::String(config::redact_template(s)),
        v => v.clone(),
    }
}

fn is_secret_key(k: &str) -> bool {
    let k = k.to_ascii_lowercase();
    ["key", "password", "token", "secret", "passphrase"].iter().any(|s| k == *s || k.ends_with(&format!("_{s}")))
}
