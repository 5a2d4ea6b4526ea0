#!/usr/bin/env python3
"""Writes the models that tests/check_prune.py prunes with `lbprune prune` (issue 4, "Must show"):
torchvision architectures and models of tests/conformance_models.py, each traced and pickled whole.

usage: gen_prune_models.py OUTDIR [--only NAME,...] [--stamp FILE]
(a Python with torch; torchvision optional: without it the torchvision models are skipped with a
message, and only the conformance models and the fashion example are made)

Written into OUTDIR, for every model NAME:
  NAME.pt          torch.jit.trace(model, input).save(): the archive lbprune prunes
  NAME_full.pth    torch.save(model): the eager model, whose classes import from torchvision,
                   tests/conformance_models.py or examples/fashion_mnist/model.py
  NAME.in.npy      the input (float32, batch 2) the model is traced with and checked on
  models.txt       '#' comment lines, then one line per model, tab-separated:
                   NAME  input shape (2,3,64,64)  module of the full model's class  directory to put
                   on sys.path before torch.load of NAME_full.pth ('-' for none); with
                   --only, the lines of the other models an earlier run listed stay
Weights are random (seeded by the model name); BatchNorm gets random affine parameters and
statistics measured on a random batch, then perturbed, so that it is not an identity and the
output depends on every channel; torchvision classifiers have 10 classes to keep the files
small. resnet18 is made only when named by --only or with NPE_BIG_MODELS=1 (90 MB more).
The fashion example is the bundled trained model, copied. The trace is checked against the
eager model before anything is written for it.
"""
import argparse
import os
import shutil
import sys
import time
import warnings
import zlib

import numpy as np
import torch
from torch import nn

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
FASHION_DIR = os.path.join(ROOT, "examples", "fashion_mnist")
sys.path.insert(0, HERE)
import conformance_models as cm  # noqa: E402
from gen_models import randomise  # noqa: E402  (calibrated BN statistics, shared)


def tv(name, **kw):
    def build():
        from torchvision import models as tvm
        return getattr(tvm, name)(weights=None, num_classes=10, **kw)
    return build


def conf(name):
    """The builder of conformance model NAME, looked up when it is needed."""
    def build():
        for s in cm.MODELS:
            if s.name == name:
                return s.build()
        raise KeyError("tests/conformance_models.py has no model '%s'" % name)
    return build


def conf_shape(name):
    for s in cm.MODELS:
        if s.name == name:
            if len(s.inputs) != 1:
                raise ValueError("%s: %d inputs, lbprune prune takes one here"
                                 % (name, len(s.inputs)))
            return s.inputs[0]
    raise KeyError("tests/conformance_models.py has no model '%s'" % name)


def pixel_shuffle_sr():
    """ESPCN-like: the pixel-shuffled channels feed a conv (in conformance_models' PixelShuffleNet
    they are model outputs, which are never pruned). Built of torch.nn classes only."""
    return nn.Sequential(
        nn.Conv2d(3, 32, 3, padding=1), nn.BatchNorm2d(32), nn.ReLU(),
        nn.Conv2d(32, 48, 3, padding=1), nn.PixelShuffle(2),        # 48 -> 12 channels, 2x size
        nn.Conv2d(12, 16, 3, padding=1), nn.BatchNorm2d(16), nn.ReLU(),
        nn.Conv2d(16, 3, 3, padding=1))


def channel_shuffle_net():
    """conformance_models' ShuffleNet unit whose shuffled channels feed BN and a conv."""
    return nn.Sequential(cm.ChannelShuffle(), nn.BatchNorm2d(16), nn.ReLU(),
                         nn.Conv2d(16, 8, 3, padding=1))


# name, builder, input shape without the batch, needs torchvision
MODELS = [
    ("resnet50", tv("resnet50"), (3, 64, 64), True),
    ("mobilenet_v2", tv("mobilenet_v2"), (3, 64, 64), True),
    ("regnet_x_400mf", tv("regnet_x_400mf"), (3, 64, 64), True),        # grouped convs
    ("mobilenet_v3_small", tv("mobilenet_v3_small"), (3, 64, 64), True),  # SE, hardsigmoid
    ("densenet121", tv("densenet121"), (3, 64, 64), True),              # cat everywhere
    ("shufflenet_v2_x0_5", tv("shufflenet_v2_x0_5"), (3, 64, 64), True),  # channel shuffle
    ("resnet18", tv("resnet18"), (3, 64, 64), True),                    # big: see BIG
    ("yolov5", conf("yolov5"), None, False),
    ("unet", conf("unet"), None, False),
    ("pixel_shuffle", conf("pixel_shuffle"), None, False),
    ("se_block", conf("se_block"), None, False),
    ("channel_shuffle", conf("channel_shuffle"), None, False),
    ("grouped_conv", conf("grouped_conv"), None, False),
    ("mbv3_block", conf("mbv3_block"), None, False),
    ("pixel_shuffle_sr", pixel_shuffle_sr, (3, 16, 16), False),
    ("channel_shuffle_net", channel_shuffle_net, (3, 16, 16), False),
    ("fashion_mnist", None, (1, 28, 28), False),                        # the bundled example
]
BATCH = 2
# made only when named by --only or with NPE_BIG_MODELS=1: resnet18's 90 MB would take the
# directory past 300 MB, and resnet50 and the fashion example already have its residual blocks
BIG = {"resnet18"}


def have_torchvision():
    try:
        import torchvision  # noqa: F401
        return True
    except Exception:
        return False


def flatten(out):
    if isinstance(out, torch.Tensor):
        return [out]
    if isinstance(out, (tuple, list)):
        res = []
        for o in out:
            res += flatten(o)
        return res
    raise TypeError("model output of type %s is not a tensor, tuple or list" % type(out).__name__)


