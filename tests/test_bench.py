"""The speed benchmark's verdicts judge only what holds on any CPU (benchmarks/README.md)."""

import importlib.util

import pytest

from vaepriors.config import REPO_ROOT


@pytest.fixture(scope="module")
def bench():
    spec = importlib.util.spec_from_file_location("bench_speed", REPO_ROOT / "benchmarks" / "bench_speed.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


# Ratios measured on an AMD EPYC without AMX (float32 GEMM ~90 GFLOP/s on one core), issue 19.
EPYC = {"train_nvae_vs_pythae": 1.50, "train_svae_vs_pythae": 1.86, "svae_step_over_nvae_step": 1.14,
        "eval_nvae_vs_pythae": 3.5, "eval_svae_vs_pythae": 4.7,
        "eval_nvae_roofline_fraction": 0.74, "eval_svae_roofline_fraction": 0.74,
        "train_nvae_peak_rss_mb": 770.0}


def test_verdicts_on_a_cpu_without_amx_judge_only_cpu_independent_targets(bench):
    v = bench.verdicts(EPYC, {})
    assert v and set(v.values()) == {"met"}
    assert {k.split()[0] for k in v} == {"train_nvae_vs_pythae", "svae_step_over_nvae_step",
                                         "eval_nvae_roofline_fraction", "eval_svae_roofline_fraction",
                                         "train_nvae_peak_rss_mb"}
    refs = bench.reference_ratios(EPYC)
    assert set(refs) == {"train_svae_vs_pythae", "eval_nvae_vs_pythae", "eval_svae_vs_pythae"}
    assert refs["eval_svae_vs_pythae"] == {"measured": 4.7, "xeon_amx_reached": 8.0}


@pytest.mark.parametrize("key, value", [("eval_svae_roofline_fraction", 0.55), ("train_nvae_vs_pythae", 1.3),
                                        ("svae_step_over_nvae_step", 1.2), ("train_nvae_peak_rss_mb", 1200.0)])
def test_a_missed_target_is_reported(bench, key, value):
    v = bench.verdicts({**EPYC, key: value}, {})
    assert [k for k, verdict in v.items() if verdict == "NOT met"] == [next(k for k in v if k.startswith(key))]


def test_the_cpu_is_named(bench):
    assert bench.cpu_model().strip()
    assert bench.amx_status().startswith(("yes", "no ("))


def test_before_after_compares_medians_of_measurements_and_skips_settings():
    spec = importlib.util.spec_from_file_location("ab", REPO_ROOT / "benchmarks" / "ab.py")
    ab = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(ab)

    def run(rate, ratio):
        return {"train": {"nvae": {"ours_samples_per_s": rate, "samples_per_epoch": 12800}},
                "ratios": {"svae_step_over_nvae_step": ratio, "flag": True}, "cpu": "x"}

    old = [run(100.0, 1.1), run(90.0, 1.3), run(110.0, 1.2)]
    new = [run(120.0, 1.2), run(130.0, 1.2), run(80.0, 1.2)]
    rows = {r[0]: r[1:] for r in ab.compare(old, new)}
    assert set(rows) == {"train.nvae.ours_samples_per_s", "ratios.svae_step_over_nvae_step"}
    assert rows["train.nvae.ours_samples_per_s"] == pytest.approx((100.0, 120.0, 1.2, 90.0, 110.0, 80.0, 130.0))
    assert rows["ratios.svae_step_over_nvae_step"][:3] == pytest.approx((1.2, 1.2, 1.0))
