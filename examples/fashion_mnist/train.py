"""Train the bundled example on Debian's Fashion-MNIST and write the files lbprune works on:
model.pt (traced TorchScript), model_state.pth (state_dict) and model_full.pth (torch.save(model)).

Run with Debian's PyTorch:  /usr/bin/python3 examples/fashion_mnist/train.py   (~25 min, 1 thread)

Sparsity training (as network slimming does before pruning): an L1 penalty on every batch norm's
scale and shift drives the channels the model does not need to a constant zero output, and a
stronger weight decay on the conv weights shrinks the filters that then receive no gradient, so the
L1 filter ranking lbprune uses finds them first. Plain training (--slim 0) gives a model where
every channel carries something and pruning without fine-tuning costs accuracy at once.
Data: /usr/share/datasets/fashion-mnist (apt-get install dataset-fashion-mnist)."""
import argparse
import gzip
import os
import sys

import numpy as np
import torch
from torch import nn

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from model import FashionCNN  # noqa: E402

DATA = "/usr/share/datasets/fashion-mnist"
MEAN, STD = 0.2860, 0.3530  # Fashion-MNIST training-set pixel statistics (of x / 255)


def load_idx(name):
    with gzip.open(os.path.join(DATA, name), "rb") as f:
        raw = f.read()
    ndim = raw[3]
    dims = [int.from_bytes(raw[4 + 4 * i:8 + 4 * i], "big") for i in range(ndim)]
    return np.frombuffer(raw, dtype=np.uint8, offset=4 + 4 * ndim).reshape(dims)


def to_input(images):
    x = torch.from_numpy(images.astype(np.float32) / 255.0).unsqueeze(1)
    return (x - MEAN) / STD


def evaluate(model, x, y):
    model.eval()
    correct = 0
    with torch.no_grad():
        for i in range(0, len(x), 1000):
            correct += (model(x[i:i + 1000]).argmax(1) == y[i:i + 1000]).sum().item()
    return correct / len(x)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--epochs", type=int, default=8)
    ap.add_argument("--width", type=int, default=32)
    ap.add_argument("--slim", type=float, default=1e-2,
                    help="L1 penalty on batch-norm scales and shifts (0: plain training)")
    ap.add_argument("--wd-conv", type=float, default=5e-3, help="weight decay of conv/linear weights")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--out", default=os.path.dirname(os.path.abspath(__file__)))
    args = ap.parse_args()
    torch.manual_seed(0)
    torch.set_num_threads(args.threads)

    xtr, ytr = to_input(load_idx("train-images-idx3-ubyte.gz")), torch.from_numpy(
        load_idx("train-labels-idx1-ubyte.gz").astype(np.int64))
    xte, yte = to_input(load_idx("t10k-images-idx3-ubyte.gz")), torch.from_numpy(
        load_idx("t10k-labels-idx1-ubyte.gz").astype(np.int64))

    model = FashionCNN(width=args.width)
    bn = [p for m in model.modules() if isinstance(m, nn.BatchNorm2d) for p in (m.weight, m.bias)]
    bn_ids = {id(p) for p in bn}
    rest = [p for p in model.parameters() if id(p) not in bn_ids]
    opt = torch.optim.SGD([{"params": rest, "weight_decay": args.wd_conv},
                           {"params": bn, "weight_decay": 0.0}], lr=0.05, momentum=0.9)
    steps = args.epochs * (len(xtr) // 128)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=0.1, total_steps=steps)
    loss_fn = nn.CrossEntropyLoss()
    for epoch in range(args.epochs):
        model.train()
        perm = torch.randperm(len(xtr))
        for i in range(0, len(xtr) - 127, 128):
            idx = perm[i:i + 128]
            opt.zero_grad()
            loss = loss_fn(model(xtr[idx]), ytr[idx])
            if args.slim > 0:
                loss = loss + args.slim * sum(p.abs().sum() for p in bn)
            loss.backward()
            opt.step()
            sched.step()
        print(f"epoch {epoch + 1}: test accuracy {evaluate(model, xte, yte):.4f}", flush=True)

    model.eval()
    traced = torch.jit.trace(model, torch.zeros(1, 1, 28, 28))
    traced.save(os.path.join(args.out, "model.pt"))
    torch.save(model.state_dict(), os.path.join(args.out, "model_state.pth"))
    torch.save(model, os.path.join(args.out, "model_full.pth"))
    print(f"final test accuracy {evaluate(model, xte, yte):.4f}; wrote model.pt, model_state.pth, "
          f"model_full.pth to {args.out}")


if __name__ == "__main__":
    main()
