"""ABI hygiene: the shared library exports exactly the functions npengine.h declares with NPE_API,
and nothing that does not start with npe_ (nm -D --defined-only).

usage: check_api_symbols.py LIBNPENGINE_SO NPENGINE_H"""
import re
import subprocess
import sys

lib, header = sys.argv[1], sys.argv[2]
out = subprocess.run(['nm', '-D', '--defined-only', lib], capture_output=True, text=True,
                     check=True).stdout
exported = set()
for line in out.splitlines():
    parts = line.split()
    if len(parts) >= 3:
        exported.add(parts[2].split('@')[0])
text = open(header).read()
declared = set(re.findall(r'NPE_API\s[^;{]*?\b(npe_\w+)\s*\(', text))
bad = sorted(s for s in exported if not s.startswith('npe_'))
missing = sorted(declared - exported)
extra = sorted(exported - declared)
for s in bad:
    print('exported symbol without the npe_ prefix: %s' % s)
for s in missing:
    print('declared in npengine.h but not exported: %s' % s)
for s in extra:
    print('exported but not declared in npengine.h: %s' % s)
print('check_api_symbols: %d exported, %d declared' % (len(exported), len(declared)))
sys.exit(1 if bad or missing or extra or not declared else 0)
