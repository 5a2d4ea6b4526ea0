"""What the PyTorch sides of the bench share (bench/sens_torch.py, bench/sens_nni.py): the eager
model rebuilt from make_models.py's state_dict, the images, and the metric computed as lbprune
defines it (engine/metric.h), so that values can be compared number for number."""
import os
import sys

import numpy as np
import torch

HERE = os.path.dirname(os.path.abspath(__file__))


def build_model(arch, state_dict, width=16, classes=80):
    if arch == "yolov5":
        sys.path.insert(0, os.path.join(HERE, "..", "tests"))
        import conformance_models as cm
        model = cm.YoloV5s(nc=classes, w=width)
    elif arch == "resnet_mini":
        sys.path.insert(0, os.path.join(HERE, "..", "tests"))
        import conformance_models as cm
        model = cm.ResNetMini()
    else:
        from torchvision import models as tvm
        try:
            model = getattr(tvm, arch)(weights=None)
        except TypeError:  # torchvision before 0.13
            model = getattr(tvm, arch)(pretrained=False)
    model.load_state_dict(torch.load(state_dict, map_location="cpu"))
    return model.eval()


def flat_outputs(out):
    """Every output tensor of a forward, depth first, as lbprune numbers a model's outputs."""
    if isinstance(out, torch.Tensor):
        return [out]
    res = []
    for o in out:
        res += flat_outputs(o)
    return res


class Evaluator:
    """The metric of a model over fixed images in fixed batches: top1 against labels, or fidelity
    against the original model's outputs (computed once, by reference())."""

    def __init__(self, images, labels, metric, batch):
        self.x = torch.from_numpy(np.load(images))
        self.labels = torch.from_numpy(np.load(labels)) if labels else None
        self.metric = metric
        self.batch = batch
        self.refs = None
        if metric == "top1" and self.labels is None:
            raise SystemExit("metric top1 needs labels")

    def batches(self):
        for i in range(0, self.x.shape[0], self.batch):
            yield i, self.x[i:i + self.batch]

    def reference(self, model):
        with torch.no_grad():
            self.refs = [torch.cat([o.reshape(o.shape[0], -1) for o in flat_outputs(model(xb))],
                                   1).double() for _, xb in self.batches()]

    def __call__(self, model):
        total, n = 0.0, 0
        with torch.no_grad():
            for bi, (i, xb) in enumerate(self.batches()):
                outs = flat_outputs(model(xb))
                if self.metric == "top1":
                    o = outs[0].reshape(outs[0].shape[0], -1)
                    lab = self.labels[i:i + xb.shape[0]]
                    mine = o.gather(1, lab.view(-1, 1))
                    # lbprune's rule: a sample counts when no logit is strictly greater
                    total += float(((o > mine).sum(1) < 1).sum())
                else:
                    a = torch.cat([o.reshape(o.shape[0], -1) for o in outs], 1).double()
                    b = self.refs[bi]
                    dot, na, nb = (a * b).sum(1), (a * a).sum(1), (b * b).sum(1)
                    cs = dot / (na.sqrt() * nb.sqrt())
                    cs = torch.where((na == 0) & (nb == 0), torch.ones_like(cs), cs)
                    cs = torch.where((na == 0) ^ (nb == 0), torch.zeros_like(cs), cs)
                    total += float(cs.sum())
                n += xb.shape[0]
        return total / n
