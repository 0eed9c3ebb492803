"""params.yaml, its schema, and the flags that carry a section to a script."""

import shlex

import pytest
import yaml

from vaepriors.config import (
    REPO_ROOT,
    ConfigError,
    apply_overrides,
    coerce_overrides,
    load_params,
    load_schema,
    parse_section,
    parse_sections,
    to_flags,
)

QUICK = REPO_ROOT / "profiles" / "quick" / "params.yaml"


def test_default_and_quick_validate():
    full = load_params()
    quick = load_params(REPO_ROOT / "params.yaml", QUICK)
    assert full["latent_dims"] == [2, 5, 10, 20, 40] and len(full["seeds"]) == 10
    assert full["train"]["batch_size"] == 64 and full["evaluate"]["importance_samples"] == 500
    assert quick["datasets"] == ["digits"]


@pytest.mark.parametrize(
    "override, key",
    [
        ({"train": {"lr": -1}}, "train.lr"),
        ({"models": ["nvae", "flow"]}, "models.1"),
        ({"evaluate": {"importance_samples": "many"}}, "evaluate.importance_samples"),
        ({"train": {"learning_rate": 0.1}}, "train.learning_rate"),
        ({"train": {"lr": float("nan")}}, "train.lr"),
        ({"train": {"lr": float("inf")}}, "train.lr"),
        ({"evaluate": {"ae_scale_grid": [0.1, float("-inf")]}}, "evaluate.ae_scale_grid.1"),
    ],
)
def test_schema_rejects_bad_value_naming_the_key(tmp_path, override, key):
    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump(override))
    with pytest.raises(ConfigError) as info:
        load_params(REPO_ROOT / "params.yaml", bad)
    assert key in str(info.value) and "bad.yaml" in str(info.value)


def test_missing_key_is_named(tmp_path):
    cfg = yaml.safe_load((REPO_ROOT / "params.yaml").read_text())
    del cfg["train"]["patience"]
    path = tmp_path / "params.yaml"
    path.write_text(yaml.safe_dump(cfg))
    with pytest.raises(ConfigError, match=r"train\.patience"):
        load_params(path)


@pytest.mark.parametrize("section", ["data", "model", "train", "evaluate", "figures"])
def test_flags_round_trip_every_section(section):
    cfg = load_params()
    tokens = shlex.split(to_flags(cfg[section]))
    assert parse_section(tokens, section) == cfg[section]


def test_flags_read_dvc_unpacking():
    # Exactly what DVC 3.67 writes for ${data} when mirrors is empty (measured): the list vanishes.
    tokens = shlex.split("--raw_dir data/raw --processed_dir data/processed --split_seed 0 "
                         "--binarize_seed 1 --n_validation 10000 --max_train 0")
    data = parse_section(tokens, "data")
    assert data["mirrors"] == [] and data["n_validation"] == 10000


def test_parse_sections_routes_keys_and_rejects_unknown():
    cfg = load_params()
    both = parse_sections(shlex.split(to_flags(cfg["train"]) + " " + to_flags(cfg["model"])),
                          ["train", "model"])
    assert both["train"] == cfg["train"] and both["model"] == cfg["model"]
    with pytest.raises(ConfigError, match="learning_rate"):
        parse_sections(["--learning_rate", "1"], ["train", "model"])
    with pytest.raises(ConfigError, match=r"train\.lr"):
        parse_section(shlex.split(to_flags({**cfg["train"], "lr": -0.1})), "train")


@pytest.mark.parametrize("text", ["train:\n  lr: .nan\n", "train:\n  lr: .inf\n", "train:\n  lr: -.inf\n"])
def test_non_finite_numbers_are_refused(tmp_path, text):
    bad = tmp_path / "bad.yaml"
    bad.write_text(text)
    with pytest.raises(ConfigError, match=r"train\.lr: -?(nan|inf) is not a finite number"):
        load_params(REPO_ROOT / "params.yaml", bad)
    with pytest.raises(ConfigError, match=r"train\.lr: nan is not a finite number"):
        parse_section(shlex.split(to_flags({**load_params()["train"], "lr": "nan"})), "train")


def test_config_overrides_are_typed_by_the_schema():
    # What Snakemake's --config hands over for seeds='[0,1]' 'train={lr: 5e-4, device: cpu}' ...
    raw = {"seeds": ["0", "1"], "latent_dims": ["2"], "datasets": ["digits"],
           "train": {"lr": "5e-4", "max_epochs": "3", "device": "cpu"},
           "data": {"mirrors": ["/srv/mnist"]},
           "evaluate": {"ae_scale_grid": ["0.1", "1"], "decoder_kernel": "torch"},
           "not_in_schema": "7"}
    typed = coerce_overrides(raw)
    assert typed["seeds"] == [0, 1] and typed["latent_dims"] == [2] and typed["datasets"] == ["digits"]
    assert typed["train"] == {"lr": 5e-4, "max_epochs": 3, "device": "cpu"}
    assert isinstance(typed["train"]["max_epochs"], int)
    assert typed["data"]["mirrors"] == ["/srv/mnist"]  # strings stay strings
    assert typed["evaluate"]["ae_scale_grid"] == [0.1, 1] and typed["evaluate"]["decoder_kernel"] == "torch"
    assert typed["not_in_schema"] == "7"


def test_config_overrides_merge_nested_keys_and_validate():
    cfg = load_params()
    apply_overrides(cfg, {"seeds": ["0", "1"], "train": {"lr": "0.0005"}})
    assert cfg["seeds"] == [0, 1] and cfg["train"]["lr"] == 0.0005
    assert cfg["train"]["batch_size"] == 64  # the other train keys are kept
    from vaepriors.config import validate
    validate(cfg, load_schema())
    # a value that does not parse stays a string, for validation to name
    apply_overrides(cfg, {"seeds": ["0", "x"], "train": {"lr": ".nan"}})
    with pytest.raises(ConfigError) as info:
        validate(cfg, load_schema())
    assert "seeds.1: 'x' is not of type 'integer'" in str(info.value)
    assert "train.lr: nan is not a finite number" in str(info.value)
