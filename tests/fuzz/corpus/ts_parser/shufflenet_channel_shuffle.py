class ShuffleNetV2(Module):
  __parameters__ = []
  __buffers__ = []
  training : bool
  _is_full_backward_hook : Optional[bool]
  conv1 : __torch__.torch.nn.modules.container.___torch_mangle_653.Sequential
  maxpool : __torch__.torch.nn.modules.pooling.___torch_mangle_654.MaxPool2d
  stage2 : __torch__.torch.nn.modules.container.___torch_mangle_703.Sequential
  stage3 : __torch__.torch.nn.modules.container.___torch_mangle_797.Sequential
  stage4 : __torch__.torch.nn.modules.container.___torch_mangle_847.Sequential
  conv5 : __torch__.torch.nn.modules.container.___torch_mangle_851.Sequential
  fc : __torch__.torch.nn.modules.linear.___torch_mangle_852.Linear
  def forward(self: __torch__.torchvision.models.shufflenetv2.ShuffleNetV2,
    x: Tensor) -> Tensor:
    fc = self.fc
    conv5 = self.conv5
    stage4 = self.stage4
    stage3 = self.stage3
    stage2 = self.stage2
    maxpool = self.maxpool
    conv1 = self.conv1
    _0 = (maxpool).forward((conv1).forward(x, ), )
    _1 = (stage3).forward((stage2).forward(_0, ), )
    _2 = (conv5).forward((stage4).forward(_1, ), )
    input = torch.mean(_2, [2, 3])
    return (fc).forward(input, )
class InvertedResidual(Module):
  __parameters__ = []
  __buffers__ = []
  training : bool
  _is_full_backward_hook : Optional[bool]
  branch1 : __torch__.torch.nn.modules.container.___torch_mangle_660.Sequential
  branch2 : __torch__.torch.nn.modules.container.___torch_mangle_669.Sequential
  def forward(self: __torch__.torchvision.models.shufflenetv2.InvertedResidual,
    argument_1: Tensor) -> Tensor:
    branch2 = self.branch2
    branch1 = self.branch1
    _3 = [(branch1).forward(argument_1, ), (branch2).forward(argument_1, )]
    x = torch.cat(_3, 1)
    batchsize = ops.prim.NumToTensor(torch.size(x, 0))
    _4 = int(batchsize)
    _5 = int(batchsize)
    _6 = ops.prim.NumToTensor(torch.size(x, 1))
    height = ops.prim.NumToTensor(torch.size(x, 2))
    _7 = int(height)
    _8 = int(height)
    width = ops.prim.NumToTensor(torch.size(x, 3))
    _9 = int(width)
    _10 = int(width)
    channels_per_group = torch.floor_divide(_6, CONSTANTS.c0)
    _11 = [_5, 2, int(channels_per_group), _8, _10]
    x0 = torch.view(x, _11)
    x1 = torch.contiguous(torch.transpose(x0, 1, 2))
    return torch.view(x1, [_4, -1, _7, _9])
