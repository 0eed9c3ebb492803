"""params.yaml, its schema, and the flags that carry a section to a script."""

import shlex

import pytest
import yaml

from vaepriors.config import (
    REPO_ROOT,
    ConfigError,
    load_params,
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
