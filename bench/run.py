#!/usr/bin/env python3
"""Benchmark harness of issue 6: lbprune against PyTorch on the same machine, in one run.

usage: run.py --build BUILD [--source SRC] [--python /usr/bin/python3] [--lbprune PATH]
              [--threads T] [--only forward,conv,sens] [--rounds R] [--sens-repeats N]
              [--nni-python PATH] [--install-nni] [--no-nni] [--smoke] [--out JSON]
(normally: meson compile -C build bench-run)

Parts, each against a baseline measured in this same run:
  forward  images/s of lbprune (bench/bench_forward.c) and of PyTorch (torch.jit.load of the same
           archive, bench/torch_forward.py) on resnet18, mobilenet_v2, vgg11_bn and the
           YOLOv5-style model at batch 1 and 8; both processes stay loaded and their rounds
           alternate, each side keeps its best round; outputs compared (max abs diff).
  conv     GFLOP/s of the CPU conv kernel against OpenBLAS cblas_sgemm of the same M, N, K
           (bench/bench_conv.c), at T threads and at 1.
  sens     the whole sensitivity analysis (`lbprune sens cfg.toml`) against the usual PyTorch
           loop (bench/sens_torch.py: mask one group, evaluate everything) and NNI's
           SensitivityAnalysis when its virtual environment is there; the lbprune and PyTorch
           tables must agree within 1e-4.
Peak RSS of every process (wait4 / getrusage). Needs only the standard library itself; the
PyTorch sides run under --python, and are skipped with a message when it lacks torch or
torchvision. Exit status: 0, or 1 when an agreement check fails (outputs or sens values); with
--smoke, 77 (meson's SKIP) when the PyTorch sides were skipped.
"""
import argparse
import json
import math
import os
import platform
import re
import shutil
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
SPARSITIES = [0.1, 0.2, 0.3, 0.4, 0.5]
FORWARD_MODELS = ["resnet18", "mobilenet_v2", "vgg11_bn", "yolov5"]
NNI_INSTALL = ("/usr/bin/python3 -m venv --system-site-packages /opt/nni && "
               "/opt/nni/bin/pip install -c <(echo numpy==$(/usr/bin/python3 -c "
               "'import numpy; print(numpy.__version__)')) nni==2.10 tensorboard")


def log(msg=""):
    print(msg, flush=True)


def run_child(cmd, stdout_path=None, env=None):
    """Run cmd to completion; (exit status, wall seconds, peak RSS in KB, stderr tail)."""
    t0 = time.perf_counter()
    out = open(stdout_path, "w") if stdout_path else subprocess.DEVNULL
    p = subprocess.Popen(cmd, stdout=out, stderr=subprocess.PIPE, env=env)
    err = p.stderr.read().decode(errors="replace")
    _, status, ru = os.wait4(p.pid, 0)
    wall = time.perf_counter() - t0
    p.returncode = os.waitstatus_to_exitcode(status)
    if stdout_path:
        out.close()
    return p.returncode, wall, ru.ru_maxrss, err[-2000:]


class Worker:
    """A bench_forward / torch_forward.py process: loaded once, driven one line at a time."""

    def __init__(self, cmd):
        self.p = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                  stderr=subprocess.PIPE, text=True)
        self.cmd = cmd

    def ask(self, line=None):
        if line is not None:
            self.p.stdin.write(line + "\n")
            self.p.stdin.flush()
        ans = self.p.stdout.readline()
        if not ans:
            err = self.p.stderr.read()
            self.p.wait()
            raise RuntimeError("%s failed: %s" % (os.path.basename(self.cmd[0]) + " "
                                                  + os.path.basename(self.cmd[1]), err.strip()))
        return ans.split()

    def close(self):
        try:
            self.p.stdin.close()
        except OSError:
            pass
        self.p.wait()


