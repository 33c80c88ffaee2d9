"""Minimal safetensors reader/writer on numpy (Debian 12 has no python3-safetensors).

Format: 8-byte little-endian header length, JSON header {name: {dtype, shape, data_offsets}},
then the raw little-endian tensor bytes. BF16 has no numpy type: it is read by widening the
16 stored bits into the high half of a float32, and written by rounding float32 to nearest even.
"""
import json
import struct

import numpy as np

_NP = {"F64": np.float64, "F32": np.float32, "F16": np.float16, "I64": np.int64,
       "I32": np.int32, "U8": np.uint8, "BF16": np.uint16}


def bf16_to_f32(u16):
    return (u16.astype(np.uint32) << 16).view(np.float32)


def f32_to_bf16(x):
    u = np.ascontiguousarray(x, dtype=np.float32).view(np.uint32)
    rounding = 0x7FFF + ((u >> 16) & 1)
    return ((u + rounding) >> 16).astype(np.uint16)


def load(path):
    """Return {name: numpy array}; BF16 tensors come back as float32."""
    with open(path, "rb") as f:
        data = f.read()
    (n,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8:8 + n])
    base = 8 + n
    out = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        a, b = info["data_offsets"]
        arr = np.frombuffer(data[base + a:base + b], dtype=_NP[info["dtype"]])
        arr = arr.reshape(info["shape"])
        out[name] = bf16_to_f32(arr) if info["dtype"] == "BF16" else arr.copy()
    return out


def save(path, tensors, dtype="F32"):
    """Write {name: float array} with every tensor stored as dtype ("F32" or "BF16")."""
    header, blobs, offset = {}, [], 0
    for name in sorted(tensors):
        arr = np.asarray(tensors[name], dtype=np.float32)
        raw = (f32_to_bf16(arr) if dtype == "BF16" else arr).tobytes()
        header[name] = {"dtype": dtype, "shape": list(arr.shape),
                        "data_offsets": [offset, offset + len(raw)]}
        blobs.append(raw)
        offset += len(raw)
    header["__metadata__"] = {"format": "pt"}
    head = json.dumps(header, separators=(",", ":")).encode()
    head += b" " * (-len(head) % 8)  # keep the data 8-byte aligned, as the reference writer does
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(head)))
        f.write(head)
        for raw in blobs:
            f.write(raw)
