//! libsrt, the reference SRT implementation (the library GStreamer's
//! `srtsink` links), loaded at run time with `dlopen`: no build-time
//! dependency (cross builds need no arm64 libsrt to link), and a box
//! without libsrt fails its SRT outputs with a clear error instead of not
//! starting. Only the calls an SRT output needs, with their C types.
//!
//! Why not `srtsink`: its caller reports every failed handshake as
//! "Connection does not exist" on the first write, so a wrong passphrase,
//! a refused stream id and an absent receiver look the same. Owning the
//! socket gives the reject reason (`srt_getrejectreason`) and the sender's
//! statistics (`srt_bstats`: RTT, send buffer, retransmissions, losses).

use std::ffi::{CStr, CString, c_char, c_int, c_void};
use std::net::SocketAddr;
use std::sync::OnceLock;
use thiserror::Error;

/// The shared object names libsrt 1.5 ships under (Debian: GnuTLS build).
const LIBRARIES: &[&str] = &["libsrt-gnutls.so.1.5", "libsrt.so.1.5", "libsrt-openssl.so.1.5", "libsrt.so"];

// SRT_SOCKOPT values (srt.h).
pub const SRTO_RCVSYN: c_int = 2;
pub const SRTO_SNDTIMEO: c_int = 13;
pub const SRTO_SENDER: c_int = 21;
pub const SRTO_LATENCY: c_int = 23;
pub const SRTO_PASSPHRASE: c_int = 26;
pub const SRTO_PBKEYLEN: c_int = 27;
pub const SRTO_CONNTIMEO: c_int = 36;
pub const SRTO_STREAMID: c_int = 46;
pub const SRTO_TRANSTYPE: c_int = 50;
pub const SRTO_PEERIDLETIMEO: c_int = 55;
pub const SRTT_LIVE: c_int = 0;

// SRT_SOCKSTATUS.
pub const SRTS_CONNECTING: c_int = 4;
pub const SRTS_CONNECTED: c_int = 5;

// SRT_ERRNO.
pub const SRT_ENOSERVER: c_int = 1001;
pub const SRT_ECONNREJ: c_int = 1002;
pub const SRT_ECONNLOST: c_int = 2001;
pub const SRT_ENOCONN: c_int = 2002;

// SRT_REJECT_REASON.
pub const SRT_REJ_UNKNOWN: c_int = 0;
pub const SRT_REJ_PEER: c_int = 2;
pub const SRT_REJ_BADSECRET: c_int = 10;
pub const SRT_REJ_UNSECURE: c_int = 11;
pub const SRT_REJ_TIMEOUT: c_int = 16;
/// Codes at or above this are the receiver's own (access control, 1000+).
pub const SRT_REJC_PREDEFINED: c_int = 1000;

/// How often a connecting socket's state is read.
const POLL: std::time::Duration = std::time::Duration::from_millis(5);
/// How long a failed state without a reject reason must last to be believed
/// (see [`Socket::connect`]).
const SETTLE: std::time::Duration = std::time::Duration::from_millis(100);

/// syslog's LOG_CRIT: libsrt prints nothing below it to stderr.
const LOG_CRIT: c_int = 2;

#[derive(Clone, Debug, Error)]
#[error("libsrt 1.5 is not installed (looked for {}); install the SRT library (Debian: libsrt1.5-gnutls)", LIBRARIES.join(", "))]
pub struct LoadError;

type Sock = c_int;

#[allow(non_snake_case)]
struct Api {
    srt_startup: unsafe extern "C" fn() -> c_int,
    srt_create_socket: unsafe extern "C" fn() -> Sock,
    srt_setsockflag: unsafe extern "C" fn(Sock, c_int, *const c_void, c_int) -> c_int,
    srt_connect: unsafe extern "C" fn(Sock, *const libc::sockaddr, c_int) -> c_int,
    srt_bind: unsafe extern "C" fn(Sock, *const libc::sockaddr, c_int) -> c_int,
    srt_listen: unsafe extern "C" fn(Sock, c_int) -> c_int,
    srt_accept: unsafe extern "C" fn(Sock, *mut libc::sockaddr, *mut c_int) -> Sock,
    srt_close: unsafe extern "C" fn(Sock) -> c_int,
    srt_sendmsg: unsafe extern "C" fn(Sock, *const c_char, c_int, c_int, c_int) -> c_int,
    srt_getlasterror: unsafe extern "C" fn(*mut c_int) -> c_int,
    srt_getlasterror_str: unsafe extern "C" fn() -> *const c_char,
    srt_getrejectreason: unsafe extern "C" fn(Sock) -> c_int,
    srt_rejectreason_str: unsafe extern "C" fn(c_int) -> *const c_char,
    srt_bstats: unsafe extern "C" fn(Sock, *mut PerfMon, c_int) -> c_int,
    srt_getsockstate: unsafe extern "C" fn(Sock) -> c_int,
    srt_setloglevel: unsafe extern "C" fn(c_int),
}

