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

# eval: outputs equal PyTorch's (references written by tests/gen_ts_fixtures.py, read with a tiny
# .npy reader so this test needs no numpy), errors name the file and the problem.
def read_npy_f32(path):
    import ast
    import struct
    raw = open(path, "rb").read()
    assert raw[:6] == b"\x93NUMPY"
    hlen = struct.unpack("<H", raw[8:10])[0] if raw[6] == 1 else struct.unpack("<I", raw[8:12])[0]
    start = 10 + hlen if raw[6] == 1 else 12 + hlen
    header = ast.literal_eval(raw[start - hlen:start].decode("latin1"))
    assert header["descr"] == "<f4" and not header["fortran_order"], header
    n = 1
    for d in header["shape"]:
        n *= d
    return header["shape"], struct.unpack(f"<{n}f", raw[start:start + 4 * n])


REF = os.path.join(ROOT, "tests", "data", "fashion_ref")
TS = os.path.join(ROOT, "tests", "data", "ts")
with tempfile.TemporaryDirectory() as tmp:
    for b in (1, 4):
        out = os.path.join(tmp, f"y{b}.npy")
        rc, so, se = run("eval", EXAMPLE, "--input", os.path.join(REF, f"input_b{b}.npy"),
                         "--output", out, "--threads", "2")
        check(rc == 0, f"eval batch {b}: {se}")
        if rc == 0:
            shape, got = read_npy_f32(out)
            rshape, ref = read_npy_f32(os.path.join(REF, f"output_b{b}.npy"))
            scale = max(abs(v) for v in ref)
            err = max(abs(a - r) for a, r in zip(got, ref)) / scale
            check(shape == rshape and err <= 1e-4, f"eval batch {b}: shape {shape} err {err}")
    rc, so, se = run("eval", os.path.join(TS, "two_methods.pt"), "--forward", "dummy_forward",
                     "--input", os.path.join(TS, "two_methods_in.npy"), "--output-dir", tmp)
    check(rc == 0 and os.path.exists(os.path.join(tmp, "output_0.npy")), f"eval --forward: {se}")
    if rc == 0:
        _, got = read_npy_f32(os.path.join(tmp, "output_0.npy"))
        _, ref = read_npy_f32(os.path.join(TS, "two_methods_dummy.npy"))
        check(max(abs(a - r) for a, r in zip(got, ref)) <= 1e-4 * max(abs(v) for v in ref),
              "eval --forward dummy_forward equals PyTorch's dummy_forward")
    rc, so, se = run("eval", os.path.join(TS, "scripted.pt"), "--input",
                     os.path.join(TS, "two_methods_in.npy"), "--output", os.path.join(tmp, "s.npy"))
    check(rc == 1 and "trace" in se and ".py:" in se, f"scripted model refused with the line: {se!r}")
    rc, so, se = run("eval", os.path.join(TS, "unsupported_op.pt"), "--input",
                     os.path.join(TS, "two_methods_in.npy"), "--output", os.path.join(tmp, "u.npy"))
    check(rc == 1 and "not supported" in se and ".py:" in se, f"unsupported op named: {se!r}")
    rc, so, se = run("eval", EXAMPLE, "--input", os.path.join(tmp, "missing.npy"), "--output",
                     os.path.join(tmp, "m.npy"))
    check(rc == 1 and "missing.npy" in se, f"missing input named: {se!r}")
    rc, so, se = run("eval", EXAMPLE, "--input", os.path.join(TS, "two_methods_in.npy"), "--output",
                     os.path.join(tmp, "w.npy"))
    check(rc == 1 and se.strip() != "", f"wrong input shape refused: {se!r}")
    rc, so, se = run("eval", EXAMPLE, "--input", os.path.join(REF, "input_b1.npy"))
    check(rc == 2 and "--output" in se, "eval without an output is a usage error")

# run / sens on the bundled example: files, resume, workers, and clear errors for bad configs.
FMNIST = "/usr/share/datasets/fashion-mnist"
EXDIR = os.path.join(os.path.abspath(ROOT), "examples", "fashion_mnist")


