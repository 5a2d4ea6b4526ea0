"""PyTorch reference of the sensitivity analysis of the bundled Fashion-MNIST example: for every
group and sparsity of a sens.json written by lbprune (top1 metric), rebuild the model with that
group's channels physically removed (smaller conv / BN / linear tensors, not zeroed ones), evaluate
it on the same images, and compare within 1e-4.

usage: /usr/bin/python3 tests/sens_reference.py SOURCE_ROOT SENS_JSON [LIMIT] [ALIGN]
"""
import gzip
import json
import math
import os
import sys

import numpy as np
import torch
import torch.nn.functional as F

DATA = "/usr/share/datasets/fashion-mnist"
MEAN, STD = 0.2860, 0.3530

# Each group of the example: its producers (output channels, summed L1 norms rank them) and the
# tensors cut along the group's channels: (key, dim).
GROUPS = {
    "stem.0": {"producers": ["stem.0.weight", "block.conv2.weight"],
               "cuts": [("stem.0.weight", 0), ("block.conv2.weight", 0), ("block.conv1.weight", 1),
                        ("down.0.weight", 1)] + [("stem.1." + p, 0) for p in
                                                 ("weight", "bias", "running_mean", "running_var")]
               + [("block.bn2." + p, 0) for p in ("weight", "bias", "running_mean", "running_var")]},
    "block.conv1": {"producers": ["block.conv1.weight"],
                    "cuts": [("block.conv1.weight", 0), ("block.conv2.weight", 1)]
                    + [("block.bn1." + p, 0) for p in ("weight", "bias", "running_mean",
                                                       "running_var")]},
    "down.0": {"producers": ["down.0.weight"],
               "cuts": [("down.0.weight", 0), ("fc.weight", 1)]
               + [("down.1." + p, 0) for p in ("weight", "bias", "running_mean", "running_var")]},
}


def read_idx(path):
    raw = gzip.open(path).read()
    nd = raw[3]
    dims = [int.from_bytes(raw[4 + 4 * i:8 + 4 * i], "big") for i in range(nd)]
    return np.frombuffer(raw, dtype=np.uint8, offset=4 + 4 * nd).reshape(dims)


def kept_count(c, s, a):
    k = c - math.floor(s * c)
    if a > 1:
        k = min(c, max(a, math.ceil(k / a) * a))
    return max(k, 1)


def forward(sd, x):
    def bn(x, p):
        return F.batch_norm(x, sd[p + ".running_mean"], sd[p + ".running_var"], sd[p + ".weight"],
                            sd[p + ".bias"], False, 0.0, 1e-5)
    x = F.max_pool2d(F.relu(bn(F.conv2d(x, sd["stem.0.weight"], padding=1), "stem.1")), 2)
    y = F.relu(bn(F.conv2d(x, sd["block.conv1.weight"], padding=1), "block.bn1"))
    y = bn(F.conv2d(y, sd["block.conv2.weight"], padding=1), "block.bn2")
    x = F.relu(x + y)
    x = F.relu(bn(F.conv2d(x, sd["down.0.weight"], stride=2, padding=1), "down.1"))
    x = torch.flatten(F.adaptive_avg_pool2d(x, 1), 1)
    return F.linear(x, sd["fc.weight"], sd["fc.bias"])


def pruned(sd, group, s, align):
    g = GROUPS[group]
    c = sd[g["producers"][0]].shape[0]
    norms = sum(sd[p].double().abs().reshape(c, -1).sum(1) for p in g["producers"])
    k = kept_count(c, s, align)
    order = sorted(range(c), key=lambda i: (norms[i].item(), i))  # lowest first, ties: lower index
    keep = torch.tensor(sorted(order[c - k:]))
    out = dict(sd)
    for key, dim in g["cuts"]:
        out[key] = sd[key].index_select(dim, keep).contiguous()
    return out


def main():
    root, sens_json = sys.argv[1], sys.argv[2]
    limit = int(sys.argv[3]) if len(sys.argv) > 3 else 256
    align = int(sys.argv[4]) if len(sys.argv) > 4 else 2
    sd = torch.load(os.path.join(root, "examples/fashion_mnist/model_state.pth"))
    x = read_idx(DATA + "/t10k-images-idx3-ubyte.gz")[:limit]
    y = torch.from_numpy(read_idx(DATA + "/t10k-labels-idx1-ubyte.gz")[:limit].astype(np.int64))
    x = (torch.from_numpy(x.astype(np.float32) / 255.0).unsqueeze(1) - MEAN) / STD
    doc = json.load(open(sens_json))
    bad = 0
    with torch.no_grad():
        base = (forward(sd, x).argmax(1) == y).double().mean().item()
        if abs(base - doc["baseline"]) > 1e-4:
            print(f"baseline: torch {base} lbprune {doc['baseline']}")
            bad += 1
        n = 0
        for g in doc["groups"]:
            if "skipped" in g:
                continue
            for s, v in zip(g["sparsities"], g["values"]):
                if v is None:
                    continue
                ref = (forward(pruned(sd, g["name"], s, align), x).argmax(1) == y).double().mean().item()
                n += 1
                if abs(ref - v) > 1e-4:
                    print(f"{g['name']} s={s}: torch {ref} lbprune {v}")
                    bad += 1
    print(f"sens_reference: {n} values compared, {bad} differ")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
