#!/usr/bin/env python3
"""Checks `lbprune prune` against PyTorch on the models of tests/gen_prune_models.py (issue 4,
"Must show"), with the oracle Python (torch; torchvision only for the models that need it).

usage: check_prune.py LBPRUNE MODELDIR WORKDIR [--only NAME,...] [--sparsities 0.3,0.6]
                      [--aligns 1,8] [--threads N] [--keep]

For every model of MODELDIR/models.txt, and every sparsity S and alignment A, it runs
  lbprune prune NAME.pt -o pruned.pt --input-shape SHAPE --sparsity S --align A --report R.json
                --state-dict pruned.pth --full-model NAME_full.pth pruned_full.pth
  lbprune eval pruned.pt --input NAME.in.npy --output-dir out/
and checks, with PyTorch only (nothing here trusts the engine's own numbers):
  (1) torch.jit.load(pruned.pt) computes what lbprune eval computed;
  (2) the ORIGINAL eager model, with the removed channels of the report zeroed at the inputs of
      their consumers (conv/linear weight[:, i]; transposed conv weight[i]; grouped conv: input
      channel i is column i % (Cin/g) of the filters of group i // (Cin/g)), computes what the
      pruned archive computes: removing a channel is the same as making it unread;
  (3) the report's params_before/after equal PyTorch's parameter counts of the original and
      pruned archives, and macs_before/after a MAC count made by forward hooks on the eager
      models (per image; conv: output elements x Cin/g x kh x kw, transposed conv: input
      elements x Cout/g x kh x kw, linear: output elements x in_features; biases, BN not counted);
  (4) pruned.pth loads with torch.load (default and weights_only=True) and with
      load_state_dict(strict=True) into the pruned full model, holds the archive's tensors; the
      pruned full model's module attributes (in/out_channels, groups, num_features,
      in/out_features) agree with its tensors and with pruned.channels.json, and it computes
      what the pruned archive computes, before and after loading the state_dict.
A cut must also move the output by at least 1e-3 of its size (dP, pruned vs original), else the
test model cannot tell a right cut from a wrong one in (2), and that is reported as a failure.
Once per model, sparsity 0 must give the original back: every tensor identical, the same output
bit for bit. Differences are max|d| / max|reference| per output, at most 1e-4.
A model whose full pickle needs torchvision, where this Python has none (MODELDIR made by another
Python: the check across torch versions), is checked on its archives only: (1), parameter counts,
the state_dict and sparsity 0.
One line per model and configuration; every failure is printed with the command that shows it,
and the exit status is 1 when there was any. Each configuration's files are removed after it
passes (kept with --keep, and always kept when it fails).
"""
import argparse
import copy
import json
import math
import os
import shutil
import subprocess
import sys
import time
import warnings

import numpy as np
import torch
from torch import nn

TOL = 1e-4
SEEN = 1e-3   # the least output change (relative) a cut must make for check (2) to mean much
warnings.filterwarnings("ignore", category=FutureWarning)       # torch 2.x: jit is deprecated
warnings.filterwarnings("ignore", category=DeprecationWarning)
warnings.filterwarnings("ignore", category=UserWarning)


class Failure(Exception):
    pass


def flatten(out):
    if isinstance(out, torch.Tensor):
        return [out]
    if isinstance(out, (tuple, list)):
        res = []
        for o in out:
            res += flatten(o)
        return res
    raise Failure("model output of type %s is not a tensor, tuple or list" % type(out).__name__)


def rel_diff(outs, refs, what):
    """max over outputs of max|o - r| / max|r|; a count or shape mismatch is a failure."""
    if len(outs) != len(refs):
        raise Failure("%s: %d outputs, the reference has %d" % (what, len(outs), len(refs)))
    worst = 0.0
    for i, (o, r) in enumerate(zip(outs, refs)):
        o = torch.as_tensor(o).float()
        r = torch.as_tensor(r).float()
        if tuple(o.shape) != tuple(r.shape):
            raise Failure("%s: output %d has shape %s, the reference %s"
                          % (what, i, tuple(o.shape), tuple(r.shape)))
        if not torch.isfinite(o).all():
            raise Failure("%s: output %d is not finite" % (what, i))
        scale = float(r.abs().max()) if r.numel() else 0.0
        d = float((o - r).abs().max()) if r.numel() else 0.0
        worst = max(worst, d / scale if scale > 0 else d)
    return worst


