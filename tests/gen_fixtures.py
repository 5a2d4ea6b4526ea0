#!/usr/bin/env python3
"""Writes PyTorch archives with torch itself, and for each archive X a reference X.ref (text
index) + X.ref.bin (tensor bytes) that tests/test_torch_archives.c compares our reader against.

usage: gen_fixtures.py OUTDIR [--tag NAME] [--stamp FILE]   (run with a Python that has torch)
--tag prefixes every file name (default torch<major><minor>); --stamp is touched on success.

The reference is what torch.load gives back for the archive just written, not what was handed
to torch.save, so the oracle is PyTorch's reader. Reference format (tab-separated fields):

  npe-ref 1 <kind> <layout> <n_tensors> <param_count or ->
  name dtype ndim shape_csv stride_csv storage_offset storage_numel share_group is_parameter
       requires_grad blob_offset nbytes crc32_hex in_state_dict   (one line per tensor)
  modules <n>
  path class attr=repr attr=repr ...                      (one line per module; path "" = root)
  records <n>
  name size compressed_size data_offset crc32_hex deflated (one line per zip record)

share_group is the index (in this list) of the first tensor with the same storage, so tensors
that share a storage in PyTorch have equal groups. blob_offset is -1 when the bytes are not in
X.ref.bin (huge tensors of NPE_BIG_TESTS); the crc32 of the contiguous bytes is then checked.
in_state_dict is 0 for tensors of the pickled model that model.state_dict() leaves out
(non-persistent buffers): the archive lists them, a state_dict written from it must not.
param_count is "-" where no rule applies (loose tensors). Module attributes are the plain
public entries of each module's __dict__ except `training`.
Environment: NPE_BIG_TESTS=1 adds an archive over 4 GiB, whose last records lie past 4 GiB
(about 1 minute to write; 4.5 GB of disk here plus as much for the resaved copy, ~6 GB of RAM).
"""
import argparse
import os
import struct
import sys
import time
import zipfile
import zlib

import torch
from torch import nn

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import fixture_models as fm  # noqa: E402

try:
    from torchvision import models as tvm
except Exception:  # torch 2.x environment without torchvision: our own models stand in
    tvm = None

TORCH2 = int(torch.__version__.split(".")[0]) >= 2


def load(path):
    """torch.load of a trusted fixture we just wrote (full models need weights_only=False)."""
    if TORCH2:
        return torch.load(path, map_location="cpu", weights_only=False)
    return torch.load(path, map_location="cpu")


# ---- zip writing shared with gen_bad_files.py -----------------------------------------------

