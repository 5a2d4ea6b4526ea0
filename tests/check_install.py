"""Install test (issue 7): `meson install` into a temporary folder, then examples/vehicle_eval built
against that copy with nothing but `pkg-config --cflags --libs npengine`, run on Fashion-MNIST (or
generated data when the Debian dataset is missing), and every file it wrote checked by PyTorch:
pruned.pt runs and its top-1 on the same samples is the metric_after of summary.json; pruned.pth
loads with weights_only and matches pruned.pt's tensors; pruned_full.pth computes what pruned.pt
computes; the parameter counts agree with the report.

usage: check_install.py BUILD_DIR SOURCE_ROOT FASHION_DIR WORK_DIR --cc CC"""
import argparse
import glob
import gzip
import json
import os
import shutil
import subprocess
import sys

import numpy as np
import torch

ap = argparse.ArgumentParser()
ap.add_argument('build')
ap.add_argument('root')
ap.add_argument('fashion')
ap.add_argument('work')
ap.add_argument('--cc', required=True)
a = ap.parse_args()
failures = []


def check(cond, what):
    print('%s: %s' % ('ok' if cond else 'FAILED', what))
    if not cond:
        failures.append(what)


shutil.rmtree(a.work, ignore_errors=True)
os.makedirs(a.work)
dest = os.path.join(a.work, 'dest')
meson = shutil.which('meson')
if not meson:
    print('skipped: meson is not on PATH')
    sys.exit(77)
subprocess.run([meson, 'install', '-C', a.build, '--no-rebuild', '--quiet', '--destdir', dest],
               check=True)
pcs = glob.glob(os.path.join(dest, '**', 'pkgconfig', 'npengine.pc'), recursive=True)
headers = glob.glob(os.path.join(dest, '**', 'include', 'npengine', 'npengine.h'), recursive=True)
libs = glob.glob(os.path.join(dest, '**', 'libnpengine.so'), recursive=True)
check(len(pcs) == 1 and len(headers) == 1 and len(libs) == 1,
      'installed npengine.pc, npengine/npengine.h, libnpengine.so: %s %s %s' % (pcs, headers, libs))
if failures:
    sys.exit(1)

# pkg-config only: the .pc names the install prefix; the sysroot maps it into the temporary folder
env = dict(os.environ, PKG_CONFIG_PATH=os.path.dirname(pcs[0]), PKG_CONFIG_SYSROOT_DIR=dest)
flags = subprocess.run(['pkg-config', '--cflags', '--libs', 'npengine'], env=env, check=True,
                       capture_output=True, text=True).stdout.split()
check(any(f.startswith('-I' + dest) for f in flags) and any(f.startswith('-L' + dest) for f in flags),
      'pkg-config points into the installed copy: %s' % ' '.join(flags))
exe = os.path.join(a.work, 'vehicle_eval')
src = os.path.join(a.root, 'examples', 'vehicle_eval', 'vehicle_eval.c')
subprocess.run([a.cc, '-std=c11', '-Wall', '-Wextra', '-Werror', '-o', exe, src] + flags,
               check=True)
libdir = os.path.dirname(libs[0])
run_env = dict(os.environ, LD_LIBRARY_PATH=libdir)
ldd = subprocess.run(['ldd', exe], env=run_env, capture_output=True, text=True).stdout
check(os.path.realpath(libdir) in ldd or libdir in ldd, 'the example runs on the installed library')
h = subprocess.run([exe, '--help'], env=run_env, capture_output=True, text=True)
check(h.returncode == 0 and 'usage: vehicle_eval' in h.stdout, 'vehicle_eval --help')

# the complete example of docs/api.md, built and run the same way
doc = open(os.path.join(a.root, 'docs', 'api.md')).read()
body = doc[doc.index('## Complete example'):]
body = body[body.index('```c\n') + 5:]
body = body[:body.index('```')]
doc_src = os.path.join(a.work, 'doc_example.c')
open(doc_src, 'w').write(body)
doc_exe = os.path.join(a.work, 'doc_example')
subprocess.run([a.cc, '-std=c11', '-Wall', '-Wextra', '-Werror', '-pedantic', '-o', doc_exe,
                doc_src] + flags, check=True)