def have_module(name):
    try:
        __import__(name)
        return True
    except Exception:
        return False


def load_full(path):
    try:
        return torch.load(path, map_location="cpu", weights_only=False)
    except TypeError:  # a torch without weights_only
        return torch.load(path, map_location="cpu")


def jit_load(path):
    return torch.jit.load(path, map_location="cpu")


def run(cmd, what):
    p = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                       universal_newlines=True)
    if p.returncode != 0:
        raise Failure("%s exited with %d:\n%s" % (what, p.returncode, p.stdout.rstrip()))
    return p.stdout


def n_params(module):
    return sum(p.numel() for p in module.parameters())


def count_macs(model, x):
    """Per-image MACs of conv, transposed conv and linear layers, from forward hooks."""
    batch = x.shape[0]
    total = [0]

    def conv_hook(m, inp, out):
        w = m.weight
        kk = math.prod(w.shape[2:])
        if m.transposed:
            # every input element scatters into Cout/g * kh * kw outputs (weight [Cin, Cout/g, ..])
            total[0] += inp[0].numel() // batch * w.shape[1] * kk
        else:
            total[0] += out.numel() // batch * w.shape[1] * kk

    def linear_hook(m, inp, out):
        total[0] += out.numel() // batch * m.weight.shape[1]

    hooks = []
    for m in model.modules():
        if isinstance(m, nn.modules.conv._ConvNd):
            hooks.append(m.register_forward_hook(conv_hook))
        elif isinstance(m, nn.Linear):
            hooks.append(m.register_forward_hook(linear_hook))
    try:
        with torch.no_grad():
            model(x)
    finally:
        for h in hooks:
            h.remove()
    return total[0]


def zero_removed(model, report):
    """The original eager model with every removed channel zeroed at its consumers' inputs."""
    mods = dict(model.named_modules())
    n_zeroed = 0
    with torch.no_grad():
        for g in report["groups"]:
            for c in g.get("consumers", []):
                idx = c["removed_inputs"]
                if not idx:
                    continue
                name = c["layer"]
                m = mods.get(name)
                if m is None:
                    raise Failure("group '%s': consumer '%s' is no module of the eager model"
                                  % (g["name"], name))
                w = m.weight
                if isinstance(m, nn.Linear):
                    bad = [i for i in idx if not 0 <= i < w.shape[1]]
                    if bad:
                        raise Failure("group '%s': consumer %s (Linear, %d inputs) removes input "
                                      "%d" % (g["name"], name, w.shape[1], bad[0]))
                    w[:, idx] = 0
                elif isinstance(m, nn.modules.conv._ConvNd) and m.transposed:
                    bad = [i for i in idx if not 0 <= i < w.shape[0]]
                    if bad:
                        raise Failure("group '%s': consumer %s (transposed conv, %d inputs) "
                                      "removes input %d" % (g["name"], name, w.shape[0], bad[0]))
                    w[idx] = 0
                elif isinstance(m, nn.modules.conv._ConvNd):
                    cpg = w.shape[1]                  # input channels per group
                    groups = m.groups
                    opg = w.shape[0] // groups        # output channels per group
                    for i in idx:
                        if not 0 <= i < cpg * groups:
                            raise Failure("group '%s': consumer %s (conv, %d input channels) "
                                          "removes input %d" % (g["name"], name, cpg * groups, i))
                        gi, col = divmod(i, cpg)
                        w[gi * opg:(gi + 1) * opg, col] = 0
                else:
                    raise Failure("group '%s': consumer %s is a %s: this check knows conv, "
                                  "transposed conv and linear consumers"
                                  % (g["name"], name, type(m).__name__))
                n_zeroed += len(idx)
    return n_zeroed


