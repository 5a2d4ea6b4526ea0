#!/usr/bin/env python3
"""Writes the bench's models and data (a Python with torch + torchvision: Debian's python3-torch).

usage: make_models.py OUTDIR [--size 224] [--yolo-width 16] [--yolo-size 320] [--sens-size 112]
                             [--sens-images 128] [--yolo-images 32] [--smoke]

Into OUTDIR (a folder of the build tree, never the source tree):
  <name>.pt            torch.jit.trace(model).save(): resnet18, mobilenet_v2, vgg11_bn (torchvision,
                       random weights) and yolov5 (tests/conformance_models.py YoloV5s, 80 classes);
  <name>.pth           the state_dict of the models analysed, for the PyTorch scripts that need the
                       eager model (hooks);
  <name>.b<B>.npy      a forward input at batch B (normal noise, fixed seed);
  sens_<name>.x.npy    the images of the sensitivity analysis: Fashion-MNIST test images (Debian's
                       dataset-fashion-mnist) resized to the model's input, gray copied to RGB,
                       normalised; random-but-fixed noise when the data set is not installed;
  sens_<name>.labels.npy  the unpruned model's own argmax on those images (for metric top1);
  models.json          what was written: shapes, parameters, bytes of one batch's activations.
BatchNorm gets random affine parameters and running statistics measured on calibration images
(tests/gen_models.py randomise), so BN is no identity and the activations keep a sane scale
through the depth of the network. Everything is seeded: two runs write the same tensors.
"""
import argparse
import gzip
import json
import os
import sys
import warnings

import numpy as np
import torch
import torch.nn.functional as F

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "tests"))
import conformance_models as cm  # noqa: E402
from gen_models import randomise  # noqa: E402

FMNIST = "/usr/share/datasets/fashion-mnist/t10k-images-idx3-ubyte.gz"


def fashion_images(first, n, size, gen):
    """n images from index first of the Fashion-MNIST test split as [n, 3, size, size] float32,
    bilinear-resized and normalised; noise with the same statistics when it is not installed."""
    if os.path.exists(FMNIST):
        raw = gzip.open(FMNIST).read()
        x = np.frombuffer(raw, dtype=np.uint8, offset=16).reshape(-1, 1, 28, 28)[first:first + n]
        x = torch.from_numpy(x.astype(np.float32) / 255.0)
        x = F.interpolate(x, size=(size, size), mode="bilinear", align_corners=False)
        x = ((x - 0.2860) / 0.3530).expand(-1, 3, -1, -1).contiguous()
        return x, "fashion-mnist t10k[%d:%d] resized to %dx%d, gray->RGB, normalised" % (
            first, first + n, size, size)
    return (torch.randn((n, 3, size, size), generator=gen),
            "normal noise (dataset-fashion-mnist not installed)")


def build(name, yolo_width):
    if name == "yolov5":
        return cm.YoloV5s(nc=80, w=yolo_width)
    if name == "resnet_mini":
        return cm.ResNetMini()
    from torchvision import models as tvm
    try:
        return getattr(tvm, name)(weights=None)
    except TypeError:  # torchvision before 0.13
        return getattr(tvm, name)(pretrained=False)


def activation_bytes(model, x):
    """Bytes of every leaf module's output for input x: the activations of one batch if nothing
    were freed (an upper bound of what an executor keeps alive at once)."""
    total = [0]

    def hook(_m, _i, out):
        for o in (out if isinstance(out, (tuple, list)) else [out]):
            if isinstance(o, torch.Tensor):
                total[0] += o.numel() * o.element_size()
    hs = [m.register_forward_hook(hook) for m in model.modules() if not list(m.children())]
    with torch.no_grad():
        model(x)
    for h in hs:
        h.remove()
    return total[0]


def save_npy(path, a):
    tmp = path + ".tmp"
    with open(tmp, "wb") as f:
        np.save(f, np.ascontiguousarray(a))
    os.replace(tmp, path)