def python_has(py, modules, find_only=False):
    """Whether py can import modules; find_only: only whether they are installed (an import of
    torchvision costs seconds)."""
    if not py or not os.path.exists(py):
        return False, "%s does not exist" % py
    code = "import " + ", ".join(modules)
    if find_only:
        code = ("import importlib.util, sys; missing = [m for m in %r if not "
                "importlib.util.find_spec(m)]; sys.exit('No module named ' + ', '.join(missing)) "
                "if missing else None" % (modules,))
    r = subprocess.run([py, "-c", code], capture_output=True, text=True)
    if r.returncode:
        return False, (r.stderr.strip().splitlines() or ["import failed"])[-1]
    return True, ""


# ---- models --------------------------------------------------------------------------------

def make_models(args, gen_dir):
    """Generate (or reuse) the models and data; returns models.json's content."""
    wanted = ["--yolo-width", str(args.yolo_width), "--yolo-size", str(args.yolo_size),
              "--sens-images", str(args.sens_images), "--yolo-images", str(args.yolo_images)]
    if args.smoke:
        wanted = ["--smoke", "--batches", "2"]
    stamp = os.path.join(gen_dir, "models.args")
    listing = os.path.join(gen_dir, "models.json")
    if os.path.exists(listing) and os.path.exists(stamp) and open(stamp).read() == " ".join(wanted):
        log("models: reusing %s" % gen_dir)
    else:
        log("models: generating into %s (once; about a minute)" % gen_dir)
        r = subprocess.run([args.python, os.path.join(HERE, "make_models.py"), gen_dir] + wanted)
        if r.returncode:
            raise SystemExit("bench: make_models.py failed")
        with open(stamp, "w") as f:
            f.write(" ".join(wanted))
    with open(listing) as f:
        return json.load(f)


# ---- forward -------------------------------------------------------------------------------