def build_zip(records, zip64=False, align=64, comment=b"", z64_end=True):
    """Return the bytes of a zip archive laid out like PyTorch's writer (stored records with data
    aligned through an 0x4246 "FB" extra field, ZIP64 end records). records: dicts with 'name'
    and 'data', optionally 'method' (0 stored, 8 deflate), and overrides used to make broken
    files: 'crc', 'size', 'csize' (declared values), 'hdr_off' (central directory's pointer to
    the local header), 'payload' (raw bytes written instead of the encoded data).
    zip64=True writes ZIP64 extra fields in every local and central header with the 32-bit
    fields set to 0xFFFFFFFF, and forces the 32-bit end record fields to their ZIP64 markers."""
    out = bytearray()
    central = []
    for r in records:
        name = r["name"].encode("utf-8")
        data = r["data"]
        method = r.get("method", 0)
        if "payload" in r:
            payload = r["payload"]
        elif method == 8:
            c = zlib.compressobj(9, zlib.DEFLATED, -15)
            payload = c.compress(data) + c.flush()
        else:
            payload = data
        crc = r.get("crc", zlib.crc32(data) & 0xFFFFFFFF)
        usize = r.get("size", len(data))
        csize = r.get("csize", len(payload))
        off = len(out)
        extra = b""
        if zip64:
            extra += struct.pack("<HHQQ", 1, 16, usize, csize)
        if align and method == 0:
            base = off + 30 + len(name) + len(extra) + 4
            pad = (-base) % align
            extra += struct.pack("<HH", 0x4246, pad) + b"Z" * pad
        need = 45 if zip64 else 20
        flags = 0x800 if any(ch >= 0x80 for ch in name) else 0
        out += struct.pack("<I5H3I2H", 0x04034B50, need, flags, method, 0, 0x21, crc,
                           0xFFFFFFFF if zip64 else csize, 0xFFFFFFFF if zip64 else usize,
                           len(name), len(extra))
        out += name + extra + payload
        hdr_off = r.get("hdr_off", off)
        cextra = struct.pack("<HHQQQ", 1, 24, usize, csize, hdr_off) if zip64 else b""
        central.append(struct.pack("<I6H3I5H2I", 0x02014B50, need, need, flags, method, 0, 0x21,
                                   crc, 0xFFFFFFFF if zip64 else csize,
                                   0xFFFFFFFF if zip64 else usize, len(name), len(cextra), 0, 0,
                                   0, 0, 0xFFFFFFFF if zip64 else hdr_off) + name + cextra)
    cd_off = len(out)
    for c in central:
        out += c
    cd_size = len(out) - cd_off
    n = len(central)
    if z64_end or zip64:
        z64_off = len(out)
        out += struct.pack("<IQ2H2I4Q", 0x06064B50, 44, 45, 45, 0, 0, n, n, cd_size, cd_off)
        out += struct.pack("<2IQI", 0x07064B50, 0, z64_off, 1)
    if zip64:
        out += struct.pack("<I4H2IH", 0x06054B50, 0, 0, 0xFFFF, 0xFFFF, 0xFFFFFFFF, 0xFFFFFFFF,
                           len(comment))
    else:
        out += struct.pack("<I4H2IH", 0x06054B50, 0, 0, n, n, cd_size, cd_off, len(comment))
    out += comment
    return bytes(out)


def zip_records(path):
    """(name, data) of every record of a zip file, in order."""
    with zipfile.ZipFile(path) as z:
        return [(i.filename, z.read(i.filename)) for i in z.infolist()]


def record_rows(path):
    """Rows for the 'records' section: what Python's zipfile (an independent reader) sees."""
    rows = []
    with open(path, "rb") as f, zipfile.ZipFile(path) as z:
        for i in z.infolist():
            f.seek(i.header_offset)
            lh = f.read(30)
            if lh[:4] != b"PK\x03\x04":
                raise SystemExit(f"{path}: no local header at {i.header_offset} for {i.filename}")
            nlen, elen = struct.unpack("<HH", lh[26:30])
            data_off = i.header_offset + 30 + nlen + elen
            rows.append((i.filename, i.file_size, i.compress_size, data_off, i.CRC,
                         int(i.compress_type == zipfile.ZIP_DEFLATED)))
    return rows


# ---- reference files ------------------------------------------------------------------------

def dtype_name(t):
    return str(t.dtype).replace("torch.", "")


def tensor_array(t):
    """The contiguous row-major elements of t as a numpy array (bool as uint8, bfloat16 as
    int16: numpy has no bfloat16); no copy when t is already contiguous."""
    t = t.detach().cpu().contiguous()
    if t.dtype == torch.bool:
        t = t.view(torch.uint8)
    elif t.dtype == torch.bfloat16:
        t = t.view(torch.int16)
    return t.numpy()


def tensor_bytes(t):
    return tensor_array(t).tobytes()


def storage_info(t):
    """(data_ptr, numel in elements of t's dtype) of the storage under t."""
    if hasattr(t, "untyped_storage"):
        s = t.untyped_storage()
        return s.data_ptr(), s.nbytes() // t.element_size()
    s = t.storage()
    return s.data_ptr(), s.size()


def plain(v):
    if v is None or isinstance(v, (bool, int, float, str)):
        return True
    if isinstance(v, (tuple, list)):
        return all(plain(x) for x in v)
    return False


def class_path(m):
    if isinstance(m, torch.jit.ScriptModule):
        return m._c._type().qualified_name()
    return type(m).__module__ + "." + type(m).__qualname__


