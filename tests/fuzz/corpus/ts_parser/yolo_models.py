class Yolo(Module):
  __parameters__ = []
  __buffers__ = []
  training : bool
  _is_full_backward_hook : Optional[bool]
  b0 : __torch__.models.Conv
  b1 : __torch__.models.___torch_mangle_3.Conv
  b2 : __torch__.models.C3
  b3 : __torch__.models.___torch_mangle_27.Conv
  b4 : __torch__.models.___torch_mangle_59.C3
  b5 : __torch__.models.SPPF
  h0 : __torch__.models.___torch_mangle_71.Conv
  up : __torch__.torch.nn.modules.upsampling.Upsample
  h1 : __torch__.models.___torch_mangle_94.C3
  detect : __torch__.models.Detect
  def forward(self: __torch__.models.Yolo,
    x: Tensor) -> Tuple[Tensor, List[Tensor]]:
    detect = self.detect
    h1 = self.h1
    up = self.up
    h0 = self.h0
    b5 = self.b5
    b4 = self.b4
    b3 = self.b3
    b2 = self.b2
    b1 = self.b1
    b0 = self.b0
    _0 = (b2).forward((b1).forward((b0).forward(x, ), ), )
    _1 = (b5).forward((b4).forward((b3).forward(_0, ), ), )
    _2 = [(up).forward((h0).forward(_1, ), ), _0]
    input = torch.cat(_2, 1)
    _3 = (detect).forward((h1).forward(input, ), _1, )
    _4, _5, _6, = _3
    return (_6, [_4, _5])
class Conv(Module):
  __parameters__ = []
  __buffers__ = []
  training : bool
  _is_full_backward_hook : Optional[bool]
  conv : __torch__.torch.nn.modules.conv.Conv2d
  bn : __torch__.torch.nn.modules.batchnorm.BatchNorm2d
  act : __torch__.torch.nn.modules.activation.SiLU
  def forward(self: __torch__.models.Conv,
    x: Tensor) -> Tensor:
    act = self.act
    bn = self.bn
    conv = self.conv
    _7 = (act).forward((bn).forward((conv).forward(x, ), ), )
    return _7
class C3(Module):
  __parameters__ = []
  __buffers__ = []
  training : bool
  _is_full_backward_hook : Optional[bool]
  cv1 : __torch__.models.___torch_mangle_7.Conv
  cv2 : __torch__.models.___torch_mangle_11.Conv
  cv3 : __torch__.models.___torch_mangle_15.Conv
  m : __torch__.torch.nn.modules.container.Sequential
  def forward(self: __torch__.models.C3,
    argument_1: Tensor) -> Tensor:
    cv3 = self.cv3
    cv2 = self.cv2
    m = self.m
    cv1 = self.cv1
    _8 = (m).forward((cv1).forward(argument_1, ), )
    input = torch.cat([_8, (cv2).forward(argument_1, )], 1)
    return (cv3).forward(input, )
class Bottleneck(Module):
  __parameters__ = []
  __buffers__ = []
  training : bool
  _is_full_backward_hook : Optional[bool]
  cv1 : __torch__.models.___torch_mangle_19.Conv
  cv2 : __torch__.models.___torch_mangle_23.Conv
  def forward(self: __torch__.models.Bottleneck,
    argument_1: Tensor) -> Tensor:
    cv2 = self.cv2
    cv1 = self.cv1
    _9 = (cv2).forward((cv1).forward(argument_1, ), )
    return torch.add(argument_1, _9)
class SPPF(Module):
  __parameters__ = []
  __buffers__ = []
  training : bool
  _is_full_backward_hook : Optional[bool]
  cv1 : __torch__.models.___torch_mangle_63.Conv
  cv2 : __torch__.models.___torch_mangle_67.Conv
  m : __torch__.torch.nn.modules.pooling.MaxPool2d
  def forward(self: __torch__.models.SPPF,
    argument_1: Tensor) -> Tensor:
    cv2 = self.cv2
    m = self.m
    cv1 = self.cv1
    _10 = (cv1).forward(argument_1, )
    _11 = (m).forward(_10, )
    _12 = (m).forward1(_11, )
    _13 = [_10, _11, _12, (m).forward2(_12, )]
    input = torch.cat(_13, 1)
    return (cv2).forward(input, )
class Detect(Module):
  __parameters__ = []
  __buffers__ = []
  training : bool
  _is_full_backward_hook : Optional[bool]
  m : __torch__.torch.nn.modules.container.ModuleList
  def forward(self: __torch__.models.Detect,
    argument_1: Tensor,
    argument_2: Tensor) -> Tuple[Tensor, Tensor, Tensor]:
    m = self.m
    _1 = getattr(m, "1")
    m0 = self.m
    _0 = getattr(m0, "0")
    _14 = (_0).forward(argument_1, )
    bs = ops.prim.NumToTensor(torch.size(_14, 0))
    _15 = int(bs)
    _16 = int(bs)
    ny = ops.prim.NumToTensor(torch.size(_14, 2))
    _17 = int(ny)
    nx = ops.prim.NumToTensor(torch.size(_14, 3))
    _18 = torch.view(_14, [_16, 3, 8, _17, int(nx)])
    _19 = torch.contiguous(torch.permute(_18, [0, 1, 3, 4, 2]))
    y = torch.sigmoid(_19)
    _20 = torch.view(y, [_15, -1, 8])
    _21 = (_1).forward(argument_2, )
    bs0 = ops.prim.NumToTensor(torch.size(_21, 0))
    _22 = int(bs0)
    _23 = int(bs0)
    ny0 = ops.prim.NumToTensor(torch.size(_21, 2))
    _24 = int(ny0)
    nx0 = ops.prim.NumToTensor(torch.size(_21, 3))
    _25 = torch.view(_21, [_23, 3, 8, _24, int(nx0)])
    _26 = torch.contiguous(torch.permute(_25, [0, 1, 3, 4, 2]))
    y0 = torch.sigmoid(_26)
    _27 = torch.cat([_20, torch.view(y0, [_22, -1, 8])], 1)
    return (_19, _26, _27)
