#!/usr/bin/env python3
"""Writes a corpus of hostile and broken PyTorch files for tests/test_bad_files.c, built from a
small valid torch.save archive: pickles that would run code, broken zip structure, bad storages,
zip bombs, path tricks, broken legacy files.

usage: gen_bad_files.py OUTDIR [--stamp FILE]     (run with a Python that has torch)

OUTDIR/bad.list: filename<TAB>expected error code name<TAB>substring of the message (matched
without regard to case). OUTDIR/good.list: the valid files the bad ones were derived from, which
must open (so a failure on a bad file is caused by its defect).
The malicious pickles are written byte by byte (opcodes) and are NEVER unpickled here; only the
hand-built valid archives are loaded, to prove that torch accepts them.
"""
import argparse
import io
import os
import pickletools
import struct
import sys
import zlib

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from gen_fixtures import build_zip, zip_records  # noqa: E402


# ---- pickle opcodes (protocol 2 unless noted) -----------------------------------------------

def glob(mod, name):
    return b"c" + mod.encode() + b"\n" + name.encode() + b"\n"


def pstr(s):
    b = s.encode()
    return b"X" + struct.pack("<I", len(b)) + b


def pint(i):
    if 0 <= i < 256:
        return b"K" + bytes([i])
    if 0 <= i < 65536:
        return b"M" + struct.pack("<H", i)
    if -2 ** 31 <= i < 2 ** 31:
        return b"J" + struct.pack("<i", i)
    raise ValueError(i)


def tup(*items):
    return b"(" + b"".join(items) + b"t"


def reduce(fn, *args):
    return fn + tup(*args) + b"R"


def tensor(key, numel, offset, shape, stride, storage=("torch", "FloatStorage")):
    """torch._utils._rebuild_tensor_v2 of a persistent storage, as torch.save writes it."""
    pid = tup(pstr("storage"), glob(*storage), pstr(key), pstr("cpu"), pint(numel)) + b"Q"
    return reduce(glob("torch._utils", "_rebuild_tensor_v2"), pid, pint(offset),
                  tup(*map(pint, shape)), tup(*map(pint, stride)), b"\x89",
                  glob("collections", "OrderedDict") + b")R")


W = ("conv.weight", "0", 6, 0, (2, 3), (3, 1))
B = ("conv.bias", "1", 3, 0, (3,), (1,))


def state_dict(entries=(W, B), extra=b"", proto=b"\x80\x02"):
    """An OrderedDict name -> tensor; extra is inserted as more key/value pairs."""
    items = b"".join(pstr(n) + tensor(k, numel, off, shape, stride)
                     for n, k, numel, off, shape, stride in entries)
    return proto + glob("collections", "OrderedDict") + b")R(" + items + extra + b"u."


def local_header(zipbytes, name):
    """Offset of the local file header of record name."""
    at = 0
    while True:
        at = zipbytes.index(b"PK\x03\x04", at)
        nlen = struct.unpack("<H", zipbytes[at + 26:at + 28])[0]
        if zipbytes[at + 30:at + 30 + nlen] == name.encode():
            return at
        at += 4


