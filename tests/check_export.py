#!/usr/bin/env python3
"""PyTorch's side of the exporter tests: runs tests/test_export (which prunes models by hand,
exports them and writes OUT_DIR/cases.txt), then loads every exported file with the PyTorch
running this script and compares its outputs with our runtime's.

usage: check_export.py TEST_EXPORT SOURCE_ROOT OUT_DIR [MODELS_DIR]
  TEST_EXPORT  the built tests/test_export program (run first; "-" to only check OUT_DIR)
  MODELS_DIR   folder with mobilenet_v2.pt of tests/gen_models.py (depthwise cases)

cases.txt has one case per line (paths relative to OUT_DIR unless absolute):
  jit MODEL IN OUT                 torch.jit.load(MODEL)(IN) equals OUT (our runtime's output)
  jit_same MODEL_A MODEL_B IN      both load and compute the same
  types_same MODEL PATH_A PATH_B   the two submodules have one TorchScript class
  types_differ MODEL PATH_A PATH_B ... and two different ones
  fashion_state SD CHANNELS IN OUT torch.load(SD) and torch.load(SD, weights_only=True); the
                                   example's FashionCNN rebuilt from CHANNELS (JSON) loads it
                                   with strict=True and computes OUT
  state_vs_jit SD MODEL            torch.load(SD, weights_only=True) equals the state_dict() of
                                   torch.jit.load(MODEL): keys in order, dtypes, shapes, values
  full MODEL IN OUT                torch.load(MODEL, weights_only=False) with the example's class
                                   importable gives a module whose attributes match its
                                   weights and which computes OUT
Before running TEST_EXPORT, OUT_DIR/mb_full_in.pth is made (torch.save of torchvision's
MobileNetV2 with the weights of MODELS_DIR/mobilenet_v2.pt) when torchvision is there.
Exit status: 0 all passed, 1 a check failed, 77 PyTorch is missing (skipped).
"""
import json
import os
import subprocess
import sys
import warnings

try:
    import numpy as np
    import torch
    from torch import nn
except ImportError as exc:  # pragma: no cover
    print("skipped: %s" % exc)
    sys.exit(77)

REL_TOL = 1e-4  # our kernels against PyTorch's, the conformance suite's rule

failures = []


def fail(msg):
    failures.append(msg)
    print("FAIL: " + msg)


def rel_diff(a, b):
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    if a.shape != b.shape:
        return float("inf")
    scale = max(np.abs(b).max(), 1e-30) if b.size else 1.0
    return float(np.abs(a - b).max() / scale) if b.size else 0.0


def first_output(y):
    while isinstance(y, (tuple, list)):
        y = y[0]
    return y.detach().numpy()


def run(model, x):
    with torch.no_grad():
        return first_output(model(torch.from_numpy(x)))


def jit_load(path):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # 2.x: torch.jit.load is deprecated
        m = torch.jit.load(path, map_location="cpu")
    m.eval()
    return m


def submodule(m, path):
    for part in path.split("."):
        m = getattr(m, part)
    return m


def check_jit(out_dir, model, inp, expected):
    m = jit_load(model)
    x = np.load(inp)
    d = rel_diff(run(m, x), np.load(expected))
    print("jit %s: rel diff %.3g" % (os.path.basename(model), d))
    if not d < REL_TOL:
        fail("%s computes other values than our runtime (rel diff %g)" % (model, d))


def check_jit_same(out_dir, a, b, inp):
    x = np.load(inp)
    ya, yb = run(jit_load(a), x), run(jit_load(b), x)
    d = rel_diff(yb, ya)
    print("jit_same %s %s: rel diff %.3g" % (os.path.basename(a), os.path.basename(b), d))
    if not d < 1e-6:
        fail("%s and %s compute different values (rel diff %g)" % (a, b, d))


def type_name(m):
    return m._c._type().qualified_name()


def check_types(out_dir, model, pa, pb, same):
    m = jit_load(model)
    ta, tb = type_name(submodule(m, pa)), type_name(submodule(m, pb))
    print("types %s: %s / %s" % (os.path.basename(model), ta, tb))
    if (ta == tb) != same:
        fail("%s: %s is %s and %s is %s (expected %s classes)" %
             (model, pa, ta, pb, tb, "the same" if same else "different"))


def rebuild_fashion(src_root, channels):
    """The example's FashionCNN with each listed layer replaced by one of the new size, as a user
    would do from the JSON."""
    from model import FashionCNN  # noqa: E402 (examples/fashion_mnist on sys.path)
    m = FashionCNN()
    for name, ch in channels.items():
        old = m.get_submodule(name)
        if isinstance(old, nn.Conv2d):
            new = nn.Conv2d(ch["in_channels"], ch["out_channels"], old.kernel_size,
                            stride=old.stride, padding=old.padding, dilation=old.dilation,
                            groups=ch["groups"], bias=old.bias is not None,
                            padding_mode=old.padding_mode)
        elif isinstance(old, nn.BatchNorm2d):
            new = nn.BatchNorm2d(ch["num_features"], eps=old.eps, momentum=old.momentum,
                                 affine=old.affine, track_running_stats=old.track_running_stats)
        elif isinstance(old, nn.Linear):
            new = nn.Linear(ch["in_features"], ch["out_features"], bias=old.bias is not None)
        else:
            fail("channels JSON names %s, a %s" % (name, type(old).__name__))
            continue
        parent, _, leaf = name.rpartition(".")
        setattr(m.get_submodule(parent) if parent else m, leaf, new)
    return m


