"""CLI behaviour of lbprune: help for every subcommand (with examples), exit codes, and clear
errors naming the file and the problem. Usage: test_cli.py LBPRUNE SOURCE_ROOT"""
import json
import os
import subprocess
import sys
import tempfile

LBPRUNE, ROOT = sys.argv[1], sys.argv[2]
EXAMPLE = os.path.join(ROOT, "examples", "fashion_mnist", "model.pt")
failures = 0
checks = 0


def run(*args):
    p = subprocess.run([LBPRUNE, *args], capture_output=True, text=True, timeout=60)
    return p.returncode, p.stdout, p.stderr


def check(cond, what):
    global failures, checks
    checks += 1
    if not cond:
        failures += 1
        print("FAIL:", what)


rc, out, err = run("--help")
check(rc == 0 and "Commands:" in out, "lbprune --help lists the commands")
commands = [line.split()[0] for line in out.split("Commands:")[1].splitlines()
            if line.startswith("  ") and line.strip()]
check(len(commands) >= 3, f"commands found in --help: {commands}")
for c in commands:
    rc, out, err = run(c, "--help")
    check(rc == 0 and out.startswith("Usage: lbprune " + c), f"'{c} --help' prints its usage")
    check("Example" in out, f"'{c} --help' has examples")
    rc2, out2, _ = run("help", c)
    check(rc2 == 0 and out2 == out, f"'help {c}' equals '{c} --help'")

rc, out, err = run()
check(rc == 2 and "Usage" in err, "no arguments: usage on stderr, exit 2")
rc, out, err = run("frobnicate")
check(rc == 2 and "unknown command 'frobnicate'" in err, "unknown command is named, exit 2")
rc, out, err = run("inspect", "--bogus", EXAMPLE)
check(rc == 2 and "--bogus" in err, "unknown option is named, exit 2")
rc, out, err = run("version")
check(rc == 0 and out.startswith("lbprune "), "version prints")

with tempfile.TemporaryDirectory() as tmp:
    missing = os.path.join(tmp, "nope.pt")
    rc, out, err = run("inspect", missing)
    check(rc == 1 and missing in err and "cannot open" in err, f"missing file named: {err!r}")
    junk = os.path.join(tmp, "junk.pt")
    with open(junk, "wb") as f:
        f.write(b"this is not a model\n" * 10)
    rc, out, err = run("inspect", junk)
    check(rc == 1 and junk in err, f"junk file refused with its name: {err!r}")

    rc, out, err = run("inspect", EXAMPLE)
    check(rc == 0 and "torchscript" in out and "stem.0.weight" in out,
          f"inspect of the bundled example: rc={rc} {err}")
    rc, out, err = run("inspect", EXAMPLE, "--json")
    try:
        doc = json.loads(out)
        check(doc["kind"] == "torchscript", "json kind")
        names = [t["name"] for t in doc["tensors"]]
        check("fc.weight" in names and "stem.1.running_mean" in names, f"json tensors {names[:5]}")
        check(doc["params"] > 0, "json params")
    except (ValueError, KeyError) as e:
        check(False, f"inspect --json gives JSON with kind/tensors/params: {e}: {out[:200]!r}")

    # Outputs are atomic and inputs untouched: a failed write leaves the old target in place.
    target = os.path.join(tmp, "out.pth")
    with open(target, "wb") as f:
        f.write(b"keep me")
    before = open(EXAMPLE, "rb").read()
    rc, out, err = run("state-dict", junk, target)
    check(rc == 1 and open(target, "rb").read() == b"keep me", "failed conversion keeps the target")
    rc, out, err = run("state-dict", EXAMPLE, target)
    check(rc == 0 and open(target, "rb").read(4) == b"PK\x03\x04", f"state-dict writes a zip: {err}")
    check(open(EXAMPLE, "rb").read() == before, "input unchanged")
    check(not [n for n in os.listdir(tmp) if ".tmp." in n], "no temporary files left")

print(f"cli: {checks} checks, {failures} failed")
sys.exit(1 if failures else 0)