def bench_forward(args, models, work):
    rows = []
    names = ["resnet_mini"] if args.smoke else FORWARD_MODELS
    for name in names:
        m = models["models"][name]
        for b, inp in sorted(m["forward_inputs"].items(), key=lambda kv: int(kv[0])):
            prefix = os.path.join(work, "fwd_%s_b%s" % (name, b))
            ours = Worker([args.bench_forward, m["pt"], inp, str(args.threads), prefix])
            torch_ = Worker([args.python, os.path.join(HERE, "torch_forward.py"), m["pt"], inp,
                             str(args.threads), prefix])
            try:
                ours.ask()
                torch_.ask()
                # One probe each sizes the rounds to about args.round_s seconds per side.
                t1 = float(ours.ask("run 1")[0])
                t2 = float(torch_.ask("run 1")[0])
                k = max(1, min(50, int(args.round_s / max(t1, t2, 1e-4))))
                best = {"ours": math.inf, "torch": math.inf}
                med = {"ours": [], "torch": []}
                for r in range(args.rounds):
                    order = [("ours", ours), ("torch", torch_)]
                    if r % 2:
                        order.reverse()
                    for side, w in order:
                        tb, tm = map(float, w.ask("run %d" % k))
                        best[side] = min(best[side], tb)
                        med[side].append(tm)
                rss_ours = int(ours.ask("quit")[1])
                t = torch_.ask("quit")
                rss_torch, diff, ref = int(t[1]), float(t[3]), float(t[5])
            finally:
                ours.close()
                torch_.close()
            bi = int(b)
            row = {"model": name, "batch": bi, "input": m["input"], "runs_per_round": k,
                   "rounds": args.rounds,
                   "ours_img_s": bi / best["ours"], "torch_img_s": bi / best["torch"],
                   "ours_median_img_s": bi / sorted(med["ours"])[len(med["ours"]) // 2],
                   "torch_median_img_s": bi / sorted(med["torch"])[len(med["torch"]) // 2],
                   "ratio": best["torch"] / best["ours"],
                   "max_abs_diff": diff, "max_abs_ref": ref,
                   "agree": diff <= 1e-4 * max(ref, 1.0),
                   "ours_rss_mb": rss_ours / 1024, "torch_rss_mb": rss_torch / 1024}
            rows.append(row)
            log("  %-13s b%-2d %9.2f %9.2f %6.2fx  diff %.1e  rss %6.0f / %6.0f MB%s"
                % (name, bi, row["ours_img_s"], row["torch_img_s"], row["ratio"], diff,
                   row["ours_rss_mb"], row["torch_rss_mb"], "" if row["agree"] else "  DIFFER"))
    return rows


# ---- conv ----------------------------------------------------------------------------------

def bench_conv(args):
    rows = []
    counts = [args.threads] + ([1] if args.threads > 1 else [])
    for t in counts:
        cmd = [args.bench_conv, "--threads", str(t)] + (["--smoke"] if args.smoke else [])
        # After a threaded sgemm, OpenBLAS's workers spin ~0.1 s before sleeping: with rounds of
        # sgemm and conv alternating, that spin would hold a core during our conv's round. The
        # engine itself calls OpenBLAS single-threaded, so this only keeps the baseline honest.
        env = dict(os.environ, OPENBLAS_THREAD_TIMEOUT="4")
        r = subprocess.run(cmd, capture_output=True, text=True, env=env)
        if r.returncode:
            raise SystemExit("bench: bench_conv failed: " + r.stderr.strip())
        for line in r.stdout.splitlines():
            row = json.loads(line)
            row["ratio"] = row["conv_gflops"] / row["sgemm_gflops"]
            rows.append(row)
            log("  %-32s %-22s t%d %6d %5d %5d %8.1f %8.1f %5.0f%%"
                % (row["layer"], row["shape"], row["threads"], row["m"], row["n"], row["k"],
                   row["conv_gflops"], row["sgemm_gflops"], 100 * row["ratio"]))
    return rows


# ---- sensitivity analysis ------------------------------------------------------------------

def write_cfg(path, m, sens, out_dir, metric, sparsities, args):
    lines = ["# written by bench/run.py", "[model]", 'path = "%s"' % m["pt"],
             "dummy_input = [1, %d, %d, %d]" % tuple(sens["input"]), "", "[data]",
             'kind = "npy"', 'images = "%s"' % sens["images"]]
    if metric == "top1":
        lines.append('labels = "%s"' % sens["labels"])
    lines += ["batch_size = %d" % args.sens_batch, "", "[metric]", 'name = "%s"' % metric, "",
              "[prune]", "sparsities = [%s]" % ", ".join(str(s) for s in sparsities),
              "channel_alignment = %d" % args.align, "", "[run]",
              'output_dir = "%s"' % out_dir, "workers = %d" % args.sens_workers,
              "threads = %d" % max(1, args.threads // args.sens_workers),
              "cache_mb = %d" % args.cache_mb]
    with open(path, "w") as f:
        f.write("\n".join(lines) + "\n")


def compare_tables(ours_json, torch_json):
    with open(ours_json) as f:
        a = json.load(f)
    with open(torch_json) as f:
        b = json.load(f)
    bg = {g["name"]: g for g in b["groups"]}
    worst, n, bad = 0.0, 0, []
    for g in a["groups"]:
        if "skipped" in g:
            continue
        tg = bg.get(g["name"])
        if tg is None or len(tg["values"]) != len(g["values"]):
            bad.append(g["name"])
            continue
        for s, x, y in zip(g["sparsities"], g["values"], tg["values"]):
            d = abs(x - y) if x is not None else math.inf
            n += 1
            worst = max(worst, d)
            if not d <= 1e-4:
                bad.append("%s@%g: lbprune %s torch %s" % (g["name"], s, x, y))
    groups = sum(1 for g in a["groups"] if "skipped" not in g)
    skipped = sum(1 for g in a["groups"] if "skipped" in g)
    return {"values": n, "max_abs_diff": worst, "differ": bad, "groups": groups,
            "groups_skipped": skipped, "agree": not bad and n > 0}


def sens_jobs(args, models):
    if args.smoke:
        return [("resnet_mini", args.resnet_metric, SPARSITIES[:2])]
    return [("resnet18", args.resnet_metric, SPARSITIES), ("yolov5", "fidelity", SPARSITIES)]


def bench_sens(args, models, work, nni_ok):
    rows = []
    for name, metric, sparsities in sens_jobs(args, models):
        m = models["models"][name]
        sens = m["sens"]
        d = os.path.join(work, "sens_" + name)
        os.makedirs(d, exist_ok=True)
        cfg = os.path.join(d, "cfg.toml")
        out_dir = os.path.join(d, "lbprune_out")
        write_cfg(cfg, m, sens, out_dir, metric, sparsities, args)
        table = os.path.join(out_dir, "sens_analysis", "sens.json")
        torch_out = os.path.join(d, "torch_sens.json")
        nni_out = os.path.join(d, "nni_sens.json")
        common = ["--arch", name, "--state-dict", m["state_dict"], "--images", sens["images"],
                  "--metric", metric, "--groups", table, "--batch", str(args.sens_batch),
                  "--threads", str(args.threads)]
        if name == "yolov5":
            common += ["--width", str(m["width"])]
        if metric == "top1":
            common += ["--labels", sens["labels"]]
        row = {"model": name, "metric": metric, "images": sens["n"], "input": sens["input"],
               "data": sens["data"], "sparsities": sparsities, "batch": args.sens_batch,
               "threads": args.threads, "lbprune_workers": args.sens_workers,
               "ours_s": math.inf, "torch_s": math.inf, "ours_rss_mb": 0, "torch_rss_mb": 0}
        log("  %s: %d images %s, metric %s, sparsities %s"
            % (name, sens["n"], "x".join(map(str, sens["input"])), metric, sparsities))
        for rep in range(args.sens_repeats):
            shutil.rmtree(out_dir, ignore_errors=True)  # else lbprune resumes: nothing to do
            rc, wall, rss, err = run_child([args.lbprune, "sens", cfg],
                                           stdout_path=os.path.join(d, "lbprune.log"))
            if rc:
                raise SystemExit("bench: lbprune sens %s failed: %s" % (cfg, err.strip()))
            row["ours_s"] = min(row["ours_s"], wall)
            row["ours_rss_mb"] = max(row["ours_rss_mb"], rss / 1024)
            peak = re.search(r"cache peak ([0-9.]+) MiB", err)
            if peak:
                row["ours_cache_peak_mb"] = max(row.get("ours_cache_peak_mb", 0.0),
                                                float(peak.group(1)))
            log("    lbprune sens   %8.1f s  %6.0f MB" % (wall, rss / 1024))
            rc, wall, rss, err = run_child([args.python, os.path.join(HERE, "sens_torch.py")]
                                           + common + ["--align", str(args.align),
                                                       "--out", torch_out])
            if rc:
                raise SystemExit("bench: sens_torch.py failed: " + err.strip())
            row["torch_s"] = min(row["torch_s"], wall)
            row["torch_rss_mb"] = max(row["torch_rss_mb"], rss / 1024)
            log("    PyTorch loop   %8.1f s  %6.0f MB" % (wall, rss / 1024))
        with open(torch_out) as f:
            tdoc = json.load(f)
        row["evaluations"] = tdoc["evaluations"]
        row["torch_analysis_s"] = tdoc["analysis_s"]
        row["ratio"] = row["torch_s"] / row["ours_s"]
        row["check"] = compare_tables(table, torch_out)
        # Memory the issue allows: what the cache held (lbprune reports its peak: the cached
        # batches, fidelity references and frontier activations, never above the budget; the
        # bench's own estimate of the cached data when it does not say), plus the model and one
        # batch's activations (every leaf module's output, as if nothing were freed), on top of
        # the process itself (`lbprune version`'s RSS).
        with open(table) as f:
            groups_doc = json.load(f)
        out_floats = sens.get("out_floats_per_image", 0)
        cached = sens["n"] * (4 * math.prod(sens["input"]) + 8 + 4 * out_floats)
        if "ours_cache_peak_mb" in row:
            cached = row["ours_cache_peak_mb"] * 2**20
        act = sens["act_bytes_per_image"] * min(args.sens_batch, sens["n"])
        _, _, base_rss, _ = run_child([args.lbprune, "version"])
        row["memory"] = {"cache_budget_mb": args.cache_mb, "cached_mb": cached / 2**20,
                         "process_mb": base_rss / 1024,
                         "model_mb": m["param_bytes"] / 2**20,
                         "batch_activations_mb": act / 2**20,
                         "bound_mb": (min(cached, args.cache_mb * 2**20) + m["param_bytes"]
                                      + act + base_rss * 1024) / 2**20}
        row["memory"]["within"] = row["ours_rss_mb"] <= row["memory"]["bound_mb"]
        row["groups"] = len([g for g in groups_doc["groups"] if "skipped" not in g])
        if nni_ok:
            rc, wall, rss, err = run_child([args.nni_python, os.path.join(HERE, "sens_nni.py")]
                                           + common + ["--sparsities",
                                                       ",".join(map(str, sparsities)),
                                                       "--out", nni_out])
            if rc:
                row["nni"] = {"skipped": "sens_nni.py failed: " + err.strip()[-500:]}
                log("    NNI            failed: %s" % err.strip()[-300:])
            else:
                with open(nni_out) as f:
                    ndoc = json.load(f)
                row["nni"] = {"s": wall, "rss_mb": rss / 1024, "evaluations": ndoc["evaluations"],
                              "layers": ndoc["layers"], "version": ndoc["nni"],
                              "ratio": wall / row["ours_s"]}
                log("    NNI %-10s %8.1f s  %6.0f MB" % (ndoc["nni"], wall, rss / 1024))
        else:
            row["nni"] = {"skipped": nni_ok_reason[0]}
        c = row["check"]
        log("    %d groups (%d left whole), %d values: max |lbprune - torch| %.1e%s; "
            "%.2fx faster" % (c["groups"], c["groups_skipped"], c["values"], c["max_abs_diff"],
                              "" if c["agree"] else "  DIFFER: " + "; ".join(c["differ"][:5]),
                              row["ratio"]))
        rows.append(row)
    return rows


nni_ok_reason = [""]


def print_summary(doc):
    log("")
    log("=" * 100)
    log("lbprune bench  (%s, %d threads)" % (doc["machine"], doc["threads"]))
    if doc.get("forward"):
        log("\nforward throughput, images/s (best round; input 3x224x224, yolov5 3x%dx%d)"
            % (doc["args"]["yolo_size"], doc["args"]["yolo_size"]))
        log("  %-13s %5s %10s %10s %7s %9s %9s %15s" % ("model", "batch", "lbprune", "PyTorch",
                                                        "ratio", "max diff", "/max|y|",
                                                        "RSS MB ours/pt"))
        for r in doc["forward"]:
            log("  %-13s %5d %10.2f %10.2f %6.2fx %9.1e %9.1e %7.0f/%-7.0f%s"
                % (r["model"], r["batch"], r["ours_img_s"], r["torch_img_s"], r["ratio"],
                   r["max_abs_diff"], r["max_abs_diff"] / max(r["max_abs_ref"], 1e-30),
                   r["ours_rss_mb"], r["torch_rss_mb"],
                   "" if r["agree"] else " DIFFER"))
    if doc.get("conv"):
        log("\nconv layers (batch 1): CPU kernel vs OpenBLAS cblas_sgemm of the same M,N,K, GFLOP/s")
        log("  %-32s %-22s %3s %8s %8s %6s" % ("layer", "shape", "thr", "conv", "sgemm", "ratio"))
        for r in doc["conv"]:
            log("  %-32s %-22s %3d %8.1f %8.1f %5.0f%%" % (r["layer"], r["shape"], r["threads"],
                                                        r["conv_gflops"], r["sgemm_gflops"],
                                                        100 * r["ratio"]))
        for t in sorted({r["threads"] for r in doc["conv"]}):
            rs = [r["ratio"] for r in doc["conv"] if r["threads"] == t]
            log("  %d thread(s): min %.0f%%, median %.0f%%, %d/%d layers >= 80%%"
                % (t, 100 * min(rs), 100 * sorted(rs)[len(rs) // 2],
                   sum(1 for x in rs if x >= 0.8), len(rs)))
    if doc.get("sens"):
        log("\nsensitivity analysis, whole run (wall s, peak RSS MB)")
        log("  %-12s %-9s %5s %6s %10s %10s %7s %10s %9s %s"
            % ("model", "metric", "imgs", "evals", "lbprune", "PyTorch", "ratio", "NNI",
               "max diff", "RSS MB ours/pt/nni (bound)"))
        for r in doc["sens"]:
            nni = r["nni"]
            log("  %-12s %-9s %5d %6d %10.1f %10.1f %6.2fx %10s %9.1e %5.0f/%.0f/%s (%.0f)%s"
                % (r["model"], r["metric"], r["images"], r["evaluations"], r["ours_s"],
                   r["torch_s"], r["ratio"], "%.1f" % nni["s"] if "s" in nni else "-",
                   r["check"]["max_abs_diff"], r["ours_rss_mb"], r["torch_rss_mb"],
                   "%.0f" % nni["rss_mb"] if "rss_mb" in nni else "-",
                   r["memory"]["bound_mb"], "" if r["check"]["agree"] else " DIFFER"))
            if "skipped" in nni:
                log("    NNI skipped: %s" % nni["skipped"])
    for s in doc.get("skipped", []):
        log("skipped: " + s)
    if not doc.get("load_average"):
        return
    top = max(x[1] for x in doc["load_average"])
    log("\nload average (1 min): %s%s" % (", ".join("%s %.1f" % (w, x) for w, x in
                                                  doc["load_average"]),
                                        "  -- above the CPU count: other work competed, "
                                        "figures are unreliable" if top > (os.cpu_count() or 1)
                                        else ""))
    log("\nJSON: %s" % doc["json"])


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--build", required=True, help="the meson build directory")
    ap.add_argument("--source", default=os.path.dirname(HERE))
    ap.add_argument("--python", default="/usr/bin/python3",
                    help="Python with torch + torchvision (Debian's python3-torch)")
    ap.add_argument("--lbprune", help="lbprune binary (default BUILD/tools/lbprune)")
    ap.add_argument("--threads", type=int, default=os.cpu_count() or 1,
                    help="threads for both sides (torch.set_num_threads, lbprune threads)")
    ap.add_argument("--only", default="forward,conv,sens")
    ap.add_argument("--rounds", type=int, default=5, help="alternating forward rounds")
    ap.add_argument("--round-s", type=float, default=0.6, help="seconds per forward round")
    ap.add_argument("--sens-repeats", type=int, default=2,
                    help="runs of each analysis, ours and PyTorch's in turn (best of each kept: "
                         "a shared machine's load comes and goes)")
    ap.add_argument("--sens-batch", type=int, default=32)
    ap.add_argument("--sens-workers", type=int, default=1,
                    help="lbprune [run] workers (threads = --threads / workers)")
    ap.add_argument("--sens-images", type=int, default=128)
    ap.add_argument("--yolo-images", type=int, default=16)
    ap.add_argument("--yolo-width", type=int, default=16)
    ap.add_argument("--yolo-size", type=int, default=320)
    ap.add_argument("--resnet-metric", default="fidelity", choices=("fidelity", "top1"),
                    help="top1: labels are the unpruned model's own argmax")
    ap.add_argument("--align", type=int, default=2)
    ap.add_argument("--cache-mb", type=int, default=1024)
    ap.add_argument("--nni-python", default="/opt/nni/bin/python")
    ap.add_argument("--install-nni", action="store_true",
                    help="create the NNI virtual environment first: " + NNI_INSTALL)
    ap.add_argument("--no-nni", action="store_true")
    ap.add_argument("--smoke", action="store_true",
                    help="a seconds-long run on a tiny model: checks the harness, not speed")
    ap.add_argument("--out", help="JSON path (default BUILD/bench/bench.json)")
    args = ap.parse_args()

    build = os.path.abspath(args.build)
    args.bench_forward = os.path.join(build, "bench", "bench_forward")
    args.bench_conv = os.path.join(build, "bench", "bench_conv")
    args.lbprune = args.lbprune or os.path.join(build, "tools", "lbprune")
    work = os.path.join(build, "bench", "smoke" if args.smoke else "work")
    gen_dir = os.path.join(work, "models")
    os.makedirs(gen_dir, exist_ok=True)
    out_json = args.out or os.path.join(build, "bench", "smoke.json" if args.smoke
                                        else "bench.json")
    if args.smoke:
        args.rounds, args.round_s, args.sens_repeats, args.no_nni = 2, 0.05, 1, True
    parts = set(args.only.split(","))
    doc = {"machine": "%s, %d CPUs" % (platform.processor() or platform.machine(),
                                       os.cpu_count() or 1),
           "threads": args.threads, "args": vars(args), "json": out_json, "skipped": []}
    ok = True
    loads = doc["load_average"] = []

    def note_load(what):
        """Other work on the machine skews every timing: the 1-minute load average is kept next
        to the figures."""
        loads.append([what, round(os.getloadavg()[0], 2)])

    note_load("start")
    if "conv" in parts:
        log("conv layers vs sgemm:")
        doc["conv"] = bench_conv(args)
        note_load("after conv")

    have_torch, why = python_has(args.python, ["torch", "torchvision", "numpy"], find_only=True)
    if have_torch and parts & {"forward", "sens"}:
        r = subprocess.run([args.python, "-c", "import torch; print(torch.__version__)"],
                           capture_output=True, text=True)
        have_torch, why = r.returncode == 0, (r.stderr.strip().splitlines() or [""])[-1]
        doc["torch_version"] = r.stdout.strip()
    if not have_torch:
        msg = ("PyTorch parts (forward, sens): %s cannot import torch/torchvision/numpy (%s); "
               "install python3-torch python3-torchvision python3-numpy" % (args.python, why))
        doc["skipped"].append(msg)
        log("bench: " + msg)
    elif parts & {"forward", "sens"}:
        models = make_models(args, gen_dir)
        if "forward" in parts:
            log("forward (lbprune vs PyTorch, images/s, ratio = lbprune/PyTorch):")
            doc["forward"] = bench_forward(args, models, work)
            note_load("after forward")
            ok &= all(r["agree"] for r in doc["forward"])
        if "sens" in parts:
            if not os.path.exists(args.lbprune):
                doc["skipped"].append("sens: no lbprune binary at %s (-Dtools=false?)"
                                      % args.lbprune)
            else:
                nni_ok = False
                if args.no_nni:
                    nni_ok_reason[0] = "--no-nni"
                else:
                    if args.install_nni and not os.path.exists(args.nni_python):
                        log("installing NNI: " + NNI_INSTALL)
                        subprocess.run(["bash", "-c", NNI_INSTALL])
                    nni_ok, why = python_has(args.nni_python, ["torch", "nni"])
                    if not nni_ok:
                        nni_ok_reason[0] = "%s (install: %s, or run with --install-nni)" % (
                            why, NNI_INSTALL)
                        log("bench: NNI skipped: " + nni_ok_reason[0])
                log("sensitivity analysis (wall s, peak RSS):")
                doc["sens"] = bench_sens(args, models, work, nni_ok)
                note_load("after sens")
                ok &= all(r["check"]["agree"] for r in doc["sens"])
    with open(out_json + ".tmp", "w") as f:
        json.dump(doc, f, indent=1)
    os.replace(out_json + ".tmp", out_json)
    print_summary(doc)
    if not ok:
        return 1
    # meson test reads 77 as SKIP: the smoke test could not check the PyTorch sides
    return 77 if args.smoke and doc["skipped"] else 0


if __name__ == "__main__":
    sys.exit(main())