def make(name, size, sens_size, sens_n, outdir, yolo_width, batches, info):
    seed = sum(map(ord, name)) * 7919
    torch.manual_seed(seed)
    gen = torch.Generator().manual_seed(seed + 1)
    model = build(name, yolo_width)
    # Calibration images: not the ones the analysis evaluates.
    calib, _ = fashion_images(1000, 8, size, gen)
    randomise(model, [calib])
    model.eval()
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")
        traced = torch.jit.trace(model, calib[:1], check_trace=False)
    path = os.path.join(outdir, name + ".pt")
    traced.save(path)
    entry = {"name": name, "pt": path, "input": [3, size, size], "params": sum(p.numel() for p in model.parameters()),
             "param_bytes": sum(p.numel() * 4 for p in model.state_dict().values()
                                if p.is_floating_point()),
             "forward_inputs": {}}
    if name == "yolov5":
        entry["width"] = yolo_width
        entry["classes"] = 80
    for b in batches:
        x = torch.randn((b, 3, size, size), generator=gen)
        p = os.path.join(outdir, "%s.b%d.npy" % (name, b))
        save_npy(p, x.numpy())
        entry["forward_inputs"][str(b)] = p
    if sens_n:
        x, how = fashion_images(0, sens_n, sens_size, gen)
        with torch.no_grad():
            out = model(x[:1])
            outs = out if isinstance(out, (tuple, list)) else [out]
            out_floats = sum(o[0].numel() for o in outs)
            lab = None
            if isinstance(out, torch.Tensor) and out.dim() == 2:
                lab = torch.cat([model(x[i:i + 32]).argmax(1) for i in range(0, sens_n, 32)])
        # the eager model, for the PyTorch scripts of the analysis (forward hooks)
        entry["state_dict"] = os.path.join(outdir, name + ".pth")
        torch.save(model.state_dict(), entry["state_dict"])
        xp = os.path.join(outdir, "sens_%s.x.npy" % name)
        save_npy(xp, x.numpy())
        entry["sens"] = {"images": xp, "n": sens_n, "input": [3, sens_size, sens_size],
                         "data": how, "act_bytes_per_image": activation_bytes(model, x[:1]),
                         "out_floats_per_image": out_floats}
        if lab is not None:
            lp = os.path.join(outdir, "sens_%s.labels.npy" % name)
            save_npy(lp, lab.numpy().astype(np.int64))
            entry["sens"]["labels"] = lp
    info[name] = entry


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("outdir")
    ap.add_argument("--size", type=int, default=224, help="input of the classifiers' forward")
    ap.add_argument("--yolo-width", type=int, default=16, help="YoloV5s base width (yolov5n: 16)")
    ap.add_argument("--yolo-size", type=int, default=320)
    ap.add_argument("--sens-size", type=int, default=112, help="resnet18 input in the analysis")
    ap.add_argument("--sens-images", type=int, default=128)
    ap.add_argument("--yolo-images", type=int, default=32)
    ap.add_argument("--batches", default="1,8")
    ap.add_argument("--smoke", action="store_true",
                    help="one tiny model (tests/conformance_models.py ResNetMini, 32x32) only")
    args = ap.parse_args()
    torch.set_num_threads(max(1, min(2, os.cpu_count() or 1)))
    os.makedirs(args.outdir, exist_ok=True)
    batches = [int(b) for b in args.batches.split(",")]
    info = {}
    if args.smoke:
        make("resnet_mini", 32, 32, 16, args.outdir, 0, batches, info)
    else:
        make("resnet18", args.size, args.sens_size, args.sens_images, args.outdir, 0, batches,
             info)
        make("mobilenet_v2", args.size, 0, 0, args.outdir, 0, batches, info)
        make("vgg11_bn", args.size, 0, 0, args.outdir, 0, batches, info)
        make("yolov5", args.yolo_size, args.yolo_size, args.yolo_images, args.outdir,
             args.yolo_width, batches, info)
    doc = {"torch": torch.__version__, "models": info}
    with open(os.path.join(args.outdir, "models.json.tmp"), "w") as f:
        json.dump(doc, f, indent=1)
    os.replace(os.path.join(args.outdir, "models.json.tmp"),
               os.path.join(args.outdir, "models.json"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
