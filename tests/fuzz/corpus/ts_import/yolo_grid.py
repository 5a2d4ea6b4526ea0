class M(Module):
  __parameters__ = []
  __buffers__ = []
  def forward(self: __torch__.M,
    x: Tensor) -> Tensor:
    conv = self.conv
    _0 = (conv).forward(x, )
    bs = ops.prim.NumToTensor(torch.size(_0, 0))
    ny = ops.prim.NumToTensor(torch.size(_0, 2))
    _1 = annotate(number, ny)
    nx = ops.prim.NumToTensor(torch.size(_0, 3))
    _2 = annotate(number, nx)
    _3 = torch.permute(torch.view(_0, [int(bs), 1, 2, int(ny), int(nx)]), [0, 1, 3, 4, 2])
    _4 = torch.arange(_1, dtype=6, layout=None, device=torch.device("cpu"), pin_memory=False)
    _5 = torch.arange(_2, dtype=6, layout=None, device=torch.device("cpu"), pin_memory=False)
    yv, xv, = torch.meshgrid([_4, _5], indexing="ij")
    _6 = torch.sub(torch.expand(torch.stack([xv, yv], 2), [1, 1, int(ny), int(nx), 2]), CONSTANTS.c0)
    _7 = torch.pow(torch.mul(torch.sigmoid(torch.contiguous(_3)), 2), 2)
    _8 = torch.mul(torch.add(_7, _6, alpha=1), torch.select(torch.unsqueeze(CONSTANTS.c0, 0), 0, 0))
    return torch.view(_8, [int(bs), -1, 2])
class C(Module):
  __parameters__ = ["weight", "bias", ]
  def forward(self: __torch__.C,
    argument_1: Tensor) -> Tensor:
    bias = self.bias
    weight = self.weight
    return torch._convolution(argument_1, weight, bias, [1, 1], [0, 0], [1, 1], False, [0, 0], 1, False, False, True, True)