def module_rows(model):
    rows = []
    for path, m in model.named_modules():
        # TorchScript modules pickle only `training` besides tensors and submodules; the
        # library leaves `training` out of the attributes it lists (it is no layer setting).
        attrs = [] if isinstance(m, torch.jit.ScriptModule) else \
            [(k, repr(v)) for k, v in m.__dict__.items()
             if not k.startswith("_") and k != "training" and plain(v)]
        rows.append((path, class_path(m), attrs))
    return rows


def flatten(obj, prefix=""):
    """(name, tensor, is_parameter) for every tensor reachable in a loaded object, named by its
    dotted path; modules contribute their parameters and buffers like state_dict() does."""
    def join(k):
        return f"{prefix}.{k}" if prefix else str(k)
    if isinstance(obj, torch.Tensor):
        return [(prefix, obj, isinstance(obj, nn.Parameter))]
    out = []
    if isinstance(obj, torch.jit.ScriptModule):
        # TorchScript's data.pkl stores parameters as plain tensors (code/ declares which are
        # parameters); npe_tensor_info.is_parameter means "pickled as nn.Parameter".
        return [(join(n), t, False) for n, t in obj.state_dict(keep_vars=True).items()]
    if isinstance(obj, nn.Module):
        # keep_vars keeps the Parameter objects (a tied one appears under each of its names)
        for n, t in obj.state_dict(keep_vars=True).items():
            out.append((join(n), t, isinstance(t, nn.Parameter)))
    elif isinstance(obj, dict):
        for k, v in obj.items():
            out += flatten(v, join(k))
    elif isinstance(obj, (list, tuple)):
        for k, v in enumerate(obj):
            out += flatten(v, join(k))
    return out


def unsaved_tensors(obj):
    """Tensors pickled with a full model that its state_dict() leaves out: non-persistent
    buffers (registered with persistent=False, pickled in _buffers all the same)."""
    if not isinstance(obj, nn.Module) or isinstance(obj, torch.jit.ScriptModule):
        return []
    saved = set(obj.state_dict(keep_vars=True))
    return [(n, t, False) for n, t in obj.named_buffers() if n not in saved]


def write_ref(path, kind, layout, loaded, params, big=False):
    tensors = [(n, t, p, 1) for n, t, p in flatten(loaded)] + \
        [(n, t, p, 0) for n, t, p in unsaved_tensors(loaded)]
    names = [x[0] for x in tensors]
    if len(set(names)) != len(names):
        raise SystemExit(f"{path}: duplicate tensor names in fixture")
    modules = module_rows(loaded) if kind in ("full_model", "torchscript") else []
    records = record_rows(path) if layout == "zip" else []
    groups = {}
    lines = []
    boff = 0
    with open(path + ".ref.bin", "wb") as blob:
        for i, (name, t, is_param, in_sd) in enumerate(tensors):
            arr = tensor_array(t)
            ptr, snumel = storage_info(t)
            group = groups.setdefault(ptr, i) if ptr != 0 and snumel > 0 else i
            if big:
                off = -1
            else:
                off = boff
                blob.write(arr.tobytes())
                boff += arr.nbytes
            lines.append("\t".join([
                name, dtype_name(t), str(t.dim()), ",".join(map(str, t.shape)),
                ",".join(map(str, t.stride())), str(t.storage_offset()), str(snumel), str(group),
                str(int(is_param)), str(int(t.requires_grad)), str(off), str(arr.nbytes),
                "%08x" % (zlib.crc32(arr.reshape(-1).view("uint8")) & 0xFFFFFFFF),
                str(in_sd)]))
            del arr
    with open(path + ".ref", "w") as f:
        f.write(f"npe-ref 1 {kind} {layout} {len(tensors)} "
                f"{'-' if params is None else params}\n")
        for line in lines:
            f.write(line + "\n")
        f.write(f"modules {len(modules)}\n")
        for p, c, attrs in modules:
            f.write("\t".join([p, c] + [f"{k}={v}" for k, v in attrs]) + "\n")
        f.write(f"records {len(records)}\n")
        for r in records:
            f.write("%s\t%d\t%d\t%d\t%08x\t%d\n" % r)
    return len(tensors)


