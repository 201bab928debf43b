//! The process heap on a box that runs for months. glibc gives threads
//! their own malloc arenas (up to 8 per core) and each arena keeps what it
//! freed. GStreamer's streaming threads come and go with every session, so
//! idle RSS crept from 46 to 98 MB over 20 start/stop cycles
//! (`bench/control.py`). Two arenas cap the creep; trimming after a session
//! hands the freed pages back.

/// At startup, before any thread exists: at most two malloc arenas, unless
/// the operator chose otherwise with `MALLOC_ARENA_MAX`.
pub fn limit_arenas() {
    #[cfg(target_env = "gnu")]
    if std::env::var_os("MALLOC_ARENA_MAX").is_none() {
        // SAFETY: mallopt only sets an allocator parameter; no thread runs yet.
        unsafe {
            libc::mallopt(libc::M_ARENA_MAX, 2);
        }
    }
}

/// After a session ends: return the heap's free pages to the kernel.
pub fn release_free_memory() {
    #[cfg(target_env = "gnu")]
    // SAFETY: malloc_trim is thread-safe and only releases free memory.
    unsafe {
        libc::malloc_trim(0);
    }
}
