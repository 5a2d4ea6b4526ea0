"""Writes the small fixtures of tests/test_ir_exec.c (commit-ready, a few KiB each):

  data/fashion_ref/  inputs and PyTorch's outputs of examples/fashion_mnist/model.pt (batch 1 and 4),
                     and its 'down.2' activation (the graph cut there) for batch 1
  data/ts/           tiny TorchScript archives: a model traced with two methods (forward and
                     dummy_forward), a scripted model with control flow, a traced model using an op
                     the importer does not know (cumsum), with inputs and PyTorch's outputs

Run from the repository root with Debian's PyTorch:  /usr/bin/python3 tests/gen_ts_fixtures.py
Values come from torch.jit.load of the archives, so they are what PyTorch computes on the files
the test imports."""
import os
import sys

import numpy as np
import torch
from torch import nn

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DATA = os.path.join(ROOT, "tests", "data")


def save(path, t):
    np.save(path, t.detach().numpy().astype(np.float32))


def fashion():
    out = os.path.join(DATA, "fashion_ref")
    os.makedirs(out, exist_ok=True)
    m = torch.jit.load(os.path.join(ROOT, "examples", "fashion_mnist", "model.pt")).eval()
    g = torch.Generator().manual_seed(1234)
    for b in (1, 4):
        x = torch.rand(b, 1, 28, 28, generator=g)
        with torch.no_grad():
            y = m(x)
        save(os.path.join(out, f"input_b{b}.npy"), x)
        save(os.path.join(out, f"output_b{b}.npy"), y)
    # the activation after down.2 (ReLU) for the batch-1 input: what cutting the outputs there gives
    x = torch.from_numpy(np.load(os.path.join(out, "input_b1.npy")))
    with torch.no_grad():
        h = m.stem(x)
        h = m.block(h)
        h = m.down(h)
    save(os.path.join(out, "cut_down2_b1.npy"), h)


class TwoHeads(nn.Module):
    """forward post-processes (softmax); dummy_forward is the raw network."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(2, 3, 3, padding=1)
        self.bn = nn.BatchNorm2d(3)

    def dummy_forward(self, x):
        return torch.relu(self.bn(self.conv(x)))

    def forward(self, x):
        return torch.softmax(self.dummy_forward(x), 1)


class Scripted(nn.Module):
    def forward(self, x):
        if bool(x.sum() > 0):
            return x * 2
        return x


class Unsupported(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(1, 2, 1)

    def forward(self, x):
        return torch.cumsum(self.conv(x), 1)


def ts():
    out = os.path.join(DATA, "ts")
    os.makedirs(out, exist_ok=True)
    torch.manual_seed(7)
    m = TwoHeads().eval()
    with torch.no_grad():
        m.bn.running_mean.uniform_(-0.5, 0.5)
        m.bn.running_var.uniform_(0.5, 1.5)
    x = torch.randn(2, 2, 5, 5)
    t = torch.jit.trace_module(m, {"forward": x, "dummy_forward": x})
    t.save(os.path.join(out, "two_methods.pt"))
    t = torch.jit.load(os.path.join(out, "two_methods.pt"))
    save(os.path.join(out, "two_methods_in.npy"), x)
    with torch.no_grad():
        save(os.path.join(out, "two_methods_forward.npy"), t(x))
        save(os.path.join(out, "two_methods_dummy.npy"), t.dummy_forward(x))
    torch.jit.script(Scripted()).save(os.path.join(out, "scripted.pt"))
    torch.jit.trace(Unsupported().eval(), torch.randn(1, 1, 3, 3)).save(os.path.join(out, "unsupported_op.pt"))


if __name__ == "__main__":
    fashion()
    ts()
    print("fixtures written under", DATA, file=sys.stderr)
