"""A latent family is one module plus one registry entry: a family defined here, outside the
package, goes through the real scripts (train, evaluate, aggregate, the log-likelihood figure);
what differs between families is read from their classes, never from their names."""

from __future__ import annotations

import json
import os
import shlex
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

import vaepriors
from vaepriors import code_dim, dvcgen, families
from vaepriors.config import REPO_ROOT, ConfigError, load_params, load_schema, to_flags
from vaepriors.models.spherical import SVAE

SRC = Path(vaepriors.__file__).resolve().parents[1]

# A Laplace posterior with a Laplace prior, written as a contributor would: one module, nothing
# else (the package's own lvae is the same idea; this one takes the base class's Monte Carlo KL).
LAPLACE_FAMILY = textwrap.dedent('''
    import torch
    from torch import nn
    from torch.distributions import Independent, Laplace

    from vaepriors.models.base import LatentVariableModel


    class LaplaceVAE(LatentVariableModel):
        name = "plugvae"
        analytic_kl = False
        label, color, marker, linestyle = "Laplace plugin", "#117733", "v", "-"

        def __init__(self, input_dim, latent_dim, hidden):
            super().__init__(input_dim, latent_dim, hidden)
            self.head = nn.Linear(self.hidden[-1], 2 * self.code_dim)

        def posterior(self, x):
            loc, log_scale = self.head(self.body(x)).chunk(2, dim=-1)
            return Independent(Laplace(loc, log_scale.clamp(-6, 4).exp()), 1)

        def prior(self):
            zero = self._zeros(self.code_dim)
            return Independent(Laplace(zero, torch.ones_like(zero)), 1)
''')


# A Student-t posterior and prior whose degrees of freedom are a setting of the family: the class
# declares it with its default and schema, and nothing outside this file names it.
STUDENT_T_FAMILY = textwrap.dedent('''
    import torch
    from torch import nn
    from torch.distributions import Independent, StudentT

    from vaepriors.models.base import LatentVariableModel


    class StudentTVAE(LatentVariableModel):
        name = "tvae"
        analytic_kl = False
        settings = {"tvae_df": 5.0}
        settings_schema = {"tvae_df": {"type": "number", "exclusiveMinimum": 1}}
        label, color, marker, linestyle = "Student-t VAE", "#882255", "s", "--"

        @classmethod
        def from_config(cls, latent_dim, input_dim, n_classes, model_cfg):
            return cls(input_dim, latent_dim, model_cfg["hidden"], df=cls.setting(model_cfg, "tvae_df"),
                       **cls.shared_kwargs(model_cfg))

        def __init__(self, input_dim, latent_dim, hidden, df=5.0, **shared):
            super().__init__(input_dim, latent_dim, hidden, **shared)
            self.df = float(df)
            self.head = nn.Linear(self.hidden[-1], 2 * self.code_dim)

        def init_kwargs(self):
            return {**super().init_kwargs(), "df": self.df}

        def posterior(self, x):
            loc, log_scale = self.head(self.body(x)).chunk(2, dim=-1)
            return Independent(StudentT(self.df, loc, log_scale.clamp(-6, 4).exp()), 1)

        def prior(self):
            zero = self._zeros(self.code_dim)
            return Independent(StudentT(self.df, zero, torch.ones_like(zero)), 1)
''')


@pytest.fixture
def plugin_env(tmp_path):
    """The environment of a pipeline with the Laplace family registered as a plugin."""
    plugin_dir = tmp_path / "plugin"
    plugin_dir.mkdir()
    (plugin_dir / "laplace_family.py").write_text(LAPLACE_FAMILY)
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(SRC), str(plugin_dir), env.get("PYTHONPATH", "")])
    env[families.PLUGIN_ENV] = "laplace_family:LaplaceVAE"
    return env


def run(script: str, *args: str, env: dict) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(REPO_ROOT / script), *args], env=env, cwd=REPO_ROOT,
                          capture_output=True, text=True, timeout=600)