def save_npy(path, a):
    tmp = path + ".tmp"
    with open(tmp, "wb") as f:
        np.save(f, np.ascontiguousarray(a, dtype=np.float32))
    os.replace(tmp, path)


def torch_load_full(path):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            return torch.load(path, map_location="cpu", weights_only=False)
        except TypeError:  # a torch without weights_only
            return torch.load(path, map_location="cpu")


def gen_one(name, build, shape, outdir):
    seed = zlib.crc32(name.encode())
    gen = torch.Generator().manual_seed(seed ^ 0x5EED)
    pt = os.path.join(outdir, name + ".pt")
    full = os.path.join(outdir, name + "_full.pth")
    if build is None:  # the fashion example: its trained files, as a user has them
        if FASHION_DIR not in sys.path:
            sys.path.insert(0, FASHION_DIR)
        model = torch_load_full(os.path.join(FASHION_DIR, "model_full.pth")).eval()
        x = torch.randn((BATCH,) + shape, generator=gen)
        shutil.copyfile(os.path.join(FASHION_DIR, "model.pt"), pt + ".tmp")
        os.replace(pt + ".tmp", pt)
        shutil.copyfile(os.path.join(FASHION_DIR, "model_full.pth"), full + ".tmp")
        os.replace(full + ".tmp", full)
        path_dir = FASHION_DIR
    else:
        torch.manual_seed(seed)
        model = build()
        x = torch.randn((BATCH,) + shape, generator=gen)
        randomise(model, [torch.randn((8,) + shape, generator=gen)])
        model.eval()
        with warnings.catch_warnings(), torch.no_grad():
            warnings.simplefilter("ignore")
            traced = torch.jit.trace(model, (x,), strict=False, check_trace=False)
        traced.save(pt)  # the archive's folder is named after the file: no temporary name
        torch.save(model, full + ".tmp")
        os.replace(full + ".tmp", full)
        uses_cm = any(type(m).__module__ == "conformance_models" for m in model.modules())
        path_dir = HERE if uses_cm else "-"

    # the files as written, against the eager model
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        loaded = torch.jit.load(pt, map_location="cpu")
    reloaded = torch_load_full(full).eval()
    with torch.no_grad():
        ref = flatten(model(x))
        for what, m in (("traced archive", loaded), ("torch.save pickle", reloaded)):
            outs = flatten(m(x))
            if len(outs) != len(ref):
                raise RuntimeError("%s: the %s gives %d outputs, the eager model %d"
                                   % (name, what, len(outs), len(ref)))
            for i, (o, e) in enumerate(zip(outs, ref)):
                scale = max(float(e.abs().max()), 1e-30)
                if o.shape != e.shape or float((o - e).abs().max()) > 1e-5 * scale:
                    raise RuntimeError("%s: output %d of the %s does not match the eager model"
                                       % (name, i, what))
    save_npy(os.path.join(outdir, name + ".in.npy"), x.numpy())
    return "%s\t%s\t%s\t%s" % (name, ",".join(str(d) for d in x.shape), type(model).__module__,
                               path_dir)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("outdir")
    ap.add_argument("--only", default="", help="comma-separated model names")
    ap.add_argument("--stamp", default="", help="file touched on success")
    args = ap.parse_args()

    torch.set_num_threads(max(1, min(2, os.cpu_count() or 1)))
    os.makedirs(args.outdir, exist_ok=True)
    only = [n for n in args.only.split(",") if n]
    known = [m[0] for m in MODELS]
    for n in only:
        if n not in known:
            sys.exit("gen_prune_models.py: unknown model '%s' (known: %s)" % (n, ", ".join(known)))
    tv_ok = have_torchvision()
    big = os.environ.get("NPE_BIG_MODELS") == "1"

    lines = ["# models for check_prune.py, made by torch %s (%s)" % (torch.__version__,
                                                                     sys.executable),
             "# name\tinput shape\tmodule of the full model\tsys.path directory for it"]
    t_all = time.time()
    for name, build, shape, needs_tv in MODELS:
        if only and name not in only:
            continue
        if needs_tv and not tv_ok:
            print("gen_prune_models.py: skipping %s: torchvision is not installed for this Python"
                  % name)
            continue
        if name in BIG and not big and name not in only:
            print("gen_prune_models.py: skipping %s: a big archive, set NPE_BIG_MODELS=1" % name)
            continue
        t0 = time.time()
        lines.append(gen_one(name, build, shape if shape else conf_shape(name), args.outdir))
        print("gen_prune_models.py: %-20s %5.1f s" % (name, time.time() - t0))
    listing = os.path.join(args.outdir, "models.txt")
    if only and os.path.exists(listing):
        # keep the models an earlier run listed, in the order of MODELS, with the new lines
        with open(listing) as f:
            kept = [ln.rstrip("\n") for ln in f if ln.strip() and ln[0] != "#"
                    and ln.split("\t")[0] not in only]
        order = {n: i for i, n in enumerate(known)}
        lines = lines[:2] + sorted(kept + lines[2:],
                                   key=lambda ln: order.get(ln.split("\t")[0], len(order)))
    with open(listing + ".tmp", "w") as f:
        f.write("\n".join(lines) + "\n")
    os.replace(listing + ".tmp", listing)
    print("gen_prune_models.py: %d models listed in %s, made in %.1f s"
          % (len(lines) - 2, listing, time.time() - t_all))
    if args.stamp:
        with open(args.stamp, "w") as f:
            f.write("ok\n")


if __name__ == "__main__":
    main()
