class M(Module):
  __parameters__ = []
  __buffers__ = []
  training : bool
  conv : __torch__.C
  def forward(self: __torch__.M,
    x: Tensor) -> Tuple[Tensor, List[Tensor]]:
    conv = self.conv
    _0 = (conv).forward(x, )
    a, b, = torch.chunk(_0, 2, 1)
    _1 = torch.cat([b, a, (conv).forward1(x, )], 1)
    _2 = torch.max_pool2d(_1, [2, 2], [1, 1], [0, 0], [1, 1], True)
    _3 = torch.upsample_nearest2d(_2, None, [2., 2.])
    _4 = torch.mean(_3, [2, 3], True)
    _5 = torch.sigmoid(torch.mul(_3, _4))
    return (_5, [a, torch.permute(b, [0, 2, 3, 1])])
class C(Module):
  __parameters__ = ["weight", "bias", ]
  __buffers__ = []
  def forward(self: __torch__.C,
    argument_1: Tensor) -> Tensor:
    bias = self.bias
    weight = self.weight
    return torch._convolution(argument_1, weight, bias, [1, 1], [0, 0], [1, 1], False, [0, 0], 1, False, False, True, True)
  def forward1(self: __torch__.C,
    argument_1: Tensor) -> Tensor:
    bias = self.bias
    weight = self.weight
    return torch._convolution(argument_1, weight, bias, [1, 1], [0, 0], [1, 1], False, [0, 0], 1, False, False, True, True)