def test_a_family_defined_outside_the_package_runs_through_the_scripts(eval_cfg,
        plugin_env, processed_npz, train_cfg, model_cfg, tmp_path):
    train_cfg["max_epochs"] = 2
    run_dir = tmp_path / "results" / "models" / "synthetic" / "plugvae" / "d2" / "s0"
    train = ["--data", str(processed_npz), "--out-dir", str(run_dir), "--dataset", "synthetic",
             "--model", "plugvae", "--latent-dim", "2", "--seed", "0", "--no-progress",
             *to_flags(train_cfg).split(), *to_flags(model_cfg).split()]

    # not registered: refused by the script with the registry's message
    env_without = {k: v for k, v in plugin_env.items() if k != families.PLUGIN_ENV}
    refused = run("scripts/train.py", *train, env=env_without)
    assert refused.returncode != 0
    assert "unknown latent family 'plugvae'; registered: nvae, svae, gmmvae, ae" in refused.stderr

    done = run("scripts/train.py", *train, env=plugin_env)
    assert done.returncode == 0, done.stderr[-3000:]
    record = json.loads((run_dir / "config.json").read_text())
    assert record["model"] == "plugvae" and record["code_dim"] == 2
    assert np.isfinite(pd.read_csv(run_dir / "history.csv")["val_elbo"]).all()

    metrics = tmp_path / "results" / "metrics" / "synthetic" / "plugvae" / "d2" / "s0.json"
    done = run("scripts/evaluate.py", "--data", str(processed_npz), "--model", str(run_dir / "model.pt"),
               "--out", str(metrics), "--seed", "0", "--no-progress", *to_flags(eval_cfg).split(),
               env=plugin_env)
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads(metrics.read_text())
    assert result["model"] == "plugvae" and np.isfinite(result["loglik"]["mean"])
    # a Euclidean family without a mixture of its own: k-means on its codes
    assert result["clustering"]["method"].startswith("k-means")
    # log p(x) >= ELBO, up to the noise of 16 importance samples
    assert result["loglik"]["mean"] >= result["elbo"]["elbo"] - 1.0

    tables = tmp_path / "results" / "tables"
    done = run("scripts/aggregate.py", "--metrics", str(metrics), "--out-dir", str(tables), env=plugin_env)
    assert done.returncode == 0, done.stderr[-3000:]
    wide = pd.read_csv(tables / "loglik.csv")
    assert wide.loc[wide["metric"] == "loglik", "plugvae_mean"].item() == pytest.approx(result["loglik"]["mean"])

    figure = tmp_path / "results" / "figures" / "loglik.png"
    done = run("scripts/figures/results_figures.py", "--kind", "loglik", "--table", str(tables / "loglik.csv"),
               "--out", str(figure), env=plugin_env)
    assert done.returncode == 0, done.stderr[-3000:]
    assert figure.read_bytes()[:4] == b"\x89PNG" and figure.with_suffix(".pdf").read_bytes()[:4] == b"%PDF"


