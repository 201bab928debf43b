//! I/O errors in words, without the path they concerned (a path may be a
//! submitted value).

/// An I/O error in words, without the path it concerned.
pub fn reason(e: &std::io::Error) -> String {
    use std::io::ErrorKind as K;
    match e.kind() {
        K::PermissionDenied => "permission denied".into(),
        K::NotFound => "it or a folder above it does not exist".into(),
        K::IsADirectory => "it is a folder, not a file".into(),
        K::AlreadyExists | K::NotADirectory => "a file is in the way".into(),
        K::StorageFull => "no space left on the device".into(),
        K::ReadOnlyFilesystem => "the filesystem is read-only".into(),
        _ => match e.raw_os_error() {
            Some(code) => format!("error {code} ({})", nix::errno::Errno::from_raw(code).desc()),
            None => "an I/O error".into(),
        },
    }
}
