#!/usr/bin/env python3
"""The sensitivity analysis done the usual way in PyTorch, as the baseline of bench/run.py: for
every group and sparsity, mask the group's pruned channels and evaluate the whole model on every
image. Same groups, ranking and kept-channel rule as lbprune (DESIGN.md), so the values must equal
lbprune's sens.json within 1e-4.

usage: sens_torch.py --arch A --state-dict M.pth --images X.npy [--labels L.npy] --metric M
                     --groups SENS_JSON --align A --batch B --threads T --out OUT.json
                     [--width W]

--groups: lbprune's sens.json, read only for the groups (name, members = producer layers) and
their sparsity lists; the channel ranking is computed here: the sum over the group's producers of
each output channel's filter L1 norm, lowest pruned first, ties to the lower index; kept
k = C - floor(s*C), then k = min(C, max(a, ceil(k/a)*a)).
Masking equals physical removal: a forward hook zeroes the pruned channels where every consumer
reads them, i.e. the output of the BatchNorm that follows a producer (or of the producer itself when
no BN follows), for every producer of the group. The activations after that (ReLU, ReLU6, SiLU)
map 0 to 0, max pooling and upsampling keep zeros, and every input of a residual add is a producer
of the same group, so consumers see zeros exactly where the pruned model has no channel.
"""
import argparse
import json
import math
import os
import resource
import sys
import time

import torch
from torch import nn

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from torch_common import Evaluator, build_model  # noqa: E402


def kept_count(c, s, a):
    k = c - math.floor(s * c)
    if a > 1:
        k = min(c, max(a, math.ceil(k / a) * a))
    return max(k, 1)


def mask_points(model, members):
    """For each producer layer name: (the producer, the module whose output is masked)."""
    mods = list(model.named_modules())
    index = {n: i for i, (n, _) in enumerate(mods)}
    res = []
    for name in members:
        if name not in index:
            raise SystemExit("sens_torch.py: no module '%s' in the model" % name)
        prod = mods[index[name]][1]
        c = prod.weight.shape[0]
        after = mods[index[name] + 1][1] if index[name] + 1 < len(mods) else None
        if isinstance(after, nn.modules.batchnorm._BatchNorm) and after.num_features == c:
            res.append((prod, after))
        else:
            res.append((prod, prod))
    return res


def group_order(points):
    """Channel indices, the first to prune first."""
    c = points[0][0].weight.shape[0]
    norms = torch.zeros(c, dtype=torch.float64)
    for prod, _ in points:
        norms += prod.weight.detach().double().abs().reshape(c, -1).sum(1)
    return sorted(range(c), key=lambda i: (norms[i].item(), i))


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--arch", required=True)
    ap.add_argument("--width", type=int, default=16)
    ap.add_argument("--state-dict", required=True)
    ap.add_argument("--images", required=True)
    ap.add_argument("--labels")
    ap.add_argument("--metric", default="fidelity", choices=("fidelity", "top1"))
    ap.add_argument("--groups", required=True)
    ap.add_argument("--align", type=int, default=2)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--out", required=True)
    args = ap.parse_args()

    t_start = time.perf_counter()
    torch.set_num_threads(args.threads)
    model = build_model(args.arch, args.state_dict, args.width)
    ev = Evaluator(args.images, args.labels, args.metric, args.batch)
    with open(args.groups) as f:
        table = json.load(f)
    groups = [g for g in table["groups"] if "skipped" not in g]

    t0 = time.perf_counter()
    if args.metric == "fidelity":
        ev.reference(model)
        baseline = 1.0
    else:
        baseline = ev(model)
    evaluations = 1
    result = []
    for g in groups:
        points = mask_points(model, g["members"])
        order = group_order(points)
        c = len(order)
        values = []
        for s in g["sparsities"]:
            pruned = torch.tensor(order[:c - kept_count(c, s, args.align)], dtype=torch.long)
            mask = torch.ones(c)
            mask[pruned] = 0.0

            def hook(_m, _i, out, mask=mask):
                return out * mask.view(1, -1, *([1] * (out.dim() - 2)))
            hs = [m.register_forward_hook(hook) for _, m in points]
            values.append(ev(model))
            evaluations += 1
            for h in hs:
                h.remove()
        result.append({"name": g["name"], "sparsities": g["sparsities"], "values": values})
    t1 = time.perf_counter()
    doc = {"baseline": baseline, "groups": result, "evaluations": evaluations,
           "analysis_s": t1 - t0, "total_s": t1 - t_start,
           "rss_kb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss}
    with open(args.out + ".tmp", "w") as f:
        json.dump(doc, f, indent=1)
    os.replace(args.out + ".tmp", args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
