class Misc(Module):
  __parameters__ = []
  __buffers__ = []
  training : bool
  _is_full_backward_hook : Optional[bool]
  c : __torch__.torch.nn.modules.conv.___torch_mangle_248.Conv2d
  se : __torch__.models.SE
  dw : __torch__.torch.nn.modules.conv.___torch_mangle_251.Conv2d
  hs : __torch__.torch.nn.modules.activation.Hardswish
  hsig : __torch__.torch.nn.modules.activation.Hardsigmoid
  r6 : __torch__.torch.nn.modules.activation.ReLU6
  ap : __torch__.torch.nn.modules.pooling.AvgPool2d
  drop : __torch__.torch.nn.modules.dropout.Dropout
  fc : __torch__.torch.nn.modules.linear.Linear
  def forward(self: __torch__.models.Misc,
    x: Tensor) -> Tuple[Tensor, Tensor]:
    fc = self.fc
    drop = self.drop
    ap = self.ap
    r6 = self.r6
    hsig = self.hsig
    hs = self.hs
    dw = self.dw
    se = self.se
    c = self.c
    _0 = (dw).forward((se).forward((c).forward(x, ), ), )
    _1 = torch.split_with_sizes((hs).forward(_0, ), [4, 8], 1)
    input, input0, = _1
    _2 = torch.sub((hsig).forward(input, ), CONSTANTS.c0)
    _3 = torch.div((r6).forward(input0, ), CONSTANTS.c1)
    input1 = torch.cat([_2, _3], 1)
    _4 = torch.slice((ap).forward(input1, ), 0, 0, 9223372036854775807)
    x0 = torch.slice(_4, 1, 1, 7)
    x1 = torch.contiguous(torch.transpose(x0, 2, 3))
    input2 = torch.cat([x1, x1], 1)
    x2 = torch.adaptive_avg_pool2d(input2, [4, 4])
    _5 = ops.prim.NumToTensor(torch.size(x2, 0))
    input3 = torch.reshape(x2, [int(_5), -1])
    _6 = (drop).forward(input3, )
    _7 = (fc).forward(_6, )
    x3 = torch.flatten(_6, 1)
    _8 = torch.slice(x3, 0, 0, 9223372036854775807)
    return (_7, torch.select(_8, 1, 0))
class SE(Module):
  __parameters__ = []
  __buffers__ = []
  training : bool
  _is_full_backward_hook : Optional[bool]
  fc1 : __torch__.torch.nn.modules.conv.___torch_mangle_249.Conv2d
  fc2 : __torch__.torch.nn.modules.conv.___torch_mangle_250.Conv2d
  def forward(self: __torch__.models.SE,
    argument_1: Tensor) -> Tensor:
    fc2 = self.fc2
    fc1 = self.fc1
    input = torch.mean(argument_1, [2, 3], True)
    input4 = torch.relu((fc1).forward(input, ))
    s = torch.sigmoid((fc2).forward(input4, ))
    return torch.mul(argument_1, s)