r = subprocess.run([doc_exe, os.path.join(a.root, 'examples', 'fashion_mnist', 'model.pt'),
                    os.path.join(a.work, 'doc_out')], env=run_env, capture_output=True, text=True)
check(r.returncode == 0 and 'pruned: ' in r.stdout and
      os.path.exists(os.path.join(a.work, 'doc_out', 'pruned.pt')),
      'the docs/api.md example builds and runs:\n%s%s' % (r.stdout[-400:], r.stderr[-400:]))

# data: Fashion-MNIST's first samples, or generated ones
N = 500
images_gz = os.path.join(a.fashion, 't10k-images-idx3-ubyte.gz')
if os.path.exists(images_gz):
    def idx(path):
        b = gzip.open(path).read()
        nd = b[3]
        dims = [int.from_bytes(b[4 + 4 * i:8 + 4 * i], 'big') for i in range(nd)]
        return np.frombuffer(b[4 + 4 * nd:], dtype=np.uint8).reshape(dims)
    x = idx(images_gz)[:N]
    y = idx(os.path.join(a.fashion, 't10k-labels-idx1-ubyte.gz'))[:N].astype(np.int64)
else:
    print('note: %s missing, using generated data' % images_gz)
    rng = np.random.default_rng(0)
    x = rng.integers(0, 256, size=(N, 28, 28), dtype=np.uint8)
    y = rng.integers(0, 10, size=N).astype(np.int64)
np.save(os.path.join(a.work, 'images.npy'), x)
np.save(os.path.join(a.work, 'labels.npy'), y)
fm = os.path.join(a.root, 'examples', 'fashion_mnist')
out = os.path.join(a.work, 'out')
r = subprocess.run([exe, '--model', os.path.join(fm, 'model.pt'),
                    '--full-model', os.path.join(fm, 'model_full.pth'),
                    '--images', os.path.join(a.work, 'images.npy'),
                    '--labels', os.path.join(a.work, 'labels.npy'),
                    '--mean', '0.2860', '--std', '0.3530', '--sparsities', '0.2,0.4,0.6',
                    '--thres', '0.03', '--out', out], env=run_env, capture_output=True, text=True)
print(r.stdout, r.stderr)
check(r.returncode == 0, 'vehicle_eval ran')
if failures:
    sys.exit(1)

summary = json.load(open(os.path.join(out, 'summary.json')))
report = json.load(open(os.path.join(out, 'prune_report.json')))
check(summary['metric'] == 'own_top1', 'summary.json names the caller metric')
check(os.path.getsize(os.path.join(out, 'report.html')) > 0, 'report.html written')
check(os.path.exists(os.path.join(out, 'sens_analysis', 'sens.csv')), 'sens.csv written')
pm = torch.jit.load(os.path.join(out, 'pruned.pt'))
xt = torch.from_numpy(x.astype(np.float32)).unsqueeze(1) / np.float32(255.0)
xt = (xt - np.float32(0.2860)) / np.float32(0.3530)
with torch.no_grad():
    logits = pm(xt)
top1 = (logits.argmax(1) == torch.from_numpy(y)).double().mean().item()
check(abs(top1 - summary['metric_after']) <= 2.0 / N,
      'PyTorch top1 of pruned.pt %.5f = reported metric_after %.5f' % (top1, summary['metric_after']))
params = sum(p.numel() for p in pm.parameters())
check(params == summary['params_after'] == report['params_after'],
      'pruned.pt parameters %d = summary %d = report %d' % (params, summary['params_after'],
                                                            report['params_after']))
check(summary['params_after'] < summary['params_before'], 'the model got smaller')
kw = {'weights_only': True} if 'weights_only' in torch.load.__code__.co_varnames else {}
sd = torch.load(os.path.join(out, 'pruned.pth'), **kw)
ref = pm.state_dict()
check(all(k in sd and torch.equal(sd[k], v) for k, v in ref.items() if 'num_batches' not in k),
      'pruned.pth holds pruned.pt\'s tensors')
sys.path.insert(0, fm)
full = torch.load(os.path.join(out, 'pruned_full.pth'))
full.eval()
with torch.no_grad():
    d = (full(xt[:64]) - logits[:64]).abs().max().item()
check(d < 1e-4, 'pruned_full.pth computes what pruned.pt computes (max diff %g)' % d)
print('check_install: %d failure(s)' % len(failures))
sys.exit(1 if failures else 0)