def test_snakemake_plans_a_plugin_family(plugin_env, tmp_path):
    """The schema, the wildcard constraints and the grid take a registered plugin family."""
    override = tmp_path / "grid.yaml"
    override.write_text('models: ["nvae", "plugvae"]\n')
    cmd = [sys.executable, "-m", "snakemake", "--cores", "1", "-n", "--forceall", "--quiet", "rules",
           "--configfile", "profiles/quick/params.yaml", str(override)]
    done = subprocess.run(cmd, env=plugin_env, cwd=REPO_ROOT, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    trains = {ln.split()[0]: int(ln.split()[1]) for ln in done.stdout.splitlines()
              if ln.strip().startswith("train")}
    cfg = load_params(REPO_ROOT / "params.yaml", REPO_ROOT / "profiles" / "quick" / "params.yaml")
    assert sum(trains.values()) == 2 * len(cfg["datasets"]) * len(cfg["latent_dims"]) * len(cfg["seeds"])
    env_without = {k: v for k, v in plugin_env.items() if k != families.PLUGIN_ENV}
    refused = subprocess.run(cmd, env=env_without, cwd=REPO_ROOT, capture_output=True, text=True,
                             timeout=600)
    assert refused.returncode != 0
    assert "unknown latent family 'plugvae'" in refused.stdout + refused.stderr


# --- in-process registration ---------------------------------------------------------------------

class SphereCopy(SVAE):
    """The S-VAE under another name: nothing in the pipeline may know it by name."""

    name = "sphere_copy"
    label = "S-VAE copy"


@pytest.fixture
def sphere_copy():
    families.register(SphereCopy)
    yield SphereCopy
    families.unregister(SphereCopy.name)


def test_registered_family_is_accepted_by_the_configuration(sphere_copy, tmp_path):
    schema = load_schema()
    assert schema["properties"]["models"]["items"]["enum"] == families.names()
    good = tmp_path / "good.yaml"
    good.write_text('models: ["nvae", "sphere_copy"]\n')
    assert load_params(REPO_ROOT / "params.yaml", good)["models"] == ["nvae", "sphere_copy"]
    families.unregister(SphereCopy.name)
    with pytest.raises(ConfigError, match=r"models\.1: unknown latent family 'sphere_copy'"):
        load_params(REPO_ROOT / "params.yaml", good)


def test_a_spherical_family_is_clustered_spherically(eval_cfg, sphere_copy, processed_npz, clustered_arrays,
                                                     train_cfg, model_cfg, tmp_path):
    from vaepriors.evaluation.clustering import cluster_test_set, clustering_scores, kmeans_labels
    from vaepriors.evaluation.loglik import posterior_means
    from vaepriors.evaluation.run import evaluate_run
    from vaepriors.training.run import train_run

    assert code_dim("sphere_copy", 2) == 3  # S^2 in R^3, from the class, not the name
    train_cfg["max_epochs"] = 2
    train_run(processed_npz, tmp_path, "synthetic", "sphere_copy", 2, 0, train_cfg, model_cfg,
              progress=False)
    metrics = evaluate_run(tmp_path / "model.pt", processed_npz, 0, eval_cfg, progress=False)
    assert metrics["clustering"]["method"].startswith("spherical k-means")

    from vaepriors.models import load_model

    model = load_model(tmp_path / "model.pt")
    assert type(model) is SphereCopy and model.code_dim == 3
    x_test = torch.from_numpy(clustered_arrays["xb_test"]).float()
    z = posterior_means(model, x_test)
    # rescaled rows: spherical k-means must not notice, Euclidean k-means would
    z = z * np.random.default_rng(0).uniform(0.1, 10.0, (len(z), 1))
    labels, method = cluster_test_set(model, x_test, z, 5, eval_cfg["kmeans_n_init"], 0)
    np.testing.assert_array_equal(labels, kmeans_labels(z, 5, eval_cfg["kmeans_n_init"], 0, spherical=True))
    expected = clustering_scores(clustered_arrays["y_test"],
                                 kmeans_labels(posterior_means(model, x_test), 5,
                                               eval_cfg["kmeans_n_init"], 0, spherical=True))
    assert {k: metrics["clustering"][k] for k in expected} == expected


def test_every_family_describes_itself():
    """What the pipeline reads from a family is there for every registered one, and distinct where
    figures need it (colour, marker, line style: no curve identified by colour alone)."""
    names = families.names()
    assert names[:4] == ["nvae", "svae", "gmmvae", "ae"]
    for attr in ("label", "color", "marker", "linestyle"):
        values = [getattr(families.get(n), attr) for n in names]
        assert all(values) and len(set(values)) == len(values), attr
    assert [n for n in names if families.get(n).sphere] == ["svae", "psvae"]
    with pytest.raises(families.UnknownFamilyError, match="registered: nvae, svae, gmmvae, ae"):
        families.get("flow")


def test_a_family_with_a_setting_is_one_module(processed_npz, train_cfg, model_cfg, eval_cfg, tmp_path,
                                               monkeypatch):
    """The Student-t family above, with nothing else edited: the schema takes its setting from the
    class, the scripts build it with the configured degrees of freedom, evaluate and tabulate it,
    and both engines plan its runs with the same values (the setting in its runs' identity only)."""
    import importlib.util

    from test_dvc import copy_project, dvc_stages

    from vaepriors.models import load_model

    plugin = tmp_path / "plugin" / "tvae_family.py"
    plugin.parent.mkdir()
    plugin.write_text(STUDENT_T_FAMILY)
    env = {**os.environ, families.PLUGIN_ENV: "tvae_family:StudentTVAE",
           "PYTHONPATH": os.pathsep.join([str(SRC), str(plugin.parent)])}
    spec = importlib.util.spec_from_file_location("tvae_family", plugin)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    families.register(module.StudentTVAE)
    try:
        schema = load_schema()["properties"]["model"]["properties"]
        assert schema["tvae_df"] == {"type": "number", "exclusiveMinimum": 1}

        # the scripts, the setting given as a flag of the model section (as a user may call them)
        train_cfg["max_epochs"] = 2
        run_dir = tmp_path / "results" / "models" / "synthetic" / "tvae" / "d2" / "s0"
        done = run("scripts/train.py", "--data", str(processed_npz), "--out-dir", str(run_dir),
                   "--dataset", "synthetic", "--model", "tvae", "--latent-dim", "2", "--seed", "0",
                   "--no-progress", *to_flags(train_cfg).split(),
                   *to_flags({**model_cfg, "tvae_df": 3.0}).split(), env=env)
        assert done.returncode == 0, done.stderr[-3000:]
        assert load_model(run_dir / "model.pt").df == 3.0
        bad = run("scripts/train.py", "--data", str(processed_npz), "--out-dir", str(tmp_path / "bad"),
                  "--dataset", "synthetic", "--model", "tvae", "--latent-dim", "2", "--seed", "0",
                  *to_flags(train_cfg).split(), *to_flags({**model_cfg, "tvae_df": 0.5}).split(), env=env)
        assert bad.returncode != 0 and "tvae_df" in bad.stderr
        metrics = tmp_path / "results" / "metrics" / "synthetic" / "tvae" / "d2" / "s0.json"
        done = run("scripts/evaluate.py", "--data", str(processed_npz), "--model", str(run_dir / "model.pt"),
                   "--out", str(metrics), "--seed", "0", "--no-progress", *to_flags(eval_cfg).split(), env=env)
        assert done.returncode == 0, done.stderr[-3000:]
        assert np.isfinite(json.loads(metrics.read_text())["loglik"]["mean"])
        tables = tmp_path / "results" / "tables"
        done = run("scripts/aggregate.py", "--metrics", str(metrics), "--out-dir", str(tables), env=env)
        assert done.returncode == 0, done.stderr[-3000:]
        assert "tvae_mean" in pd.read_csv(tables / "loglik.csv").columns

        # both engines' DAGs on the quick grid with the family and its setting in params.yaml
        params = load_params(REPO_ROOT / "params.yaml", REPO_ROOT / "profiles" / "quick" / "params.yaml")
        params.update(models=["nvae", "tvae"], latent_dims=[2], seeds=[0])
        params["model"]["tvae_df"] = 3.0
        root = copy_project(tmp_path / "repo", params, dvc_yaml=False)
        (root / "src" / "tvae_family.py").write_text(STUDENT_T_FAMILY)  # the copy's PYTHONPATH
        monkeypatch.setenv(families.PLUGIN_ENV, "tvae_family:StudentTVAE")
        trains = {dict(j.wildcards)["model"]: j for j in dvcgen.plan(root) if j.rule == "train"}
        assert set(trains) == {"nvae", "tvae"}
        values = {m: json.loads(shlex.split(j.cmd)[shlex.split(j.cmd).index("--settings") + 1])
                  for m, j in trains.items()}
        assert values["tvae"]["model"]["tvae_df"] == 3.0 and "tvae_df" not in values["nvae"]["model"]
        # DVC: dvc.yaml written for this grid has the family's stages, which run Snakemake's commands
        subprocess.run([sys.executable, dvcgen.TOOL, "write"], cwd=root, check=True, capture_output=True)
        subprocess.run([sys.executable, dvcgen.TOOL, "plan"], cwd=root, check=True, capture_output=True)
        stages = dvc_stages(root)
        assert {"train-digits-tvae-2-0", "evaluate-digits-tvae-2-0"} <= set(stages)
        recorded = json.loads((root / dvcgen.plan_file("train-digits-tvae-2-0")).read_text())
        assert recorded["cmd"] == trains["tvae"].cmd
    finally:
        families.unregister("tvae")
