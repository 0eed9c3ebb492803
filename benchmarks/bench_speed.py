#!/usr/bin/env python
"""Side-by-side speed benchmark: vaepriors against pythae, a plain PyTorch loop and the GEMM roofline.
This file is the harness (alternation, medians, memory children, ratios and verdicts); what it
times is in contenders.py.

    python benchmarks/bench_speed.py [--out results/benchmarks/speed.json] [--quick] [--threads 1]

One run measures, alternating the contenders over several repeats (medians and ratios reported):
  * training samples/s, N-VAE and S-VAE: our Trainer's epoch (model.loss + backward + Adam on
    in-memory batches, dynamic binarisation) vs pythae's BaseTrainer.train_step (its VAE / SVAE with
    the same 784-256-128 MLP, batch 64) vs a hand-written PyTorch loop; our Trainer flushes
    denormals to zero while it trains, so pythae is also timed that way (column pythae+ftz) to
    show how much of the ratio that setting alone accounts for;
  * log-likelihood evaluation throughput in (test point, importance sample) pairs/s: ours
    (vaepriors.evaluation.loglik.importance_log_likelihood) vs pythae's model.get_nll, same K;
  * the machine's matmul throughput on the decoder's layer shapes at the evaluation's chunk size
    (the roofline) and our evaluation's decoder FLOP/s as a fraction of it;
  * peak resident memory (one subprocess per configuration) of a full-size training run and of
    evaluation runs with K = 500 and K = 5000 at the configured chunk size;
  * per-seed throughput of the multi-seed trainer (1, 4, 10 seeds) against the single-seed trainer.
Installs nothing: pythae is optional (pip install -e .[bench]); without it its columns are skipped.
Data: data/processed/fashion_mnist.npz when present, otherwise random MNIST-shaped data.

Verdicts judge only what holds on any CPU (TARGETS): the ratios whose two sides scale alike with
the CPU, and the evaluation as a share of this machine's own float32 GEMM roofline. Ratios to
pythae that grow with the CPU's GEMM speed and AMX are reported beside the value reached on a Xeon
with AMX (REFERENCE_RATIOS), not judged. Method and measured numbers: benchmarks/README.md.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import platform
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))  # contenders.py, also when loaded by path
from contenders import (  # noqa: E402
    BATCH,
    CHUNK,
    D,
    decoder_flops_per_code,
    load_data,
    ours_eval,
    ours_model,
    ours_train,
    plain_train,
    pythae_available,
    pythae_eval,
    pythae_ftz_train,
    pythae_model,
    pythae_train,
    roofline_run,
    train_cfg,
)

# Judged on any CPU.
TARGETS = {
    "train_nvae_vs_pythae": 1.5, "svae_step_over_nvae_step_max": 1.15,
    "eval_roofline_fraction": 0.60,  # decoder FLOP/s over this machine's float32 GEMM on its shapes
    "train_rss_mb_max": 1000.0,
}
# Reported, not judged: they depend on how much of a step the CPU spends in GEMM, and on AMX
# (values reached on an Intel Xeon with AMX; an AMD EPYC without AMX stays below, README).
# The families with hand-written contenders (a plain PyTorch loop, pythae's VAE and SVAE).
CONTENDED = ("nvae", "svae")
REFERENCE_RATIOS = {"train_svae_vs_pythae": 2.0, "eval_nvae_vs_pythae": 5.0, "eval_svae_vs_pythae": 8.0,
                    # a group's gain is what batched GEMMs gain over G small ones on this CPU
                    "multiseed_nvae_group4_per_seed_vs_single": 1.25,
                    "multiseed_svae_group4_per_seed_vs_single": 1.33}
log = logging.getLogger("bench")


# --- helpers ----------------------------------------------------------------------------------

def cpu_model() -> str:
    from vaepriors.config import cpu_model as model
    return model()


def amx_status() -> str:
    from vaepriors.kernels import amx
    why = amx.unavailable_reason()
    return "yes" if why is None else f"no ({why})"


def median(xs):
    return statistics.median(xs)


def timed(fn) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


# --- training ---------------------------------------------------------------------------------


def bench_training(x: torch.Tensor, repeats: int, models: list[str], use_pythae: bool, tmp: Path) -> dict:
    out = {}
    for name in models:
        contenders = {"ours": ours_train, "plain": plain_train}
        if use_pythae:
            contenders["pythae"] = pythae_train
            contenders["pythae_ftz"] = pythae_ftz_train
        epochs = {k: make(name, x, tmp) for k, make in contenders.items()}
        for run in epochs.values():  # warm-up: one epoch each (allocator, thread pools, caches)
            run()
        times = {k: [] for k in epochs}
        keys = list(epochs)
        for r in range(repeats):
            for k in keys[r % len(keys):] + keys[: r % len(keys)]:  # alternate the order
                times[k].append(timed(epochs[k]))
        res = {f"{k}_samples_per_s": len(x) / median(v) for k, v in times.items()}
        res["times_s"] = times
        res["samples_per_epoch"] = len(x)
        out[name] = res
        log.info("train %s: %s", name, {k: round(v) for k, v in res.items() if k.endswith("per_s")})
    return out


# --- evaluation -------------------------------------------------------------------------------


def roofline_fraction(t_contender: list, t_roofline: list, flops: float, roof_flops: float) -> float:
    """Median over paired repeats of the contender's decoder FLOP/s (the whole evaluation's time
    charged to the decoder) over the roofline's FLOP/s."""
    return median([flops / t_ours / (roof_flops / t_roof) for t_ours, t_roof in zip(t_contender, t_roofline)])