def cfg_text(out, workers=1, metric="top1", shape="[1, 1, 28, 28]", model="model.pt", extra=""):
    return f"""
[model]
path = "{os.path.join(EXDIR, model)}"
full_model = "{os.path.join(EXDIR, 'model_full.pth')}"
dummy_input = {shape}
[data]
kind = "idx"
images = "{FMNIST}/t10k-images-idx3-ubyte.gz"
labels = "{FMNIST}/t10k-labels-idx1-ubyte.gz"
mean = [0.2860]
std = [0.3530]
batch_size = 100
limit = 300
[metric]
name = "{metric}"
[prune]
metric_thres = 0.05
sparsities = [0.2, 0.4]
{extra}
[run]
output_dir = "{out}"
workers = {workers}
"""


if os.path.exists(os.path.join(FMNIST, "t10k-images-idx3-ubyte.gz")):
    with tempfile.TemporaryDirectory() as tmp:
        def write_cfg(name, text):
            path = os.path.join(tmp, name)
            with open(path, "w") as f:
                f.write(text)
            return path

        out1 = os.path.join(tmp, "o1")
        c1 = write_cfg("c1.toml", cfg_text(out1))
        rc, so, se = run("run", c1)
        check(rc == 0 and "top1" in so and "MACs" in so, f"run on the example: {se[-300:]}")
        for f in ("pruned.pt", "pruned.pth", "pruned.channels.json", "pruned_full.pth",
                  "prune_report.json", "summary.json", "report.html", "sens_analysis/sens.csv",
                  "sens_analysis/sens.json"):
            check(os.path.exists(os.path.join(out1, f)), f"run wrote {f}")
        html = open(os.path.join(out1, "report.html")).read()
        check(html.count("<svg") == 3 and "chosen sparsity" in html,
              "report.html plots every analysed group")
        csv1 = open(os.path.join(out1, "sens_analysis/sens.csv")).read()
        check(csv1.startswith("layername,0.2"), f"sens.csv form: {csv1[:40]!r}")
        rc, so, se = run("sens", c1)
        check(rc == 0 and "0 values measured" in so, f"second run resumes everything: {so}")
        check(open(os.path.join(out1, "sens_analysis/sens.csv")).read() == csv1, "resume: same csv")
        out2 = os.path.join(tmp, "o2")
        rc, so, se = run("sens", write_cfg("c2.toml", cfg_text(out2, workers=2)))
        check(rc == 0 and open(os.path.join(out2, "sens_analysis/sens.csv")).read() == csv1,
              "workers = 2 gives the same sens.csv as workers = 1")

        bad = {
            "missing model": (cfg_text(tmp + "/b1", model="nope.pt"), "nope.pt"),
            "unknown metric": (cfg_text(tmp + "/b2", metric="accuracy"), "'accuracy'"),
            "data does not match dummy_input": (cfg_text(tmp + "/b3", shape="[1, 1, 32, 32]"),
                                                "32"),
            "unknown exclude_layers name": (cfg_text(tmp + "/b4",
                                                     extra='exclude_layers = ["stem.9"]'),
                                            "stem.9"),
            "TOML syntax error": (cfg_text(tmp + "/b5") + "\nthis is = = wrong\n", ":"),
            "unknown key": (cfg_text(tmp + "/b6", extra="sparsitys = [0.1]"), "sparsitys"),
        }
        for i, (what, (text, needle)) in enumerate(bad.items()):
            path = write_cfg(f"bad{i}.toml", text)
            rc, so, se = run("run", path)
            check(rc == 1 and needle in se and "error" in se, f"{what}: rc={rc} {se.strip()!r}")
            if what in ("TOML syntax error", "unknown key"):
                check(f"bad{i}.toml:" in se, f"{what} names file:line:col: {se.strip()!r}")
else:
    print("cli: Fashion-MNIST not installed (apt-get install dataset-fashion-mnist): run/sens skipped")

print(f"cli: {checks} checks, {failures} failed")
sys.exit(1 if failures else 0)
