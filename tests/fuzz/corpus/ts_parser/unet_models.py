class UNet(Module):
  __parameters__ = []
  __buffers__ = []
  training : bool
  _is_full_backward_hook : Optional[bool]
  pad : __torch__.torch.nn.modules.padding.ZeroPad2d
  inc : __torch__.torch.nn.modules.container.___torch_mangle_209.Sequential
  d1 : __torch__.models.Down
  d2 : __torch__.models.___torch_mangle_219.Down
  up1 : __torch__.torch.nn.modules.conv.ConvTranspose2d
  c1 : __torch__.torch.nn.modules.conv.___torch_mangle_220.Conv2d
  up2 : __torch__.torch.nn.modules.conv.___torch_mangle_221.ConvTranspose2d
  c2 : __torch__.torch.nn.modules.conv.___torch_mangle_222.Conv2d
  ps : __torch__.torch.nn.modules.pixelshuffle.PixelShuffle
  out : __torch__.torch.nn.modules.conv.___torch_mangle_223.Conv2d
  def forward(self: __torch__.models.UNet,
    x: Tensor) -> Tensor:
    out = self.out
    ps = self.ps
    c2 = self.c2
    up2 = self.up2
    c1 = self.c1
    up1 = self.up1
    d2 = self.d2
    d1 = self.d1
    inc = self.inc
    pad = self.pad
    _0 = (inc).forward((pad).forward(x, ), )
    _1 = (d1).forward(_0, )
    _2 = torch.chunk((d2).forward(_1, ), 2, 1)
    a, b, = _2
    input = torch.cat([b, a], 1)
    input0 = torch.cat([(up1).forward(input, ), _1], 1)
    _3 = (up2).forward((c1).forward(input0, ), )
    input1 = torch.cat([_3, _0], 1)
    input2 = torch.upsample_bilinear2d((c2).forward(input1, ), None, False, [2., 2.])
    y = torch.upsample_bilinear2d((ps).forward(input2, ), [20, 24], True, None)
    _4 = torch.stack([y, torch.mul(y, CONSTANTS.c0)], 1)
    input3 = torch.mean(_4, [1])
    _5 = torch.softmax((out).forward(input3, ), 1)
    return _5
class Down(Module):
  __parameters__ = []
  __buffers__ = []
  training : bool
  _is_full_backward_hook : Optional[bool]
  pool : __torch__.torch.nn.modules.pooling.___torch_mangle_210.MaxPool2d
  conv : __torch__.torch.nn.modules.container.___torch_mangle_213.Sequential
  def forward(self: __torch__.models.Down,
    argument_1: Tensor) -> Tensor:
    conv = self.conv
    pool = self.pool
    _6 = (conv).forward((pool).forward(argument_1, ), )
    return _6