def check_attributes(model, channels):
    """Module attributes agree with the tensors and with OUT.channels.json."""
    mods = dict(model.named_modules())
    for name, m in mods.items():
        if isinstance(m, nn.modules.conv._ConvNd):
            w = m.weight
            if m.transposed:
                cin, cout = w.shape[0], w.shape[1] * m.groups
            else:
                cin, cout = w.shape[1] * m.groups, w.shape[0]
            got = (m.in_channels, m.out_channels)
            if got != (cin, cout):
                raise Failure("pruned full model: %s has in_channels, out_channels = %s, its "
                              "weight %s with groups=%d says %s"
                              % (name, got, tuple(w.shape), m.groups, (cin, cout)))
            if m.bias is not None and m.bias.numel() != cout:
                raise Failure("pruned full model: %s has %d biases for %d output channels"
                              % (name, m.bias.numel(), cout))
        elif isinstance(m, nn.modules.batchnorm._BatchNorm):
            for t in (m.weight, m.bias, m.running_mean, m.running_var):
                if t is not None and t.numel() != m.num_features:
                    raise Failure("pruned full model: %s has num_features %d and a tensor of %d"
                                  % (name, m.num_features, t.numel()))
        elif isinstance(m, nn.Linear):
            if tuple(m.weight.shape) != (m.out_features, m.in_features):
                raise Failure("pruned full model: %s has in/out_features %d/%d, weight %s"
                              % (name, m.in_features, m.out_features, tuple(m.weight.shape)))
    for name, attrs in channels.items():
        m = mods.get(name)
        if m is None:
            raise Failure("channels.json names '%s', no module of the pruned full model" % name)
        for k, v in attrs.items():
            if getattr(m, k, None) != v:
                raise Failure("channels.json says %s.%s = %s, the pruned full model has %s"
                              % (name, k, v, getattr(m, k, None)))


def state_dict_load(path):
    """torch.load of the pruned state_dict, the default way and with weights_only=True."""
    try:
        sd = torch.load(path, map_location="cpu")
    except Exception as e:
        raise Failure("torch.load(%s) failed: %s" % (path, e))
    try:
        sd_w = torch.load(path, map_location="cpu", weights_only=True)
    except TypeError:
        sd_w = sd  # a torch without weights_only
    except Exception as e:
        raise Failure("torch.load(%s, weights_only=True) failed: %s" % (path, e))
    if list(sd.keys()) != list(sd_w.keys()):
        raise Failure("%s: the keys differ between weights_only=True and the default" % path)
    return sd


def same_tensors(a, b, what):
    """Two name -> tensor maps with the same names, dtypes, shapes and bits."""
    if set(a) != set(b):
        only_a = sorted(set(a) - set(b))[:3]
        only_b = sorted(set(b) - set(a))[:3]
        raise Failure("%s: names differ (only in the first: %s; only in the second: %s)"
                      % (what, only_a, only_b))
    for k in a:
        x, y = a[k], b[k]
        if x.dtype != y.dtype or x.shape != y.shape or not torch.equal(x, y):
            raise Failure("%s: tensor %s differs (%s %s vs %s %s)"
                          % (what, k, x.dtype, tuple(x.shape), y.dtype, tuple(y.shape)))


def fmt_count(n):
    if n >= 1e9:
        return "%.3fG" % (n / 1e9)
    if n >= 1e6:
        return "%.3fM" % (n / 1e6)
    if n >= 1e4:
        return "%.1fk" % (n / 1e3)
    return str(n)


class Model:
    def __init__(self, line, modeldir):
        f = line.rstrip("\n").split("\t")
        if len(f) != 4:
            raise SystemExit("check_prune.py: %s/models.txt: bad line '%s' (4 tab-separated "
                             "fields expected)" % (modeldir, line.rstrip()))
        self.name, shape, self.module, pathdir = f
        self.shape = [int(d) for d in shape.split(",")]
        self.pt = os.path.join(modeldir, self.name + ".pt")
        self.full = os.path.join(modeldir, self.name + "_full.pth")
        self.inp = os.path.join(modeldir, self.name + ".in.npy")
        if pathdir != "-" and pathdir not in sys.path:
            sys.path.insert(0, pathdir)


