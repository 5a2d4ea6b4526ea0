"""Models of the conformance suite (issue 3): each one exercises the ops and the traced code shapes
of a real architecture family. tests/gen_models.py traces them and writes PyTorch's outputs.

Every entry of MODELS is a Spec: a builder returning an nn.Module, the input shapes without the
batch dimension, and the batch sizes the C test runs (the first is the one traced with, so shape
arithmetic recorded from x.shape must generalise to the others)."""
import collections

import torch
import torch.nn.functional as F
from torch import nn

Spec = collections.namedtuple("Spec", "name build inputs batches torchvision big methods")


def spec(name, build, inputs, batches=(1, 2), torchvision=False, big=False, methods=()):
    """methods: names of more methods traced into the archive next to forward (the C test
    imports each with npe_eval_torchscript's forward_name)."""
    return Spec(name, build, [tuple(s) for s in inputs], tuple(batches), torchvision, big,
                tuple(methods))


# ---- building blocks ------------------------------------------------------------------------

class ConvBNAct(nn.Module):
    """YOLOv5's Conv: conv without bias, BN, SiLU (or another activation)."""

    def __init__(self, cin, cout, k=1, s=1, p=None, g=1, act=None):
        super().__init__()
        self.conv = nn.Conv2d(cin, cout, k, s, k // 2 if p is None else p, groups=g, bias=False)
        self.bn = nn.BatchNorm2d(cout)
        self.act = nn.SiLU() if act is None else act

    def forward(self, x):
        return self.act(self.bn(self.conv(x)))


class Bottleneck(nn.Module):
    def __init__(self, c, shortcut=True):
        super().__init__()
        self.cv1 = ConvBNAct(c, c, 1)
        self.cv2 = ConvBNAct(c, c, 3)
        self.add = shortcut

    def forward(self, x):
        return x + self.cv2(self.cv1(x)) if self.add else self.cv2(self.cv1(x))


class C3(nn.Module):
    """CSP bottleneck with 3 convolutions: two branches joined by cat."""

    def __init__(self, cin, cout, n=1, shortcut=True):
        super().__init__()
        c = cout // 2
        self.cv1 = ConvBNAct(cin, c, 1)
        self.cv2 = ConvBNAct(cin, c, 1)
        self.cv3 = ConvBNAct(2 * c, cout, 1)
        self.m = nn.Sequential(*(Bottleneck(c, shortcut) for _ in range(n)))

    def forward(self, x):
        return self.cv3(torch.cat((self.m(self.cv1(x)), self.cv2(x)), 1))


class SPPF(nn.Module):
    """One max pool applied three times in a row; the four tensors are joined by cat."""

    def __init__(self, cin, cout, k=5):
        super().__init__()
        c = cin // 2
        self.cv1 = ConvBNAct(cin, c, 1)
        self.cv2 = ConvBNAct(c * 4, cout, 1)
        self.m = nn.MaxPool2d(kernel_size=k, stride=1, padding=k // 2)

    def forward(self, x):
        x = self.cv1(x)
        y1 = self.m(x)
        y2 = self.m(y1)
        return self.cv2(torch.cat((x, y1, y2, self.m(y2)), 1))


class Focus(nn.Module):
    """Early YOLOv5 stem: space-to-depth through strided slices, then a conv."""

    def __init__(self, cin, cout, k=3):
        super().__init__()
        self.conv = ConvBNAct(cin * 4, cout, k)

    def forward(self, x):
        return self.conv(torch.cat((x[..., ::2, ::2], x[..., 1::2, ::2], x[..., ::2, 1::2],
                                    x[..., 1::2, 1::2]), 1))


class Detect(nn.Module):
    """YOLOv5 head: per level a 1x1 conv, view to (bs, na, no, ny, nx) with sizes read from the
    tensor, permute to (bs, na, ny, nx, no). With decode, the boxes are decoded against grids made
    for the traced input size (as a traced YOLOv5 does: its grid is a constant of the trace)."""

    def __init__(self, nc, anchors, ch, strides, decode=False, img_hw=None):
        super().__init__()
        self.nc = nc
        self.no = nc + 5
        self.nl = len(anchors)
        self.na = len(anchors[0]) // 2
        self.decode = decode
        self.m = nn.ModuleList(nn.Conv2d(c, self.no * self.na, 1) for c in ch)
        self.strides = strides
        if decode:
            for i, (a, s) in enumerate(zip(anchors, strides)):
                ny, nx = img_hw[0] // s, img_hw[1] // s
                yv, xv = torch.meshgrid(torch.arange(ny), torch.arange(nx), indexing="ij")
                grid = torch.stack((xv, yv), 2).view(1, 1, ny, nx, 2).float() - 0.5
                ag = torch.tensor(a, dtype=torch.float32).view(1, self.na, 1, 1, 2)
                self.register_buffer("grid%d" % i, grid)
                self.register_buffer("anchor_grid%d" % i, ag.expand(1, self.na, ny, nx, 2).clone())

    def raw(self, x):
        """The heads without decoding, for YoloV5s.dummy_forward."""
        out = []
        for i in range(self.nl):
            t = self.m[i](x[i])
            bs, _, ny, nx = t.shape
            out.append(t.view(bs, self.na, self.no, ny, nx).permute(0, 1, 3, 4, 2).contiguous())
        return out

    def forward(self, x):
        z = []
        out = []
        for i in range(self.nl):
            t = self.m[i](x[i])
            bs, _, ny, nx = t.shape
            t = t.view(bs, self.na, self.no, ny, nx).permute(0, 1, 3, 4, 2).contiguous()
            out.append(t)
            if self.decode:
                y = t.sigmoid()
                xy, wh, conf = y.split((2, 2, self.nc + 1), 4)
                xy = (xy * 2 + getattr(self, "grid%d" % i)) * self.strides[i]
                wh2 = wh * 2
                wh = wh2 * wh2 * getattr(self, "anchor_grid%d" % i)
                y = torch.cat((xy, wh, conf), 4)
                z.append(y.view(bs, self.na * nx * ny, self.no))
        if self.decode:
            return torch.cat(z, 1), out
        return out


class YoloV5s(nn.Module):
    """A narrow YOLOv5s: backbone of Conv and C3, SPPF, a PAN neck with nearest upsampling and cat,
    Detect on three levels (strides 8, 16, 32)."""

    def __init__(self, nc=3, w=8, decode=False, focus=False, img_hw=(64, 64)):
        super().__init__()
        self.stem = Focus(3, w) if focus else ConvBNAct(3, w, 6, 2, 2)
        self.b1 = ConvBNAct(w, 2 * w, 3, 2)
        self.b2 = C3(2 * w, 2 * w, 1)
        self.b3 = ConvBNAct(2 * w, 4 * w, 3, 2)
        self.b4 = C3(4 * w, 4 * w, 2)
        self.b5 = ConvBNAct(4 * w, 8 * w, 3, 2)
        self.b6 = C3(8 * w, 8 * w, 1)
        self.b7 = ConvBNAct(8 * w, 16 * w, 3, 2)
        self.b8 = C3(16 * w, 16 * w, 1)
        self.sppf = SPPF(16 * w, 16 * w)
        self.h1 = ConvBNAct(16 * w, 8 * w, 1)
        self.up = nn.Upsample(None, 2, "nearest")
        self.h2 = C3(16 * w, 8 * w, 1, False)
        self.h3 = ConvBNAct(8 * w, 4 * w, 1)
        self.h4 = C3(8 * w, 4 * w, 1, False)
        self.h5 = ConvBNAct(4 * w, 4 * w, 3, 2)
        self.h6 = C3(8 * w, 8 * w, 1, False)
        self.h7 = ConvBNAct(8 * w, 8 * w, 3, 2)
        self.h8 = C3(16 * w, 16 * w, 1, False)
        anchors = [[10, 13, 16, 30, 33, 23], [30, 61, 62, 45, 59, 119],
                   [116, 90, 156, 198, 373, 326]]
        self.detect = Detect(nc, anchors, (4 * w, 8 * w, 16 * w), (8, 16, 32), decode, img_hw)

    def forward(self, x):
        return self.detect(self.neck(x))

    def dummy_forward(self, x):
        """Export-friendly entry point without the box decoding (traced as a second method)."""
        return self.detect.raw(self.neck(x))

    def neck(self, x):
        x = self.b2(self.b1(self.stem(x)))
        p3 = self.b4(self.b3(x))
        p4 = self.b6(self.b5(p3))
        x = self.sppf(self.b8(self.b7(p4)))
        h1 = self.h1(x)
        x = self.h2(torch.cat([self.up(h1), p4], 1))
        h3 = self.h3(x)
        o3 = self.h4(torch.cat([self.up(h3), p3], 1))
        o4 = self.h6(torch.cat([self.h5(o3), h3], 1))
        o5 = self.h8(torch.cat([self.h7(o4), h1], 1))
        return [o3, o4, o5]


class DoubleConv(nn.Module):
    def __init__(self, cin, cout):
        super().__init__()
        self.net = nn.Sequential(
            nn.Conv2d(cin, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(True),
            nn.Conv2d(cout, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(True))

    def forward(self, x):
        return self.net(x)


class Up(nn.Module):
    """Transposed conv up, pad to the skip's size (shape arithmetic on sizes), cat, double conv."""

    def __init__(self, cin, cout, odd=False):
        super().__init__()
        if odd:  # k3 s2 p1 with output_padding 1 doubles the size too
            self.up = nn.ConvTranspose2d(cin, cin // 2, 3, stride=2, padding=1, output_padding=1)
        else:
            self.up = nn.ConvTranspose2d(cin, cin // 2, 2, stride=2)
        self.conv = DoubleConv(cin, cout)

    def forward(self, x1, x2):
        x1 = self.up(x1)
        dy = x2.size()[2] - x1.size()[2]
        dx = x2.size()[3] - x1.size()[3]
        x1 = F.pad(x1, [dx // 2, dx - dx // 2, dy // 2, dy - dy // 2])
        return self.conv(torch.cat([x2, x1], dim=1))


class UNet(nn.Module):
    def __init__(self, cin=3, classes=2, w=8):
        super().__init__()
        self.inc = DoubleConv(cin, w)
        self.d1 = nn.Sequential(nn.MaxPool2d(2), DoubleConv(w, 2 * w))
        self.d2 = nn.Sequential(nn.MaxPool2d(2), DoubleConv(2 * w, 4 * w))
        self.d3 = nn.Sequential(nn.MaxPool2d(2), DoubleConv(4 * w, 8 * w))
        self.u1 = Up(8 * w, 4 * w, odd=True)
        self.u2 = Up(4 * w, 2 * w)
        self.u3 = Up(2 * w, w, odd=True)
        # a transposed conv with stride 3, dilation and output_padding 2 (< stride and < dilation)
        self.extra = nn.ConvTranspose2d(w, w, 3, stride=3, padding=2, output_padding=2,
                                        dilation=3, groups=2)
        self.outc = nn.Conv2d(w, classes, 1)

    def forward(self, x):
        x1 = self.inc(x)
        x2 = self.d1(x1)
        x3 = self.d2(x2)
        x4 = self.d3(x3)
        x = self.u1(x4, x3)
        x = self.u2(x, x2)
        x = self.u3(x, x1)
        return self.outc(x), self.extra(x)


class SEConv(nn.Module):
    """Squeeze-excitation the torchvision way: adaptive avg pool, 1x1 convs, sigmoid, mul."""

    def __init__(self, c, r=4):
        super().__init__()
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc1 = nn.Conv2d(c, c // r, 1)
        self.fc2 = nn.Conv2d(c // r, c, 1)

    def forward(self, x):
        s = torch.sigmoid(self.fc2(F.relu(self.fc1(self.pool(x)))))
        return x * s


class SELinear(nn.Module):
    """Squeeze-excitation the SENet way: mean over H and W, linear layers, sigmoid, view, mul."""

    def __init__(self, c, r=4):
        super().__init__()
        self.fc = nn.Sequential(nn.Linear(c, c // r, bias=False), nn.ReLU(inplace=True),
                                nn.Linear(c // r, c, bias=False), nn.Sigmoid())

    def forward(self, x):
        b, c, _, _ = x.size()
        y = x.mean((2, 3))
        y = self.fc(y).view(b, c, 1, 1)
        return x * y


class SENet(nn.Module):
    """Both SE styles after conv-BN-ReLU stages (the expand_as form has its own model)."""

    def __init__(self):
        super().__init__()
        self.c1 = ConvBNAct(3, 16, 3, act=nn.ReLU())
        self.se1 = SEConv(16)
        self.c2 = ConvBNAct(16, 16, 3, 2, act=nn.ReLU())
        self.se2 = SELinear(16)

    def forward(self, x):
        return self.se2(self.c2(self.se1(self.c1(x))))


class PixelShuffleNet(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 12 * 4, 3, padding=1)
        self.ps = nn.PixelShuffle(2)
        self.conv2 = nn.Conv2d(12, 3 * 9, 3, padding=1)

    def forward(self, x):
        y = self.ps(self.conv(x))
        return y, F.pixel_shuffle(self.conv2(y), 3)


class PadNet(nn.Module):
    def __init__(self):
        super().__init__()
        self.z1 = nn.ZeroPad2d((1, 2, 3, 0))
        self.conv = nn.Conv2d(3, 4, 3)
        self.z2 = nn.ZeroPad2d(1)
        self.c = nn.ConstantPad2d((2, 0, 1, 1), 0.5)

    def forward(self, x):
        y = self.z2(self.conv(self.z1(x)))
        return y, self.c(y)


class StackMean(nn.Module):
    def __init__(self):
        super().__init__()
        self.a = nn.Conv2d(3, 6, 3, padding=1)
        self.b = nn.Conv2d(3, 6, 1)
        self.c = nn.Conv2d(3, 6, 3, padding=2, dilation=2)

    def forward(self, x):
        s = torch.stack([self.a(x), self.b(x), self.c(x)], dim=1)  # (B, 3, 6, H, W)
        m = s.mean(1)
        t = torch.stack((m, m * 2), 0).mean(0)
        return m, t.mean(dim=(2, 3), keepdim=True), torch.stack([m, t], dim=-1)


class LeakyNet(nn.Module):
    def __init__(self):
        super().__init__()
        self.c1 = nn.Conv2d(3, 8, 3, padding=1)
        self.a1 = nn.LeakyReLU()  # slope 0.01
        self.c2 = nn.Conv2d(8, 8, 3, padding=1)
        self.a2 = nn.LeakyReLU(0.1, inplace=True)

    def forward(self, x):
        y = self.a1(self.c1(x))
        return self.a2(self.c2(y)), F.leaky_relu(y - 0.5, 0.2)


class Bilinear(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3, padding=1)

    def forward(self, x):
        y = self.conv(x)
        return (F.interpolate(y, scale_factor=2, mode="bilinear", align_corners=False),
                F.interpolate(y, scale_factor=2, mode="bilinear", align_corners=True),
                F.interpolate(y, size=(13, 7), mode="bilinear", align_corners=False),
                F.interpolate(y, size=(13, 7), mode="bilinear", align_corners=True),
                F.interpolate(y, scale_factor=1.5, mode="bilinear", align_corners=False),
                F.interpolate(y, scale_factor=0.5, mode="bilinear", align_corners=False))


class Nearest(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3, padding=1)
        self.up = nn.Upsample(scale_factor=2, mode="nearest")

    def forward(self, x):
        y = self.conv(x)
        return (self.up(y), F.interpolate(y, size=(13, 7), mode="nearest"),
                F.interpolate(y, scale_factor=(3, 2), mode="nearest"))


class HSigmoidSE(nn.Module):
    def __init__(self, c, sq):
        super().__init__()
        self.fc1 = nn.Conv2d(c, sq, 1)
        self.fc2 = nn.Conv2d(sq, c, 1)
        self.act = nn.ReLU()
        self.gate = nn.Hardsigmoid()

    def forward(self, x):
        s = F.adaptive_avg_pool2d(x, 1)
        return self.gate(self.fc2(self.act(self.fc1(s)))) * x


class MBV3Block(nn.Module):
    """MobileNetV3 inverted residual: expand 1x1 + Hardswish, depthwise 5x5 stride 2, SE with
    Hardsigmoid, project 1x1; then a ReLU6 block with a residual add."""

    def __init__(self):
        super().__init__()
        self.stem = ConvBNAct(3, 16, 3, 2, act=nn.Hardswish())
        self.expand = ConvBNAct(16, 48, 1, act=nn.Hardswish())
        self.dw = ConvBNAct(48, 48, 5, 2, g=48, act=nn.Hardswish())
        self.se = HSigmoidSE(48, 12)
        self.project = ConvBNAct(48, 24, 1, act=nn.Identity())
        self.e2 = ConvBNAct(24, 72, 1, act=nn.ReLU6(inplace=True))
        self.dw2 = ConvBNAct(72, 72, 3, 1, g=72, act=nn.ReLU6())
        self.p2 = ConvBNAct(72, 24, 1, act=nn.Identity())
        self.head = nn.Sequential(nn.Linear(24, 32), nn.Hardswish(), nn.Dropout(0.2),
                                  nn.Linear(32, 10))

    def forward(self, x):
        y = self.project(self.se(self.dw(self.expand(self.stem(x)))))
        y = y + self.p2(self.dw2(self.e2(y)))
        y = F.hardtanh(y, -2.0, 2.5)
        return self.head(torch.flatten(F.adaptive_avg_pool2d(y, (1, 1)), 1))


class GroupedConv(nn.Module):
    def __init__(self):
        super().__init__()
        self.g4 = nn.Conv2d(8, 16, 3, padding=1, groups=4)
        self.dw_mult = nn.Conv2d(16, 32, 3, stride=2, padding=1, groups=16, bias=False)
        self.g2_dil = nn.Conv2d(32, 8, 3, padding=2, dilation=2, groups=2)
        self.rect = nn.Conv2d(8, 6, (1, 3), stride=(1, 2), padding=(0, 1), groups=2)
        self.dw = nn.Conv2d(6, 6, (3, 5), stride=(2, 1), padding=(1, 2), groups=6)

    def forward(self, x):
        y = self.g2_dil(self.dw_mult(self.g4(x)))
        return y, self.dw(self.rect(y))


class PoolModes(nn.Module):
    def forward(self, x):
        return (F.avg_pool2d(x, 3, 2, 1, ceil_mode=True, count_include_pad=False),
                F.avg_pool2d(x, 3, 2, 1, ceil_mode=True, count_include_pad=True),
                F.avg_pool2d(x, 2, ceil_mode=False),
                F.avg_pool2d(x, (2, 3), (2, 2), (1, 1), ceil_mode=True, count_include_pad=False),
                F.max_pool2d(x, 3, 2, 1, ceil_mode=True),
                F.max_pool2d(x, 2, 2, ceil_mode=True),
                F.max_pool2d(x, 3, 2, 1, dilation=2),
                F.adaptive_avg_pool2d(x, (3, 5)),
                F.adaptive_avg_pool2d(x, 4))


class PoolNet(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 5, 3, padding=1)
        self.pools = PoolModes()

    def forward(self, x):
        return self.pools(self.conv(x))


class ChunkSplit(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 8, 3, padding=1)
        self.mix = nn.Conv2d(8, 4, 1)

    def forward(self, x):
        y = self.conv(x)
        a, b, c = y.chunk(3, dim=1)                 # 3, 3, 2 channels
        d, e = torch.split(y, [5, 3], dim=1)
        f, g, h, i = y.split(2, dim=1)
        p, q = torch.chunk(y, 2, dim=2)             # along H
        r = torch.split(y, 3, dim=3)                # along W, last part short
        return (a * 2, b + 1, c, d, self.mix(torch.cat([f, i, h, g], 1)) * e.mean(1, True),
                p - q, r[-1], r[0])


class FlattenLinear(nn.Module):
    """Classifier heads: torch.flatten, x.view(x.size(0), -1), reshape and permute into linear
    layers; softmax on the logits."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3, stride=2, padding=1)
        self.fc1 = nn.Linear(4 * 4 * 4, 10)
        self.fc2 = nn.Linear(4 * 4 * 4, 6)
        self.fc3 = nn.Linear(4, 5)

    def forward(self, x):
        y = F.relu(self.conv(x))  # (B, 4, 4, 4)
        a = self.fc1(torch.flatten(y, 1))
        b = self.fc2(y.view(y.size(0), -1))
        bs, c, h, w = y.shape
        t = y.permute(0, 2, 3, 1).reshape(bs, h * w, c)
        return F.softmax(a, dim=1), b, self.fc3(t), torch.softmax(t, -1)


class DropoutNet(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 8, 3, padding=1)
        self.d2 = nn.Dropout2d(0.3)
        self.ad = nn.AlphaDropout(0.1)
        self.fc = nn.Sequential(nn.Dropout(0.5), nn.Linear(8, 4), nn.Dropout(p=0.2))

    def forward(self, x):
        y = self.ad(self.d2(self.conv(x)))
        y = F.dropout(y, 0.4, training=self.training)
        return self.fc(y.mean((2, 3)))


class Broadcast(nn.Module):
    """Two inputs; add/sub/mul/div with broadcasting against each other, parameters and scalars."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(4, 4, 1)
        self.scale = nn.Parameter(torch.rand(1, 4, 1, 1) + 0.5)
        self.register_buffer("shift", torch.randn(4, 1, 1))

    def forward(self, x, g):
        y = self.conv(x) * self.scale + self.shift
        z = (y - g) / (1.5 + g * g)
        return z, 1 - y, y / 4, torch.sigmoid(g) * x + x * 0.5


class VGGSmall(nn.Module):
    """vgg11_bn's shape at a tenth of the width: conv-BN-ReLU stacks, max pools, adaptive pool,
    a dropout classifier."""

    def __init__(self, classes=10):
        super().__init__()
        cfg = [8, "M", 16, "M", 32, 32, "M", 64, 64, "M", 64, 64, "M"]
        layers, c = [], 3
        for v in cfg:
            if v == "M":
                layers.append(nn.MaxPool2d(2, 2))
            else:
                layers += [nn.Conv2d(c, v, 3, padding=1), nn.BatchNorm2d(v), nn.ReLU(True)]
                c = v
        self.features = nn.Sequential(*layers)
        self.avgpool = nn.AdaptiveAvgPool2d((2, 2))
        self.classifier = nn.Sequential(nn.Linear(64 * 4, 64), nn.ReLU(True), nn.Dropout(),
                                        nn.Linear(64, 64), nn.ReLU(True), nn.Dropout(),
                                        nn.Linear(64, classes))

    def forward(self, x):
        return self.classifier(torch.flatten(self.avgpool(self.features(x)), 1))


class BasicBlock(nn.Module):
    def __init__(self, cin, cout, stride):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.downsample = None
        if stride != 1 or cin != cout:
            self.downsample = nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False),
                                            nn.BatchNorm2d(cout))

    def forward(self, x):
        idt = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.relu(out + idt)  # the shared ReLU is called twice: forward1 in the archive


class ResNetMini(nn.Module):
    """resnet18's code shape (shared ReLU module, downsample Sequential, layerN.M paths) at small
    width; stands in for torchvision under torch 2."""

    def __init__(self, classes=10, w=8):
        super().__init__()
        self.conv1 = nn.Conv2d(3, w, 7, 2, 3, bias=False)
        self.bn1 = nn.BatchNorm2d(w)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(3, 2, 1)
        self.layer1 = nn.Sequential(BasicBlock(w, w, 1), BasicBlock(w, w, 1))
        self.layer2 = nn.Sequential(BasicBlock(w, 2 * w, 2), BasicBlock(2 * w, 2 * w, 1))
        self.layer3 = nn.Sequential(BasicBlock(2 * w, 4 * w, 2))
        self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
        self.fc = nn.Linear(4 * w, classes)

    def forward(self, x):
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        x = self.layer3(self.layer2(self.layer1(x)))
        return self.fc(torch.flatten(self.avgpool(x), 1))


class InvertedResidual(nn.Module):
    def __init__(self, cin, cout, stride, t):
        super().__init__()
        hid = cin * t
        self.use_res = stride == 1 and cin == cout
        self.conv = nn.Sequential(
            nn.Conv2d(cin, hid, 1, bias=False), nn.BatchNorm2d(hid), nn.ReLU6(inplace=True),
            nn.Conv2d(hid, hid, 3, stride, 1, groups=hid, bias=False), nn.BatchNorm2d(hid),
            nn.ReLU6(inplace=True),
            nn.Conv2d(hid, cout, 1, bias=False), nn.BatchNorm2d(cout))

    def forward(self, x):
        return x + self.conv(x) if self.use_res else self.conv(x)


class MobileNetMini(nn.Module):
    def __init__(self, classes=10):
        super().__init__()
        self.features = nn.Sequential(
            nn.Sequential(nn.Conv2d(3, 8, 3, 2, 1, bias=False), nn.BatchNorm2d(8), nn.ReLU6(True)),
            InvertedResidual(8, 8, 1, 1), InvertedResidual(8, 12, 2, 6),
            InvertedResidual(12, 12, 1, 6), InvertedResidual(12, 16, 2, 6))
        self.classifier = nn.Sequential(nn.Dropout(0.2), nn.Linear(16, classes))

    def forward(self, x):
        x = F.adaptive_avg_pool2d(self.features(x), (1, 1))
        return self.classifier(torch.flatten(x, 1))


class Fire(nn.Module):
    def __init__(self, cin, sq, e1, e3):
        super().__init__()
        self.squeeze = nn.Conv2d(cin, sq, 1)
        self.act = nn.ReLU(inplace=True)
        self.e1 = nn.Conv2d(sq, e1, 1)
        self.e3 = nn.Conv2d(sq, e3, 3, padding=1)

    def forward(self, x):
        x = self.act(self.squeeze(x))
        return torch.cat([self.act(self.e1(x)), self.act(self.e3(x))], 1)


class Inception(nn.Module):
    """GoogLeNet's block: four branches (1x1; 1x1-3x3; 1x1-3x3; maxpool ceil-1x1) joined by cat."""

    def __init__(self, cin, c1, c3r, c3, c5r, c5, pp):
        super().__init__()
        self.b1 = ConvBNAct(cin, c1, 1, act=nn.ReLU(True))
        self.b2 = nn.Sequential(ConvBNAct(cin, c3r, 1, act=nn.ReLU(True)),
                                ConvBNAct(c3r, c3, 3, act=nn.ReLU(True)))
        self.b3 = nn.Sequential(ConvBNAct(cin, c5r, 1, act=nn.ReLU(True)),
                                ConvBNAct(c5r, c5, 3, act=nn.ReLU(True)))
        self.b4 = nn.Sequential(nn.MaxPool2d(3, 1, 1, ceil_mode=True),
                                ConvBNAct(cin, pp, 1, act=nn.ReLU(True)))

    def forward(self, x):
        return torch.cat([self.b1(x), self.b2(x), self.b3(x), self.b4(x)], 1)


class InceptionMini(nn.Module):
    def __init__(self, classes=10):
        super().__init__()
        self.stem = ConvBNAct(3, 16, 3, 2, act=nn.ReLU(True))
        self.pool = nn.MaxPool2d(3, 2, ceil_mode=True)
        self.i1 = Inception(16, 8, 8, 12, 4, 4, 4)
        self.fire = Fire(28, 8, 12, 12)
        self.i2 = Inception(24, 8, 8, 8, 4, 8, 8)
        self.fc = nn.Linear(32, classes)

    def forward(self, x):
        x = self.i2(self.fire(self.i1(self.pool(self.stem(x)))))
        return self.fc(torch.flatten(F.adaptive_avg_pool2d(x, 1), 1))


class Activations(nn.Module):
    """The elementwise ops the op table has beyond ReLU: tanh, gelu, elu, clamp, neg, exp, sqrt,
    functional silu/relu6/hardswish/hardsigmoid."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3, padding=1)

    def forward(self, x):
        y = self.conv(x)
        return (torch.tanh(y), F.gelu(y), F.elu(y), F.elu(y, 0.5), torch.clamp(y, -0.5, 0.25),
                y.clamp(min=0.1), -y, torch.exp(y * 0.5), torch.sqrt(y * y + 1), F.silu(y),
                F.relu6(y * 4), F.hardswish(y * 4), F.hardsigmoid(y * 4), torch.sigmoid(y))


class LayoutOps(nn.Module):
    """Transpose, squeeze/unsqueeze, select, slices with negative bounds and steps, partial
    flatten, expand, sum, log_softmax, adaptive max pool."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 6, 3, padding=1)

    def forward(self, x):
        y = self.conv(x)                                  # (B, 6, H, W)
        bs = y.size(0)
        a = y.transpose(1, 2)                             # (B, H, 6, W)
        b = y[:, 0]                                       # select
        c = y[:, 1:-1, ::2, 1::3]
        d = torch.flatten(y, 1, 2)
        e = y.mean((2, 3)).unsqueeze(-1).unsqueeze(-1).expand(bs, 6, 3, 2)
        f = y.sum(1, keepdim=True).squeeze(1)
        g = F.log_softmax(y, dim=1)
        h = F.adaptive_max_pool2d(y, (2, 3))
        i = y[:, :, -3:, :-2]
        return a, b, c, d, e, f, g, h, i


class ChannelShuffle(nn.Module):
    """ShuffleNet v2 unit: chunk, branch, cat, then channel shuffle through view/transpose/view."""

    def __init__(self, c=16, groups=2):
        super().__init__()
        self.groups = groups
        h = c // 2
        self.branch = nn.Sequential(
            nn.Conv2d(h, h, 1, bias=False), nn.BatchNorm2d(h), nn.ReLU(inplace=True),
            nn.Conv2d(h, h, 3, 1, 1, groups=h, bias=False), nn.BatchNorm2d(h),
            nn.Conv2d(h, h, 1, bias=False), nn.BatchNorm2d(h), nn.ReLU(inplace=True))
        self.stem = nn.Conv2d(3, c, 3, 2, 1)

    def forward(self, x):
        x = self.stem(x)
        x1, x2 = x.chunk(2, dim=1)
        out = torch.cat((x1, self.branch(x2)), dim=1)
        b, c, h, w = out.size()
        out = out.view(b, self.groups, c // self.groups, h, w)
        out = torch.transpose(out, 1, 2).contiguous()
        return out.view(b, -1, h, w)


class SEExpandAs(nn.Module):
    """SE gate broadcast with expand_as (SENet's reference code)."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 8, 3, padding=1)
        self.fc = nn.Linear(8, 8)

    def forward(self, x):
        y = self.conv(x)
        b, c, _, _ = y.size()
        s = torch.sigmoid(self.fc(y.mean((2, 3)))).view(b, c, 1, 1)
        return y * s.expand_as(y)


class FPN(nn.Module):
    """Feature pyramid: laterals, top-down upsampling to the size read from the lateral tensor
    (odd sizes, nearest and bilinear), one head module shared by every level (forward, forward1,
    forward2 in the archive), and a mean written as sum / (h * w) from the shape."""

    def __init__(self, w=8):
        super().__init__()
        self.c1 = ConvBNAct(3, w, 3, 2, act=nn.ReLU())
        self.c2 = ConvBNAct(w, 2 * w, 3, 2, act=nn.ReLU())
        self.c3 = ConvBNAct(2 * w, 4 * w, 3, 2, act=nn.ReLU())
        self.l1 = nn.Conv2d(w, w, 1)
        self.l2 = nn.Conv2d(2 * w, w, 1)
        self.l3 = nn.Conv2d(4 * w, w, 1)
        self.head = nn.Sequential(nn.Conv2d(w, w, 3, padding=1), nn.ReLU(), nn.Conv2d(w, 3, 1))

    def forward(self, x):
        f1 = self.c1(x)
        f2 = self.c2(f1)
        f3 = self.c3(f2)
        p3 = self.l3(f3)
        p2 = self.l2(f2) + F.interpolate(p3, size=f2.shape[-2:], mode="nearest")
        p1 = self.l1(f1) + F.interpolate(p2, size=(f1.size(2), f1.size(3)), mode="bilinear",
                                         align_corners=False)
        outs = [self.head(p) for p in (p1, p2, p3)]
        h, w = p1.shape[2], p1.shape[3]
        return outs + [p1.sum((2, 3)) / (h * w)]


class ConvSame(nn.Module):
    """padding='same' (odd and even kernels: the even one pads unevenly) and 'valid'."""

    def __init__(self):
        super().__init__()
        self.a = nn.Conv2d(3, 4, 3, padding="same")
        self.b = nn.Conv2d(4, 4, 4, padding="same", dilation=1)
        self.c = nn.Conv2d(4, 5, (3, 2), padding="same", dilation=(2, 1))
        self.d = nn.Conv2d(5, 2, 3, padding="valid")

    def forward(self, x):
        y = self.c(self.b(self.a(x)))
        return y, self.d(y)


class BN1dHead(nn.Module):
    """Classifier head with BatchNorm1d on (N, C) after a linear layer, and on (N, C, L)."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 8, 3, stride=2, padding=1)
        self.fc = nn.Linear(8, 16)
        self.bn = nn.BatchNorm1d(16)
        self.bn3 = nn.BatchNorm1d(8)
        self.out = nn.Linear(16, 4)

    def forward(self, x):
        y = F.relu(self.conv(x))
        b, c = y.shape[0], y.shape[1]
        seq = self.bn3(y.view(b, c, -1))                  # (N, C, L)
        v = F.relu(self.bn(self.fc(seq.mean(2))))         # (N, C)
        return self.out(v), seq


class PointPillarsRPN(nn.Module):
    """PointPillars backbone on a pseudo-image: three strided conv-BN-ReLU blocks, each brought
    back to one resolution by ConvTranspose2d (kernel = stride = 1, 2, 4), cat, and the
    class/box/direction heads permuted to (N, H, W, C)."""

    def __init__(self, cin=16, w=16, na=2, nc=3):
        super().__init__()

        def block(ci, co, stride, n):
            layers = [nn.Conv2d(ci, co, 3, stride, 1, bias=False), nn.BatchNorm2d(co, eps=1e-3),
                      nn.ReLU()]
            for _ in range(n):
                layers += [nn.Conv2d(co, co, 3, 1, 1, bias=False), nn.BatchNorm2d(co, eps=1e-3),
                           nn.ReLU()]
            return nn.Sequential(*layers)

        def deblock(ci, co, s):
            return nn.Sequential(nn.ConvTranspose2d(ci, co, s, stride=s, bias=False),
                                 nn.BatchNorm2d(co, eps=1e-3), nn.ReLU())

        self.blocks = nn.ModuleList([block(cin, w, 2, 1), block(w, 2 * w, 2, 2),
                                     block(2 * w, 4 * w, 2, 2)])
        self.deblocks = nn.ModuleList([deblock(w, w, 1), deblock(2 * w, w, 2),
                                       deblock(4 * w, w, 4)])
        self.cls = nn.Conv2d(3 * w, na * nc, 1)
        self.box = nn.Conv2d(3 * w, na * 7, 1)
        self.dir = nn.Conv2d(3 * w, na * 2, 1)

    def forward(self, x):
        ups = []
        for blk, de in zip(self.blocks, self.deblocks):
            x = blk(x)
            ups.append(de(x))
        x = torch.cat(ups, dim=1)
        return (self.cls(x).permute(0, 2, 3, 1).contiguous(),
                self.box(x).permute(0, 2, 3, 1).contiguous(),
                self.dir(x).permute(0, 2, 3, 1).contiguous())


class DtypeOps(nn.Module):
    """No-op conversions and copies traced models carry: .float(), .to(dtype), detach, clone."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3, padding=1)

    def forward(self, x):
        y = self.conv(x.float())
        z = y.to(torch.float32).detach()
        return z.clone() * 2, y.contiguous() + z


class InplaceAlias(nn.Module):
    """In-place ops whose input is read again afterwards: PyTorch's result sees the mutation
    (a == relu(a) after relu_(a)), so importing relu_ as the out-of-place op is only right when
    the mutated value has no later reader."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3, padding=1)
        self.act = nn.ReLU(inplace=True)

    def forward(self, x):
        a = self.conv(x)
        b = self.act(a)          # a is now relu(a) too
        c = a + 1                # reads the mutated a
        c += b                   # add_ on a fresh value: fine either way
        return c, a


class InplaceViews(nn.Module):
    """In-place ops on tensors that have views: PyTorch writes into the storage every view sees.
    A view taken before relu_ of its base (z below once came out without the ReLU), writes
    through a slice, x[...] = tensor (copy_) and x[...] = number (fill_) on a select and on
    nested slices, through a transpose and a chunk piece, and a contiguous() result written in
    place whose base is not read again (a copy or a view: the same result either way)."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 8, 3, padding=1)
        self.conv2 = nn.Conv2d(8, 4, 1)
        self.act = nn.ReLU(inplace=True)

    def forward(self, x):
        y = self.conv(x)
        b = y.shape[0]
        z = y.view(b, -1)            # a view made before the in-place op
        y.relu_()                    # z sees it
        s = y[:, 1:3]
        s.sigmoid_()                 # y sees it
        y[:, 4] = y[:, 5] * 2 + 1    # select, copy_
        y[:, 6:, :2] = 0.5           # nested slices, fill_
        t = y.transpose(1, 3)
        t.mul_(1.5)
        a, c = y.chunk(2, 1)
        c.add_(a)                    # a piece of chunk
        u = torch.flatten(y, 2)
        self.act(u[:, :, 3:] - 1.0)  # in place on a fresh tensor: nothing else changes
        u.sub_(0.25)                 # flatten of a contiguous tensor is a view
        w = self.conv2(y).permute(0, 2, 3, 1).contiguous()
        w.clamp_(max=0.3)
        return z, y, s, t, c, w


class DetectInplace(nn.Module):
    """YOLOv5's Detect decode as YOLOv5 writes it (inplace=True): boxes written into slices of the
    sigmoid output with y[..., 0:2] = ... (slice, copy_), then a view of the written tensor."""

    def __init__(self, na=3, no=7):
        super().__init__()
        self.na, self.no = na, no
        self.m = nn.Conv2d(4, na * no, 1)
        self.register_buffer("grid", torch.randn(1, na, 5, 6, 2))
        self.register_buffer("anchor_grid", torch.rand(1, na, 5, 6, 2) * 4)

    def forward(self, x):
        t = self.m(x)
        bs, _, ny, nx = t.shape
        t = t.view(bs, self.na, self.no, ny, nx).permute(0, 1, 3, 4, 2).contiguous()
        y = t.sigmoid()
        y[..., 0:2] = (y[..., 0:2] * 2 + self.grid) * 8
        y[..., 2:4] = (y[..., 2:4] * 2) ** 2 * self.anchor_grid
        return y.view(bs, -1, self.no), t


class MatMulNet(nn.Module):
    """Attention-style products: matmul of (B, L, C) by (B, C, L), bmm, a 2-D parameter on the
    right and on the left with broadcast batch dims, a 1-D right operand, and mm."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 8, 1)
        self.w = nn.Parameter(torch.randn(8, 5))
        self.v = nn.Parameter(torch.randn(5))

    def forward(self, x):
        f = self.conv(x).flatten(2)                                      # (B, 8, L)
        q = f.transpose(1, 2)                                            # (B, L, 8)
        att = torch.softmax(torch.matmul(q, f) / 8 ** 0.5, -1)           # (B, L, L)
        o = torch.bmm(f, att)                                            # (B, 8, L)
        p = q @ self.w                                                   # (B, L, 5)
        r = torch.matmul(p, self.v)                                      # (B, L)
        g = torch.matmul(self.w.t(), q.unsqueeze(1).transpose(-1, -2))   # (B, 1, 5, L)
        return o, p, r, g, torch.mm(q[0], self.w), torch.matmul(self.v, p.transpose(1, 2))


class NormNet(nn.Module):
    """GroupNorm (groups of 2 channels, one group, one per channel without affine) and LayerNorm
    over the last dim of a (B, L, C) token layout and over the last two dims; random affine
    parameters so they are not identities."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 8, 3, padding=1)
        self.gn = nn.GroupNorm(4, 8)
        self.gn1 = nn.GroupNorm(1, 8, eps=1e-3)
        self.gn8 = nn.GroupNorm(8, 8, affine=False)
        self.ln = nn.LayerNorm(8)
        self.ln2 = nn.LayerNorm([6, 7])
        self.ln3 = nn.LayerNorm(7, elementwise_affine=False)
        with torch.no_grad():
            for m in (self.gn, self.gn1, self.ln, self.ln2):
                m.weight.uniform_(0.5, 1.5)
                m.bias.normal_(0.0, 0.2)

    def forward(self, x):
        y = self.conv(x)                         # (B, 8, 6, 7)
        t = y.flatten(2).transpose(1, 2)         # (B, 42, 8)
        return (self.gn(y), self.gn1(y), self.gn8(F.relu(y)), self.ln(t), self.ln2(y),
                self.ln3(y), F.group_norm(y, 2), F.layer_norm(t, (8,), eps=1e-2))


class PillarFeatureNet(nn.Module):
    """PointPillars' pillar feature net (OpenPCDet's PFNLayer) on (pillars, points, features):
    linear, BatchNorm1d over the permuted (pillars, C, points), ReLU, the max over the points
    (values of torch.max with a dim), repeated and concatenated for the second layer; torch.min
    with a dim, amax/amin, max of everything, elementwise min, and expand with -1."""

    def __init__(self, cin=10, c=16):
        super().__init__()
        self.l1 = nn.Linear(cin, c // 2, bias=False)
        self.n1 = nn.BatchNorm1d(c // 2, eps=1e-3, momentum=0.01)
        self.l2 = nn.Linear(c, c, bias=False)
        self.n2 = nn.BatchNorm1d(c, eps=1e-3, momentum=0.01)

    def forward(self, x):                        # (P, N, cin)
        h = F.relu(self.n1(self.l1(x).permute(0, 2, 1)).permute(0, 2, 1))
        hmax = torch.max(h, dim=1, keepdim=True)[0]
        h = torch.cat([h, hmax.repeat(1, x.shape[1], 1)], dim=2)
        h = F.relu(self.n2(self.l2(h).permute(0, 2, 1)).permute(0, 2, 1))
        out = torch.max(h, dim=1)[0]             # (P, c)
        lo, _ = torch.min(x, 1)
        return (out, lo, torch.amax(x, (0, 2)), torch.amin(h, -1, keepdim=True), torch.max(x),
                torch.min(h, x[..., :1].expand(-1, -1, 16)), h.max(-1).values)


class PadModes(nn.Module):
    """ReflectionPad2d and ReplicationPad2d with uneven sides, F.pad reflect/replicate of a
    (N, C, L) tensor, and reflect on all four sides."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3)
        self.rp = nn.ReflectionPad2d((2, 1, 0, 3))
        self.rep = nn.ReplicationPad2d((1, 3, 2, 0))
        self.c2 = nn.Conv2d(4, 4, 3)

    def forward(self, x):
        y = self.conv(x)                         # (B, 4, 7, 8)
        f = y.flatten(2)
        return (self.c2(self.rp(y)), self.rep(y), F.pad(f, (3, 2), mode="reflect"),
                F.pad(f, (0, 4), mode="replicate"), F.pad(y, (1, 1, 1, 1), mode="reflect"))


# ---- torchvision ----------------------------------------------------------------------------

def tv(name, **kw):
    def build():
        from torchvision import models as tvm
        fn = getattr(tvm, name)
        try:
            return fn(weights=None, **kw)
        except TypeError:  # torchvision before 0.13
            return fn(pretrained=False, **kw)
    return build


def googlenet():
    return tv("googlenet", aux_logits=False, transform_input=False, init_weights=False)()


MODELS = [
    spec("resnet18", tv("resnet18"), [(3, 64, 64)], torchvision=True),
    spec("mobilenet_v2", tv("mobilenet_v2"), [(3, 64, 64)], torchvision=True),
    spec("mobilenet_v3_small", tv("mobilenet_v3_small"), [(3, 64, 64)], torchvision=True),
    spec("squeezenet1_0", tv("squeezenet1_0"), [(3, 64, 64)], torchvision=True),
    spec("googlenet", googlenet, [(3, 64, 64)], torchvision=True),
    spec("shufflenet_v2_x0_5", tv("shufflenet_v2_x0_5"), [(3, 64, 64)], torchvision=True),
    spec("efficientnet_b0", tv("efficientnet_b0"), [(3, 64, 64)], torchvision=True),
    spec("regnet_x_400mf", tv("regnet_x_400mf"), [(3, 64, 64)], torchvision=True),
    spec("densenet121", tv("densenet121"), [(3, 64, 64)], torchvision=True),
    spec("mnasnet0_5", tv("mnasnet0_5"), [(3, 64, 64)], torchvision=True),
    spec("vgg11_bn", tv("vgg11_bn"), [(3, 32, 32)], torchvision=True, big=True),
    spec("vgg_small", VGGSmall, [(3, 32, 32)]),
    spec("resnet_mini", ResNetMini, [(3, 32, 32)], batches=(1, 3)),
    spec("mobilenet_mini", MobileNetMini, [(3, 32, 32)]),
    spec("inception_mini", InceptionMini, [(3, 33, 33)]),
    spec("unet", UNet, [(3, 42, 36)]),  # odd sizes: the skip pads are not all zero
    spec("yolov5", YoloV5s, [(3, 64, 64)]),
    spec("yolov5_decode", lambda: YoloV5s(decode=True, focus=True, img_hw=(64, 96)),
         [(3, 64, 96)], batches=(1, 3), methods=("dummy_forward",)),
    spec("se_block", SENet, [(3, 16, 16)]),
    spec("pixel_shuffle", PixelShuffleNet, [(3, 8, 10)]),
    spec("zero_pad", PadNet, [(3, 9, 8)]),
    spec("stack_mean", StackMean, [(3, 10, 12)]),
    spec("leaky_relu", LeakyNet, [(3, 12, 12)]),
    spec("bilinear", Bilinear, [(3, 9, 11)]),
    spec("nearest", Nearest, [(3, 9, 11)]),
    spec("mbv3_block", MBV3Block, [(3, 32, 32)]),
    spec("grouped_conv", GroupedConv, [(8, 14, 15)]),
    spec("pool_modes", PoolNet, [(3, 15, 16)]),
    spec("chunk_split", ChunkSplit, [(3, 10, 11)], batches=(1, 3)),
    spec("flatten_linear", FlattenLinear, [(3, 8, 8)]),
    spec("dropout_eval", DropoutNet, [(3, 8, 8)]),
    spec("broadcast", Broadcast, [(4, 6, 7), (4, 1, 7)]),
    spec("activations", Activations, [(3, 7, 9)]),
    spec("layout_ops", LayoutOps, [(3, 8, 10)]),
    spec("channel_shuffle", ChannelShuffle, [(3, 16, 16)]),
    spec("se_expand_as", SEExpandAs, [(3, 8, 8)]),
    spec("fpn", FPN, [(3, 50, 38)]),
    spec("conv_same", ConvSame, [(3, 9, 10)]),
    spec("bn1d_head", BN1dHead, [(3, 8, 10)], batches=(2, 3)),  # BatchNorm1d traces with N > 1
    spec("pointpillars_rpn", PointPillarsRPN, [(16, 32, 40)]),
    spec("dtype_ops", DtypeOps, [(3, 6, 6)]),
    spec("inplace_alias", InplaceAlias, [(3, 6, 6)]),
    spec("inplace_views", InplaceViews, [(3, 6, 7)]),
    spec("detect_inplace", DetectInplace, [(4, 5, 6)]),
    spec("matmul", MatMulNet, [(3, 4, 5)], batches=(2, 3)),
    spec("norms", NormNet, [(3, 6, 7)]),
    spec("pillar_features", PillarFeatureNet, [(12, 10)], batches=(6, 9)),
    spec("pad_modes", PadModes, [(3, 9, 10)]),
]
