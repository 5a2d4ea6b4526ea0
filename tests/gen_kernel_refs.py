#!/usr/bin/python3
"""Write PyTorch reference outputs for the kernel tests (tests/test_kernels_ref.c).

Usage: /usr/bin/python3 tests/gen_kernel_refs.py OUTDIR   (needs torch and numpy)

For every case it saves the inputs and torch's output as float32 .npy files named <id>_<name>.npy
and adds one line to OUTDIR/cases.txt:  <op> <id> key=value key=value ...
Values are integers, floats (repr of a float32, so they parse back exactly) or comma-separated
integer lists (a shape; "-" for an empty one). The C test knows which keys and files each op has.
"""
import os
import sys

import numpy as np
import torch
import torch.nn.functional as F

torch.manual_seed(1234)
torch.set_num_threads(1)

OUT = None
LINES = []
COUNTS = {}


def f32(v):
    return repr(float(np.float32(v)))


def ilist(seq):
    seq = list(seq)
    return ",".join(str(int(v)) for v in seq) if seq else "-"


def emit(op, params, arrays):
    """Save arrays (name -> tensor) and add the case line; returns the id."""
    COUNTS[op] = COUNTS.get(op, 0) + 1
    cid = "%s_%02d" % (op, COUNTS[op])
    for name, t in arrays.items():
        a = t.detach().contiguous().numpy().astype(np.float32)
        np.save(os.path.join(OUT, "%s_%s.npy" % (cid, name)), a)
    fields = [op, cid] + ["%s=%s" % (k, v) for k, v in params.items()]
    LINES.append(" ".join(fields))
    return cid


def rnd(*shape, scale=1.0):
    return torch.randn(tuple(shape), dtype=torch.float32) * scale


def pair(v):
    return v if isinstance(v, tuple) else (v, v)