fn api() -> Result<&'static Api, LoadError> {
    static API: OnceLock<Option<Api>> = OnceLock::new();
    API.get_or_init(load).as_ref().ok_or(LoadError)
}

/// Whether libsrt can be used on this machine.
pub fn available() -> bool {
    api().is_ok()
}

/// A symbol's address as the function pointer type `T` declares.
///
/// # Safety
/// `T` must be the `extern "C"` function type of the symbol at `p`.
unsafe fn fn_ptr<T: Copy>(p: *mut c_void) -> T {
    assert_eq!(std::mem::size_of::<T>(), std::mem::size_of::<*mut c_void>(), "a function pointer");
    // SAFETY: same size, and the caller vouches for the type.
    unsafe { std::mem::transmute_copy(&p) }
}

fn load() -> Option<Api> {
    let handle = LIBRARIES.iter().find_map(|name| {
        let c = CString::new(*name).expect("no NUL in a library name");
        // SAFETY: dlopen with a valid C string; the handle is never closed.
        let h = unsafe { libc::dlopen(c.as_ptr(), libc::RTLD_NOW | libc::RTLD_LOCAL) };
        (!h.is_null()).then_some(h)
    })?;
    macro_rules! sym {
        ($name:ident) => {{
            let c = CString::new(stringify!($name)).expect("no NUL");
            // SAFETY: dlsym on a live handle; the symbol's C type is declared in `Api`
            // exactly as srt.h declares it, and transmute only reinterprets the pointer.
            let p = unsafe { libc::dlsym(handle, c.as_ptr()) };
            if p.is_null() {
                return None;
            }
            unsafe { fn_ptr(p) }
        }};
    }
    let api = Api {
        srt_startup: sym!(srt_startup),
        srt_create_socket: sym!(srt_create_socket),
        srt_setsockflag: sym!(srt_setsockflag),
        srt_connect: sym!(srt_connect),
        srt_bind: sym!(srt_bind),
        srt_listen: sym!(srt_listen),
        srt_accept: sym!(srt_accept),
        srt_close: sym!(srt_close),
        srt_sendmsg: sym!(srt_sendmsg),
        srt_getlasterror: sym!(srt_getlasterror),
        srt_getlasterror_str: sym!(srt_getlasterror_str),
        srt_getrejectreason: sym!(srt_getrejectreason),
        srt_rejectreason_str: sym!(srt_rejectreason_str),
        srt_bstats: sym!(srt_bstats),
        srt_getsockstate: sym!(srt_getsockstate),
        srt_setloglevel: sym!(srt_setloglevel),
    };
    // SAFETY: plain library calls with no arguments to validate.
    unsafe {
        (api.srt_setloglevel)(LOG_CRIT);
        if (api.srt_startup)() < 0 {
            return None;
        }
    }
    Some(api)
}

/// libsrt's last error on this thread: (code, its fixed text).
fn last_error(api: &Api) -> SrtError {
    // SAFETY: thread-local error state; the string is libsrt's own, copied at once.
    unsafe {
        let code = (api.srt_getlasterror)(std::ptr::null_mut());
        let text = CStr::from_ptr((api.srt_getlasterror_str)()).to_string_lossy().into_owned();
        SrtError { code, text }
    }
}

/// A libsrt failure: its error code and libsrt's text for it (no user data).
#[derive(Clone, Debug, Error)]
#[error("{text}")]
pub struct SrtError {
    pub code: c_int,
    pub text: String,
}

/// One SRT socket, closed on drop (or by [`Socket::close`], which also
/// wakes a thread blocked in `accept`). Calls are thread-safe in libsrt.
#[derive(Debug)]
pub struct Socket {
    sock: std::sync::atomic::AtomicI32,
}

