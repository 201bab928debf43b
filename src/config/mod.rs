//! Configuration: `config.toml` plus `config.d/*.toml` (merged in name
//! order, tables deep-merged, later files win), validated into a [`Config`]
//! that cannot hold an invalid value. Errors name the file, the field and why,
//! and never quote a value that could be a secret.

mod cmaf;
mod de;
mod http;
pub mod url;
mod mqtt;
mod raw;
pub mod schema;
mod srt;
mod types;
mod validate;

pub use cmaf::{AUDIO_TRACK_NAME, expand_audio, expand_video, video_track_name};
pub use raw::RawConfig;
pub use types::*;
pub use http::{DEFAULT_LISTEN, MIN_TOKEN};
pub use validate::{parse_fps, GOP_RANGE, PROFILES};

use std::fmt;
use std::path::{Path, PathBuf};
use thiserror::Error;

/// A field's problem. The message is built by fieldcast and never holds a
/// submitted value (nor a key the user wrote that is not a field of ours).
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct FieldError {
    /// Dotted path of the field, e.g. `ladder.rungs[1].bitrate_kbps`; for
    /// an unknown key, the section that holds it (`config` at the top).
    pub field: String,
    pub message: String,
    #[serde(skip)]
    pub kind: ProblemKind,
}

/// What kind of problem a [`FieldError`] is.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum ProblemKind {
    /// The value breaks a rule.
    #[default]
    Invalid,
    /// The value has the wrong type for its field.
    WrongType,
    /// A key that is not a field of its section.
    UnknownField,
}

impl fmt::Display for FieldError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.field, self.message)
    }
}

#[derive(Debug, Error)]
pub enum ConfigError {
    /// The config file (or a `config.d` entry) cannot be read; the reason
    /// in words, once.
    #[error("cannot read {path}: {}", crate::io_words::reason(.error))]
    Io { path: PathBuf, error: std::io::Error },
    /// TOML syntax error: where, and a reason of ours (the parser's text
    /// quotes the line, which may hold a key).
    #[error("{path}:{line}:{column}: {message}")]
    Parse { path: PathBuf, line: usize, column: usize, message: &'static str },
    #[error("{} invalid:\n{}", .origin, .errors.iter().map(|e| format!("  {e}")).collect::<Vec<_>>().join("\n"))]
    Invalid { origin: String, errors: Vec<FieldError> },
}

impl ConfigError {
    pub fn field_errors(&self) -> &[FieldError] {
        match self {
            ConfigError::Invalid { errors, .. } => errors,
            _ => &[],
        }
    }
}

/// Where state lives when the config does not say: systemd's
/// `$STATE_DIRECTORY`, else `./fieldcast-state`.
pub fn default_state_dir() -> PathBuf {
    std::env::var_os("STATE_DIRECTORY")
        .map(|s| PathBuf::from(s).join(""))
        .unwrap_or_else(|| PathBuf::from("fieldcast-state"))
}

/// The built-in default: test pattern, standard ladder, recorded locally.
pub fn builtin_default() -> Config {
    from_value(toml::Table::new(), "built-in default").expect("the built-in default is valid")
}

/// Loads `path` and, if present, `<dir of path>/config.d/*.toml`.
pub fn load(path: &Path) -> Result<Config, ConfigError> {
    from_value(load_table(path)?, &path.display().to_string())
}

/// The merged, unvalidated table of `path` and its `config.d/`: the base
/// that remote configuration patches are laid over.
pub fn load_table(path: &Path) -> Result<toml::Table, ConfigError> {
    let mut merged = read_table(path)?;
    let dropin = path.parent().unwrap_or(Path::new(".")).join("config.d");
    if dropin.is_dir() {
        let mut files: Vec<PathBuf> = std::fs::read_dir(&dropin)
            .map_err(|error| ConfigError::Io { path: dropin.clone(), error })?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|x| x == "toml"))
            .collect();
        files.sort();
        for f in files {
            merge(&mut merged, read_table(&f)?);
        }
    }
    Ok(merged)
}

