#!/usr/bin/env python3
"""NNI's own SensitivityAnalysis (nni 2.10, L1 filter masks) on the bench's model and images, timed
by bench/run.py next to lbprune. NNI masks one conv's filters at a time (its BN bias still passes
through), so its values differ from lbprune's by design: only the time is compared.

usage: sens_nni.py --arch A --state-dict M.pth --images X.npy [--labels L.npy] --metric M
                   --groups SENS_JSON --sparsities 0.1,0.2,... --batch B --threads T --out OUT.json
                   [--width W]
The analysed layers are the first producers of lbprune's analysed groups (from SENS_JSON), so
both tools make the same number of evaluations.
"""
import argparse
import json
import logging
import os
import resource
import sys
import time
import warnings

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from torch_common import Evaluator, build_model  # noqa: E402


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--arch", required=True)
    ap.add_argument("--width", type=int, default=16)
    ap.add_argument("--state-dict", required=True)
    ap.add_argument("--images", required=True)
    ap.add_argument("--labels")
    ap.add_argument("--metric", default="fidelity", choices=("fidelity", "top1"))
    ap.add_argument("--groups", required=True)
    ap.add_argument("--sparsities", required=True)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--out", required=True)
    args = ap.parse_args()

    t_start = time.perf_counter()
    warnings.simplefilter("ignore")
    logging.getLogger("Sensitivity_Analysis").setLevel(logging.WARNING)
    import nni
    from nni.compression.pytorch.utils.sensitivity_analysis import SensitivityAnalysis
    torch.set_num_threads(args.threads)
    model = build_model(args.arch, args.state_dict, args.width)
    ev = Evaluator(args.images, args.labels, args.metric, args.batch)
    with open(args.groups) as f:
        layers = [g["name"] for g in json.load(f)["groups"] if "skipped" not in g]
    sparsities = [float(s) for s in args.sparsities.split(",")]

    t0 = time.perf_counter()
    if args.metric == "fidelity":
        ev.reference(model)
    calls = [0]

    def val(m):
        calls[0] += 1
        return ev(m)
    sa = SensitivityAnalysis(model, val, sparsities=sparsities, prune_type="l1")
    res = sa.analysis(val_args=[model], specified_layers=layers)
    t1 = time.perf_counter()
    doc = {"nni": getattr(nni, "__version__", "?"), "layers": len(res), "evaluations": calls[0],
           "values": {k: [v[s] for s in sorted(v)] for k, v in res.items()},
           "analysis_s": t1 - t0, "total_s": t1 - t_start,
           "rss_kb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss}
    with open(args.out + ".tmp", "w") as f:
        json.dump(doc, f, indent=1)
    os.replace(args.out + ".tmp", args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
