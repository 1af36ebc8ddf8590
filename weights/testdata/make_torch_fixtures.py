#!/usr/bin/env python3
"""Writes the PyTorch checkpoint fixtures of weights/testdata without PyTorch.

torch.save is plain Python over the standard pickle module: it pickles the state dict with a
persistent_id hook that replaces every storage by ('storage', torch.<Type>Storage, key,
location, numel), each tensor reduces to torch._utils._rebuild_tensor_v2(storage, offset,
size, stride, requires_grad, OrderedDict()), and the storages' raw little-endian bytes go to
the zip records <archive>/data/<key> (or, in the legacy format, after five pickles). This
script mirrors torch 1.13/2.x serialization.py (_save and _legacy_save) with stand-in torch
classes, so the pickles are byte-for-byte what CPython's pickler writes for a real state dict.

Run from weights/: python3 testdata/make_torch_fixtures.py
"""
import collections
import io
import json
import os
import pickle
import struct
import sys
import types
import zipfile

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "torch")

# --- stand-ins for the torch names a state dict pickle references -----------------------
torch = types.ModuleType("torch")
torch_utils = types.ModuleType("torch._utils")
torch._utils = torch_utils
sys.modules["torch"] = torch
sys.modules["torch._utils"] = torch_utils


def _stub(name):
    def f(*args):
        raise NotImplementedError(name)

    f.__module__ = "torch._utils"
    f.__name__ = f.__qualname__ = name
    setattr(torch_utils, name, f)
    return f


_rebuild_tensor_v2 = _stub("_rebuild_tensor_v2")
_rebuild_parameter = _stub("_rebuild_parameter")

# name -> (struct format, element size, dtype name used in expected.json)
STORAGES = {
    "FloatStorage": ("f", 4, "F32"),
    "DoubleStorage": ("d", 8, "F64"),
    "HalfStorage": ("e", 2, "F16"),
    "BFloat16Storage": (None, 2, "BF16"),
    "LongStorage": ("q", 8, "I64"),
    "IntStorage": ("i", 4, "I32"),
    "ByteStorage": ("B", 1, "U8"),
    "BoolStorage": ("?", 1, "BOOL"),
}
for _name in STORAGES:
    setattr(torch, _name, type(_name, (), {"__module__": "torch"}))


class Storage:
    def __init__(self, kind, values):
        self.kind = kind
        self.values = list(values)

    def raw(self):
        fmt, size, _ = STORAGES[self.kind]
        if fmt is None:  # bfloat16: the top half of a float32
            return b"".join(struct.pack("<f", v)[2:] for v in self.values)
        return struct.pack("<%d%s" % (len(self.values), fmt), *self.values)


class Tensor:
    def __init__(self, storage, offset, size, stride):
        self.storage, self.offset, self.size, self.stride = storage, offset, tuple(size), tuple(stride)

    def __reduce_ex__(self, proto):
        return (_rebuild_tensor_v2, (self.storage, self.offset, self.size, self.stride, False, collections.OrderedDict()))

    def values(self):
        out = []

        def walk(dim, pos):
            if dim == len(self.size):
                out.append(self.storage.values[pos])
                return
            for i in range(self.size[dim]):
                walk(dim + 1, pos + i * self.stride[dim])

        walk(0, self.offset)
        return out


class Parameter:
    def __init__(self, t):
        self.t = t

    def __reduce_ex__(self, proto):
        return (_rebuild_parameter, (self.t, True, collections.OrderedDict()))


def dense(kind, values, size):
    stride, s = [], 1
    for d in reversed(size):
        stride.insert(0, s)
        s *= d
    return Tensor(Storage(kind, values), 0, size, stride)


def state_dict():
    sd = collections.OrderedDict()
    emb = dense("FloatStorage", [0.5 * i for i in range(12)], (4, 3))
    sd["embed.weight"] = emb
    sd["lm_head.weight"] = Tensor(emb.storage, 0, (4, 3), (3, 1))  # tied: same storage
    sd["proj.weight"] = Tensor(Storage("FloatStorage", [1, 2, 3, 4, 5, 6]), 0, (3, 2), (1, 3))  # transposed view
    sd["proj.bias"] = Tensor(Storage("FloatStorage", [9, 9, 9, -1.5, 2.5]), 3, (2,), (1,))  # storage offset
    sd["norm.weight"] = dense("HalfStorage", [1.0, -0.5, 2.0], (3,))
    sd["half.bf16"] = dense("BFloat16Storage", [1.5, -2.0, 0.25, 3.0], (2, 2))
    sd["double"] = dense("DoubleStorage", [0.1, -0.2], (2,))
    sd["position_ids"] = dense("LongStorage", list(range(5)), (1, 5))
    sd["mask"] = dense("BoolStorage", [True, False, True], (3,))
    sd["bytes"] = dense("ByteStorage", [0, 7, 255], (3,))
    sd["ints"] = dense("IntStorage", [-3, 4], (2,))
    sd["scale"] = Tensor(Storage("FloatStorage", [0.125]), 0, (), ())  # 0-d
    sd["num_batches_tracked"] = Tensor(Storage("LongStorage", [42]), 0, (), ())
    sd["empty"] = Tensor(Storage("FloatStorage", []), 0, (0, 3), (3, 1))
    sd["param"] = Parameter(dense("FloatStorage", [7, 8], (2,)))
    sd._metadata = collections.OrderedDict([("", {"version": 1}), ("embed", {"version": 1})])
    return sd