fn sockaddr(addr: &SocketAddr) -> (libc::sockaddr_storage, c_int) {
    // SAFETY: an all-zero sockaddr_storage is valid; the casts write within it.
    let mut storage: libc::sockaddr_storage = unsafe { std::mem::zeroed() };
    let len = match addr {
        SocketAddr::V4(a) => {
            let sin = libc::sockaddr_in {
                sin_family: libc::AF_INET as libc::sa_family_t,
                sin_port: a.port().to_be(),
                sin_addr: libc::in_addr { s_addr: u32::from_ne_bytes(a.ip().octets()) },
                sin_zero: [0; 8],
            };
            unsafe { std::ptr::write(&mut storage as *mut _ as *mut libc::sockaddr_in, sin) };
            std::mem::size_of::<libc::sockaddr_in>()
        }
        SocketAddr::V6(a) => {
            let sin6 = libc::sockaddr_in6 {
                sin6_family: libc::AF_INET6 as libc::sa_family_t,
                sin6_port: a.port().to_be(),
                sin6_flowinfo: a.flowinfo(),
                sin6_addr: libc::in6_addr { s6_addr: a.ip().octets() },
                sin6_scope_id: a.scope_id(),
            };
            unsafe { std::ptr::write(&mut storage as *mut _ as *mut libc::sockaddr_in6, sin6) };
            std::mem::size_of::<libc::sockaddr_in6>()
        }
    };
    (storage, len as c_int)
}

impl Socket {
    pub fn new() -> Result<Socket, LoadError> {
        let api = api()?;
        // SAFETY: no arguments; a negative result is an error.
        let sock = unsafe { (api.srt_create_socket)() };
        Ok(Socket { sock: sock.into() })
    }

    fn sock(&self) -> Sock {
        self.sock.load(std::sync::atomic::Ordering::Acquire)
    }

