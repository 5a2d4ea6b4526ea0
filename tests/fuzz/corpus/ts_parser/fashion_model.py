class FashionCNN(Module):
  __parameters__ = []
  __buffers__ = []
  training : bool
  _is_full_backward_hook : Optional[bool]
  stem : __torch__.torch.nn.modules.container.Sequential
  block : __torch__.model.ResidualBlock
  down : __torch__.torch.nn.modules.container.___torch_mangle_8.Sequential
  pool : __torch__.torch.nn.modules.pooling.AdaptiveAvgPool2d
  fc : __torch__.torch.nn.modules.linear.Linear
  def forward(self: __torch__.model.FashionCNN,
    x: Tensor) -> Tensor:
    fc = self.fc
    pool = self.pool
    down = self.down
    block = self.block
    stem = self.stem
    _0 = (block).forward((stem).forward(x, ), )
    _1 = (pool).forward((down).forward(_0, ), )
    input = torch.flatten(_1, 1)
    return (fc).forward(input, )
class ResidualBlock(Module):
  __parameters__ = []
  __buffers__ = []
  training : bool
  _is_full_backward_hook : Optional[bool]
  conv1 : __torch__.torch.nn.modules.conv.___torch_mangle_0.Conv2d
  bn1 : __torch__.torch.nn.modules.batchnorm.___torch_mangle_1.BatchNorm2d
  conv2 : __torch__.torch.nn.modules.conv.___torch_mangle_2.Conv2d
  bn2 : __torch__.torch.nn.modules.batchnorm.___torch_mangle_3.BatchNorm2d
  relu : __torch__.torch.nn.modules.activation.___torch_mangle_4.ReLU
  def forward(self: __torch__.model.ResidualBlock,
    argument_1: Tensor) -> Tensor:
    bn2 = self.bn2
    conv2 = self.conv2
    relu = self.relu
    bn1 = self.bn1
    conv1 = self.conv1
    _2 = (bn1).forward((conv1).forward(argument_1, ), )
    _3 = (conv2).forward((relu).forward(_2, ), )
    input = torch.add(argument_1, (bn2).forward(_3, ))
    return (relu).forward1(input, )
