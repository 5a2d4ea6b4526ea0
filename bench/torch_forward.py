#!/usr/bin/env python3
"""PyTorch's side of the forward benchmark: the same protocol as bench/bench_forward.c, so that
bench/run.py interleaves the two (Debian's python3-torch; torch.jit.load of the same archive).

usage: torch_forward.py MODEL.pt INPUT.npy THREADS OUT_PREFIX
stdout "ready <load_s>" after loading and three warm-up forwards; per stdin line "run K": K forwards,
answered "<best_s> <median_s>"; "quit": compares every output of the last forward with
OUT_PREFIX.out<i>.npy (written by bench_forward just before) and answers
"rss <KB> maxdiff <max abs diff> maxref <max |torch output|>", then exits.
"""
import os
import resource
import sys
import time
import warnings

import numpy as np
import torch


def flatten(out):
    if isinstance(out, torch.Tensor):
        return [out]
    res = []
    for o in out:
        res += flatten(o)
    return res


def main():
    path, inp, threads, prefix = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
    torch.set_num_threads(threads)
    t0 = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = torch.jit.load(path, map_location="cpu").eval()
    x = torch.from_numpy(np.load(inp))
    with torch.no_grad():
        # TorchScript's profiling executor optimises the graph during the first runs
        for _ in range(3):
            out = model(x)
        print("ready %.3f" % (time.perf_counter() - t0), flush=True)
        for line in sys.stdin:
            w = line.split()
            if w and w[0] == "run":
                t = []
                for _ in range(int(w[1])):
                    s = time.perf_counter()
                    out = model(x)
                    t.append(time.perf_counter() - s)
                t.sort()
                print("%.6f %.6f" % (t[0], t[len(t) // 2]), flush=True)
            elif w and w[0] == "quit":
                diff, ref = 0.0, 0.0
                for i, o in enumerate(flatten(out)):
                    p = "%s.out%d.npy" % (prefix, i)
                    if not os.path.exists(p):
                        diff = float("inf")
                        break
                    ours = np.load(p)
                    if ours.shape != tuple(o.shape):
                        diff = float("inf")
                        break
                    diff = max(diff, float(np.abs(ours - o.numpy()).max()))
                    ref = max(ref, float(o.abs().max()))
                rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
                print("rss %d maxdiff %.3g maxref %.3g" % (rss, diff, ref), flush=True)
                return 0
    return 1


if __name__ == "__main__":
    sys.exit(main())
