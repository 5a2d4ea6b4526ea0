#!/usr/bin/env python3
"""Checks, with PyTorch as the judge, the state_dict archives that test_torch_archives.c wrote
with npe_archive_save_state_dict: each OUTDIR/X.resaved.pth must load with torch.load (default
and weights_only=True; 2.x also with mmap=True) and hold exactly the tensors of FIXTUREDIR/X.

usage: check_saved.py FIXTUREDIR OUTDIR [--lbprune PATH]   (run with a Python that has torch)
(--lbprune is accepted for the build's test wiring; the checks here do not run it.)

Per tensor: same name, dtype, shape, stride and bytes (NaNs compare by bit pattern); tensors that
shared a storage in the fixture share one in the resaved file, and no others do. The container
is checked with Python's zipfile: CRCs right, one top folder, tensor records stored and their
data 64-byte aligned. Prints "N checked"; exits 1 with the differences otherwise.
"""
import argparse
import subprocess
import glob
import os
import struct
import sys
import warnings
import zipfile
import zlib

import torch
from torch import nn

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from gen_fixtures import TORCH2, flatten, load, storage_info, tensor_array  # noqa: E402

warnings.filterwarnings("ignore", category=FutureWarning)
warnings.filterwarnings("ignore", category=UserWarning)


def read_ref(path):
    """Tensors of an X.ref/X.ref.bin pair: {name: (dtype, shape, stride, group, bytes)}."""
    with open(path) as f:
        lines = f.read().split("\n")
    kind = lines[0].split()[2]
    n = int(lines[0].split()[4])
    with open(path + ".bin", "rb") as f:
        blob = f.read()
    out = {}
    for line in lines[1:1 + n]:
        fl = line.split("\t")
        csv = (lambda s: tuple(int(x) for x in s.split(",")) if s else ())
        off, nb = int(fl[10]), int(fl[11])
        data = blob[off:off + nb] if off >= 0 else None
        if data is not None and nb > 64 << 20:
            data = ("crc32", zlib.crc32(data), nb)
        if fl[13] == "1":  # part of the model's state_dict()
            out[fl[0]] = (fl[1], csv(fl[3]), csv(fl[4]), int(fl[7]), data)
    return kind, out


def original_tensors(fixture, kind):
    """({name: (dtype, shape, stride, group, bytes)}, _metadata of a state_dict) from torch's own
    reading of the fixture, or (None, None) when the fixture's classes cannot be imported here
    (torchvision absent)."""
    try:
        if kind == "torchscript":
            obj = torch.jit.load(fixture, map_location="cpu")
        else:
            obj = load(fixture)
    except (ModuleNotFoundError, AttributeError) as e:
        print(f"note: {os.path.basename(fixture)}: torch cannot rebuild it here ({e}); "
              "comparing with its .ref instead")
        return None, None
    meta = getattr(obj, "_metadata", None) if kind == "state_dict" else None
    return describe(flatten(obj)), meta


def digest(t):
    """The bytes of t, or for huge tensors (NPE_BIG_TESTS) their crc32 and length, so that two
    4 GB archives need not be held as bytes at once."""
    arr = tensor_array(t)
    if arr.nbytes <= 64 << 20:
        return arr.tobytes()
    return ("crc32", zlib.crc32(arr.reshape(-1).view("uint8")), arr.nbytes)


def describe(named):
    groups = {}
    out = {}
    for i, (name, t, _) in enumerate(named):
        ptr, numel = storage_info(t)
        g = groups.setdefault(ptr, i) if ptr != 0 and numel > 0 else i
        out[name] = (str(t.dtype).replace("torch.", ""), tuple(t.shape), tuple(t.stride()), g,
                     digest(t))
    return out


def partition(d):
    """The storage-sharing partition as a set of frozensets of names."""
    by = {}
    for name, v in d.items():
        by.setdefault(v[3], set()).add(name)
    return {frozenset(s) for s in by.values()}


def compare(what, ref, got, errs):
    if set(ref) != set(got):
        miss = sorted(set(ref) - set(got))[:5]
        extra = sorted(set(got) - set(ref))[:5]
        errs.append(f"{what}: tensor names differ: missing {miss}, unexpected {extra}")
        return
    for name, (dt, shape, stride, _, data) in ref.items():
        gdt, gshape, gstride, _, gdata = got[name]
        if (dt, shape) != (gdt, gshape):
            errs.append(f"{what}: {name}: expected {dt}{list(shape)}, found {gdt}{list(gshape)}")
        elif stride != gstride:
            errs.append(f"{what}: {name}: expected stride {stride}, found {gstride}")
        elif data is not None and data != gdata:
            errs.append(f"{what}: {name}: bytes differ")
    pr, pg = partition(ref), partition(got)
    if pr != pg:
        lost = [sorted(s) for s in pr - pg][:3]
        errs.append(f"{what}: storage sharing differs: fixture groups {lost} not found as such")