def check_fashion_state(out_dir, sd_path, channels_path, inp, expected, src_root):
    sd = torch.load(sd_path, map_location="cpu")
    sd_safe = torch.load(sd_path, map_location="cpu", weights_only=True)
    if list(sd.keys()) != list(sd_safe.keys()) or \
            any(not torch.equal(sd[k], sd_safe[k]) for k in sd):
        fail("%s: weights_only=True gives other tensors" % sd_path)
    with open(channels_path) as f:
        channels = json.load(f)
    m = rebuild_fashion(src_root, channels)
    try:
        m.load_state_dict(sd_safe, strict=True)
    except RuntimeError as exc:
        fail("%s does not load into the rebuilt model: %s" % (sd_path, exc))
        return
    m.eval()
    d = rel_diff(run(m, np.load(inp)), np.load(expected))
    print("state_dict %s (+ %s): rel diff %.3g" % (os.path.basename(sd_path),
                                                  os.path.basename(channels_path), d))
    if not d < REL_TOL:
        fail("%s in the rebuilt model computes other values (rel diff %g)" % (sd_path, d))


def check_full(out_dir, path, inp, expected):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        m = torch.load(path, map_location="cpu", weights_only=False)
    if not isinstance(m, nn.Module):
        fail("%s holds a %s, not a module" % (path, type(m).__name__))
        return
    m.eval()
    for name, mod in m.named_modules():
        if isinstance(mod, nn.Conv2d):
            w = mod.weight.shape
            ok = mod.out_channels == w[0] and mod.in_channels == w[1] * mod.groups
        elif isinstance(mod, nn.modules.batchnorm._BatchNorm):
            ok = mod.num_features == mod.running_mean.shape[0]
        elif isinstance(mod, nn.Linear):
            ok = (mod.out_features, mod.in_features) == tuple(mod.weight.shape)
        else:
            continue
        if not ok:
            fail("%s: module %s has attributes that do not match its weights" % (path, name))
    if not all(p.requires_grad for p in m.parameters()):
        fail("%s: some parameters do not require grad (not ready to fine-tune)" % path)
    d = rel_diff(run(m, np.load(inp)), np.load(expected))
    print("full %s: rel diff %.3g" % (os.path.basename(path), d))
    if not d < REL_TOL:
        fail("%s computes other values (rel diff %g)" % (path, d))


def make_mobilenet_full(models, out_dir):
    """torch.save(model) of torchvision's MobileNetV2 holding the weights of mobilenet_v2.pt, as
    the input of the full-model export (skipped without torchvision)."""
    src = os.path.join(models, "mobilenet_v2.pt")
    dst = os.path.join(out_dir, "mb_full_in.pth")
    if os.path.exists(dst):
        os.remove(dst)
    try:
        import torchvision
    except ImportError:
        print("torchvision missing: the MobileNetV2 full-model case is skipped")
        return
    if not os.path.exists(src):
        return
    m = torchvision.models.mobilenet_v2()
    m.load_state_dict(jit_load(src).state_dict(), strict=True)
    torch.save(m.eval(), dst)


def check_state_vs_jit(out_dir, sd_path, model):
    sd = torch.load(sd_path, map_location="cpu", weights_only=True)
    ref = jit_load(model).state_dict()
    print("state_vs_jit %s: %d tensors" % (os.path.basename(sd_path), len(sd)))
    if list(sd.keys()) != list(ref.keys()):
        fail("%s: keys differ from %s's state_dict()" % (sd_path, model))
        return
    for k in sd:
        if sd[k].dtype != ref[k].dtype or sd[k].shape != ref[k].shape or \
                not torch.equal(sd[k], ref[k]):
            fail("%s: %s differs from %s's" % (sd_path, k, model))


def main():
    if len(sys.argv) not in (4, 5):
        print(__doc__)
        return 2
    prog, src_root, out_dir = sys.argv[1:4]
    models = sys.argv[4] if len(sys.argv) > 4 else None
    src_root = os.path.abspath(src_root)
    print("torch %s" % torch.__version__)
    os.makedirs(out_dir, exist_ok=True)
    if models:
        make_mobilenet_full(models, out_dir)
    if prog != "-":
        cmd = [prog, src_root, out_dir] + ([models] if models else [])
        res = subprocess.run(cmd)
        if res.returncode != 0:
            fail("%s exited with %d" % (" ".join(cmd), res.returncode))
            return 1
    sys.path.insert(0, os.path.join(src_root, "examples", "fashion_mnist"))

    def p(name):
        return name if os.path.isabs(name) else os.path.join(out_dir, name)

    with open(os.path.join(out_dir, "cases.txt")) as f:
        lines = [ln.split() for ln in f if ln.strip() and not ln.startswith("#")]
    for case in lines:
        kind, args = case[0], case[1:]
        try:
            if kind == "jit":
                check_jit(out_dir, p(args[0]), p(args[1]), p(args[2]))
            elif kind == "jit_same":
                check_jit_same(out_dir, p(args[0]), p(args[1]), p(args[2]))
            elif kind in ("types_same", "types_differ"):
                check_types(out_dir, p(args[0]), args[1], args[2], kind == "types_same")
            elif kind == "fashion_state":
                check_fashion_state(out_dir, p(args[0]), p(args[1]), p(args[2]), p(args[3]),
                                    src_root)
            elif kind == "state_vs_jit":
                check_state_vs_jit(out_dir, p(args[0]), p(args[1]))
            elif kind == "full":
                check_full(out_dir, p(args[0]), p(args[1]), p(args[2]))
            else:
                fail("unknown case %r" % kind)
        except Exception as exc:  # a file PyTorch refuses is a failure, with its message
            fail("%s %s: %s: %s" % (kind, " ".join(args), type(exc).__name__, exc))
    print("%d cases, %d failed" % (len(lines), len(failures)))
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
