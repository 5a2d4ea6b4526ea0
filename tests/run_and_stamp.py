#!/usr/bin/env python3
"""Run a generator command and touch a stamp file when it succeeds (for meson custom targets
whose real outputs are a directory). Usage: run_and_stamp.py STAMP CMD [ARGS...]"""
import subprocess
import sys

rc = subprocess.call(sys.argv[2:])
if rc == 0:
    open(sys.argv[1], "w").close()
sys.exit(rc)
