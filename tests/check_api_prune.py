"""Pruning through the public API by group name (examples/fashion_mnist/model.pt): test_api
--prune-export keeps the even channels of group stem.0 (given as indices) and half of group down.0
(sparsity 0.5). PyTorch redoes both on the original weights: the L1 ranking of down.0's filters,
the sliced tensors of the state_dict, the pruned model's outputs and parameter count.

usage: check_api_prune.py TEST_API SOURCE_ROOT WORK_DIR"""
import json
import os
import subprocess
import sys

import torch
import torch.nn.functional as F

test_api, root, work = sys.argv[1:4]
os.makedirs(work, exist_ok=True)
model = os.path.join(root, 'examples', 'fashion_mnist', 'model.pt')
subprocess.run([test_api, '--prune-export', model, work], check=True)
report = json.load(open(os.path.join(work, 'report.json')))
kept = {g['name']: g['kept'] for g in report['groups']}
failures = []


def check(cond, what):
    if not cond:
        failures.append(what)
        print('FAILED:', what)


sd = {k: v.detach() for k, v in torch.jit.load(model).state_dict().items()}
ks = list(range(0, 32, 2))
check(kept['stem.0'] == ks, 'stem.0 keeps the given indices: %s' % kept['stem.0'])
# down.0 at sparsity 0.5: 64 - floor(0.5*64) = 32 kept; the lowest L1 norms go first, ties the
# lower index first
norms = sd['down.0.weight'].abs().sum(dim=(1, 2, 3)).double()
order = sorted(range(64), key=lambda c: (norms[c].item(), c))
kd = sorted(order[32:])
check(kept['down.0'] == kd, 'down.0 keeps the 32 largest L1 norms: %s vs %s' % (kept['down.0'], kd))
check(kept['block.conv1'] == list(range(32)), 'block.conv1 is whole')
ks_t, kd_t = torch.tensor(ks), torch.tensor(kd)

# the cut, done by hand on the original tensors
cut = dict(sd)
for k in ('stem.0.weight', 'stem.1.weight', 'stem.1.bias', 'stem.1.running_mean',
          'stem.1.running_var', 'block.conv2.weight', 'block.bn2.weight', 'block.bn2.bias',
          'block.bn2.running_mean', 'block.bn2.running_var'):
    cut[k] = sd[k].index_select(0, ks_t)
cut['block.conv1.weight'] = sd['block.conv1.weight'].index_select(1, ks_t)
cut['down.0.weight'] = sd['down.0.weight'].index_select(0, kd_t).index_select(1, ks_t)
for k in ('down.1.weight', 'down.1.bias', 'down.1.running_mean', 'down.1.running_var'):
    cut[k] = sd[k].index_select(0, kd_t)
cut['fc.weight'] = sd['fc.weight'].index_select(1, kd_t)

pruned_sd = torch.load(os.path.join(work, 'pruned.pth'), weights_only=True) \
    if 'weights_only' in torch.load.__code__.co_varnames else \
    torch.load(os.path.join(work, 'pruned.pth'))
for k, v in cut.items():
    if k.endswith('num_batches_tracked'):
        continue
    check(k in pruned_sd and torch.equal(pruned_sd[k], v), 'pruned.pth %s equals the hand cut' % k)


def bn(x, p):
    return F.batch_norm(x, cut[p + '.running_mean'], cut[p + '.running_var'], cut[p + '.weight'],
                        cut[p + '.bias'], False, 0.0, 1e-5)


def forward(x):
    x = F.max_pool2d(F.relu(bn(F.conv2d(x, cut['stem.0.weight'], padding=1), 'stem.1')), 2)
    y = F.relu(bn(F.conv2d(x, cut['block.conv1.weight'], padding=1), 'block.bn1'))
    y = bn(F.conv2d(y, cut['block.conv2.weight'], padding=1), 'block.bn2')
    x = F.relu(x + y)
    x = F.relu(bn(F.conv2d(x, cut['down.0.weight'], stride=2, padding=1), 'down.1'))
    x = torch.flatten(F.adaptive_avg_pool2d(x, 1), 1)
    return F.linear(x, cut['fc.weight'], cut['fc.bias'])


pm = torch.jit.load(os.path.join(work, 'pruned.pt'))
torch.manual_seed(0)
x = torch.randn(16, 1, 28, 28)
with torch.no_grad():
    a, b = pm(x), forward(x)
err = (a - b).abs().max().item()
check(err < 1e-4, 'pruned.pt computes the hand-cut model (max diff %g)' % err)
params = sum(p.numel() for p in pm.parameters())
check(params == 14490 and params == report['params_after'],
      'pruned.pt has %d parameters (hand count 14490, report %d)' % (params, report['params_after']))
print('check_api_prune: %d failure(s)' % len(failures))
sys.exit(1 if failures else 0)