/// Parses one TOML document (a whole config, or a patch merged onto one).
pub fn parse_str(text: &str, origin: &Path) -> Result<toml::Table, ConfigError> {
    text.parse::<toml::Table>().map_err(|e| parse_error(origin, text, e.message(), e.span()))
}

/// Validates a merged table.
pub fn from_value(table: toml::Table, origin: &str) -> Result<Config, ConfigError> {
    let raw: RawConfig = de::from_value(&toml::Value::Table(table))
        .map_err(|e| ConfigError::Invalid { origin: origin.into(), errors: vec![schema_field_error(&e)] })?;
    validate::validate(raw, default_state_dir()).map_err(|errors| ConfigError::Invalid { origin: origin.into(), errors })
}

/// Keys of a section that are alternatives to one another: a layer (a
/// drop-in, the remote overlay) that sets one of them replaces the others
/// the layers below set, so a profile chosen on the page replaces the
/// file's `rungs` instead of clashing with them.
const ALTERNATIVES: &[(&str, &[&str])] = &[("ladder", &["profile", "rungs"])];

/// Deep-merges the layer `over` onto `base`: tables merge, everything else
/// is replaced, and so are a section's [`ALTERNATIVES`].
pub fn merge(base: &mut toml::Table, over: toml::Table) {
    for (section, keys) in ALTERNATIVES {
        if let (Some(toml::Value::Table(b)), Some(toml::Value::Table(o))) = (base.get_mut(*section), over.get(*section))
            && keys.iter().any(|k| o.contains_key(*k))
        {
            b.retain(|k, _| !keys.iter().any(|x| *x == k) || o.contains_key(k));
        }
    }
    merge_tables(base, over)
}

fn merge_tables(base: &mut toml::Table, over: toml::Table) {
    for (k, v) in over {
        match (base.get_mut(&k), v) {
            (Some(toml::Value::Table(b)), toml::Value::Table(o)) => merge_tables(b, o),
            (_, v) => {
                base.insert(k, v);
            }
        }
    }
}

fn read_table(path: &Path) -> Result<toml::Table, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|error| ConfigError::Io { path: path.into(), error })?;
    parse_str(&text, path)
}

fn parse_error(path: &Path, text: &str, message: &str, span: Option<std::ops::Range<usize>>) -> ConfigError {
    let offset = span.map(|s| s.start).unwrap_or(0).min(text.len());
    let before = &text[..offset];
    let line = before.matches('\n').count() + 1;
    let column = before[before.rfind('\n').map(|i| i + 1).unwrap_or(0)..].chars().count() + 1;
    // Only a fixed reason is chosen by the parser's text, never copied from it.
    let message = if message.contains("duplicate key") { "duplicate key (a key or table is defined twice)" } else { "invalid TOML syntax" };
    ConfigError::Parse { path: path.into(), line, column, message }
}

/// A type or unknown-field error on the merged value: the field's path
/// (from serde_path_to_error, keys of ours only) and our message.
fn schema_field_error(e: &serde_path_to_error::Error<de::SchemaError>) -> FieldError {
    use serde_path_to_error::Segment as S;
    let mut segments: Vec<&S> = e.path().iter().collect();
    let kind = match &e.inner().0 {
        de::Problem::UnknownField { .. } => {
            // The last segment is the key the user wrote: name its section.
            segments.pop();
            ProblemKind::UnknownField
        }
        de::Problem::WrongType { .. } => ProblemKind::WrongType,
        _ => ProblemKind::Invalid,
    };
    let mut field = String::new();
    for s in segments {
        match s {
            S::Seq { index } => field.push_str(&format!("[{index}]")),
            S::Map { key } => {
                if !field.is_empty() {
                    field.push('.');
                }
                field.push_str(if schema::is_field_name(key) { key } else { "?" });
            }
            _ => field.push_str(".?"),
        }
    }
    if field.is_empty() {
        field = "config".into();
    }
    FieldError { field, message: e.inner().to_string(), kind }
}

#[cfg(test)]
mod tests;