    fn api(&self) -> &'static Api {
        api().expect("a socket exists only once libsrt loaded")
    }

    fn check(&self, r: c_int) -> Result<(), SrtError> {
        if r < 0 { Err(last_error(self.api())) } else { Ok(()) }
    }

    pub fn set_int(&self, opt: c_int, value: c_int) -> Result<(), SrtError> {
        // SAFETY: a pointer to a live c_int and its size.
        let r = unsafe { (self.api().srt_setsockflag)(self.sock(), opt, &value as *const c_int as *const c_void, 4) };
        self.check(r)
    }

    pub fn set_bool(&self, opt: c_int, value: bool) -> Result<(), SrtError> {
        let v = value;
        // SAFETY: SRT's boolean options take a C++ bool (1 byte).
        let r = unsafe { (self.api().srt_setsockflag)(self.sock(), opt, &v as *const bool as *const c_void, 1) };
        self.check(r)
    }

    pub fn set_str(&self, opt: c_int, value: &str) -> Result<(), SrtError> {
        // SAFETY: libsrt copies `len` bytes of the string (no NUL needed).
        let r = unsafe { (self.api().srt_setsockflag)(self.sock(), opt, value.as_ptr() as *const c_void, value.len() as c_int) };
        self.check(r)
    }

    /// Connects, bounded by `SRTO_CONNTIMEO` (set it to `timeout`), and
    /// waits for the outcome by polling the socket's state. Not libsrt's
    /// blocking connect: that one resends an unanswered handshake only
    /// once a second, so a receiver that comes back just after an attempt
    /// began waits up to a second; libsrt's own worker, which drives a
    /// non-blocking connect, resends every 250 ms.
    pub fn connect(&self, addr: &SocketAddr, timeout: std::time::Duration) -> Result<(), SrtError> {
        self.set_bool(SRTO_RCVSYN, false)?;
        let (sa, len) = sockaddr(addr);
        // SAFETY: a valid sockaddr of `len` bytes.
        let r = unsafe { (self.api().srt_connect)(self.sock(), &sa as *const _ as *const libc::sockaddr, len) };
        self.check(r)?;
        // libsrt ends the attempt itself at the timeout; a margin past it.
        let deadline = std::time::Instant::now() + timeout + std::time::Duration::from_millis(500);
        let mut unsettled_since: Option<std::time::Instant> = None;
        loop {
            // SAFETY: a plain call on our socket.
            let state = unsafe { (self.api().srt_getsockstate)(self.sock()) };
            let now = std::time::Instant::now();
            match state {
                SRTS_CONNECTED => return self.set_bool(SRTO_RCVSYN, true),
                SRTS_CONNECTING if now < deadline => std::thread::sleep(POLL),
                // libsrt 1.5 (`CUDT::postConnect`) clears "connecting" before
                // it sets "connected", and looks the socket up under the global
                // lock in between, the lock `srt_getsockstate` takes: a poll in
                // that window reads BROKEN with no reject reason although the
                // connection is being completed (the listener has accepted it).
                // Giving up there closes a connection the receiver already
                // counts as its one caller. A failure is believed once it has
                // a reason, or has lasted [`SETTLE`].
                _ if state != SRTS_CONNECTING
                    && self.reject_reason() == SRT_REJ_UNKNOWN
                    && now < deadline
                    && now.duration_since(*unsettled_since.get_or_insert(now)) < SETTLE =>
                {
                    std::thread::sleep(POLL)
                }
                _ => {
                    let reason = self.reject_reason();
                    let refused = state != SRTS_CONNECTING && reason != SRT_REJ_TIMEOUT && reason != SRT_REJ_UNKNOWN;
                    let code = if refused { SRT_ECONNREJ } else { SRT_ENOSERVER };
                    return Err(SrtError { code, text: if refused { "connection rejected".into() } else { "connection setup failure: connection timed out".into() } });
                }
            }
        }
    }

    pub fn bind(&self, addr: &SocketAddr) -> Result<(), SrtError> {
        let (sa, len) = sockaddr(addr);
        // SAFETY: as in `connect`.
        let r = unsafe { (self.api().srt_bind)(self.sock(), &sa as *const _ as *const libc::sockaddr, len) };
        self.check(r)
    }

    pub fn listen(&self) -> Result<(), SrtError> {
        // SAFETY: a plain call on our socket.
        let r = unsafe { (self.api().srt_listen)(self.sock(), 1) };
        self.check(r)
    }

    /// Blocks until a peer connects (or the listener is closed).
    pub fn accept(&self) -> Result<Socket, SrtError> {
        // SAFETY: libsrt fills at most `len` bytes of the storage.
        let mut sa: libc::sockaddr_storage = unsafe { std::mem::zeroed() };
        let mut len = std::mem::size_of::<libc::sockaddr_storage>() as c_int;
        let s = unsafe { (self.api().srt_accept)(self.sock(), &mut sa as *mut _ as *mut libc::sockaddr, &mut len) };
        if s < 0 { Err(last_error(self.api())) } else { Ok(Socket { sock: s.into() }) }
    }

    /// Sends one live-mode message (a 1316-byte TS chunk).
    pub fn send(&self, data: &[u8]) -> Result<(), SrtError> {
        // SAFETY: a live buffer of `len` bytes; ttl -1, in order.
        let r = unsafe { (self.api().srt_sendmsg)(self.sock(), data.as_ptr() as *const c_char, data.len() as c_int, -1, 1) };
        self.check(r)
    }

    /// The reason a connect was refused (`SRT_REJ_*`, or the peer's 1000+ code).
    pub fn reject_reason(&self) -> c_int {
        // SAFETY: a plain call on our socket.
        unsafe { (self.api().srt_getrejectreason)(self.sock()) }
    }

    /// libsrt's fixed text for a reject reason.
    pub fn reject_reason_text(reason: c_int) -> String {
        let Ok(api) = api() else { return String::new() };
        // SAFETY: returns a static string for any value.
        unsafe { CStr::from_ptr((api.srt_rejectreason_str)(reason)).to_string_lossy().into_owned() }
    }

    pub fn connected(&self) -> bool {
        // SAFETY: a plain call on our socket.
        unsafe { (self.api().srt_getsockstate)(self.sock()) == SRTS_CONNECTED }
    }

    /// The sender's statistics since the connection began.
    pub fn stats(&self) -> Option<PerfMon> {
        let mut perf = PerfMon::default();
        // SAFETY: `PerfMon` has the layout of SRT_TRACEBSTATS; clear = 0.
        let r = unsafe { (self.api().srt_bstats)(self.sock(), &mut perf, 0) };
        (r >= 0).then_some(perf)
    }
}