# ---- conv2d / conv_transpose2d ---------------------------------------------------------------
def conv(n, cin, h, w, cout, k, s=1, p=0, d=1, g=1, bias=True, transposed=False, op=0):
    kh, kw = pair(k)
    sh, sw = pair(s)
    ph, pw = pair(p)
    dh, dw = pair(d)
    oph, opw = pair(op)
    x = rnd(n, cin, h, w)
    if transposed:
        wt = rnd(cin, cout // g, kh, kw, scale=0.5)
    else:
        wt = rnd(cout, cin // g, kh, kw, scale=0.5)
    b = rnd(cout) if bias else None
    if transposed:
        y = F.conv_transpose2d(x, wt, b, stride=(sh, sw), padding=(ph, pw),
                               output_padding=(oph, opw), groups=g, dilation=(dh, dw))
    else:
        y = F.conv2d(x, wt, b, stride=(sh, sw), padding=(ph, pw), dilation=(dh, dw), groups=g)
    arrays = {"x": x, "w": wt, "y": y}
    if bias:
        arrays["b"] = b
    emit("conv2d", dict(n=n, cin=cin, h=h, w=w, cout=cout, kh=kh, kw=kw, sh=sh, sw=sw, ph=ph,
                        pw=pw, dh=dh, dw=dw, groups=g, transposed=int(transposed), oph=oph,
                        opw=opw, bias=int(bias)), arrays)


def gen_conv():
    conv(2, 3, 7, 9, 4, 3, p=1)
    conv(1, 3, 9, 8, 5, 3, s=2, p=1)
    conv(2, 2, 8, 11, 3, (3, 5), s=(2, 1), p=(0, 2))
    conv(1, 3, 11, 10, 2, 5, p=4, d=2)
    conv(2, 4, 6, 7, 6, 3, p=1, g=2)
    conv(1, 6, 9, 9, 6, 3, s=2, p=1, g=6)
    conv(2, 4, 7, 6, 8, 3, p=1, g=4, bias=False)
    conv(2, 5, 4, 6, 7, 1, bias=False)
    conv(1, 6, 7, 9, 4, 1, s=2)
    conv(1, 2, 3, 3, 3, 5, p=2)
    conv(1, 3, 9, 12, 2, 3, p=(1, 3), d=(1, 3))
    conv(1, 1, 16, 16, 1, 7, s=3, p=3)
    conv(3, 4, 5, 5, 4, (1, 3), s=(1, 2), p=(0, 1), g=2)
    conv(1, 8, 10, 10, 8, 5, s=1, p=4, d=2, g=8)
    conv(1, 16, 12, 12, 24, 3, s=1, p=1)
    # transposed
    conv(1, 4, 5, 6, 3, 3, s=2, p=1, transposed=True, op=1)
    conv(2, 3, 4, 4, 2, 4, s=2, p=1, transposed=True)
    conv(1, 4, 5, 5, 6, 3, s=2, p=1, g=2, transposed=True, op=1)
    conv(1, 3, 6, 5, 4, 3, s=1, p=2, d=2, transposed=True)
    conv(2, 4, 5, 4, 4, 3, s=2, p=1, g=4, transposed=True, op=(1, 0))
    conv(1, 2, 4, 5, 3, (3, 2), s=(3, 2), p=(1, 0), transposed=True, op=(2, 1), bias=False)
    conv(1, 5, 3, 4, 2, 1, transposed=True)
    conv(1, 2, 3, 3, 2, 3, s=2, d=3, transposed=True, op=2)


# ---- linear, channel_affine -----------------------------------------------------------------
def gen_linear():
    for m, k, n, bias in [(1, 5, 3, True), (4, 17, 9, True), (3, 64, 10, False), (7, 1, 1, True),
                          (2, 300, 5, True), (5, 8, 33, False)]:
        x, w = rnd(m, k), rnd(n, k, scale=0.2)
        b = rnd(n) if bias else None
        arrays = {"x": x, "w": w, "y": F.linear(x, w, b)}
        if bias:
            arrays["b"] = b
        emit("linear", dict(m=m, k=k, n=n, bias=int(bias)), arrays)


def gen_affine():
    for n, c, inner in [(2, 3, 20), (1, 16, 1), (3, 5, 7)]:
        x, sc, sh = rnd(n, c, inner), rnd(c), rnd(c)
        y = x * sc[None, :, None] + sh[None, :, None]
        emit("affine", dict(n=n, c=c, inner=inner), {"x": x, "scale": sc, "shift": sh, "y": y})


# ---- unary ----------------------------------------------------------------------------------
UNARY = [
    ("relu", 0, 0, torch.relu),
    ("hardtanh", 0, 6, lambda x: F.hardtanh(x, 0.0, 6.0)),
    ("hardtanh", -1, 1.5, lambda x: F.hardtanh(x, -1.0, 1.5)),
    ("leaky_relu", 0.01, 0, lambda x: F.leaky_relu(x, 0.01)),
    ("leaky_relu", 0.2, 0, lambda x: F.leaky_relu(x, 0.2)),
    ("silu", 0, 0, F.silu),
    ("sigmoid", 0, 0, torch.sigmoid),
    ("hardswish", 0, 0, F.hardswish),
    ("hardsigmoid", 0, 0, F.hardsigmoid),
    ("tanh", 0, 0, torch.tanh),
    ("gelu", 0, 0, F.gelu),
    ("elu", 1.0, 0, lambda x: F.elu(x, 1.0)),
    ("elu", 0.5, 0, lambda x: F.elu(x, 0.5)),
    ("mul_scalar", 2.5, -1.0, lambda x: x * 2.5 + (-1.0)),
    ("exp", 0, 0, torch.exp),
    ("sqrt", 0, 0, torch.sqrt),
    ("neg", 0, 0, torch.neg),
]


def gen_unary():
    # The breakpoints of the piecewise ops (-3, 0, 3, 6 ...) are included exactly.
    edges = torch.tensor([-3.0, 0.0, 3.0, 6.0, -1.0, 1.5, -6.0, 7.0, -0.0])
    for name, alpha, beta, fn in UNARY:
        x = torch.cat([rnd(131, scale=4.0), edges])
        if name == "sqrt":
            x = x.abs()
        emit("unary", dict(op=name, count=x.numel(), alpha=f32(alpha), beta=f32(beta)),
             {"x": x, "y": fn(x)})


# ---- binary ---------------------------------------------------------------------------------
def gen_binary():
    cases = [
        ("add", 1.0, (2, 3, 4, 5), (2, 3, 4, 5)),
        ("add", 1.0, (2, 3, 4, 5), (3, 1, 1)),
        ("add", 0.5, (2, 3, 4, 5), (5,)),
        ("sub", 2.0, (2, 3, 4, 5), (1, 3, 1, 1)),
        ("sub", 1.0, (3, 1), (2, 1, 4)),
        ("mul", 1.0, (1, 3, 1, 1), (2, 3, 4, 5)),
        ("mul", 1.0, (2, 1, 4), (1, 3, 1)),
        ("div", 1.0, (2, 3, 4, 5), (3, 1, 1)),
        ("max", 1.0, (4, 1, 5), (3, 1)),
        ("min", 1.0, (2, 3), ()),
        ("pow", 1.0, (2, 3, 4), (4,)),
        ("add", 1.0, (), ()),
        ("mul", 1.0, (7,), (7,)),
    ]
    for op, alpha, sa, sb in cases:
        a, b = rnd(*sa), rnd(*sb)
        if op == "div":
            b = b.sign() * (b.abs() + 0.5)  # keep the quotient bounded
        if op == "pow":
            a = a.abs() + 0.5  # a real result for any exponent
        if op == "add":
            y = torch.add(a, b, alpha=alpha)
        elif op == "sub":
            y = torch.sub(a, b, alpha=alpha)
        elif op == "mul":
            y = a * b
        elif op == "div":
            y = a / b
        elif op == "max":
            y = torch.maximum(a, b)
        elif op == "min":
            y = torch.minimum(a, b)
        else:
            y = torch.pow(a, b)
        emit("binary", dict(op=op, alpha=f32(alpha), ashape=ilist(sa), bshape=ilist(sb)),
             {"a": a, "b": b, "y": y})


# ---- copy_strided, cat ----------------------------------------------------------------------
def gen_copy():
    def case(base, view):
        storage = getattr(torch.Tensor, "untyped_storage", torch.Tensor.storage)
        assert storage(view).data_ptr() == storage(base).data_ptr()
        emit("copy", dict(shape=ilist(view.shape), strides=ilist(view.stride()),
                          offset=view.storage_offset()),
             {"x": base.reshape(-1), "y": view.contiguous()})

    x = rnd(2, 3, 4, 5)
    case(x, x.permute(0, 2, 3, 1))
    x = rnd(6, 7)
    case(x, x.t())
    x = rnd(2, 4, 5)
    case(x, x[:, 1:3, ::2])
    x = rnd(3, 1)
    case(x, x.expand(2, 3, 4))
    x = rnd(1, 8, 3, 3)
    case(x, x.view(1, 2, 2, 2, 3, 3).permute(0, 1, 4, 2, 5, 3))  # pixel_shuffle, r = 2
    x = rnd(4, 6, 5)
    case(x, x.chunk(3, dim=1)[2])
    x = rnd(10)
    case(x, x[3:9:2])


def gen_cat():
    for sa, sb, dim in [((2, 3, 4), (2, 5, 4), 1), ((2, 3), (4, 3), 0), ((2, 3, 2), (2, 3, 5), 2)]:
        a, b = rnd(*sa), rnd(*sb)
        emit("cat", dict(ashape=ilist(sa), bshape=ilist(sb), dim=dim),
             {"a": a, "b": b, "y": torch.cat([a, b], dim)})


# ---- pooling --------------------------------------------------------------------------------
def pool(kind, n, c, h, w, k, s, p=0, d=1, ceil=False, cip=True, div=None):
    kh, kw = pair(k)
    sh, sw = pair(s)
    ph, pw = pair(p)
    dh, dw = pair(d)
    x = rnd(n, c, h, w)
    if kind == "maxpool":
        y = F.max_pool2d(x, (kh, kw), (sh, sw), (ph, pw), (dh, dw), ceil_mode=ceil)
    else:
        y = F.avg_pool2d(x, (kh, kw), (sh, sw), (ph, pw), ceil_mode=ceil,
                         count_include_pad=cip, divisor_override=div)
    emit(kind, dict(n=n, c=c, h=h, w=w, kh=kh, kw=kw, sh=sh, sw=sw, ph=ph, pw=pw, dh=dh, dw=dw,
                    ceil=int(ceil), cip=int(cip), div=div or 0), {"x": x, "y": y})


def gen_pool():
    pool("maxpool", 2, 3, 9, 8, 3, 2, 1)
    pool("maxpool", 1, 2, 7, 7, 2, 2, ceil=True)
    pool("maxpool", 1, 2, 5, 5, 2, 2, 1, ceil=True)  # ceil's extra window would start in padding
    pool("maxpool", 1, 3, 10, 11, 3, 2, 1, d=2)
    pool("maxpool", 2, 2, 8, 7, (3, 2), (2, 1), (1, 0), ceil=True)
    pool("maxpool", 1, 2, 6, 6, 3, 1, 1)
    pool("maxpool", 1, 2, 9, 10, 3, (2, 3), 1, d=(2, 3), ceil=True)
    pool("maxpool", 1, 1, 4, 4, 4, 4)
    pool("avgpool", 2, 3, 9, 8, 3, 2, 1, cip=True)
    pool("avgpool", 2, 3, 9, 8, 3, 2, 1, cip=False)
    pool("avgpool", 1, 2, 6, 6, 3, 2, 1, ceil=True, cip=True)  # window clipped to in + pad
    pool("avgpool", 1, 2, 6, 6, 3, 2, 1, ceil=True, cip=False)
    pool("avgpool", 1, 2, 5, 5, 2, 2, 1, ceil=True, cip=True)
    pool("avgpool", 1, 2, 7, 7, 3, 2, 1, div=3)
    pool("avgpool", 1, 2, 7, 7, 2, 2, ceil=True)
    pool("avgpool", 2, 2, 8, 7, (3, 2), (2, 1), (1, 0), ceil=True, cip=False)
    pool("avgpool", 1, 4, 7, 7, 7, 1)
    pool("avgpool", 1, 2, 8, 9, (2, 4), (1, 3), (1, 2), ceil=True, cip=True, div=5)


def gen_adaptive():
    for (h, w), (oh, ow) in [((7, 7), (1, 1)), ((7, 9), (3, 4)), ((5, 5), (7, 7)),
                             ((10, 6), (4, 6)), ((6, 6), (2, 3)), ((13, 11), (5, 3))]:
        x = rnd(2, 3, h, w)
        p = dict(n=2, c=3, h=h, w=w, oh=oh, ow=ow)
        emit("adaptive_avg", p, {"x": x, "y": F.adaptive_avg_pool2d(x, (oh, ow))})
        emit("adaptive_max", p, {"x": x, "y": F.adaptive_max_pool2d(x, (oh, ow))})


# ---- upsampling -----------------------------------------------------------------------------
def upsample(mode, h, w, size=None, sf=None, ac=None):
    x = rnd(2, 3, h, w)
    if sf is not None:
        sf = pair(sf)
        y = F.interpolate(x, scale_factor=sf, mode=mode, align_corners=ac)
        # What a caller hands the kernel: 1/scale_factor, computed in double, as a float.
        sh, sw = 1.0 / sf[0], 1.0 / sf[1]
    else:
        y = F.interpolate(x, size=size, mode=mode, align_corners=ac)
        sh = sw = 0.0  # no scale factor: the kernel uses in/out
    op = "nearest" if mode == "nearest" else "bilinear"
    emit(op, dict(n=2, c=3, h=h, w=w, oh=y.shape[2], ow=y.shape[3], ac=int(bool(ac)),
                  sh=f32(sh), sw=f32(sw)), {"x": x, "y": y})


def gen_upsample():
    upsample("nearest", 4, 5, sf=2)
    upsample("nearest", 4, 5, sf=1.5)
    upsample("nearest", 3, 4, sf=(2, 3))
    upsample("nearest", 4, 5, size=(7, 11))
    upsample("nearest", 8, 5, size=(3, 2))
    upsample("nearest", 5, 5, sf=1.7)
    upsample("nearest", 6, 7, sf=0.5)
    # PyTorch 1.13 uses the given scale even when the output keeps or doubles the size; 2.x
    # copies / halves indices in those cases instead. The kernel follows 1.13 (the default oracle),
    # so these two edge cases are only checked against 1.x.
    if int(torch.__version__.split(".")[0]) < 2:
        upsample("nearest", 3, 3, sf=1.2)  # same size out, yet the scale is used (C > 1)
        upsample("nearest", 3, 10, sf=(1, 2.05))  # doubled size, yet the scale is used (C > 1)
    for ac in (False, True):
        upsample("bilinear", 4, 5, sf=2, ac=ac)
        upsample("bilinear", 4, 5, sf=1.5, ac=ac)
        upsample("bilinear", 4, 5, size=(7, 11), ac=ac)
        upsample("bilinear", 8, 5, size=(3, 2), ac=ac)
        upsample("bilinear", 5, 6, sf=(1.7, 2.3), ac=ac)
        upsample("bilinear", 4, 3, size=(1, 5), ac=ac)
    upsample("bilinear", 3, 3, sf=1.2, ac=False)  # same size out: PyTorch copies


# ---- pad2d, reduce, softmax -----------------------------------------------------------------
def gen_pad():
    for l, r, t, b, v in [(1, 1, 1, 1, 0.0), (2, 0, 0, 3, 1.5), (-1, 2, -2, 1, 0.0),
                          (-2, -1, 0, -1, -3.0), (0, 0, 0, 0, 0.0)]:
        x = rnd(2, 3, 5, 6)
        emit("pad2d", dict(outer=6, h=5, w=6, left=l, right=r, top=t, bottom=b, value=f32(v)),
             {"x": x, "y": F.pad(x, (l, r, t, b), value=v)})


def gen_reduce():
    x0 = (2, 3, 4, 5)
    for op in ("mean", "sum", "max"):
        for dims, (outer, r, inner) in [((2, 3), (6, 20, 1)), ((1,), (2, 3, 20)),
                                        ((0,), (1, 2, 60)), ((0, 1, 2, 3), (1, 120, 1)),
                                        ((1, 2), (2, 12, 5))]:
            x = rnd(*x0)
            if op == "mean":
                y = x.mean(dim=dims)
            elif op == "sum":
                y = x.sum(dim=dims)
            else:
                y = x.amax(dim=dims)
            emit("reduce", dict(op=op, outer=outer, r=r, inner=inner), {"x": x, "y": y})


def gen_softmax():
    for log in (0, 1):
        for shape, dim, scale in [((2, 10), 1, 1.0), ((2, 5, 3, 4), 1, 1.0), ((3, 7), 1, 50.0),
                                  ((1000,), 0, 3.0), ((4, 3, 2), 0, 1.0)]:
            x = rnd(*shape, scale=scale)
            outer = int(np.prod(shape[:dim]))
            inner = int(np.prod(shape[dim + 1:]))
            y = F.log_softmax(x, dim) if log else F.softmax(x, dim)
            emit("softmax", dict(log=log, outer=outer, d=shape[dim], inner=inner),
                 {"x": x, "y": y})


def main():
    global OUT
    if len(sys.argv) != 2:
        sys.exit("usage: gen_kernel_refs.py OUTDIR")
    OUT = sys.argv[1]
    os.makedirs(OUT, exist_ok=True)
    for gen in (gen_conv, gen_linear, gen_affine, gen_unary, gen_binary, gen_copy, gen_cat,
                gen_pool, gen_adaptive, gen_upsample, gen_pad, gen_reduce, gen_softmax):
        gen()
    with open(os.path.join(OUT, "cases.txt"), "w") as f:
        f.write("# written by tests/gen_kernel_refs.py with torch %s\n" % torch.__version__)
        f.write("\n".join(LINES) + "\n")
    print("%d cases in %s: %s" % (len(LINES), OUT,
                                  ", ".join("%s %d" % kv for kv in sorted(COUNTS.items()))))


if __name__ == "__main__":
    main()