class Corpus:
    def __init__(self, outdir):
        self.outdir = outdir
        self.bad = []
        self.good = []

    def write(self, name, data):
        with open(os.path.join(self.outdir, name), "wb") as f:
            f.write(data)

    def add(self, name, data, code, needle, stage=None):
        """stage "data": the defect is in tensor data, which opening does not read (listing a
        large archive touches no tensor bytes); it must fail when the tensors are read."""
        self.write(name, data)
        self.bad.append((name, code, needle) + ((stage,) if stage else ()))

    def finish(self):
        with open(os.path.join(self.outdir, "bad.list"), "w") as f:
            for row in self.bad:
                f.write("\t".join(row) + "\n")
        with open(os.path.join(self.outdir, "good.list"), "w") as f:
            for name in self.good:
                f.write(name + "\n")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("outdir")
    ap.add_argument("--stamp", help="file to touch once everything is written (for meson)")
    args = ap.parse_args()
    outdir = args.outdir
    os.makedirs(outdir, exist_ok=True)
    c = Corpus(outdir)

    # The valid base, written by torch itself.
    w = torch.arange(6, dtype=torch.float32).reshape(2, 3) / 4 - 0.5
    b = torch.tensor([1.5, -2.0, 0.25])
    base_path = os.path.join(outdir, "good_torch.pth")
    torch.save({"conv.weight": w, "conv.bias": b}, base_path)
    c.good.append("good_torch.pth")
    recs = zip_records(base_path)
    top = recs[0][0].split("/")[0] + "/"
    raw = {n[len(top):]: d for n, d in recs}
    wbytes, bbytes = raw["data/0"], raw["data/1"]
    if wbytes != w.numpy().tobytes() or bbytes != b.numpy().tobytes():
        sys.exit("gen_bad_files: torch stored the base tensors under other keys than expected")

    def archive(pkl=None, records=None, drop=(), zip64=False, z64_end=True, **over):
        """Our valid layout of the base (top folder, data.pkl, data/0, data/1, version), with
        data.pkl replaced by pkl, extra records appended and per-record overrides
        over={'data/0': {...}} passed to build_zip."""
        rs = [{"name": top + "data.pkl", "data": pkl if pkl is not None else state_dict()},
              {"name": top + "data/0", "data": wbytes},
              {"name": top + "data/1", "data": bbytes},
              {"name": top + "version", "data": b"3\n"}]
        rs = [r for r in rs if r["name"][len(top):] not in drop]
        for r in rs:
            r.update(over.get(r["name"][len(top):], {}))
        rs += records or []
        return build_zip(rs, zip64=zip64, z64_end=z64_end)

    # The hand-built layout and pickle must be what torch reads as the same state_dict.
    good = archive()
    c.write("good_hand.pth", good)
    c.good.append("good_hand.pth")
    for kw in ({}, {"weights_only": True}):
        sd = torch.load(os.path.join(outdir, "good_hand.pth"), **kw)
        if list(sd) != ["conv.weight", "conv.bias"] or not torch.equal(sd["conv.weight"], w) \
                or not torch.equal(sd["conv.bias"], b):
            sys.exit("gen_bad_files: torch reads good_hand.pth differently from the base")
    # Storages saved from a GPU: the bytes are the same, read to the host.
    c.write("good_cuda_location.pth", archive(state_dict().replace(pstr("cpu"), pstr("cuda:0"))))
    c.good.append("good_cuda_location.pth")
    c.write("good_zip64.pth", archive(zip64=True))
    c.good.append("good_zip64.pth")
    c.write("good_no_zip64_end.pth", archive(z64_end=False))
    c.good.append("good_no_zip64_end.pth")
    for name in c.good[1:]:
        sd = torch.load(os.path.join(outdir, name), map_location="cpu", weights_only=True)
        if not torch.equal(sd["conv.weight"], w):
            sys.exit(f"gen_bad_files: torch reads {name} differently from the base")

    # ---- pickles that would run code (never unpickled) ----
    cmd = "touch /tmp/npe_pwned"
    evil = {
        "os_system": (reduce(glob("os", "system"), pstr(cmd)), "os.system"),
        "posix_system": (reduce(glob("posix", "system"), pstr(cmd)), "posix.system"),
        "builtins_eval": (reduce(glob("builtins", "eval"),
                                 pstr("__import__('os').system('%s')" % cmd)), "builtins.eval"),
        "builtin_eval_py2": (reduce(glob("__builtin__", "eval"), pstr("1+1")), "eval"),
        "subprocess_popen": (reduce(glob("subprocess", "Popen"),
                                    b"]" + b"(" + pstr("touch") + pstr("/tmp/npe_pwned") + b"e"),
                             "subprocess.Popen"),
        "builtins_getattr": (reduce(glob("builtins", "getattr"),
                                    glob("collections", "OrderedDict"), pstr("__init__")),
                             "builtins.getattr"),
        "numpy_scalar": (reduce(glob("numpy.core.multiarray", "scalar"),
                                reduce(glob("numpy", "dtype"), pstr("f8"), b"\x89\x88"),
                                b"C\x08" + struct.pack("<d", 0.5)),
                         "numpy.core.multiarray.scalar"),
        "numpy_reconstruct": (reduce(glob("numpy.core.multiarray", "_reconstruct"),
                                     glob("numpy", "ndarray"), tup(pint(0)), b"C\x01b"),
                              "numpy.core.multiarray._reconstruct"),
        # The same call through other opcodes: INST, OBJ, NEWOBJ, and protocol 4 STACK_GLOBAL.
        "inst_os_system": (b"(" + pstr(cmd) + b"ios\nsystem\n", "os.system"),
        "obj_os_system": (b"(" + glob("os", "system") + pstr(cmd) + b"o", "os.system"),
        "newobj_popen": (glob("subprocess", "Popen") + tup(pstr(cmd)) + b"\x81",
                         "subprocess.Popen"),
        "stack_global_os_system": (pstr("os") + pstr("system") + b"\x93" + tup(pstr(cmd)) + b"R",
                                   "os.system"),
        # A denied global is refused even where it is never called.
        "os_system_as_value": (glob("os", "system"), "os.system"),
        # An allowed value global must not be callable.
        "call_dtype_value": (reduce(glob("torch", "float32")), "torch.float32"),
    }
    for name, (payload, needle) in evil.items():
        proto = b"\x80\x04" if "stack_global" in name else b"\x80\x02"
        pkl = state_dict(extra=pstr("evil") + payload, proto=proto)
        # A well-formed pickle (pickletools.dis checks opcodes, marks and stack; it runs
        # nothing), so the global is the only thing to refuse.
        pickletools.dis(pkl, out=io.StringIO())
        c.add(f"evil_{name}.pth", archive(pkl), "EUNSAFE", needle)
    # A denied global as the storage type inside a persistent id.
    wsys = ("conv.weight", "0", 6, 0, (2, 3), (3, 1))
    pkl = state_dict(entries=()).replace(b"(u.", b"(" + pstr(wsys[0]) + tensor(
        *wsys[1:], storage=("os", "system")) + b"u.")
    c.add("evil_storage_type.pth", archive(pkl), "EUNSAFE", "os.system")
    # Evil global inside a TorchScript data.pkl (inserted as a first attribute of the root).
    m = torch.jit.trace(torch.nn.Linear(3, 2), torch.randn(1, 3))
    ts_path = os.path.join(outdir, "good_ts.pt")
    torch.jit.save(m, ts_path)
    c.good.append("good_ts.pt")
    ts = zip_records(ts_path)
    tpkl = dict(ts)[ts[0][0].split("/")[0] + "/data.pkl"]
    at = tpkl.index(b"}(") + 2
    tpkl = tpkl[:at] + pstr("evil") + evil["os_system"][0] + tpkl[at:]
    c.add("evil_torchscript.pt", build_zip(
        [{"name": n, "data": tpkl if n.endswith("/data.pkl") else d,
          "method": 8 if "/code/" in n else 0} for n, d in ts]), "EUNSAFE", "os.system")

    # ---- legacy (non-zip) files ----
    legacy_path = os.path.join(outdir, "good_legacy.pth")
    torch.save({"conv.weight": w, "conv.bias": b}, legacy_path,
               _use_new_zipfile_serialization=False)
    c.good.append("good_legacy.pth")
    with open(legacy_path, "rb") as f:
        leg = f.read()
    f = io.BytesIO(leg)
    ends = []
    for _ in range(5):  # magic, protocol version, sys info, the object, storage keys
        for _op in pickletools.genops(f):  # parses opcodes only; executes nothing
            pass
        ends.append(f.tell())
    body = leg[ends[4]:]  # per storage: int64 element count, then the bytes
    n0 = struct.unpack("<q", body[:8])[0]
    if n0 not in (3, 6):
        sys.exit("gen_bad_files: unexpected legacy storage layout")
    main_pkl = leg[ends[2]:ends[3]]
    c.add("legacy_bogus_numel.pth", leg[:ends[4]] + struct.pack("<q", 2 ** 62) + body[8:],
          "EFORMAT", "legacy_bogus_numel.pth")
    c.add("legacy_numel_mismatch.pth", leg[:ends[4]] + struct.pack("<q", n0 + 1) + body[8:],
          "EFORMAT", "legacy_numel_mismatch.pth")
    fake_keys = b"\x80\x02]q\x00(" + b"".join(pstr(str(1000 + i)) for i in range(1000)) + b"e."
    c.add("legacy_bogus_keys.pth", leg[:ends[3]] + fake_keys + body, "EFORMAT",
          "legacy_bogus_keys.pth")
    c.add("legacy_truncated.pth", leg[:len(leg) - 5], "EFORMAT", "legacy_truncated.pth")
    at = main_pkl.rindex(b"u.")
    c.add("legacy_os_system.pth", leg[:ends[2]] + main_pkl[:at] + pstr("evil") +
          evil["os_system"][0] + main_pkl[at:] + leg[ends[3]:], "EUNSAFE", "os.system")

    # ---- zip structure ----
    with open(base_path, "rb") as f:
        tz = f.read()
    eocd = tz.rindex(b"PK\x05\x06")
    cd_off = tz.index(b"PK\x01\x02")
    cuts = sorted({10, 40, len(tz) // 2, cd_off, cd_off + 30, eocd - 20, eocd, len(tz) - 1})
    for cut in cuts:
        name = f"trunc_{cut:05d}.pth"
        c.add(name, tz[:cut], "EFORMAT", name)
    c.add("empty.pth", b"", "EFORMAT", "empty.pth")
    c.add("not_a_model.pth", b"this is neither a zip archive nor a pickle\n" * 20,
          "EFORMAT", "not_a_model.pth")
    c.add("zip_magic_only.pth", b"PK\x03\x04" + b"\0" * 60, "EFORMAT", "zip_magic_only.pth")
    c.add("bad_crc_data.pth", archive(**{"data/0": {"crc": zlib.crc32(wbytes) ^ 0x5A5A}}),
          "EFORMAT", "crc", stage="data")
    c.add("bad_crc_pickle.pth", archive(**{"data.pkl": {"crc": zlib.crc32(state_dict()) ^ 1}}),
          "EFORMAT", "crc")
    c.add("header_offset_past_eof.pth", archive(**{"data/0": {"hdr_off": 1 << 20}}),
          "EFORMAT", "data/0")
    c.add("header_offset_past_eof_zip64.pth",
          archive(zip64=True, **{"data/0": {"hdr_off": 1 << 40}}), "EFORMAT", "data/0")
    c.add("header_offset_not_header.pth", archive(**{"data/1": {"hdr_off": 70}}),
          "EFORMAT", "data/1")
    # The central directory entry of data/1 points at data/0's local header (overlapping
    # records, as in zip bombs and in tricks that show two readers different contents).
    c.add("overlapping_records.pth",
          archive(**{"data/1": {"hdr_off": local_header(archive(), top + "data/0")}}),
          "EFORMAT", "data/1")
    c.add("size_past_eof.pth", archive(**{"data/1": {"size": 1 << 24, "csize": 1 << 24}}),
          "EFORMAT", "data/1")
    c.add("size_past_eof_zip64.pth",
          archive(zip64=True, **{"data/1": {"size": 1 << 50, "csize": 1 << 50}}),
          "EFORMAT", "data/1")
    # End records: with the 32-bit fields saturated, the ZIP64 ones are authoritative.
    g64 = archive(zip64=True)
    z64 = g64.rindex(b"PK\x06\x06")
    loc = g64.rindex(b"PK\x06\x07")
    c.add("cd_offset_past_eof.pth", g64[:z64 + 48] + struct.pack("<Q", 1 << 40) + g64[z64 + 56:],
          "EFORMAT", "cd_offset_past_eof.pth")
    c.add("entry_count_too_big.pth",
          g64[:z64 + 24] + struct.pack("<QQ", 1000, 1000) + g64[z64 + 40:],
          "EFORMAT", "entry_count_too_big.pth")
    c.add("zip64_locator_past_eof.pth",
          g64[:loc + 8] + struct.pack("<Q", 1 << 40) + g64[loc + 16:],
          "EFORMAT", "zip64_locator_past_eof.pth")
    g32 = archive(z64_end=False)
    e = g32.rindex(b"PK\x05\x06")
    c.add("cd_offset_past_eof_32.pth", g32[:e + 16] + struct.pack("<I", 0xFFFFFF00) + g32[e + 20:],
          "EFORMAT", "cd_offset_past_eof_32.pth")
    c.add("cd_size_wrong_32.pth", g32[:e + 12] + struct.pack("<I", 7) + g32[e + 16:],
          "EFORMAT", "cd_size_wrong_32.pth")
    c.add("data_pkl_missing.pth", archive(drop=("data.pkl",)), "EFORMAT", "data.pkl")
    c.add("storage_record_missing.pth", archive(drop=("data/1",)), "EFORMAT", "data/1")
    c.add("duplicate_record.pth", archive(records=[{"name": top + "data/0", "data": bbytes}]),
          "EFORMAT", "data/0")
    c.add("version_unsupported.pth", archive(**{"version": {"data": b"99\n"}}),
          "EUNSUPPORTED", "version")
    c.add("version_zero.pth", archive(**{"version": {"data": b"0\n"}}), "EUNSUPPORTED", "version")
    c.add("version_not_a_number.pth", archive(**{"version": {"data": b"abc\n"}}),
          "EFORMAT", "version")
    # torch.load refuses an archive without it ('Expected hasRecord("version")').
    c.add("version_missing.pth", archive(drop=("version",)), "EFORMAT", "version")
    c.add("name_with_nul.pth", archive(records=[{"name": top + "x\0y", "data": b"x"}]),
          "EFORMAT", "NUL")
    c.add("path_dotdot.pth", archive(records=[{"name": "../evil", "data": b"x"}]),
          "EFORMAT", "../evil")
    c.add("path_dotdot_inside.pth", archive(records=[{"name": top + "../evil", "data": b"x"}]),
          "EFORMAT", "../evil")
    c.add("path_absolute.pth", archive(records=[{"name": "/etc/passwd", "data": b"x"}]),
          "EFORMAT", "/etc/passwd")
    c.add("outside_top_folder.pth", archive(records=[{"name": "other/data/9", "data": b"x"}]),
          "EFORMAT", "other/data/9")
    c.add("record_at_root.pth", archive(records=[{"name": "stray", "data": b"x"}]),
          "EFORMAT", "stray")
    c.add("deflated_storage.pth", archive(**{"data/0": {"method": 8}}), "EUNSUPPORTED", "data/0")
    c.add("method_lzma.pth", archive(**{"data.pkl": {"method": 14, "payload": state_dict()}}),
          "EUNSUPPORTED", "data.pkl")

    # ---- zip bombs ----
    zeros = zlib.compressobj(9, zlib.DEFLATED, -15)
    bomb = zeros.compress(b"\0" * (64 << 20)) + zeros.flush()
    c.add("bomb_declared_huge.pth",
          archive(zip64=True, **{"data.pkl": {"method": 8, "payload": bomb, "size": 1 << 40}}),
          "ELIMIT", "data.pkl")
    c.add("bomb_inflates_past_size.pth",
          archive(**{"data.pkl": {"method": 8, "payload": bomb, "size": len(state_dict())}}),
          "EFORMAT", "data.pkl")
    short = zlib.compressobj(9, zlib.DEFLATED, -15)
    short = short.compress(state_dict()[:-10]) + short.flush()
    c.add("deflate_shorter_than_size.pth",
          archive(**{"data.pkl": {"method": 8, "payload": short}}), "EFORMAT", "data.pkl")
    c.add("deflate_garbage.pth",
          archive(**{"data.pkl": {"method": 8, "payload": b"\xff" * 64}}), "EFORMAT", "data.pkl")

    # ---- tensors and storages that do not fit ----
    def sd_with(weight):
        return archive(state_dict(entries=(weight, B)))
    c.add("tensor_more_than_storage.pth", sd_with(("conv.weight", "0", 6, 0, (10, 3), (3, 1))),
          "EFORMAT", "conv.weight")
    c.add("tensor_offset_past_storage.pth", sd_with(("conv.weight", "0", 6, 5, (2, 3), (3, 1))),
          "EFORMAT", "conv.weight")
    c.add("tensor_stride_past_storage.pth", sd_with(("conv.weight", "0", 6, 0, (2, 3), (4, 1))),
          "EFORMAT", "conv.weight")
    c.add("tensor_negative_size.pth",
          archive(state_dict(entries=(B,), extra=pstr("conv.weight") + tensor(
              "0", 6, 0, (2, 3), (3, 1)).replace(tup(pint(2), pint(3)),
                                                  tup(b"J" + struct.pack("<i", -2), pint(3))))),
          "EFORMAT", "conv.weight")
    c.add("tensor_huge_shape.pth",
          archive(state_dict(entries=(B,), extra=pstr("conv.weight") + tensor(
              "0", 6, 0, (2, 3), (3, 1)).replace(
                  tup(pint(2), pint(3)),
                  tup(b"\x8a\x08" + struct.pack("<q", 2 ** 62), b"\x8a\x08" +
                      struct.pack("<q", 2 ** 62))))),
          "ELIMIT", "conv.weight")  # the element count overflows 64 bits: a size limit
    c.add("storage_shorter_than_numel.pth", archive(**{"data/0": {"data": wbytes[:12]}}),
          "EFORMAT", "data/0")
    c.add("storage_longer_than_numel.pth", archive(**{"data/0": {"data": wbytes + b"\0" * 8}}),
          "EFORMAT", "data/0")
    c.add("storage_numel_huge.pth", sd_with(("conv.weight", "0", 2 ** 31 - 1, 0, (2, 3), (3, 1))),
          "EFORMAT", "data/0")
    rebuild = glob("torch._utils", "_rebuild_tensor_v2")
    hooks = glob("collections", "OrderedDict") + b")R"
    pid = tup(pstr("storage"), glob("torch", "FloatStorage"), pstr("0"), pstr("cpu"), pint(6))
    wname = pstr("conv.weight")

    def sd_extra(value):
        return archive(state_dict(entries=(B,), extra=wname + value))
    c.add("tensor_negative_offset.pth", sd_extra(reduce(
        rebuild, pid + b"Q", b"J" + struct.pack("<i", -1), tup(pint(6)), tup(pint(1)), b"\x89",
        hooks)), "EFORMAT", "conv.weight")
    c.add("tensor_negative_stride.pth", sd_extra(reduce(
        rebuild, pid + b"Q", pint(5), tup(pint(6)), tup(b"J" + struct.pack("<i", -1)), b"\x89",
        hooks)), "EFORMAT", "conv.weight")
    c.add("tensor_nine_dims.pth", sd_extra(reduce(
        rebuild, pid + b"Q", pint(0), tup(*[pint(1)] * 7 + [pint(2), pint(3)]),
        tup(*[pint(6)] * 7 + [pint(3), pint(1)]), b"\x89", hooks)),
        "EUNSUPPORTED", "conv.weight")
    c.add("tensor_sizes_strides_differ.pth", sd_extra(reduce(
        rebuild, pid + b"Q", pint(0), tup(pint(6)), tup(pint(1), pint(1)), b"\x89", hooks)),
        "EFORMAT", "conv.weight")
    c.add("tensor_size_not_tuple.pth", sd_extra(reduce(
        rebuild, pid + b"Q", pint(0), pstr("6"), tup(pint(1)), b"\x89", hooks)),
        "EFORMAT", "conv.weight")
    c.add("rebuild_too_few_args.pth", sd_extra(reduce(rebuild, pid + b"Q", pint(0))),
          "EFORMAT", "conv.weight")
    c.add("persid_not_tuple.pth", sd_extra(reduce(
        rebuild, pstr("0") + b"Q", pint(0), tup(pint(6)), tup(pint(1)), b"\x89", hooks)),
        "EFORMAT", "conv.weight")
    c.add("persid_too_short.pth", sd_extra(reduce(
        rebuild, tup(pstr("storage"), glob("torch", "FloatStorage"), pstr("0")) + b"Q", pint(0),
        tup(pint(6)), tup(pint(1)), b"\x89", hooks)), "EFORMAT", "conv.weight")
    c.add("storage_numel_negative.pth", sd_extra(reduce(
        rebuild, tup(pstr("storage"), glob("torch", "FloatStorage"), pstr("0"), pstr("cpu"),
                     b"J" + struct.pack("<i", -6)) + b"Q",
        pint(0), tup(pint(6)), tup(pint(1)), b"\x89", hooks)), "EFORMAT", "conv.weight")
    # One storage key declared twice with different types or sizes.
    c.add("storage_key_two_dtypes.pth", archive(state_dict(entries=(W, B), extra=pstr("alias") +
                                                           tensor("0", 3, 0, (3,), (1,), storage=(
                                                               "torch", "LongStorage")))),
          "EFORMAT", "storage '0'")
    c.add("storage_key_two_sizes.pth", archive(state_dict(entries=(W, B), extra=pstr("alias") +
                                                          tensor("0", 4, 0, (3,), (1,)))),
          "EFORMAT", "storage '0'")
    c.add("storage_type_unknown.pth",
          archive(state_dict(entries=(B,), extra=pstr("conv.weight") + tensor(
              "0", 6, 0, (2, 3), (3, 1), storage=("torch", "NoSuchStorage")))),
          "EUNSUPPORTED", "torch.NoSuchStorage")  # torch.*Storage names pass as inert values

    # ---- pickles that are malformed or exceed limits ----
    depth = 100000
    c.add("deep_nesting.pth", archive(state_dict(extra=pstr("deep") + b"]" * depth + b"a" *
                                                 (depth - 1))), "ELIMIT", "deep_nesting.pth")
    c.add("deep_marks.pth", archive(state_dict(extra=pstr("deep") + b"(" * depth + b")" +
                                               b"t" * depth)), "ELIMIT", "deep_marks.pth")
    c.add("pickle_no_stop.pth", archive(state_dict()[:-1]), "EFORMAT", "data.pkl")
    c.add("pickle_truncated.pth", archive(state_dict()[:60]), "EFORMAT", "data.pkl")
    c.add("pickle_bad_opcode.pth", archive(state_dict(extra=pstr("x") + b"\xfe")),
          "EFORMAT", "data.pkl")
    c.add("pickle_string_past_end.pth",
          archive(state_dict(extra=pstr("x") + b"X" + struct.pack("<I", 0x7FFFFFF0) + b"abc")),
          "EFORMAT", "data.pkl")
    c.add("pickle_binget_missing.pth", archive(state_dict(extra=pstr("x") + b"h\x63")),
          "EFORMAT", "data.pkl")
    # Python would try list['a'] = 1; item assignment on lists is not supported at all.
    c.add("pickle_setitems_on_list.pth", archive(state_dict(extra=b"")[:-2] + b"]" + b"(" +
                                                 pstr("a") + pint(1) + b"u."),
          "EUNSUPPORTED", "data.pkl")

    c.finish()
    print(f"gen_bad_files: {len(c.bad)} bad files, {len(c.good)} good controls in {outdir}")
    if args.stamp:
        with open(args.stamp, "w") as f:
            f.write(f"{len(c.bad)} bad files\n")


if __name__ == "__main__":
    main()
