"""End-to-end check of `lbprune run` on the bundled example against PyTorch: every sens.csv value
equals a PyTorch reference implementation of the same semantics (tests/sens_reference.py rebuilds
the model with the group physically cut), and the top-1 accuracy PyTorch measures on the exported
pruned.pt and pruned_full.pth equals what lbprune reports in summary.json.

usage: /usr/bin/python3 tests/check_run.py LBPRUNE SOURCE_ROOT WORKDIR"""
import gzip
import json
import os
import shutil
import subprocess
import sys

import numpy as np
import torch

LBPRUNE, ROOT, WORK = sys.argv[1], os.path.abspath(sys.argv[2]), os.path.abspath(sys.argv[3])
DATA = "/usr/share/datasets/fashion-mnist"
EX = os.path.join(ROOT, "examples", "fashion_mnist")
LIMIT = 1000

if not os.path.exists(os.path.join(DATA, "t10k-images-idx3-ubyte.gz")):
    print("check_run: Fashion-MNIST is not installed (apt-get install dataset-fashion-mnist)")
    sys.exit(77)

shutil.rmtree(WORK, ignore_errors=True)  # a run of another model would be refused on resume
os.makedirs(WORK, exist_ok=True)
out = os.path.join(WORK, "out")
cfg = os.path.join(WORK, "cfg.toml")
with open(cfg, "w") as f:
    f.write(f"""[model]
path = "{EX}/model.pt"
full_model = "{EX}/model_full.pth"
dummy_input = [1, 1, 28, 28]
[data]
kind = "idx"
images = "{DATA}/t10k-images-idx3-ubyte.gz"
labels = "{DATA}/t10k-labels-idx1-ubyte.gz"
mean = [0.2860]
std = [0.3530]
batch_size = 128
limit = {LIMIT}
[metric]
name = "top1"
[prune]
metric_thres = 0.02
sparsities = [0.1, 0.2, 0.3, 0.4, 0.5]
channel_alignment = 2
[run]
output_dir = "{out}"
workers = 2
""")
r = subprocess.run([LBPRUNE, "run", cfg], capture_output=True, text=True)
print(r.stdout)
if r.returncode:
    print(r.stderr)
    sys.exit(1)

failures = 0
ref = subprocess.run([sys.executable, os.path.join(ROOT, "tests", "sens_reference.py"), ROOT,
                      os.path.join(out, "sens_analysis", "sens.json"), str(LIMIT), "2"],
                     capture_output=True, text=True)
print(ref.stdout.strip())
if ref.returncode:
    print("FAIL: sens values differ from the PyTorch reference:", ref.stderr.strip())
    failures += 1


def idx(path):
    raw = gzip.open(path).read()
    nd = raw[3]
    dims = [int.from_bytes(raw[4 + 4 * i:8 + 4 * i], "big") for i in range(nd)]
    return np.frombuffer(raw, np.uint8, offset=4 + 4 * nd).reshape(dims)


x = idx(os.path.join(DATA, "t10k-images-idx3-ubyte.gz"))[:LIMIT].astype(np.float32) / np.float32(255)
x = torch.from_numpy((x - np.float32(0.2860)) / np.float32(0.3530)).unsqueeze(1)
y = idx(os.path.join(DATA, "t10k-labels-idx1-ubyte.gz"))[:LIMIT].astype(np.int64)
summary = json.load(open(os.path.join(out, "summary.json")))
sys.path.insert(0, EX)
with torch.no_grad():
    ts = torch.jit.load(os.path.join(out, "pruned.pt"))
    full = torch.load(os.path.join(out, "pruned_full.pth"))
    full.eval()
    for name, model in (("pruned.pt", ts), ("pruned_full.pth", full)):
        acc = float((model(x).argmax(1).numpy() == y).mean())
        ok = abs(acc - summary["metric_after"]) < 1e-9
        print(f"{name}: PyTorch top-1 {acc:.5f}, lbprune reports {summary['metric_after']:.5f}"
              f" {'ok' if ok else 'FAIL'}")
        failures += not ok
    orig = torch.jit.load(os.path.join(EX, "model.pt"))
    acc0 = float((orig(x).argmax(1).numpy() == y).mean())
    ok = abs(acc0 - summary["metric_before"]) < 1e-9
    print(f"original: PyTorch top-1 {acc0:.5f}, lbprune {summary['metric_before']:.5f}"
          f" {'ok' if ok else 'FAIL'}")
    failures += not ok
print(f"check_run: MACs {summary['macs_before']} -> {summary['macs_after']} "
      f"({100 * (summary['macs_after'] / summary['macs_before'] - 1):.1f}%), "
      f"{failures} failure(s)")
sys.exit(1 if failures else 0)
