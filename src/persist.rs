//! What the dashboard asked for, kept across restarts and power loss: the
//! remote config overlay (laid over the config file), its version, and the
//! desired run state. Written atomically: a temp file, fsync, rename, fsync
//! of the directory, so a power cut leaves either the old or the new file.

use serde::{Deserialize, Serialize};
use std::io::Write;
use std::path::{Path, PathBuf};
use thiserror::Error;

pub const FILE_NAME: &str = "remote.json";

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RunState {
    #[default]
    Idle,
    Live,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Saved {
    /// Whether the box should be streaming.
    pub run: RunState,
    /// The remote config overlay (a JSON object shaped like the config file).
    /// Holds stream keys: the file is private to the service user.
    #[serde(default)]
    pub overlay: serde_json::Map<String, serde_json::Value>,
    /// Bumped on every applied configuration change.
    #[serde(default)]
    pub config_version: u64,
    /// The last `config/desired` version handled (applied or rejected).
    #[serde(default)]
    pub desired_version: Option<u64>,
    /// A digest of that document's content ([`crate::control::desired::digest`]):
    /// the same version again with other content is refused.
    #[serde(default)]
    pub desired_digest: Option<String>,
}

#[derive(Debug, Error)]
pub enum PersistError {
    #[error("cannot write {path}")]
    Write { path: PathBuf, source: std::io::Error },
    #[error("cannot read {path}")]
    Read { path: PathBuf, source: std::io::Error },
    #[error("{path} is corrupt ({message}); ignoring it")]
    Corrupt { path: PathBuf, message: String },
}

#[derive(Clone, Debug)]
pub struct Store {
    path: PathBuf,
}

impl Store {
    pub fn new(state_dir: &Path) -> Store {
        Store { path: state_dir.join(FILE_NAME) }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// `Ok(None)` when nothing was saved yet.
    pub fn load(&self) -> Result<Option<Saved>, PersistError> {
        let text = match std::fs::read(&self.path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(source) => return Err(PersistError::Read { path: self.path.clone(), source }),
        };
        // The message names line/column only: the file holds stream keys.
        serde_json::from_slice(&text).map(Some).map_err(|e| PersistError::Corrupt {
            path: self.path.clone(),
            message: format!("line {} column {}: {:?}", e.line(), e.column(), e.classify()),
        })
    }

    pub fn save(&self, saved: &Saved) -> Result<(), PersistError> {
        let bytes = serde_json::to_vec_pretty(saved).expect("saved state serialises");
        write_atomic(&self.path, &bytes).map_err(|source| PersistError::Write { path: self.path.clone(), source })
    }
}

/// Writes `path` so that it is always either the old or the new content.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let dir = path.parent().filter(|d| !d.as_os_str().is_empty()).unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir)?;
    let tmp = dir.join(format!(".{}.tmp", path.file_name().and_then(|n| n.to_str()).unwrap_or("state")));
    {
        use std::os::unix::fs::OpenOptionsExt;
        let mut f = std::fs::OpenOptions::new().write(true).create(true).truncate(true).mode(0o600).open(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
    }
    std::fs::rename(&tmp, path)?;
    std::fs::File::open(dir)?.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn saves_and_loads_back_with_private_permissions() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::new(&dir.path().join("sub"));
        assert_eq!(store.load().unwrap(), None);
        let mut saved = Saved { run: RunState::Live, config_version: 3, desired_version: Some(7), ..Default::default() };
        saved.overlay.insert("ladder".into(), serde_json::json!({"profile": "basic"}));
        store.save(&saved).unwrap();
        assert_eq!(store.load().unwrap(), Some(saved.clone()));
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(std::fs::metadata(store.path()).unwrap().permissions().mode() & 0o777, 0o600);
        // A second save replaces the first and leaves no temp file behind.
        saved.run = RunState::Idle;
        store.save(&saved).unwrap();
        assert_eq!(store.load().unwrap().unwrap().run, RunState::Idle);
        let names: Vec<_> = std::fs::read_dir(dir.path().join("sub")).unwrap().map(|e| e.unwrap().file_name()).collect();
        assert_eq!(names, [FILE_NAME]);
    }

    #[test]
    fn a_corrupt_file_is_reported_without_quoting_it() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::new(dir.path());
        std::fs::write(store.path(), br#"{"run": "live", "overlay": {"destination": [{"key": "sk_live_SECRET"#).unwrap();
        let e = store.load().unwrap_err().to_string();
        assert!(e.contains("corrupt") && !e.contains("SECRET"), "{e}");
    }
}
