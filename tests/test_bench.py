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
