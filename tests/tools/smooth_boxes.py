#!/usr/bin/env python3
"""Judge of a Smooth Streaming track stream (the body of one long POST, or
the whole boxes of it) by pymp4, an MP4 box parser from PyPI independent of
fieldcast's mp4-atom. Prints one JSON document: the ftyp, the Live Server
Manifest's tracks (parsed as XML), the header's length and byte digest, the
moov's timescale and its avcC's SPS and PPS (Annex B, hex) and, per fragment, its mfhd sequence, tfdt, summed trun
durations, sample count, first-sample sync flag and its tfxd box (time,
duration) if the traf holds one. A trailing box cut short is reported as
`truncated_bytes`. It judges nothing itself."""
import hashlib
import io
import json
import struct
import sys
import xml.etree.ElementTree as ET
from uuid import UUID

from pymp4.parser import Box
from pymp4.util import BoxUtil

from sample_flags import first_sample_sync

MANIFEST = UUID("a5d40b30-e814-11dd-ba2f-0800200c9a66")
TFXD = UUID("6d1d9b05-42d5-44e6-80e2-141daff757b2")


def kind_of(box):
    return box.type.decode() if isinstance(box.type, bytes) else str(box.type)


def manifest_tracks(data):
    """The SMIL of the manifest box (after its version and flags)."""
    root = ET.fromstring(data[4:].decode("utf-8"))
    tracks = []
    for el in root.iter():
        tag = el.tag.split("}")[-1]
        if tag not in ("video", "audio"):
            continue
        params = {p.get("name"): p.get("value") for p in el if p.tag.split("}")[-1] == "param"}
        tracks.append({"type": tag, "src": el.get("src"), "systemBitrate": el.get("systemBitrate"), "params": params})
    return tracks


def avcc_annex_b(moov_bytes):
    """The SPS and PPS of the moov's avcC (ISO/IEC 14496-15 5.3.3.1), by
    hand: Annex B (00000001 before each), upper-case hex; None without one."""
    i = moov_bytes.find(b"avcC")
    if i < 4:
        return None
    size = struct.unpack(">I", moov_bytes[i - 4:i])[0]
    body = moov_bytes[i + 4:i - 4 + size]
    out, off = b"", 5
    for count_mask in (0x1F, 0xFF):
        count = body[off] & count_mask
        off += 1
        for _ in range(count):
            n = struct.unpack(">H", body[off:off + 2])[0]
            out += b"\0\0\0\1" + body[off + 2:off + 2 + n]
            off += 2 + n
    return out.hex().upper()


def tfxd_of(traf):
    for child in traf.children:
        if kind_of(child) == "uuid" and child.extended_type == TFXD:
            d = child.data
            if d[0] == 1:
                t, dur = struct.unpack(">QQ", d[4:20])
            else:
                t, dur = struct.unpack(">II", d[4:12])
            return {"version": d[0], "time": t, "duration": dur}
    return None


def whole_boxes(data):
    """The length of the leading run of whole top-level boxes (fragments whole)."""
    off, last = 0, (0, None)
    while off + 8 <= len(data):
        size = struct.unpack(">I", data[off:off + 4])[0]
        if size < 8 or off + size > len(data):
            break
        last = (off, data[off + 4:off + 8])
        off += size
    # A moof whose mdat was cut off is no whole fragment.
    return last[0] if last[1] == b"moof" else off


def main(path):
    raw = open(path, "rb").read()
    whole = whole_boxes(raw)
    data = raw[:whole]
    stream = io.BytesIO(data)
    out = {"ftyp": None, "manifest": None, "timescale": None, "header_len": None, "header_sha1": None, "avcc": None,
           "top": [], "fragments": [], "truncated_bytes": len(raw) - whole}
    while stream.tell() < len(data):
        start = stream.tell()
        box = Box.parse_stream(stream)
        kind = kind_of(box)
        out["top"].append(kind)
        if kind == "ftyp":
            out["ftyp"] = {"major": box.major_brand.decode(),
                           "brands": [b.decode() if isinstance(b, bytes) else str(b) for b in box.compatible_brands]}
        elif kind == "uuid" and box.extended_type == MANIFEST:
            out["manifest"] = manifest_tracks(box.data)
        elif kind == "moov":
            out["timescale"] = next(BoxUtil.find(box, b"mdhd")).timescale
            out["avcc"] = avcc_annex_b(data[start:stream.tell()])
            out["header_len"] = stream.tell()
            out["header_sha1"] = hashlib.sha1(data[:stream.tell()]).hexdigest()
        elif kind == "moof":
            mfhd = next(BoxUtil.find(box, b"mfhd"))
            traf = next(BoxUtil.find(box, b"traf"))
            tfdt = next(BoxUtil.find(traf, b"tfdt"))
            trun = next(BoxUtil.find(traf, b"trun"))
            out["fragments"].append({
                "seq": mfhd.sequence_number,
                "tfdt": tfdt.baseMediaDecodeTime,
                "duration": sum(s.sample_duration for s in trun.sample_info),
                "samples": trun.sample_count,
                "first_sync": first_sample_sync(box) is True,
                "tfxd": tfxd_of(traf),
            })
    json.dump(out, sys.stdout)


if __name__ == "__main__":
    main(sys.argv[1])