impl Socket {
    /// Closes the socket now (idempotent); later calls fail cleanly.
    pub fn close(&self) {
        let sock = self.sock.swap(-1, std::sync::atomic::Ordering::AcqRel);
        if sock >= 0
            && let Ok(api) = api()
        {
            // SAFETY: closing our own socket, once (the swap above).
            unsafe { (api.srt_close)(sock) };
        }
    }
}

impl Drop for Socket {
    fn drop(&mut self) {
        self.close();
    }
}

/// libsrt 1.5's `SRT_TRACEBSTATS` (`struct CBytePerfMon`), field for field.
#[repr(C)]
#[allow(non_snake_case)]
#[derive(Clone, Copy, Default)]
pub struct PerfMon {
    pub msTimeStamp: i64,
    pub pktSentTotal: i64,
    pub pktRecvTotal: i64,
    pub pktSndLossTotal: i32,
    pub pktRcvLossTotal: i32,
    pub pktRetransTotal: i32,
    pub pktSentACKTotal: i32,
    pub pktRecvACKTotal: i32,
    pub pktSentNAKTotal: i32,
    pub pktRecvNAKTotal: i32,
    pub usSndDurationTotal: i64,
    pub pktSndDropTotal: i32,
    pub pktRcvDropTotal: i32,
    pub pktRcvUndecryptTotal: i32,
    pub byteSentTotal: u64,
    pub byteRecvTotal: u64,
    pub byteRcvLossTotal: u64,
    pub byteRetransTotal: u64,
    pub byteSndDropTotal: u64,
    pub byteRcvDropTotal: u64,
    pub byteRcvUndecryptTotal: u64,
    pub pktSent: i64,
    pub pktRecv: i64,
    pub pktSndLoss: i32,
    pub pktRcvLoss: i32,
    pub pktRetrans: i32,
    pub pktRcvRetrans: i32,
    pub pktSentACK: i32,
    pub pktRecvACK: i32,
    pub pktSentNAK: i32,
    pub pktRecvNAK: i32,
    pub mbpsSendRate: f64,
    pub mbpsRecvRate: f64,
    pub usSndDuration: i64,
    pub pktReorderDistance: i32,
    pub pktRcvAvgBelatedTime: f64,
    pub pktRcvBelated: i64,
    pub pktSndDrop: i32,
    pub pktRcvDrop: i32,
    pub pktRcvUndecrypt: i32,
    pub byteSent: u64,
    pub byteRecv: u64,
    pub byteRcvLoss: u64,
    pub byteRetrans: u64,
    pub byteSndDrop: u64,
    pub byteRcvDrop: u64,
    pub byteRcvUndecrypt: u64,
    pub usPktSndPeriod: f64,
    pub pktFlowWindow: i32,
    pub pktCongestionWindow: i32,
    pub pktFlightSize: i32,
    pub msRTT: f64,
    pub mbpsBandwidth: f64,
    pub byteAvailSndBuf: i32,
    pub byteAvailRcvBuf: i32,
    pub mbpsMaxBW: f64,
    pub byteMSS: i32,
    pub pktSndBuf: i32,
    pub byteSndBuf: i32,
    pub msSndBuf: i32,
    pub msSndTsbPdDelay: i32,
    pub pktRcvBuf: i32,
    pub byteRcvBuf: i32,
    pub msRcvBuf: i32,
    pub msRcvTsbPdDelay: i32,
    pub pktSndFilterExtraTotal: i32,
    pub pktRcvFilterExtraTotal: i32,
    pub pktRcvFilterSupplyTotal: i32,
    pub pktRcvFilterLossTotal: i32,
    pub pktSndFilterExtra: i32,
    pub pktRcvFilterExtra: i32,
    pub pktRcvFilterSupply: i32,
    pub pktRcvFilterLoss: i32,
    pub pktReorderTolerance: i32,
    pub pktSentUniqueTotal: i64,
    pub pktRecvUniqueTotal: i64,
    pub byteSentUniqueTotal: u64,
    pub byteRecvUniqueTotal: u64,
    pub pktSentUnique: i64,
    pub pktRecvUnique: i64,
    pub byteSentUnique: u64,
    pub byteRecvUnique: u64,
}
