"""Small nn.Module classes pickled by tests/gen_fixtures.py (torch.save(model) stores their class
paths, so tests/check_saved.py imports this file again to load those fixtures)."""
import torch
from torch import nn


class Block(nn.Module):
    """Conv-BN-ReLU with a residual add when the shapes allow it."""

    def __init__(self, cin, cout, stride=1):
        super().__init__()
        self.conv = nn.Conv2d(cin, cout, 3, stride=stride, padding=1, bias=False)
        self.bn = nn.BatchNorm2d(cout)
        self.act = nn.ReLU(inplace=True)
        self.residual = cin == cout and stride == 1

    def forward(self, x):
        y = self.act(self.bn(self.conv(x)))
        return x + y if self.residual else y


class TinyNet(nn.Module):
    """A custom model with plain attributes of every pickled kind (int, float, str, bool, None,
    tuple, list, big int) next to its parameters and a registered buffer."""

    def __init__(self):
        super().__init__()
        self.stem = Block(3, 8, stride=2)
        self.body = nn.Sequential(Block(8, 8), Block(8, 16, stride=2))
        self.head = nn.Linear(16, 5)
        self.register_buffer("scale", torch.linspace(0.5, 2.0, 16))
        self.alpha = 0.25
        self.tag = "tiny"
        self.widths = (8, 16)
        self.flag = True
        self.nothing = None
        self.count = -7
        self.big = 2 ** 40
        self.steps = [1, 2, 3]

    def forward(self, x):
        x = self.body(self.stem(x))
        x = x.mean((2, 3)) * self.scale
        return self.head(x)


class SmallCNN(nn.Module):
    """A traceable CNN: conv/bn/relu, a depthwise conv, ReLU6, pooling and a classifier."""

    def __init__(self, classes=10):
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(3, 16, 3, stride=2, padding=1, bias=False),
            nn.BatchNorm2d(16),
            nn.ReLU(inplace=True),
            nn.Conv2d(16, 16, 3, padding=1, groups=16, bias=False),
            nn.BatchNorm2d(16),
            nn.ReLU6(inplace=True),
            nn.Conv2d(16, 32, 1),
            nn.ReLU(inplace=True),
        )
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Linear(32, classes)

    def forward(self, x):
        x = self.pool(self.features(x))
        return self.classifier(torch.flatten(x, 1))


class BasicBlock(nn.Module):
    """The residual block of ResNet-18, written here so torch 2.x runs need no torchvision."""

    def __init__(self, inplanes, planes, stride=1):
        super().__init__()
        self.conv1 = nn.Conv2d(inplanes, planes, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = nn.Conv2d(planes, planes, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.downsample = None
        if stride != 1 or inplanes != planes:
            self.downsample = nn.Sequential(
                nn.Conv2d(inplanes, planes, 1, stride=stride, bias=False), nn.BatchNorm2d(planes))
        self.stride = stride

    def forward(self, x):
        idt = x if self.downsample is None else self.downsample(x)
        y = self.relu(self.bn1(self.conv1(x)))
        return self.relu(self.bn2(self.conv2(y)) + idt)


class MiniResNet(nn.Module):
    """A narrow ResNet (two stages) with the module layout of torchvision's ResNet."""

    def __init__(self, width=16, classes=10):
        super().__init__()
        self.inplanes = width
        self.conv1 = nn.Conv2d(3, width, 7, stride=2, padding=3, bias=False)
        self.bn1 = nn.BatchNorm2d(width)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(kernel_size=3, stride=2, padding=1)
        self.layer1 = nn.Sequential(BasicBlock(width, width), BasicBlock(width, width))
        self.layer2 = nn.Sequential(BasicBlock(width, 2 * width, 2),
                                    BasicBlock(2 * width, 2 * width))
        self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
        self.dropout = nn.Dropout(p=0.2)
        self.fc = nn.Linear(2 * width, classes)

    def forward(self, x):
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        x = self.layer2(self.layer1(x))
        return self.fc(self.dropout(torch.flatten(self.avgpool(x), 1)))


class TiedNet(nn.Module):
    """Patterns a state_dict must get right: a weight tied between two layers (one Parameter
    under two names) and a non-persistent buffer (pickled with the model, left out of
    state_dict())."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 8, 3, padding=1)
        self.bn = nn.BatchNorm2d(8)
        self.enc = nn.Linear(8, 8, bias=False)
        self.dec = nn.Linear(8, 8)
        self.dec.weight = self.enc.weight
        self.register_buffer("mask", torch.ones(8), persistent=False)

    def forward(self, x):
        x = torch.relu(self.bn(self.conv(x))).mean((2, 3)) * self.mask
        return self.dec(torch.relu(self.enc(x)))