def bench_eval(xt: torch.Tensor, n_pythae: int, k: int, repeats: int, models: list[str],
               use_pythae: bool) -> dict:
    """Pairs/s of our evaluation (its default decoder kernel, and torch's float32 decoder when the
    default is the AMX kernel), pythae's get_nll, and the float32 / bfloat16 GEMM rooflines."""
    from vaepriors.evaluation.loglik import chunk_plan, decoder_kernel_name
    from vaepriors.kernels import amx
    out = {}
    for name in models:
        model = ours_model(name).eval()
        points, samples = chunk_plan(len(xt), k, D, CHUNK)
        rows = points * samples
        kernel = decoder_kernel_name(model, xt)
        # the rooflines are timed in the same alternation (this machine's load varies)
        calls = max(1, len(xt) * k // rows)
        roof, roof_flops = roofline_run(rows, model.code_dim, calls)
        runs = {"ours": (ours_eval(model, xt, k, CHUNK), len(xt) * k), "roofline": (roof, None)}
        if kernel == amx.NAME:
            runs["ours_torch"] = (ours_eval(model, xt, k, CHUNK, kernel="torch"), len(xt) * k)
            runs["roofline_bf16"] = (roofline_run(rows, model.code_dim, calls, torch.bfloat16)[0], None)
        if use_pythae:
            pmodel = pythae_model(name, ours=model).eval()  # shares our modules: same weights
            runs["pythae"] = (pythae_eval(pmodel, xt[:n_pythae], k), n_pythae * k)
        for fn, _ in runs.values():
            fn()
        times = {kk: [] for kk in runs}
        keys = list(runs)
        for r in range(repeats):
            for kk in keys[r % len(keys):] + keys[: r % len(keys)]:
                times[kk].append(timed(runs[kk][0]))
        res = {f"{kk}_pairs_per_s": runs[kk][1] / median(v) for kk, v in times.items()
               if runs[kk][1]}
        per_pair = decoder_flops_per_code(model.code_dim)

        flops = len(xt) * k * per_pair
        res.update({"K": k, "kernel": kernel, "ours_points": len(xt),
                    "pythae_points": n_pythae if use_pythae else None,
                    "chunk_elements": CHUNK, "chunk_rows": rows, "times_s": times,
                    "decoder_gflops": res["ours_pairs_per_s"] * per_pair / 1e9,
                    "roofline_gflops": roof_flops / median(times["roofline"]) / 1e9,
                    "roofline_fraction": roofline_fraction(times["ours"], times["roofline"], flops, roof_flops)})
        if "ours_torch" in times:
            res.update({
                "torch_kernel_roofline_fraction": roofline_fraction(times["ours_torch"], times["roofline"], flops,
                                                                    roof_flops),
                "roofline_bf16_gflops": roof_flops / median(times["roofline_bf16"]) / 1e9,
                # bf16x3 runs three bfloat16 products per float32 one
                "amx_bf16_fraction": roofline_fraction(times["ours"], times["roofline_bf16"], 3 * flops, roof_flops),
            })
        out[name] = res
        log.info("eval %s: %s", name, {kk: round(v) for kk, v in res.items() if kk.endswith("per_s")})
    return out


# --- memory (one subprocess per configuration) -----------------------------------------------------

def child_main(kind: str, args: list[str]) -> None:
    """Run one configuration and print its peak RSS (this process's ru_maxrss) as JSON."""
    torch.set_num_threads(int(os.environ.get("BENCH_THREADS", "1")))
    info = {}
    if kind == "baseline":
        import vaepriors.models
        import vaepriors.training  # noqa: F401
    elif kind in ("train", "group"):
        # The full-size protocol (50k x 784 training set, 10k validation), stopped after a couple
        # hundred batches of its first epoch, then validation and a checkpoint as in Trainer.fit.
        from vaepriors.training import TrainData
        from vaepriors.training import trainer as trainer_mod
        name, n_train, n_batches, n_seeds = args[0], int(args[1]), int(args[2]), int(args[3])
        x, _, _ = load_data(n_train, 0)
        data = TrainData(x, torch.bernoulli(x[:10_000]))
        cut = lambda it, **kw: list(it)[:n_batches]
        trainer_mod.tqdm = cut
        cfg = train_cfg(max_epochs=1)
        with tempfile.TemporaryDirectory() as tmp:
            if kind == "train":
                trainer = trainer_mod.Trainer(ours_model(name), data, cfg, 0, tmp,
                                              progress=False)
            else:
                seeds = list(range(n_seeds))
                trainer = trainer_mod.Trainer([ours_model(name, s) for s in seeds], data, cfg, seeds,
                                              [Path(tmp) / f"s{s}" for s in seeds], progress=False)
            trainer.fit()
        info = {"model": name, "n_train": n_train, "batches": n_batches, "seeds": n_seeds}
    elif kind == "eval":
        from vaepriors.evaluation.loglik import chunk_plan, importance_log_likelihood
        name, n, k, chunk = args[0], int(args[1]), int(args[2]), int(args[3])
        _, xt, _ = load_data(0, n)
        model = ours_model(name).eval()
        importance_log_likelihood(model, xt, k, chunk, generator=torch.Generator().manual_seed(0))
        points, samples = chunk_plan(n, k, D, chunk)
        info = {"model": name, "points": n, "K": k, "chunk_elements": chunk,
                "chunk_rows": points * samples, "chunk_mb_float32": points * samples * D * 4 / 2**20}
    print(json.dumps({**info, "kind": kind, "peak_rss_mb": peak_rss_mb(),
                      "ru_maxrss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))


def peak_rss_mb() -> float:
    """This process's peak resident set size. Linux's VmHWM belongs to the process image, whereas
    ru_maxrss (self or children) also carries the RSS the process had before exec, i.e. the
    parent's at fork, so a child of a big parent would look as big as its parent."""
    try:
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def run_child(kind: str, *args, threads: int) -> dict:
    env = {**os.environ, "BENCH_THREADS": str(threads)}
    proc = subprocess.run([sys.executable, __file__, "--child", kind, *map(str, args)],
                          capture_output=True, text=True, env=env, check=False)
    if proc.returncode != 0:
        raise RuntimeError(f"memory child {kind} {args} failed:\n{proc.stderr[-2000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def bench_memory(quick: bool, threads: int, models: list[str]) -> dict:
    out = {"baseline": run_child("baseline", threads=threads)}
    n_train, n_batches = (10_000, 20) if quick else (50_000, 200)
    for name in models:
        out[f"train_{name}"] = run_child("train", name, n_train, n_batches, 1, threads=threads)
    out["train_group10_nvae"] = run_child("group", "nvae", n_train, n_batches // 4, 10, threads=threads)
    # At N = 100 points the seeded sample block (loglik.SAMPLE_BLOCK_ELEMENTS codes) is full from
    # K = 1049 on, so K = 2000 and K = 8000 must use the same memory: nothing grows with K.
    n_points = 20 if quick else 100
    evals = [(500, CHUNK), (2000, CHUNK), (8000, CHUNK), (8000, CHUNK // 10)]
    for k, chunk in evals:
        out[f"eval_nvae_K{k}_chunk{chunk}"] = run_child("eval", "nvae", n_points, k, chunk,
                                                        threads=threads)
    for v in out.values():
        log.info("memory: %s", v)
    return out


# --- report -------------------------------------------------------------------------------------

def table1_hours(ms: dict) -> dict:
    """Upper bound on Davidson et al.'s Table 1 on this machine (one job per core): per model 5
    dims x 10 seeds x 500 epochs x 50k images at the measured per-seed rate, +7% for validation
    and checkpoints."""
    rates = ms.get("per_seed_samples_per_s", {})
    samples = 5 * 10 * 500 * 50_000
    out = {}
    for mode in ("single", "group10"):
        hours = {m: samples / rates[f"{m}_{mode}"] * 1.07 / 3600 for m in ("nvae", "svae")
                 if f"{m}_{mode}" in rates}
        if len(hours) == 2:
            out[f"{mode}_core_hours"] = {**hours, "total": sum(hours.values())}
            out[f"{mode}_wall_hours_on_{os.cpu_count()}_cores"] = sum(hours.values()) / os.cpu_count()
    return out

def ratios(res: dict) -> dict:
    r = {}
    tr, ev = res.get("train", {}), res.get("eval", {})
    for name in ("nvae", "svae"):
        t = tr.get(name, {})
        if "pythae_samples_per_s" in t:
            r[f"train_{name}_vs_pythae"] = t["ours_samples_per_s"] / t["pythae_samples_per_s"]
        if "pythae_ftz_samples_per_s" in t:
            r[f"train_{name}_vs_pythae_ftz"] = t["ours_samples_per_s"] / t["pythae_ftz_samples_per_s"]
        if "plain_samples_per_s" in t:
            r[f"train_{name}_vs_plain"] = t["ours_samples_per_s"] / t["plain_samples_per_s"]
            if "pythae_samples_per_s" in t:
                r[f"train_{name}_pythae_vs_plain"] = t["pythae_samples_per_s"] / t["plain_samples_per_s"]
        e = ev.get(name, {})
        if "pythae_pairs_per_s" in e:
            r[f"eval_{name}_vs_pythae"] = e["ours_pairs_per_s"] / e["pythae_pairs_per_s"]
            if "ours_torch_pairs_per_s" in e:
                r[f"eval_{name}_torch_kernel_vs_pythae"] = e["ours_torch_pairs_per_s"] / e["pythae_pairs_per_s"]
        if e:
            r[f"eval_{name}_roofline_fraction"] = e["roofline_fraction"]
        if "ours_torch_pairs_per_s" in e:
            r[f"eval_{name}_amx_vs_torch_kernel"] = e["ours_pairs_per_s"] / e["ours_torch_pairs_per_s"]
            r[f"eval_{name}_torch_kernel_roofline_fraction"] = e["torch_kernel_roofline_fraction"]
            r[f"eval_{name}_amx_bf16_fraction"] = e["amx_bf16_fraction"]
    if "nvae" in tr and "svae" in tr:
        r["svae_step_over_nvae_step"] = tr["nvae"]["ours_samples_per_s"] / tr["svae"]["ours_samples_per_s"]
        if "pythae_samples_per_s" in tr["nvae"]:
            r["pythae_svae_step_over_nvae_step"] = (tr["nvae"]["pythae_samples_per_s"]
                                                    / tr["svae"]["pythae_samples_per_s"])
    mem = res.get("memory", {})
    for key, v in mem.items():
        if key.startswith("train_"):
            r[f"{key}_peak_rss_mb"] = v["peak_rss_mb"]
    for key, v in res.get("multiseed", {}).items():
        if key.endswith("_per_seed_vs_single"):
            r[f"multiseed_{key}"] = v
    return r


def verdicts(r: dict, mem: dict) -> dict:
    """'met' / 'NOT met' for each target of TARGETS the run measured."""
    v = {}
    def check(key, ok):
        v[key] = "met" if ok else "NOT met"
    if "train_nvae_vs_pythae" in r:
        check(f"train_nvae_vs_pythae >= {TARGETS['train_nvae_vs_pythae']}",
              r["train_nvae_vs_pythae"] >= TARGETS["train_nvae_vs_pythae"])
    for name in ("nvae", "svae"):
        if f"eval_{name}_roofline_fraction" in r:
            check(f"eval_{name}_roofline_fraction >= {TARGETS['eval_roofline_fraction']}",
                  r[f"eval_{name}_roofline_fraction"] >= TARGETS["eval_roofline_fraction"])
    if "svae_step_over_nvae_step" in r:
        check(f"svae_step_over_nvae_step <= {TARGETS['svae_step_over_nvae_step_max']}",
              r["svae_step_over_nvae_step"] <= TARGETS["svae_step_over_nvae_step_max"])
    for key, val in r.items():
        if key.endswith("_peak_rss_mb") and "group" not in key:  # the target is a single run's
            check(f"{key} < {TARGETS['train_rss_mb_max']:.0f}", val < TARGETS["train_rss_mb_max"])
    evals = {k: m["peak_rss_mb"] for k, m in mem.items() if k.startswith("eval_")}
    if evals:
        k2 = evals.get(f"eval_nvae_K2000_chunk{CHUNK}")
        k8 = evals.get(f"eval_nvae_K8000_chunk{CHUNK}")
        if k2 and k8:
            # 4x the samples may not add a chunk's worth: memory that grew with K would (all
            # logits at K = 8000 are 2.5 GB); the allocator alone moves peaks by ~+-20 MB
            chunk_mb = mem[f"eval_nvae_K8000_chunk{CHUNK}"]["chunk_mb_float32"]
            check(f"eval RSS K=2000 -> 8000 grows < one chunk ({chunk_mb:.0f} MB)", k8 - k2 < chunk_mb)
    return v


def reference_ratios(r: dict) -> dict:
    """Each CPU-dependent ratio the run measured, beside the value a Xeon with AMX reached."""
    return {key: {"measured": r[key], "xeon_amx_reached": ref} for key, ref in REFERENCE_RATIOS.items()
            if key in r}


def print_table(res: dict) -> None:
    print()
    print(f"CPU: {res['cpu']}  AMX: {res['amx']}")
    print(f"threads={res['threads']}  data: {res['data']}  torch {res['torch']}  pythae: {res['pythae']}")
    tr = res.get("train", {})
    if tr:
        print("\ntraining samples/s (median over repeats, batch 64, 784-256-128, latent 10)")
        print("  (pythae+ftz: pythae with denormals flushed to zero, as our Trainer does)")
        print(f"  {'model':6} {'ours':>9} {'pythae':>9} {'pythae+ftz':>11} {'plain':>9} {'ours/pythae':>12} "
              f"{'ours/pythae+ftz':>16} {'ours/plain':>11}")
        for name, t in tr.items():
            o, p, pf, q = (t.get(f"{k}_samples_per_s") for k in ("ours", "pythae", "pythae_ftz", "plain"))
            fmt = lambda v, w=9: f"{v:{w}.0f}" if v else f"{'-':>{w}}"
            rat = lambda a, b: f"{a / b:.2f}x" if a and b else "-"
            print(f"  {name:6} {fmt(o)} {fmt(p)} {fmt(pf, 11)} {fmt(q)} {rat(o, p):>12} {rat(o, pf):>16} "
                  f"{rat(o, q):>11}")
    ev = res.get("eval", {})
    if ev:
        kernels = sorted({e["kernel"] for e in ev.values()})
        print(f"\nlog-likelihood evaluation, (point, sample) pairs/s and decoder GEMM roofline "
              f"(decoder kernel: {', '.join(kernels)})")
        print("  (frac: decoder FLOP/s over torch's float32 GEMM on the same shapes; the whole")
        print("   evaluation's time is charged to the decoder)")
        print(f"  {'model':6} {'K':>5} {'ours':>10} {'pythae':>10} {'ratio':>7} {'dec GF/s':>9} "
              f"{'roof GF/s':>9} {'frac':>6}")
        for name, e in ev.items():
            p = e.get("pythae_pairs_per_s")
            roof = e["roofline_gflops"]
            pyt = f"{p:10.0f}" if p else f"{'-':>10}"
            rat = f"{e['ours_pairs_per_s'] / p:.1f}x" if p else "-"
            rf = f"{roof:9.1f} {e['roofline_fraction']:6.0%}"
            print(f"  {name:6} {e['K']:5d} {e['ours_pairs_per_s']:10.0f} {pyt} {rat:>7} "
                  f"{e['decoder_gflops']:9.1f} {rf}   [{e['kernel']}]")
            if "ours_torch_pairs_per_s" in e:
                t = e["ours_torch_pairs_per_s"]
                rat = f"{t / p:.1f}x" if p else "-"
                print(f"  {'':6} {'':5} {t:10.0f} {'':10} {rat:>7} {'':9} {'':9} "
                      f"{e['torch_kernel_roofline_fraction']:6.0%}   [torch-float32]")
                print(f"  {'':6} AMX kernel: {e['ours_pairs_per_s'] / t:.2f}x torch's float32 decoder; its bf16 "
                      f"products run at {e['amx_bf16_fraction']:.0%} of torch's bf16 GEMM "
                      f"({e['roofline_bf16_gflops']:.0f} GFLOP/s)")
    mem = res.get("memory", {})
    if mem:
        print("\npeak resident memory (MB), one subprocess each")
        for k, v in mem.items():
            print(f"  {k:32} {v['peak_rss_mb']:8.0f}")
    ms = res.get("multiseed", {})
    if ms:
        print("\nmulti-seed trainer: samples/s per seed (single-seed trainer = 1 seed, Trainer)")
        for k, v in ms.get("per_seed_samples_per_s", {}).items():
            print(f"  {k:24} {v:9.0f}")
    print("\nratios:")
    for k, v in res["ratios"].items():
        print(f"  {k:40} {v:8.2f}")
    print(f"\ntargets, judged on any CPU (here: {res['cpu']}):")
    for k, v in res["verdicts"].items():
        print(f"  {k:56} {v}")
    if res.get("reference_ratios"):
        print("\nratios that depend on the CPU's GEMM speed and AMX (reported, not judged):")
        for k, v in res["reference_ratios"].items():
            print(f"  {k:40} {v['measured']:6.2f}x here, {v['xeon_amx_reached']:.1f}x reached on a Xeon with AMX")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", default="results/benchmarks/speed.json")
    ap.add_argument("--quick", action="store_true", help="smoke run (< 1 minute)")
    ap.add_argument("--threads", type=int, default=1, help="torch threads (default 1)")
    ap.add_argument("--repeats", type=int, default=None)
    ap.add_argument("--no-pythae", action="store_true", help="skip the pythae columns")
    ap.add_argument("--only", nargs="*", default=None,
                    choices=["train", "eval", "memory", "multiseed"])
    ap.add_argument("--models", nargs="+", default=list(CONTENDED),
                    help="registered families; train, eval and memory run those with hand-written "
                         f"contenders ({', '.join(CONTENDED)}), multiseed runs all")
    ap.add_argument("--child", nargs="+", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.child:
        child_main(args.child[0], args.child[1:])
        return 0
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", datefmt="%H:%M:%S")
    torch.set_num_threads(args.threads)
    ok, why = pythae_available()
    use_pythae = ok and not args.no_pythae
    if not ok:
        print(f"pythae columns skipped: {why}")
    elif args.no_pythae:
        why = "skipped (--no-pythae)"
        print("pythae columns skipped: --no-pythae")
    only = set(args.only or ["train", "eval", "memory", "multiseed"])
    q = args.quick
    repeats = args.repeats or (2 if q else 4)
    n_train = 64 * (40 if q else 200)
    n_test, n_pythae, k = (50, 10, 100) if q else (500, 60, 500)
    x, xt, label = load_data(n_train, n_test)
    res = {"threads": args.threads, "quick": q, "repeats": repeats, "data": label,
           "torch": torch.__version__, "python": platform.python_version(),
           "cpu": cpu_model(), "amx": amx_status(), "pythae": "used" if use_pythae else why,
           "targets": TARGETS, "reference_targets": REFERENCE_RATIOS}
    from vaepriors import families

    for name in args.models:
        families.get(name)  # an unknown name: the registry's error
    models = [m for m in args.models if m in CONTENDED]
    with tempfile.TemporaryDirectory() as tmp:
        if "train" in only:
            res["train"] = bench_training(x, repeats, models, use_pythae, Path(tmp))
    if "eval" in only:
        res["eval"] = bench_eval(xt, n_pythae, k, repeats, models, use_pythae)
    if "memory" in only:
        res["memory"] = bench_memory(q, args.threads, models)
    if "multiseed" in only:
        with tempfile.TemporaryDirectory() as tmp:
            res["multiseed"] = bench_multiseed(x, q, max(2, repeats - 1), args.models, Path(tmp))
    res["table1_extrapolation"] = table1_hours(res.get("multiseed", {}))
    res["ratios"] = ratios(res)
    res["verdicts"] = verdicts(res["ratios"], res.get("memory", {}))
    res["reference_ratios"] = reference_ratios(res["ratios"])
    print_table(res)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(res, indent=2))
    print(f"\nwrote {out}")
    return 0


def bench_multiseed(x: torch.Tensor, quick: bool, repeats: int, models: list[str], tmp: Path) -> dict:
    """Samples/s per seed: the trainer's epoch for one seed vs groups of 4 and 10 seeds."""
    from vaepriors.training import TrainData, Trainer
    n = 64 * (10 if quick else 40)
    xs = x[:n]
    data = TrainData(xs, torch.bernoulli(xs[:BATCH]))
    sizes = (4,) if quick else (4, 10)
    out = {"samples_per_seed_epoch": n, "per_seed_samples_per_s": {}, "times_s": {}}
    for name in models:
        runs = {"single": (ours_train(name, xs, tmp), 1)}
        for g in sizes:
            seeds = list(range(g))
            group = Trainer([ours_model(name, s) for s in seeds], data, train_cfg(), seeds,
                            [tmp / f"ms-{name}-{g}-{s}" for s in seeds], progress=False)
            runs[f"group{g}"] = (group.train_epoch, g)
        for fn, _ in runs.values():
            fn()
        times = {k: [] for k in runs}
        keys = list(runs)
        for r in range(repeats):
            for k in keys[r % len(keys):] + keys[: r % len(keys)]:
                times[k].append(timed(runs[k][0]))
        for k, (_, g) in runs.items():
            out["per_seed_samples_per_s"][f"{name}_{k}"] = g * n / median(times[k])
        out["times_s"][name] = times
        single = out["per_seed_samples_per_s"][f"{name}_single"]
        for g in sizes:
            out[f"{name}_group{g}_per_seed_vs_single"] = out["per_seed_samples_per_s"][f"{name}_group{g}"] / single
        log.info("multiseed %s: %s", name, {k: round(v) for k, v in out["per_seed_samples_per_s"].items()
                                            if k.startswith(name)})
    return out


if __name__ == "__main__":
    sys.exit(main())