def prune_cmd(args, m, d, s, a):
    return [args.lbprune, "prune", m.pt, "-o", os.path.join(d, "pruned.pt"),
            "--input-shape", ",".join(map(str, m.shape)), "--sparsity", str(s), "--align", str(a),
            "--report", os.path.join(d, "report.json"),
            "--state-dict", os.path.join(d, "pruned.pth"),
            "--full-model", m.full, os.path.join(d, "pruned_full.pth")]


def eval_cmd(args, m, d):
    return [args.lbprune, "eval", os.path.join(d, "pruned.pt"), "--input", m.inp,
            "--output-dir", os.path.join(d, "out"), "--threads", str(args.threads)]


def fresh_dir(d):
    if os.path.isdir(d):
        shutil.rmtree(d)
    os.makedirs(os.path.join(d, "out"))


def check_zero(args, m, orig_ts, x, ref, have_full):
    """Sparsity 0: the original model back, bit for bit."""
    d = os.path.join(args.workdir, m.name, "s0")
    fresh_dir(d)
    cmd = prune_cmd(args, m, d, 0, 8)
    run(cmd, "lbprune prune")
    with open(os.path.join(d, "report.json")) as f:
        rep = json.load(f)
    p = jit_load(os.path.join(d, "pruned.pt"))
    with torch.no_grad():
        out = flatten(p(x))
    if len(out) != len(ref) or any(o.shape != r.shape or not torch.equal(o, r)
                                   for o, r in zip(out, ref)):
        raise Failure("sparsity 0: the output differs from the original's (max rel %.3g)"
                      % rel_diff(out, ref, "sparsity 0"))
    same_tensors(dict(orig_ts.state_dict()), dict(p.state_dict()),
                 "sparsity 0: original vs pruned archive")
    sd = state_dict_load(os.path.join(d, "pruned.pth"))
    same_tensors(dict(orig_ts.state_dict()), sd, "sparsity 0: original archive vs pruned.pth")
    if have_full:
        full = load_full(os.path.join(d, "pruned_full.pth"))
        same_tensors(dict(load_full(m.full).state_dict()), dict(full.state_dict()),
                     "sparsity 0: original vs pruned full model")
    if rep["params_before"] != rep["params_after"] or rep["macs_before"] != rep["macs_after"]:
        raise Failure("sparsity 0: the report says params %d -> %d, MACs %d -> %d"
                      % (rep["params_before"], rep["params_after"], rep["macs_before"],
                         rep["macs_after"]))
    cut = [g["name"] for g in rep["groups"] if len(g["kept"]) != g["channels"]]
    if cut:
        raise Failure("sparsity 0: the report cuts groups %s" % ", ".join(cut[:5]))
    print("%-20s s=0   a=8  identical: %d tensors, outputs bit-exact" % (m.name, len(sd)))
    if not args.keep:
        shutil.rmtree(d)