# ---- fixture contents -----------------------------------------------------------------------

def randomise(model, seed):
    """Random weights and BatchNorm statistics, so that no tensor is all ones or zeros."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, nn.modules.batchnorm._BatchNorm):
                m.weight.copy_(torch.rand(m.weight.shape, generator=g) + 0.5)
                m.bias.copy_(torch.randn(m.bias.shape, generator=g) * 0.1)
                m.running_mean.copy_(torch.randn(m.running_mean.shape, generator=g) * 0.2)
                m.running_var.copy_(torch.rand(m.running_var.shape, generator=g) + 0.5)
                m.num_batches_tracked.fill_(int(torch.randint(1, 10 ** 6, (1,), generator=g)))
    return model.eval()


def make_model(name, seed):
    torch.manual_seed(seed)
    ctor = {
        "resnet18": lambda: tvm.resnet18(),
        "mobilenet_v2": lambda: tvm.mobilenet_v2(),
        "squeezenet1_0": lambda: tvm.squeezenet1_0(),
        "shufflenet_v2_x1_0": lambda: tvm.shufflenet_v2_x1_0(),
        "miniresnet": lambda: fm.MiniResNet(),
        "smallcnn": lambda: fm.SmallCNN(),
        "tinynet": lambda: fm.TinyNet(),
        "tiednet": lambda: fm.TiedNet(),
    }[name]
    return randomise(ctor(), seed + 1000)


def nparams(model):
    return sum(p.numel() for p in model.parameters())


BN_STATS = ("running_mean", "running_var", "num_batches_tracked")


def sd_params(sd, model=None):
    """npe_archive_param_count's rule for files that do not say which tensors are parameters:
    distinct floating tensors except BatchNorm statistics, where entries that view the same
    elements (tied weights: one parameter under two names) count once. For models whose only
    buffers are BatchNorm statistics this is sum(p.numel() for p in model.parameters());
    checked here."""
    seen = set()
    n = 0
    for k, t in sd.items():
        view = (storage_info(t)[0], t.storage_offset(), tuple(t.shape), tuple(t.stride()))
        if t.is_floating_point() and not k.endswith(BN_STATS) and view not in seen:
            seen.add(view)
            n += t.numel()
    if model is not None and all(k.endswith(BN_STATS) for k, _ in model.named_buffers()) and \
            n != nparams(model):
        raise SystemExit(f"gen_fixtures: state-dict rule gives {n}, model has {nparams(model)}")
    return n


def dtypes_dict():
    torch.manual_seed(11)
    d = {
        "f32": torch.randn(3, 4),
        "f64": torch.randn(2, 3, dtype=torch.float64),
        "f16": torch.randn(5).half(),
        "bf16": torch.randn(2, 2, 3).bfloat16(),
        "i64": torch.randint(-2 ** 40, 2 ** 40, (7,), dtype=torch.int64),
        "i32": torch.randint(-2 ** 31, 2 ** 31 - 1, (3, 3), dtype=torch.int32),
        "i16": torch.randint(-30000, 30000, (4,), dtype=torch.int16),
        "i8": torch.randint(-128, 127, (2, 5), dtype=torch.int8),
        "u8": torch.randint(0, 255, (6,), dtype=torch.uint8),
        "bool": torch.rand(9) > 0.5,
        "scalar_f32": torch.tensor(3.5),
        "scalar_i64": torch.tensor(-42),
        "scalar_bool": torch.tensor(True),
        "empty": torch.empty(0),
        "empty_2x0x3": torch.empty(2, 0, 3),
        "empty_i64": torch.empty(0, 4, dtype=torch.int64),
        "rank8": torch.randn(1, 2, 1, 2, 1, 2, 1, 2),
    }
    d["f64"][0, 0] = float("nan")
    d["f32"][1, 1] = float("-inf")
    d["f16"][0] = -0.0
    return d


def views_dict():
    torch.manual_seed(12)
    base = torch.arange(24, dtype=torch.float32).reshape(6, 4) * 0.5 - 3
    ibase = torch.arange(30, dtype=torch.int64) * 7 - 100
    return {
        "share.base": base,
        "share.rows_from2": base[2:],
        "share.every_other_row": base[::2],
        "share.transposed": base.t(),
        "share.column1": base[:, 1],
        "share.flat_5_17": base.view(-1)[5:17],
        "ishare.base": ibase,
        "ishare.step3": ibase[1::3],
        "ishare.grid": ibase[6:].view(4, 6)[1:, ::2],
        "alone_transposed": torch.randn(3, 5).t(),
        "narrow_of_unsaved": torch.randn(10)[3:6],
        "channels_last": torch.randn(2, 3, 4, 5).contiguous(memory_format=torch.channels_last),
        "permuted": torch.randn(2, 3, 4).permute(2, 0, 1),
    }


def views_edge_dict():
    torch.manual_seed(13)
    return {
        "expanded": torch.randn(3).expand(4, 3),
        "expanded_scalar": torch.randn(1).expand(5),
        "expanded_mid": torch.randn(2, 1, 3).expand(2, 4, 3),
    }


def complex_dict():
    torch.manual_seed(14)
    return {
        "c64": torch.randn(3, 2, dtype=torch.complex64),
        "c128": torch.randn(4, dtype=torch.complex128),
    }


class Gen:
    def __init__(self, outdir, tag):
        self.outdir = outdir
        self.tag = tag
        self.count = 0
        self.tensors = 0
        self.bytes = 0

    def path(self, name):
        return os.path.join(self.outdir, f"{self.tag}_{name}")

    def done(self, path, kind, layout, params, big=False):
        """Reference of the archive at path, taken from torch.load of that file."""
        if kind == "torchscript":
            loaded = torch.jit.load(path, map_location="cpu")
        else:
            loaded = load(path)
        self.tensors += write_ref(path, kind, layout, loaded, params, big)
        self.count += 1
        self.bytes += os.path.getsize(path)
        return loaded

    def save(self, obj, name, kind, params=None, **kw):
        p = self.path(name)
        torch.save(obj, p, **kw)
        return self.done(p, kind, "legacy" if kw.get("_use_new_zipfile_serialization") is False
                         else "zip", params)


def same_tensors(a, b, what):
    fa, fb = flatten(a), flatten(b)
    if [n for n, _, _ in fa] != [n for n, _, _ in fb]:
        raise SystemExit(f"{what}: tensor names differ after rewriting")
    for (n, x, _), (_, y, _) in zip(fa, fb):
        if x.dtype != y.dtype or x.shape != y.shape or x.stride() != y.stride() or \
                tensor_bytes(x) != tensor_bytes(y):
            raise SystemExit(f"{what}: tensor {n} differs after rewriting")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("outdir")
    ap.add_argument("--tag", default="torch" + "".join(torch.__version__.split(".")[:2]))
    ap.add_argument("--stamp", help="file to touch once everything is written (for meson)")
    args = ap.parse_args()
    os.makedirs(args.outdir, exist_ok=True)
    t0 = time.time()
    g = Gen(args.outdir, args.tag)

    zoo = (["resnet18", "mobilenet_v2", "squeezenet1_0", "shufflenet_v2_x1_0"] if tvm else []) + \
        ["miniresnet", "smallcnn", "tinynet", "tiednet"]
    for i, name in enumerate(zoo):
        m = make_model(name, 100 + i)
        g.save(m.state_dict(), f"sd_{name}.pth", "state_dict", sd_params(m.state_dict(), m))

    full = "resnet18" if tvm else "miniresnet"
    for i, name in enumerate([full, "tinynet", "tiednet"] + (["miniresnet"] if tvm else [])):
        m = make_model(name, 200 + i)
        g.save(m, f"full_{name}.pth", "full_model", nparams(m))

    g.save(dtypes_dict(), "dtypes.pth", "state_dict")
    g.save(views_dict(), "views.pth", "state_dict")
    g.save(views_edge_dict(), "views_edge.pth", "state_dict")
    g.save(complex_dict(), "complex.pth", "state_dict")

    m = make_model("smallcnn", 300)
    g.save({"model": m.state_dict(), "epoch": 3, "lr": 0.1}, "checkpoint.pth", "object",
           sd_params(m.state_dict(), m))

    m = make_model("smallcnn", 301)
    torch.manual_seed(301)
    ts = torch.jit.trace(m, torch.randn(1, 3, 16, 16))
    p = g.path("ts_smallcnn.pt")
    torch.jit.save(ts, p)
    g.done(p, "torchscript", "zip", nparams(m))

    m = make_model("miniresnet", 302)
    torch.manual_seed(302)
    ts = torch.jit.trace(m, torch.randn(1, 3, 32, 32))
    p = g.path("ts_miniresnet.pt")
    torch.jit.save(ts, p)
    g.done(p, "torchscript", "zip", nparams(m))

    legacy = "squeezenet1_0" if tvm else "miniresnet"
    m = make_model(legacy, 400)
    g.save(m.state_dict(), f"legacy_sd_{legacy}.pth", "state_dict", sd_params(m.state_dict(), m),
           _use_new_zipfile_serialization=False)
    mixed = {"d." + k: v for k, v in dtypes_dict().items()}
    mixed.update({"v." + k: v for k, v in views_dict().items()})
    g.save(mixed, "legacy_mixed.pth", "state_dict", _use_new_zipfile_serialization=False)

    # ZIP64 per record: torch never writes it for small files, so rewrite torch's archives.
    src = g.path("views.pth")
    p = g.path("zip64_pyzipfile.pth")
    with zipfile.ZipFile(p, "w", zipfile.ZIP_STORED) as zo:
        for name, data in zip_records(src):
            zi = zipfile.ZipInfo(name, date_time=(1980, 1, 1, 0, 0, 0))
            with zo.open(zi, "w", force_zip64=True) as f:
                f.write(data)
    same_tensors(load(src), load(p), p)
    g.done(p, "state_dict", "zip", None)

    src = g.path("sd_tinynet.pth")
    p = g.path("zip64_full.pth")
    with open(p, "wb") as f:
        f.write(build_zip([{"name": n, "data": d} for n, d in zip_records(src)], zip64=True))
    same_tensors(load(src), load(p), p)
    g.done(p, "state_dict", "zip", sd_params(fm.TinyNet().state_dict()))

    if TORCH2:
        m = make_model("smallcnn", 500)
        g.save(m.state_dict(), "nobyteorder.pth", "state_dict", sd_params(m.state_dict(), m),
               _disable_byteorder_record=True)
        if hasattr(torch.serialization, "set_crc32_options"):
            torch.serialization.set_crc32_options(False)
            try:
                g.save(m.state_dict(), "nocrc.pth", "state_dict", sd_params(m.state_dict(), m))
            finally:
                torch.serialization.set_crc32_options(True)
        try:
            from torch.utils.serialization import config
            old = config.save.storage_alignment
            config.save.storage_alignment = 4096
            try:
                g.save(views_dict(), "align4096.pth", "state_dict")
            finally:
                config.save.storage_alignment = old
        except (ImportError, AttributeError):
            pass

    if os.environ.get("NPE_BIG_TESTS") == "1":
        # Five 900 MB storages: the last records start past 4 GiB, so torch writes per-entry
        # ZIP64 fields itself. The reference keeps only CRCs of these tensors.
        # Memory: 4.5 GB while saving, then as much again for torch.load's copy.
        n = 900 * 2 ** 20
        big = {}
        for i in range(5):
            period = ((torch.arange(251, dtype=torch.int32) * (i + 3)) % 251).to(torch.uint8)
            big[f"t{i}"] = period.repeat(n // 251 + 1)[:n].clone()
        p = g.path("big_zip64.pth")
        torch.save(big, p)
        del big
        g.done(p, "state_dict", "zip", None, big=True)

    print(f"gen_fixtures: torch {torch.__version__}: {g.count} archives, {g.tensors} tensors, "
          f"{g.bytes / 2 ** 20:.1f} MiB in {args.outdir} ({time.time() - t0:.1f} s)")
    if args.stamp:
        with open(args.stamp, "w") as f:
            f.write(f"{g.count} archives\n")


if __name__ == "__main__":
    main()
