#!/usr/bin/env python3
"""A multi-caller SRT listener on libsrt itself (the reference SRT library,
the one ffmpeg and srt-live-transmit link), through ctypes: the receiver a
channel runs for a multi-rung SRT contribution, where every rung calls the
same port with its own stream id. ffmpeg's and srt-live-transmit's
listeners take one caller only.

Usage: srt_listener.py PORT DIR [PASSPHRASE]

Each accepted caller's stream is written to DIR/<streamid>-<n>.ts (n counts
that stream id's connections from 1). One line per event on stdout, with
the wall-clock time in seconds:
    listening <t>
    accepted <streamid> <n> <t>
    closed <streamid> <n> <t>
It judges nothing: ffprobe reads the files."""
import ctypes
import os
import re
import socket
import struct
import sys
import threading
import time

NAMES = ["libsrt-gnutls.so.1.5", "libsrt.so.1.5", "libsrt-openssl.so.1.5", "libsrt.so"]
SRTO_RCVSYN = 2
SRTO_PASSPHRASE = 26
SRTO_PBKEYLEN = 27
SRTO_STREAMID = 46


def load():
    for name in NAMES:
        try:
            return ctypes.CDLL(name)
        except OSError:
            pass
    sys.exit("libsrt 1.5 not found (" + ", ".join(NAMES) + ")")


lib = load()
lib.srt_getlasterror_str.restype = ctypes.c_char_p
lock = threading.Lock()


def say(*words):
    with lock:
        print(*words, f"{time.time():.6f}", flush=True)


def check(r, what):
    if r < 0:
        sys.exit(f"{what}: {lib.srt_getlasterror_str().decode()}")
    return r


def sockaddr(port):
    return struct.pack("=HH4s8x", socket.AF_INET, socket.htons(port), socket.inet_aton("127.0.0.1"))


def set_int(sock, opt, value):
    v = ctypes.c_int(value)
    check(lib.srt_setsockflag(sock, opt, ctypes.byref(v), 4), f"option {opt}")


def stream_id(sock):
    buf = ctypes.create_string_buffer(520)
    size = ctypes.c_int(len(buf))
    if lib.srt_getsockflag(sock, SRTO_STREAMID, buf, ctypes.byref(size)) < 0:
        return ""
    return buf.raw[: size.value].decode(errors="replace")


def receive(sock, out_dir, counts):
    sid = stream_id(sock)
    safe = re.sub(r"[^A-Za-z0-9_.-]", "_", sid) or "nostreamid"
    with lock:
        counts[safe] = counts.get(safe, 0) + 1
        n = counts[safe]
    say("accepted", safe, n)
    buf = ctypes.create_string_buffer(1500)
    with open(os.path.join(out_dir, f"{safe}-{n}.ts"), "wb") as f:
        while True:
            got = lib.srt_recvmsg(sock, buf, len(buf))
            if got <= 0:
                break
            f.write(buf.raw[:got])
            f.flush()
    lib.srt_close(sock)
    say("closed", safe, n)


def main():
    port, out_dir = int(sys.argv[1]), sys.argv[2]
    passphrase = sys.argv[3] if len(sys.argv) > 3 else None
    check(lib.srt_startup(), "startup")
    lib.srt_setloglevel(2)
    listener = check(lib.srt_create_socket(), "socket")
    set_int(listener, SRTO_RCVSYN, 1)
    if passphrase:
        p = passphrase.encode()
        check(lib.srt_setsockflag(listener, SRTO_PASSPHRASE, p, len(p)), "passphrase")
        set_int(listener, SRTO_PBKEYLEN, 16)
    addr = sockaddr(port)
    check(lib.srt_bind(listener, addr, len(addr)), "bind")
    check(lib.srt_listen(listener, 16), "listen")
    say("listening")
    counts = {}
    while True:
        peer = ctypes.create_string_buffer(128)
        size = ctypes.c_int(len(peer))
        sock = lib.srt_accept(listener, peer, ctypes.byref(size))
        if sock < 0:
            continue
        threading.Thread(target=receive, args=(sock, out_dir, counts), daemon=True).start()


if __name__ == "__main__":
    main()
