class Scripted(Module):
  __parameters__ = []
  __buffers__ = []
  training : bool
  _is_full_backward_hook : Optional[bool]
  def forward(self: __torch__.Scripted,
    x: Tensor) -> Tensor:
    if bool(torch.gt(torch.sum(x), 0)):
      _0 = torch.mul(x, 2)
    else:
      _0 = x
    return _0