def check_container(path, errs):
    with open(path, "rb") as f:
        raw = f.read()
    if raw[:4] != b"PK\x03\x04":
        errs.append(f"{path}: does not start with a local file header")
        return
    with zipfile.ZipFile(path) as z:
        bad = z.testzip()
        if bad is not None:
            errs.append(f"{path}: record {bad}: CRC or data wrong")
        tops = {i.filename.split("/")[0] for i in z.infolist()}
        if len(tops) != 1 or any("/" not in i.filename for i in z.infolist()):
            errs.append(f"{path}: records not under one top folder: {sorted(tops)}")
        names = {i.filename.split("/", 1)[-1] for i in z.infolist()}
        for need in ("data.pkl", "version"):
            if need not in names and ".data/" + need not in names:
                errs.append(f"{path}: no {need} record")
        for i in z.infolist():
            rel = i.filename.split("/", 1)[-1]
            if not rel.startswith("data/"):
                continue
            if i.compress_type != zipfile.ZIP_STORED:
                errs.append(f"{path}: {i.filename} is compressed; tensor data must be stored")
            nlen, elen = struct.unpack("<HH", raw[i.header_offset + 26:i.header_offset + 30])
            off = i.header_offset + 30 + nlen + elen
            if off % 64:
                errs.append(f"{path}: {i.filename} data at offset {off}, not 64-byte aligned")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("fixdir")
    ap.add_argument("outdir")
    ap.add_argument("--lbprune", help="first write OUTDIR/<fixture>.resaved.pth for every fixture "
                    "with 'lbprune state-dict' (else check what is already in OUTDIR)")
    args = ap.parse_args()
    fixdir, outdir = args.fixdir, args.outdir
    errs = []
    if args.lbprune:
        os.makedirs(outdir, exist_ok=True)
        for ref in sorted(glob.glob(os.path.join(fixdir, "*.ref"))):
            fixture = ref[:-len(".ref")]
            out = os.path.join(outdir, os.path.basename(fixture) + ".resaved.pth")
            r = subprocess.run([args.lbprune, "state-dict", fixture, out], capture_output=True,
                               text=True)
            if r.returncode != 0:
                errs.append(f"lbprune state-dict {fixture} failed: {r.stderr.strip()}")
    saved = sorted(glob.glob(os.path.join(outdir, "*.resaved.pth")))
    checked = 0
    for p in saved:
        base = os.path.basename(p)[:-len(".resaved.pth")]
        fixture = os.path.join(fixdir, base)
        if not os.path.exists(fixture + ".ref"):
            errs.append(f"{p}: no fixture {fixture}.ref to compare with")
            continue
        kind, ref = read_ref(fixture + ".ref")
        orig, meta = original_tensors(fixture, kind)
        if orig is None:
            orig = ref
        check_container(p, errs)
        modes = [("default", {}), ("weights_only=True", {"weights_only": True})]
        if TORCH2:
            modes.append(("mmap=True", {"weights_only": True, "mmap": True}))
        for label, kw in modes:
            try:
                obj = torch.load(p, map_location="cpu", **kw)
            except Exception as e:  # report every file, not just the first
                errs.append(f"{p}: torch.load({label}) failed: {type(e).__name__}: {e}")
                continue
            if not isinstance(obj, dict) or not all(isinstance(v, torch.Tensor)
                                                    for v in obj.values()):
                errs.append(f"{p}: torch.load({label}) gave {type(obj).__name__}, "
                            "not a dict of tensors")
                continue
            if meta is not None and getattr(obj, "_metadata", None) != meta:
                errs.append(f"{p}: [{label}] _metadata (module versions load_state_dict reads) "
                            "differs from the fixture's")
            if any(isinstance(v, nn.Parameter) for v in obj.values()):
                errs.append(f"{p}: holds nn.Parameter values; a state_dict holds plain tensors")
            compare(f"{base}.resaved.pth [{label}]", orig,
                    describe([(k, v, False) for k, v in obj.items()]), errs)
        checked += 1
    for e in errs[:50]:
        print("FAIL:", e)
    if len(errs) > 50:
        print(f"... and {len(errs) - 50} more")
    if not saved:
        print(f"check_saved: no *.resaved.pth in {outdir}")
        sys.exit(1)
    print(f"check_saved: torch {torch.__version__}: {checked} checked, {len(errs)} problems")
    sys.exit(1 if errs else 0)


if __name__ == "__main__":
    main()
