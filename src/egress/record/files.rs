//! The recording folder on disk: which file number comes next, whether the
//! disk has room again, and a check that a folder can take recordings
//! before a configuration that names it is accepted.

use super::RecordTarget;
use std::path::Path;

/// Room a retry needs: this many seconds of the rung's media, at least 1 MiB.
const ROOM_SECONDS: u64 = 10;
const MIN_ROOM: u64 = 1024 * 1024;

/// The index after the highest `<rung>-NNNNN.<ext>` already in `dir` (0 if none),
/// so a recorder restarted after a failure never overwrites a file.
pub(super) fn next_index(dir: &Path, rung: &str, ext: &str) -> u32 {
    let Ok(entries) = std::fs::read_dir(dir) else { return 0 };
    entries
        .filter_map(|e| e.ok())
        .filter_map(|e| index_of(&e.file_name().to_string_lossy(), rung, ext))
        .map(|i| i + 1)
        .max()
        .unwrap_or(0)
}

fn index_of(name: &str, rung: &str, ext: &str) -> Option<u32> {
    let digits = name.strip_prefix(rung)?.strip_prefix('-')?.strip_suffix(ext)?.strip_suffix('.')?;
    (digits.len() >= 5 && digits.bytes().all(|b| b.is_ascii_digit())).then(|| digits.parse().ok()).flatten()
}

/// Free bytes for an unprivileged writer on the filesystem holding `path`
/// (or its nearest existing ancestor).
pub(super) fn free_bytes(path: &Path) -> Option<u64> {
    let existing = path.ancestors().find(|p| p.exists())?;
    let s = nix::sys::statvfs::statvfs(existing).ok()?;
    Some(s.blocks_available() as u64 * s.fragment_size() as u64)
}

/// Whether a retry has a chance: enough room for a few seconds of this rung
/// above the disk guard's floor (so a resumed recording does not stop again at once).
pub(super) fn has_room(target: &RecordTarget) -> bool {
    let need = (target.bitrate_bps / 8 * ROOM_SECONDS).max(MIN_ROOM) + target.guard.min_free_bytes;
    free_bytes(&target.dir).is_none_or(|free| free >= need)
}

/// Deletes the oldest segment files under `root` (every session folder of
/// the recording, ours only: `<rung>-NNNNN.<mp4|mkv>`) until about `need`
/// bytes are freed, never the newest file of a folder (it may be being
/// written). Returns the bytes freed.
pub(super) fn rotate(root: &Path, need: u64) -> u64 {
    let mut segments: Vec<(std::time::SystemTime, std::path::PathBuf, u64)> = Vec::new();
    let Ok(sessions) = std::fs::read_dir(root) else { return 0 };
    for session in sessions.filter_map(|e| e.ok()).filter(|e| e.path().is_dir()) {
        let Ok(entries) = std::fs::read_dir(session.path()) else { continue };
        let mut here: Vec<_> = entries
            .filter_map(|e| e.ok())
            .filter(|e| is_segment(&e.file_name().to_string_lossy()))
            .filter_map(|e| {
                let m = e.metadata().ok()?;
                Some((m.modified().ok()?, e.path(), m.len()))
            })
            .collect();
        here.sort();
        here.pop();
        segments.extend(here);
    }
    segments.sort();
    let mut freed = 0;
    for (_, path, len) in segments {
        if freed >= need {
            break;
        }
        if std::fs::remove_file(&path).is_ok() {
            freed += len;
        }
    }
    freed
}

fn is_segment(name: &str) -> bool {
    let Some((stem, ext)) = name.rsplit_once('.') else { return false };
    let Some((_, digits)) = stem.rsplit_once('-') else { return false };
    matches!(ext, "mp4" | "mkv") && digits.len() >= 5 && digits.bytes().all(|b| b.is_ascii_digit())
}

pub(super) use crate::io_words::reason as io_reason;

/// Checks that `dir` exists or can be made, and takes a file: what a live
/// `configure` must know before it points the recording there.
pub fn check_dir(dir: &Path) -> Result<(), String> {
    std::fs::create_dir_all(dir).map_err(|e| format!("cannot create the folder: {}", io_reason(&e)))?;
    let probe = dir.join(format!(".fieldcast-write-test-{}", std::process::id()));
    std::fs::write(&probe, b"ok").map_err(|e| format!("cannot write into the folder: {}", io_reason(&e)))?;
    let _ = std::fs::remove_file(&probe);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbering_continues_after_the_highest_file_of_the_rung_only() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(next_index(dir.path(), "720p", "mp4"), 0);
        for name in ["720p-00000.mp4", "720p-00003.mp4", "1080p-00009.mp4", "720p-00007.mkv", "720p-x.mp4", "720p-00001.mp4.tmp"] {
            std::fs::write(dir.path().join(name), b"").unwrap();
        }
        assert_eq!(next_index(dir.path(), "720p", "mp4"), 4);
        assert_eq!(next_index(dir.path(), "720p", "mkv"), 8);
        assert_eq!(next_index(dir.path(), "1080p", "mp4"), 10);
        assert_eq!(next_index(&dir.path().join("absent"), "720p", "mp4"), 0);
    }

    #[test]
    fn a_folder_that_cannot_be_made_is_refused_without_naming_it() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("SECRETfile");
        std::fs::write(&file, b"").unwrap();
        let e = check_dir(&file.join("sub")).unwrap_err();
        assert!(!e.contains("SECRET"), "{e}");
        assert!(check_dir(&dir.path().join("new/sub")).is_ok());
        assert!(dir.path().join("new/sub").is_dir());
        assert_eq!(std::fs::read_dir(dir.path().join("new/sub")).unwrap().count(), 0, "the probe file is removed");
    }

    #[test]
    fn rotation_deletes_the_oldest_segments_first_never_the_newest_of_a_folder_nor_other_files() {
        let root = tempfile::tempdir().unwrap();
        let (a, b) = (root.path().join("20261201T100000Z"), root.path().join("20261201T110000Z"));
        std::fs::create_dir_all(&a).unwrap();
        std::fs::create_dir_all(&b).unwrap();
        let t0 = std::time::SystemTime::now() - std::time::Duration::from_secs(3600);
        let put = |dir: &Path, name: &str, age_s: u64| {
            let p = dir.join(name);
            std::fs::write(&p, vec![0u8; 1000]).unwrap();
            let f = std::fs::File::options().write(true).open(&p).unwrap();
            f.set_modified(t0 + std::time::Duration::from_secs(age_s)).unwrap();
        };
        put(&a, "720p-00000.mp4", 0);
        put(&a, "720p-00001.mp4", 10);
        put(&a, "notes.txt", 1);
        put(&b, "720p-00000.mp4", 20);
        put(&b, "720p-00001.mp4", 30);
        assert_eq!(rotate(root.path(), 1500), 2000);
        let left = |d: &Path| {
            let mut v: Vec<String> = std::fs::read_dir(d).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into()).collect();
            v.sort();
            v
        };
        assert_eq!(left(&a), ["720p-00001.mp4", "notes.txt"], "the oldest went; the newest of a folder and other files stay");
        assert_eq!(left(&b), ["720p-00001.mp4"]);
        assert_eq!(rotate(root.path(), 10_000), 0, "only the newest of each folder is left");
    }

    #[test]
    fn free_space_is_read_from_the_nearest_existing_folder() {
        let dir = tempfile::tempdir().unwrap();
        assert!(free_bytes(&dir.path().join("not/yet/made")).is_some());
    }
}
