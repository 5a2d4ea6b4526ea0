#!/usr/bin/env python3
"""Traces the conformance models (tests/conformance_models.py) with the PyTorch running this
script and writes, for tests/test_conformance.c, each archive with its inputs and PyTorch's outputs.

usage: gen_models.py OUTDIR [--only NAME,...] [--stamp FILE]   (a Python with torch; torchvision
optional: without it the torchvision models are skipped with a message)

Written into OUTDIR, for every model NAME and batch size B:
  NAME.pt                 torch.jit.trace(model, batch-B0 inputs).save(); B0 is the first batch
  NAME.b<B>.in<k>.npy     input k (float32)
  NAME.b<B>.out<i>.npy    output i of the saved archive run by torch.jit.load (float32); nested
                          tuple/list outputs are flattened depth first, in order
  models.txt              '#' comment lines, then one line per model, tab-separated:
                          NAME  B=shape,shape B=shape,shape  N_OUTPUTS
                          (shapes as 1x3x64x64, one per input, batches separated by a space)
A model traced with more methods than forward (Spec.methods) has one more line, and its own
.in/.out files, per method M under the name NAME@M (the archive is still NAME.pt).
Weights are random (seeded by the model name, so --only reproduces the same files), BatchNorm gets
random statistics so it is not an identity. Each traced model is also checked against the eager
model at every batch size: a trace that froze the batch size would be a bug of this suite.
With --only, models.txt keeps the other models an earlier run listed. Big models are made when
named by --only or with NPE_BIG_MODELS=1 (vgg11_bn: a ~0.5 GB archive).
"""
import argparse
import os
import sys
import time
import warnings
import zlib

import numpy as np
import torch
from torch import nn

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import conformance_models as cm  # noqa: E402


def have_torchvision():
    try:
        import torchvision  # noqa: F401
        return True
    except Exception:
        return False


def randomise(model, calib):
    """Random BN affine parameters, and running statistics measured on a random calibration batch
    then perturbed, so BN is no identity. Statistics drawn at random instead let activations grow
    layer after layer in a deep random network until ReLU6 and the like saturate, and the output
    stops depending on most channels: a wrong kernel or a wrong cut would go unseen."""
    bns = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    with torch.no_grad():
        for m in bns:
            if m.weight is not None:
                m.weight.uniform_(0.5, 1.5)
                m.bias.normal_(0.0, 0.2)
            m.reset_running_stats()
            m.momentum = None  # a plain average over the calibration forward
        model.eval()
        for m in bns:
            m.train()  # only BN: dropout stays off
        if bns:
            model(*calib)
        model.eval()
        for m in bns:
            m.momentum = 0.1
            m.running_mean.add_(torch.randn_like(m.running_mean) * 0.1
                                * m.running_var.clamp(min=1e-6).sqrt())
            m.running_var.mul_(torch.empty_like(m.running_var).uniform_(0.8, 1.25))


def flatten(out):
    if isinstance(out, torch.Tensor):
        return [out]
    if isinstance(out, (tuple, list)):
        res = []
        for o in out:
            res += flatten(o)
        return res
    raise TypeError("model output of type %s is not a tensor, tuple or list" % type(out).__name__)


def shape_str(t):
    return "x".join(str(d) for d in t.shape) if t.dim() else "scalar"


def save_npy(path, t):
    # ascontiguousarray makes a 0-d tensor 1-d: keep the tensor's own shape
    a = np.ascontiguousarray(t.detach().cpu().numpy().astype(np.float32)).reshape(tuple(t.shape))
    tmp = path + ".tmp"
    with open(tmp, "wb") as f:
        np.save(f, a)
    os.replace(tmp, path)


