//! A TCP proxy in front of a broker that can stall it: while stalled, new
//! connections are accepted but nothing is read from them or forwarded (a
//! broker too busy to answer a CONNECT); when the stall ends, each waiting
//! connection reaches the broker with what its client sent meanwhile, as a
//! stalled broker catching up would answer it. Existing connections can be
//! cut to force a reconnect.

use super::free_port;
use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

pub struct StallProxy {
    pub port: u16,
    stalled: Arc<AtomicBool>,
    open: Arc<Mutex<Vec<TcpStream>>>,
    stop: Arc<AtomicBool>,
}

impl StallProxy {
    /// Listens on a free loopback port, forwarding to `127.0.0.1:upstream`.
    pub fn start(upstream: u16, stalled: bool) -> StallProxy {
        let port = free_port();
        let listener = TcpListener::bind(("127.0.0.1", port)).expect("bind the proxy");
        listener.set_nonblocking(true).unwrap();
        let p = StallProxy {
            port,
            stalled: Arc::new(AtomicBool::new(stalled)),
            open: Arc::new(Mutex::new(Vec::new())),
            stop: Arc::new(AtomicBool::new(false)),
        };
        let (stalled, open, stop) = (p.stalled.clone(), p.open.clone(), p.stop.clone());
        std::thread::spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                match listener.accept() {
                    Ok((client, _)) => {
                        client.set_nonblocking(false).unwrap();
                        let (stalled, open, stop) = (stalled.clone(), open.clone(), stop.clone());
                        std::thread::spawn(move || serve(client, upstream, &stalled, &open, &stop));
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(10)),
                }
            }
        });
        p
    }

    pub fn url(&self) -> String {
        format!("mqtt://127.0.0.1:{}", self.port)
    }

    pub fn stall(&self, on: bool) {
        self.stalled.store(on, Ordering::Relaxed);
    }

    /// Closes every forwarded connection (both sides).
    pub fn cut(&self) {
        for s in self.open.lock().unwrap().drain(..) {
            let _ = s.shutdown(Shutdown::Both);
        }
    }
}

impl Drop for StallProxy {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        self.cut();
    }
}

fn serve(client: TcpStream, upstream: u16, stalled: &AtomicBool, open: &Mutex<Vec<TcpStream>>, stop: &AtomicBool) {
    while stalled.load(Ordering::Relaxed) {
        if stop.load(Ordering::Relaxed) {
            return;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    // What the client sent meanwhile; one that gave up and closed is gone
    // (forwarding its CONNECT late would take over its newer session).
    let mut early = Vec::new();
    client.set_nonblocking(true).unwrap();
    let mut buf = [0u8; 16 * 1024];
    loop {
        match (&client).read(&mut buf) {
            Ok(0) => return,
            Ok(n) => early.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => break,
            Err(_) => return,
        }
    }
    client.set_nonblocking(false).unwrap();
    let Ok(mut server) = TcpStream::connect(("127.0.0.1", upstream)) else { return };
    if server.write_all(&early).is_err() {
        return;
    }
    {
        let mut o = open.lock().unwrap();
        o.push(client.try_clone().unwrap());
        o.push(server.try_clone().unwrap());
    }
    let (c2, s2) = (client.try_clone().unwrap(), server.try_clone().unwrap());
    std::thread::spawn(move || pipe(c2, s2));
    pipe(server, client);
}

fn pipe(mut from: TcpStream, mut to: TcpStream) {
    let mut buf = [0u8; 16 * 1024];
    loop {
        match from.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => {
                if to.write_all(&buf[..n]).is_err() {
                    break;
                }
            }
        }
    }
    let _ = to.shutdown(Shutdown::Both);
    let _ = from.shutdown(Shutdown::Both);
}