def check_config(args, m, orig_ts, orig_full, x, ref, s, a, base):
    d = os.path.join(args.workdir, m.name, "s%g_a%d" % (s, a))
    fresh_dir(d)
    run(prune_cmd(args, m, d, s, a), "lbprune prune")
    run(eval_cmd(args, m, d), "lbprune eval")
    with open(os.path.join(d, "report.json")) as f:
        rep = json.load(f)
    pruned = jit_load(os.path.join(d, "pruned.pt"))
    with torch.no_grad():
        pout = flatten(pruned(x))

    # (1) PyTorch on the pruned archive vs our runtime on it
    ours = []
    for i in range(len(pout)):
        f = os.path.join(d, "out", "output_%d.npy" % i)
        if not os.path.exists(f):
            raise Failure("(1) lbprune eval wrote no %s; the pruned archive has %d outputs in "
                          "PyTorch" % (f, len(pout)))
        ours.append(torch.from_numpy(np.load(f)))
    extra = os.path.join(d, "out", "output_%d.npy" % len(pout))
    if os.path.exists(extra):
        raise Failure("(1) lbprune eval wrote more outputs than PyTorch's %d" % len(pout))
    d1 = rel_diff(pout, ours, "(1) torch.jit.load(pruned.pt) vs lbprune eval")
    if d1 > TOL:
        raise Failure("(1) torch.jit.load(pruned.pt) and lbprune eval differ: %.3g > %g"
                      % (d1, TOL))

    # (2) the original with the removed channels zeroed at their consumers
    d2 = float("nan")
    if orig_full is not None:
        zeroed = copy.deepcopy(orig_full)
        nz = zero_removed(zeroed, rep)
        with torch.no_grad():
            zout = flatten(zeroed(x))
        d2 = rel_diff(pout, zout, "(2) pruned archive vs zeroed original")
    if d2 > TOL:
        raise Failure("(2) the pruned archive and the original with %d removed inputs zeroed "
                      "differ: %.3g > %g" % (nz, d2, TOL))
    # a cut must show in the output, or (2) could not tell a wrong cut from a right one
    dp = rel_diff(pout, ref, "pruned archive vs the original")
    cut = sum(1 for g in rep["groups"] if len(g["kept"]) < g["channels"])
    if cut and dp < SEEN:
        raise Failure("(2) cannot judge this cut: %d groups were cut but the output moved by "
                      "only %.3g of its size (< %g); the test model's output does not depend on "
                      "its channels (saturated activations?): fix gen_prune_models.py"
                      % (cut, dp, SEEN))
    for g in rep["groups"]:
        k = g["kept"]
        if sorted(set(k)) != k or (k and not 0 <= k[0] <= k[-1] < g["channels"]):
            raise Failure("(2) group %s: kept %s is not increasing within %d channels"
                          % (g["name"], k, g["channels"]))
        if len(k) != g["channels"] and not g["producers"]:
            raise Failure("(2) group %s is cut but has no producers" % g["name"])

    # (3) parameter and MAC counts (MACs from the eager models: not without them)
    full_model = None
    if orig_full is not None:
        full_model = load_full(os.path.join(d, "pruned_full.pth")).eval()
    p_after = n_params(pruned)
    macs_after = count_macs(full_model, x) if full_model is not None else rep["macs_after"]
    got = (rep["params_before"], rep["params_after"], rep["macs_before"], rep["macs_after"])
    want = (base["params"], p_after, base.get("macs", rep["macs_before"]), macs_after)
    if got != want:
        raise Failure("(3) the report says params %d -> %d, MACs %d -> %d; PyTorch counts "
                      "params %d -> %d, MACs %d -> %d" % (got + want))
    if full_model is not None and n_params(full_model) != p_after:
        raise Failure("(3) the pruned full model has %d parameters, the pruned archive %d"
                      % (n_params(full_model), p_after))

    # (4) state_dict and full model
    sd = state_dict_load(os.path.join(d, "pruned.pth"))
    same_tensors(dict(pruned.state_dict()), sd, "(4) pruned archive vs pruned.pth")
    d4 = float("nan")
    if full_model is not None:
        with open(os.path.join(d, "pruned.channels.json")) as f:
            check_attributes(full_model, json.load(f))
        with torch.no_grad():
            fout = flatten(full_model(x))
        d4 = rel_diff(fout, pout, "(4) pruned full model vs pruned archive")
        try:
            full_model.load_state_dict(sd, strict=True)
        except Exception as e:
            raise Failure("(4) load_state_dict(pruned.pth, strict=True) into the pruned full "
                          "model: %s" % str(e).strip().replace("\n", " ")[:600])
        with torch.no_grad():
            fout2 = flatten(full_model(x))
        d4 = max(d4, rel_diff(fout2, pout, "(4) pruned full model + state_dict vs archive"))
    if d4 > TOL:
        raise Failure("(4) the pruned full model and the pruned archive differ: %.3g > %g"
                      % (d4, TOL))

    print("%-20s s=%-3g a=%-2d params %s -> %s  MACs %s -> %s  cut %d/%d  "
          "d1 %.1e  d2 %.1e  d4 %.1e  dP %.2f"
          % (m.name, s, a, fmt_count(got[0]), fmt_count(got[1]), fmt_count(got[2]),
             fmt_count(got[3]), cut, len(rep["groups"]), d1, d2, d4, dp)
          + ("" if orig_full is not None else "  (archive only)"))
    sys.stdout.flush()
    if not args.keep:
        shutil.rmtree(d)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("lbprune")
    ap.add_argument("modeldir")
    ap.add_argument("workdir")
    ap.add_argument("--only", default="", help="comma-separated model names")
    ap.add_argument("--sparsities", default="0.3,0.6")
    ap.add_argument("--aligns", default="1,8")
    ap.add_argument("--threads", type=int, default=2, help="lbprune eval threads")
    ap.add_argument("--keep", action="store_true", help="keep every configuration's files")
    args = ap.parse_args()
    args.lbprune = os.path.abspath(args.lbprune)
    torch.set_num_threads(max(1, min(2, os.cpu_count() or 1)))

    listing = os.path.join(args.modeldir, "models.txt")
    with open(listing) as f:
        models = [Model(ln, args.modeldir) for ln in f if ln.strip() and not ln.startswith("#")]
    only = [n for n in args.only.split(",") if n]
    known = {m.name for m in models}
    for n in only:
        if n not in known:
            sys.exit("check_prune.py: '%s' is not in %s (listed: %s)"
                     % (n, listing, ", ".join(sorted(known))))
    sparsities = [float(v) for v in args.sparsities.split(",") if v]
    aligns = [int(v) for v in args.aligns.split(",") if v]

    print("check_prune.py: torch %s, %s; d1 = archive vs lbprune eval, d2 = archive vs the "
          "original with removed inputs zeroed, d4 = full model vs archive (max|d|/max|ref|), "
          "dP = pruned vs original, cut = groups cut/all"
          % (torch.__version__, sys.executable))
    failures = []
    t_all = time.time()
    for m in models:
        if only and m.name not in only:
            continue
        t0 = time.time()
        try:
            orig_ts = jit_load(m.pt)
            orig_full = None
            if m.module.startswith("torchvision") and not have_module("torchvision"):
                # a model directory made by another Python (the cross-version check): the
                # archives are still checked, not what needs the eager model
                print("%-20s archive only: its full model needs torchvision, not installed "
                      "here: no (2), MACs or full-model checks" % m.name)
            else:
                orig_full = load_full(m.full).eval()
        except Exception as e:
            failures.append((m.name, "loading", "torch.load(%s)" % m.full, str(e)))
            print("%-20s FAILED to load: %s" % (m.name, e))
            continue
        x = torch.from_numpy(np.load(m.inp))
        with torch.no_grad():
            ref = flatten(orig_ts(x))
        base = {"params": n_params(orig_ts)}
        if orig_full is not None:
            base["macs"] = count_macs(orig_full, x)
        configs = [(None, None)] + [(s, a) for s in sparsities for a in aligns]
        for s, a in configs:
            d = os.path.join(args.workdir, m.name, "s0" if s is None else "s%g_a%d" % (s, a))
            cmds = [prune_cmd(args, m, d, 0 if s is None else s, 8 if s is None else a)]
            if s is not None:
                cmds.append(eval_cmd(args, m, d))
            try:
                if s is None:
                    check_zero(args, m, orig_ts, x, ref, orig_full is not None)
                else:
                    check_config(args, m, orig_ts, orig_full, x, ref, s, a, base)
            except Exception as e:
                if not isinstance(e, Failure):
                    e = "%s: %s" % (type(e).__name__, e)
                shown = " && ".join(" ".join(c) for c in cmds)
                failures.append((m.name, "s=%s a=%s" % (0 if s is None else s,
                                                        8 if s is None else a), shown, str(e)))
                print("%-20s s=%-3g a=%-2d FAILED: %s"
                      % (m.name, 0 if s is None else s, 8 if s is None else a, e))
                sys.stdout.flush()
        print("%-20s %.1f s" % (m.name, time.time() - t0))
    print("check_prune.py: %.1f s" % (time.time() - t_all))
    if failures:
        print("\ncheck_prune.py: %d failures (files kept under %s):"
              % (len(failures), args.workdir))
        for name, cfg, cmd, msg in failures:
            print("- %s %s: %s\n    %s" % (name, cfg, msg.replace("\n", "\n    "), cmd))
        sys.exit(1)
    print("check_prune.py: all passed")


if __name__ == "__main__":
    main()