def gen_one(s, outdir):
    seed = zlib.crc32(s.name.encode())
    torch.manual_seed(seed)
    model = s.build()
    gen = torch.Generator().manual_seed(seed ^ 0x5EED)
    randomise(model, [torch.randn((4,) + shp, generator=gen) for shp in s.inputs])
    model.eval()
    inputs = {b: [torch.randn((b,) + shp, generator=gen) for shp in s.inputs] for b in s.batches}

    methods = ("forward",) + s.methods
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")
        example = tuple(inputs[s.batches[0]])
        # check_trace off: we compare with the eager model at every batch size below
        if s.methods:
            traced = torch.jit.trace_module(model, {m: example for m in methods}, strict=False,
                                            check_trace=False)
        else:
            traced = torch.jit.trace(model, example, strict=False, check_trace=False)
    path = os.path.join(outdir, s.name + ".pt")
    traced.save(path)  # the archive's folder is named after the file: no temporary name
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)  # torch 2.x: jit is deprecated
        warnings.simplefilter("ignore", DeprecationWarning)
        loaded = torch.jit.load(path, map_location="cpu")

    shapes = " ".join("%d=%s" % (b, ",".join(shape_str(x) for x in inputs[b]))
                      for b in s.batches)
    lines = []
    for m in methods:
        entry = s.name if m == "forward" else "%s@%s" % (s.name, m)
        n_out = None
        with torch.no_grad():
            for b in s.batches:
                outs = flatten(getattr(loaded, m)(*inputs[b]))
                eager = flatten(getattr(model, m)(*inputs[b]))
                if len(outs) != len(eager):
                    raise RuntimeError("%s: traced model gives %d outputs, eager %d"
                                       % (entry, len(outs), len(eager)))
                for i, (o, e) in enumerate(zip(outs, eager)):
                    scale = max(float(e.abs().max()), 1e-30)
                    if o.shape != e.shape or float((o - e).abs().max()) > 1e-5 * scale:
                        raise RuntimeError("%s: batch %d output %d: the trace does not match the "
                                           "eager model (shape %s vs %s)"
                                           % (entry, b, i, tuple(o.shape), tuple(e.shape)))
                if n_out is None:
                    n_out = len(outs)
                elif n_out != len(outs):
                    raise RuntimeError("%s: output count changes with the batch size" % entry)
                for k, x in enumerate(inputs[b]):
                    save_npy(os.path.join(outdir, "%s.b%d.in%d.npy" % (entry, b, k)), x)
                for i, o in enumerate(outs):
                    save_npy(os.path.join(outdir, "%s.b%d.out%d.npy" % (entry, b, i)), o)
        lines.append("%s\t%s\t%d" % (entry, shapes, n_out))
    return lines


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("outdir")
    ap.add_argument("--only", default="", help="comma-separated model names")
    ap.add_argument("--stamp", default="", help="file touched on success")
    args = ap.parse_args()

    torch.set_num_threads(max(1, min(2, os.cpu_count() or 1)))
    os.makedirs(args.outdir, exist_ok=True)
    only = [n for n in args.only.split(",") if n]
    known = {s.name for s in cm.MODELS}
    for n in only:
        if n not in known:
            sys.exit("gen_models.py: unknown model '%s' (known: %s)" % (n, ", ".join(sorted(known))))
    big = os.environ.get("NPE_BIG_MODELS") == "1"
    tv_ok = have_torchvision()

    lines = ["# conformance models traced by torch %s (%s)" % (torch.__version__, sys.executable),
             "# name\tbatch=input shapes ...\tn_outputs"]
    t_all = time.time()
    for s in cm.MODELS:
        if only and s.name not in only:
            continue
        if s.torchvision and not tv_ok:
            print("gen_models.py: skipping %s: torchvision is not installed for this Python"
                  % s.name)
            continue
        if s.big and not big and s.name not in only:
            print("gen_models.py: skipping %s: a big archive, set NPE_BIG_MODELS=1" % s.name)
            continue
        t0 = time.time()
        lines += gen_one(s, args.outdir)
        print("gen_models.py: %-20s %5.1f s" % (s.name, time.time() - t0))
    listing = os.path.join(args.outdir, "models.txt")
    if only and os.path.exists(listing):
        # keep the models an earlier full run listed, in suite order, with the new lines in place
        def key(ln):
            return ln.split("\t")[0]
        fresh = [ln for ln in lines[2:]]
        with open(listing) as f:
            kept = [ln.rstrip("\n") for ln in f if ln.strip() and ln[0] != "#"
                    and key(ln).split("@")[0] not in only]
        order = {s.name: i for i, s in enumerate(cm.MODELS)}
        lines = lines[:2] + sorted(kept + fresh,
                                   key=lambda ln: order.get(key(ln).split("@")[0], len(order)))
    with open(listing + ".tmp", "w") as f:
        f.write("\n".join(lines) + "\n")
    os.replace(listing + ".tmp", listing)
    print("gen_models.py: %d models listed in %s, made in %.1f s"
          % (len(lines) - 2, listing, time.time() - t_all))
    if args.stamp:
        with open(args.stamp, "w") as f:
            f.write("ok\n")


if __name__ == "__main__":
    main()