def expected(sd):
    out = {}
    for k, v in sd.items():
        t = v.t if isinstance(v, Parameter) else v
        vals = [float(x) for x in t.values()]
        out[k] = {"dtype": STORAGES[t.storage.kind][2], "shape": list(t.size), "values": vals}
    return out


def pickle_state(obj, protocol):
    """The data.pkl of torch.save's zip format, and the storages by key."""
    ids, storages = {}, {}

    def persistent_id(o):
        if isinstance(o, Storage):
            key = ids.setdefault(id(o), str(len(ids)))
            storages[key] = o
            return ("storage", getattr(torch, o.kind), key, "cpu", len(o.values))
        return None

    buf = io.BytesIO()
    p = pickle.Pickler(buf, protocol=protocol)
    p.persistent_id = persistent_id
    p.dump(obj)
    return buf.getvalue(), storages


def write_zip(path, obj, protocol=2, compression=zipfile.ZIP_STORED, archive="archive", pkl=None):
    data, storages = pickle_state(obj, protocol)
    if pkl is not None:
        data = pkl
    with zipfile.ZipFile(path, "w") as z:
        # Fixed timestamps keep the files reproducible.
        put = lambda name, b, c=zipfile.ZIP_STORED: z.writestr(zipfile.ZipInfo(archive + "/" + name), b, compress_type=c)
        put("data.pkl", data)
        put("byteorder", b"little")
        for key in sorted(storages):
            put("data/" + key, storages[key].raw(), compression)
        put("version", b"3\n")


def write_legacy(path, obj, protocol=2):
    ids, storages = {}, {}

    def persistent_id(o):
        if isinstance(o, Storage):
            key = ids.setdefault(id(o), str(140000000 + 64 * len(ids)))  # torch uses str(storage._cdata)
            storages[key] = o
            return ("storage", getattr(torch, o.kind), key, "cpu", len(o.values), None)
        return None

    with open(path, "wb") as f:
        pickle.dump(0x1950A86A20F9469CFC6C, f, protocol=protocol)
        pickle.dump(1001, f, protocol=protocol)
        pickle.dump(dict(protocol_version=1001, little_endian=True, type_sizes=dict(short=2, int=4, long=4)), f, protocol=protocol)
        p = pickle.Pickler(f, protocol=protocol)
        p.persistent_id = persistent_id
        p.dump(obj)
        keys = sorted(storages)
        pickle.dump(keys, f, protocol=protocol)
        for k in keys:
            s = storages[k]
            f.write(struct.pack("<q", len(s.values)))
            f.write(s.raw())


class Evil:
    """What a malicious checkpoint puts among the tensors: a call of builtins.eval."""

    def __reduce__(self):
        return (eval, ("__import__('os').system('echo pwned')",))


def main():
    os.makedirs(OUT, exist_ok=True)
    sd = state_dict()
    write_zip(os.path.join(OUT, "state_p2.bin"), sd)
    write_zip(os.path.join(OUT, "state_p4.bin"), sd, protocol=4, archive="pytorch_model")
    write_zip(os.path.join(OUT, "state_deflate.bin"), sd, compression=zipfile.ZIP_DEFLATED)
    write_legacy(os.path.join(OUT, "state_legacy.bin"), sd)
    with open(os.path.join(OUT, "expected.json"), "w") as f:
        json.dump(expected(sd), f, indent=1, sort_keys=True)

    # A plain dict (not an OrderedDict) of one tensor.
    write_zip(os.path.join(OUT, "plain_dict.bin"), {"w": dense("FloatStorage", [1, 2], (2,))})

    # Refused: a GLOBAL os.system (hand-written, as exploit pickles are), a protocol-4
    # STACK_GLOBAL builtins.eval among tensors, a training checkpoint nesting its state dict.
    evil = b"\x80\x02cos\nsystem\nq\x00X\x0a\x00\x00\x00echo pwnedq\x01\x85q\x02Rq\x03."
    write_zip(os.path.join(OUT, "evil_os_system.bin"), {}, pkl=evil)
    bad = collections.OrderedDict(sd)
    bad["zz"] = Evil()
    write_zip(os.path.join(OUT, "evil_eval_p4.bin"), bad, protocol=4)
    write_legacy(os.path.join(OUT, "evil_legacy.bin"), bad)
    write_zip(os.path.join(OUT, "nested.bin"), {"epoch": 3, "state_dict": collections.OrderedDict(w=dense("FloatStorage", [1], (1,)))})

    # A sharded checkpoint with its index.
    shard_dir = os.path.join(OUT, "sharded")
    os.makedirs(shard_dir, exist_ok=True)
    a = collections.OrderedDict([("a.weight", dense("FloatStorage", [1, 2, 3, 4], (2, 2))), ("a.bias", dense("FloatStorage", [5, 6], (2,)))])
    b = collections.OrderedDict([("b.weight", dense("HalfStorage", [0.5, 1.5], (1, 2)))])
    write_zip(os.path.join(shard_dir, "pytorch_model-00001-of-00002.bin"), a)
    write_zip(os.path.join(shard_dir, "pytorch_model-00002-of-00002.bin"), b)
    index = {"metadata": {"total_size": 28}, "weight_map": {
        "a.weight": "pytorch_model-00001-of-00002.bin",
        "a.bias": "pytorch_model-00001-of-00002.bin",
        "b.weight": "pytorch_model-00002-of-00002.bin"}}
    with open(os.path.join(shard_dir, "pytorch_model.bin.index.json"), "w") as f:
        json.dump(index, f, indent=2, sort_keys=True)


if __name__ == "__main__":
    main()
