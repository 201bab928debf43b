#!/usr/bin/env python3
"""Judge of a CMAF track file (header + segments, concatenated) by pymp4,
an MP4 box parser from PyPI independent of fieldcast's mp4-atom. Prints one
JSON document: the header's brands and btrt, and per segment its styp
brands, mfhd sequence, tfdt, summed trun durations, sample count and
whether its first sample is a sync sample. It judges nothing itself."""
import io
import json
import struct
import sys

from pymp4.parser import Box
from pymp4.util import BoxUtil

from sample_flags import first_sample_sync


def brands(box):
    return [b.decode() if isinstance(b, bytes) else str(b) for b in box.compatible_brands]


def mp4a_children(entry_bytes):
    """pymp4 stops at mp4a's fixed fields: walk its child boxes by hand."""
    kids, off = [], 8 + 28  # box header + AudioSampleEntry fields
    while off + 8 <= len(entry_bytes):
        size, kind = struct.unpack(">I4s", entry_bytes[off:off + 8])
        if size < 8:
            break
        kids.append(kind.decode("latin-1"))
        off += size
    return kids


def main(path):
    data = open(path, "rb").read()
    stream = io.BytesIO(data)
    out = {"ftyp": None, "timescale": None, "btrt": [], "segments": []}
    pending = None
    while stream.tell() < len(data):
        start = stream.tell()
        box = Box.parse_stream(stream)
        kind = box.type.decode() if isinstance(box.type, bytes) else str(box.type)
        if kind == "ftyp":
            out["ftyp"] = {"major": box.major_brand.decode(), "brands": brands(box)}
        elif kind == "moov":
            out["timescale"] = next(BoxUtil.find(box, b"mdhd")).timescale
            for b in BoxUtil.find(box, b"stsd"):
                for e in b.entries:
                    fmt = e.format.decode() if isinstance(e.format, bytes) else str(e.format)
                    if fmt == "avc1":
                        for child in e.sample_info:
                            if child.type == b"btrt":
                                out["btrt"].append({"avg": child.avgBirate, "max": child.maxBitrate})
                    elif fmt == "mp4a":
                        raw = data[start:stream.tell()]
                        i = raw.find(b"mp4a") - 4
                        size = struct.unpack(">I", raw[i:i + 4])[0]
                        if "btrt" in mp4a_children(raw[i:i + size]):
                            j = raw.find(b"btrt", i)
                            _, mx, avg = struct.unpack(">III", raw[j + 4:j + 16])
                            out["btrt"].append({"avg": avg, "max": mx})
        elif kind == "styp":
            pending = {"brands": brands(box)}
        elif kind == "moof":
            mfhd = next(BoxUtil.find(box, b"mfhd"))
            tfdt = next(BoxUtil.find(box, b"tfdt"))
            trun = next(BoxUtil.find(box, b"trun"))
            seg = pending or {"brands": []}
            seg.update({
                "seq": mfhd.sequence_number,
                "tfdt": tfdt.baseMediaDecodeTime,
                "duration": sum(s.sample_duration for s in trun.sample_info),
                "samples": trun.sample_count,
                "first_sync": first_sample_sync(box) is True,
            })
            out["segments"].append(seg)
            pending = None
    json.dump(out, sys.stdout)


if __name__ == "__main__":
    main(sys.argv[1])
