"""Callback-driven analysis equals the CLI's: `lbprune sens` reads Fashion-MNIST's IDX files
([data] kind idx, x/255 normalised) and scores [metric] top1; examples/vehicle_eval reads the same
samples from .npy files written here, preprocesses them itself and computes its own top1 in the
metric callback. The two sens.csv files must be byte-identical; a second vehicle_eval run with the
same options resumes every value.

usage: check_api_sens.py VEHICLE_EVAL LBPRUNE SOURCE_ROOT FASHION_DIR WORK_DIR"""
import gzip
import os
import re
import shutil
import subprocess
import sys

import numpy as np

vehicle_eval, lbprune, root, fashion, work = sys.argv[1:6]
images_gz = os.path.join(fashion, 't10k-images-idx3-ubyte.gz')
labels_gz = os.path.join(fashion, 't10k-labels-idx1-ubyte.gz')
if not os.path.exists(images_gz):
    print('skipped: %s missing (Debian package dataset-fashion-mnist)' % images_gz)
    sys.exit(77)
shutil.rmtree(work, ignore_errors=True)
os.makedirs(work)
N = 600


def idx(path):
    b = gzip.open(path).read()
    nd = b[3]
    dims = [int.from_bytes(b[4 + 4 * i:8 + 4 * i], 'big') for i in range(nd)]
    return np.frombuffer(b[4 + 4 * nd:], dtype=np.uint8).reshape(dims)


np.save(os.path.join(work, 'images.npy'), idx(images_gz)[:N])
np.save(os.path.join(work, 'labels.npy'), idx(labels_gz)[:N].astype(np.int32))
model = os.path.join(root, 'examples', 'fashion_mnist', 'model.pt')
common = dict(thres=0.02, sparsities='0.1, 0.3, 0.5, 0.7', early='dropped', align=2)
with open(os.path.join(work, 'cli.toml'), 'w') as f:
    f.write('''[model]
path = "%s"
dummy_input = [1, 1, 28, 28]
[data]
kind = "idx"
images = "%s"
labels = "%s"
mean = [0.2860]
std = [0.3530]
batch_size = 100
limit = %d
[metric]
name = "top1"
[prune]
metric_thres = %g
sparsities = [%s]
early_stop_mode = "%s"
channel_alignment = %d
[run]
output_dir = "%s"
workers = 2
''' % (model, images_gz, labels_gz, N, common['thres'], common['sparsities'], common['early'],
       common['align'], os.path.join(work, 'cli')))
subprocess.run([lbprune, 'sens', os.path.join(work, 'cli.toml')], check=True)
cmd = [vehicle_eval, '--model', model, '--images', os.path.join(work, 'images.npy'),
       '--labels', os.path.join(work, 'labels.npy'), '--mean', '0.2860', '--std', '0.3530',
       '--metric', 'top1', '--thres', str(common['thres']),
       '--sparsities', common['sparsities'].replace(' ', ''), '--early-stop', common['early'],
       '--align', str(common['align']), '--batch', '64', '--workers', '2',
       '--out', os.path.join(work, 'cb'), '--analysis-only']
subprocess.run(cmd, check=True)
a = open(os.path.join(work, 'cli', 'sens_analysis', 'sens.csv'), 'rb').read()
b = open(os.path.join(work, 'cb', 'sens_analysis', 'sens.csv'), 'rb').read()
failures = 0
if a != b or not a:
    failures += 1
    print('FAILED: sens.csv differs\n--- lbprune sens:\n%s--- vehicle_eval:\n%s' %
          (a.decode(), b.decode()))
values = sum(len(line.split(b',')) - 1 for line in a.splitlines()[1::2])
again = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
m = re.search(r'(\d+) values measured, (\d+) resumed', again)
if not m or int(m.group(1)) != 0 or int(m.group(2)) < values:
    failures += 1
    print('FAILED: the second run should measure nothing and resume all %d values:\n%s' %
          (values, again))
if open(os.path.join(work, 'cb', 'sens_analysis', 'sens.csv'), 'rb').read() != a:
    failures += 1
    print('FAILED: the resumed sens.csv changed')
print('check_api_sens: %d values, %d failure(s)' % (values, failures))
sys.exit(1 if failures else 0)
