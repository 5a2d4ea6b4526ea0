"""Each public header compiles alone as C11 and as C++11/C++17 with -Wall -Wextra -Werror -pedantic,
twice included (include guard), and its functions have C linkage from C++.

usage: check_api_headers.py INCLUDE_DIR --cc CC [--cxx CXX]"""
import argparse
import glob
import os
import subprocess
import sys
import tempfile

ap = argparse.ArgumentParser()
ap.add_argument('include')
ap.add_argument('--cc', required=True)
ap.add_argument('--cxx', default='')
a = ap.parse_args()

headers = sorted(glob.glob(os.path.join(a.include, 'npengine', '*.h')))
if not headers:
    sys.exit('no headers under %s/npengine' % a.include)
warn = ['-Wall', '-Wextra', '-Werror', '-pedantic', '-fsyntax-only', '-I', a.include]
failures = 0
checks = 0


def compile_one(cmd, src, suffix):
    global failures, checks
    checks += 1
    with tempfile.NamedTemporaryFile('w', suffix=suffix, delete=False) as f:
        f.write(src)
    try:
        p = subprocess.run(cmd + [f.name], capture_output=True, text=True)
    finally:
        os.unlink(f.name)
    if p.returncode:
        failures += 1
        print('FAILED: %s\n%s%s' % (' '.join(cmd), p.stdout, p.stderr))


for h in headers:
    name = 'npengine/' + os.path.basename(h)
    body = '#include <%s>\n#include <%s>\n' % (name, name)
    compile_one([a.cc, '-std=c11', '-x', 'c'] + warn, body + 'int main(void) { return 0; }\n', '.c')
    if a.cxx:
        # C linkage: a pointer to an extern "C" function converts to a C function pointer type
        cxx_body = body + ('extern "C" typedef unsigned version_fn(void);\n'
                           'int main() { version_fn *f = &npe_version; return f() ? 0 : 1; }\n'
                           if 'npengine.h' in h else 'int main() { return 0; }\n')
        for std in ('c++11', 'c++17'):
            compile_one([a.cxx, '-std=' + std, '-x', 'c++'] + warn, cxx_body, '.cc')
print('check_api_headers: %d header(s), %d compiles, %d failed%s' %
      (len(headers), checks, failures, '' if a.cxx else ' (no C++ compiler: C only)'))
sys.exit(1 if failures else 0)
