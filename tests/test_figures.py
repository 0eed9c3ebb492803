"""Figures stage: the Fréchet distance, the weight fits, the equal-area projection, the exact KDE,
the rebuilt initial weights, and every figure builder on tiny fake inputs (PNG and PDF)."""

import json

import numpy as np
import pandas as pd
import pytest
import torch
from scipy import linalg

from vaepriors.figures import style
from vaepriors.figures.curves import plot_training_curves, read_histories
from vaepriors.figures.density import (
    StandardisedKDE,
    density_rows,
    kde_log_density,
    plot_density_study,
    study_sizes,
)
from vaepriors.figures.frechet import (
    FeatureReference,
    frechet_distance,
    frechet_from_moments,
    load_classifier,
    plot_sample_quality,
    prior_samples,
    sample_quality_rows,
    save_classifier,
    train_classifier,
)
from vaepriors.figures.images import mosaic, plot_reconstructions, plot_sample_grid
from vaepriors.figures.latents import (
    ellipse_params,
    hammer,
    lonlat,
    plot_latent_maps,
    prior_ellipses,
    sphere_to_map,
)
from vaepriors.figures.results import plot_clustering, plot_loglik
from vaepriors.figures.summary import (
    build_summary,
    clustering_paragraph,
    density_paragraph,
    loglik_paragraph,
    sample_quality_paragraph,
    weights_paragraph,
)
from vaepriors.figures.weights import (
    best_family,
    fit_families,
    initial_model,
    layer_rows,
    linear_weights,
    plot_heldout_gain,
    plot_weights,
    weights_markdown,
)
from vaepriors.models import save_model

MODELS = ["nvae", "svae", "gmmvae", "ae"]
SHAPE = (4, 4)
D = 16


def written(paths):
    """Both formats exist, are non-empty and start with their format's magic bytes."""
    paths = [p for p in paths]
    assert sorted(p.suffix for p in paths) == [".pdf", ".png"]
    for p in paths:
        head = p.read_bytes()[:8]
        assert head.startswith(b"\x89PNG" if p.suffix == ".png" else b"%PDF"), p
    return True


# --- fake inputs ---------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def arrays():
    """A processed-data dict in the layout of docs/design.md: 4x4 images of 3 classes."""
    rng = np.random.default_rng(0)
    protos = rng.random((3, D)) < 0.5

    def split(n):
        y = rng.integers(0, 3, n)
        x = np.where(protos[y] ^ (rng.random((n, D)) < 0.1), 220, 20).astype(np.uint8)
        return x, y.astype(np.int64)

    (x_tr, y_tr), (x_va, y_va), (x_te, y_te) = split(240), split(60), split(60)
    binar = lambda x: (rng.random(x.shape) < x / 255).astype(np.uint8)
    return {"x_train": x_tr, "y_train": y_tr, "x_val": x_va, "y_val": y_va, "x_test": x_te,
            "y_test": y_te, "xb_val": binar(x_va), "xb_test": binar(x_te),
            "image_shape": np.array(SHAPE, dtype=np.int64), "n_classes": np.array(3, dtype=np.int64),
            "split_seed": np.array(0, dtype=np.int64), "binarize_seed": np.array(1, dtype=np.int64)}


def tiny_model(name, latent_dim=2, seed=0, n_classes=3):
    from vaepriors.training.run import model_for

    torch.manual_seed(seed)
    model = model_for(name, latent_dim, D, n_classes, {"hidden": [12, 8]})
    if name == "ae":
        codes = np.random.default_rng(seed).normal(size=(200, latent_dim))
        model.fit_density(codes, codes[:50], [1, 2], seed)
    return model.eval()


@pytest.fixture(scope="module")
def runs(tmp_path_factory, arrays):
    """results/models/fake/{model}/d{dim}/s{seed}/{model.pt,history.csv,config.json}."""
    root = tmp_path_factory.mktemp("models") / "fake"
    paths = []
    for name in MODELS:
        for dim in (2, 3):
            for seed in (0, 1):
                run = root / name / f"d{dim}" / f"s{seed}"
                run.mkdir(parents=True)
                save_model(tiny_model(name, dim, seed), run / "model.pt")
                epochs = np.arange(1, 7 + seed)
                kl = np.zeros(len(epochs)) if name == "ae" else 3 / epochs
                rec = 30 - epochs + 0.1 * seed
                pd.DataFrame({"epoch": epochs, "beta": np.minimum(1, epochs / 3),
                              "train_elbo": -(rec + kl), "train_rec": rec, "train_kl": kl,
                              "val_elbo": -(rec + kl), "val_rec": rec, "val_kl": kl,
                              "seconds": 0.1}).to_csv(run / "history.csv", index=False)
                (run / "config.json").write_text(json.dumps(
                    {"model": name, "latent_dim": dim, "seed": seed,
                     "model_cfg": {"ae_density_components": [1, 2]}}))
                paths.append(run / "model.pt")
    return paths


@pytest.fixture(scope="module")
def reference(arrays):
    clf, info = train_classifier(arrays, [16, 8], epochs=2, seed=0)
    assert 0.0 <= info["test_accuracy"] <= 1.0 and info["feature_dim"] == 8
    return FeatureReference(clf, arrays, n=50)


def fake_metrics():
    rng = np.random.default_rng(1)
    runs = []
    for model in MODELS:
        for dim in (2, 5, 10):
            for seed in range(3):
                runs.append({"dataset": "digits", "model": model, "latent_dim": dim, "seed": seed,
                             "loglik": {"mean": -90 + dim * 0.1 * MODELS.index(model) + rng.normal()},
                             "elbo": {"elbo": -95.0, "rec": 80.0, "kl": 15.0},
                             "clustering": {"acc": rng.random(), "nmi": rng.random(), "ari": rng.random()},
                             "knn": {"100": {"test_acc": rng.random()}},
                             "references": {"pixel_kmeans": {"acc": 0.5, "nmi": 0.4, "ari": 0.3},
                                            "pca_gmm": {"acc": 0.6, "nmi": 0.5, "ari": 0.4}}})
    return runs


# --- the Fréchet distance ------------------------------------------------------------------------

def test_frechet_closed_form_diagonal():
    mu1, mu2 = np.array([0.0, 1.0, -2.0]), np.array([1.0, 1.0, 0.5])
    sd1, sd2 = np.array([1.0, 2.0, 0.5]), np.array([0.5, 2.5, 1.5])
    expected = ((mu1 - mu2) ** 2).sum() + ((sd1 - sd2) ** 2).sum()
    got = frechet_from_moments(mu1, np.diag(sd1**2), mu2, np.diag(sd2**2))
    assert got == pytest.approx(expected, rel=1e-10)


def test_frechet_closed_form_full_covariances():
    rng = np.random.default_rng(0)
    a, b = rng.normal(size=(4, 4)), rng.normal(size=(4, 4))
    s1, s2 = a @ a.T + 0.1 * np.eye(4), b @ b.T + 0.1 * np.eye(4)
    mu1, mu2 = rng.normal(size=4), rng.normal(size=4)
    r1 = linalg.sqrtm(s1)
    expected = ((mu1 - mu2) ** 2).sum() + np.trace(s1 + s2 - 2 * linalg.sqrtm(r1 @ s2 @ r1)).real
    assert frechet_from_moments(mu1, s1, mu2, s2) == pytest.approx(expected, rel=1e-8)


def test_frechet_zero_for_identical_sets_and_consistent_on_samples():
    rng = np.random.default_rng(0)
    f = rng.normal(size=(500, 6))
    assert frechet_distance(f, f) == pytest.approx(0.0, abs=1e-8)
    # Large samples of two Gaussians approach their closed-form distance.
    g = rng.normal(loc=1.0, scale=2.0, size=(200000, 2))
    h = rng.normal(loc=0.0, scale=1.0, size=(200000, 2))
    assert frechet_distance(g, h) == pytest.approx(2 * 1.0 + 2 * (2.0 - 1.0) ** 2, rel=0.02)


# --- weight fits -----------------------------------------------------------------------------------

@pytest.mark.parametrize("family,draw", [
    ("laplace", lambda rng, n: rng.laplace(0.0, 0.05, n)),
    ("norm", lambda rng, n: rng.normal(0.0, 0.05, n)),
    ("t", lambda rng, n: 0.05 * rng.standard_t(3, n)),
])
def test_weight_fit_picks_the_generating_family(family, draw):
    fits = fit_families(draw(np.random.default_rng(0), 4000), seed=0)
    assert best_family(fits) == family
    assert fits[family]["n_fit"] == 2000 and fits[family]["n_heldout"] == 2000
    for name, r in fits.items():
        assert 0 <= r["ks"] <= 1 and np.isfinite(r["heldout_loglik"]), name


def test_weight_table_on_synthetic_layers():
    rng = np.random.default_rng(1)
    net = torch.nn.Sequential(torch.nn.Linear(60, 50), torch.nn.Linear(50, 40))
    with torch.no_grad():
        net[0].weight.copy_(torch.from_numpy(rng.laplace(0, 0.1, (50, 60))))
        net[1].weight.copy_(torch.from_numpy(rng.normal(0, 0.1, (40, 50))))
    rows, weights = layer_rows(net, "trained", fit_seed=0, dataset="x", model="nvae", latent_dim=2, seed=0)
    table = pd.DataFrame(rows)
    best = table[table["best_by_loglik"]].set_index("layer")["family"]
    assert best.to_dict() == {"0": "laplace", "1": "norm"}
    assert set(weights) == {"0", "1"}
    md = weights_markdown(table)
    assert "**" in md and "Laplace" in md


# --- the equal-area projection -------------------------------------------------------------------

def test_hammer_maps_uniform_sphere_points_to_uniform_density():
    rng = np.random.default_rng(0)
    n = 400_000
    z = rng.normal(size=(n, 3))
    xy = sphere_to_map(z)
    # The image is the ellipse x^2/8 + y^2/2 <= 1 of area 4 pi (= the sphere's area).
    assert np.all(xy[:, 0] ** 2 / 8 + xy[:, 1] ** 2 / 2 <= 1 + 1e-9)
    # Count points in square cells lying wholly inside the ellipse: each should hold n * area / 4 pi.
    h = 0.25
    edges_x, edges_y = np.arange(-2.75, 2.75 + h, h), np.arange(-1.25, 1.25 + h, h)
    counts, _, _ = np.histogram2d(xy[:, 0], xy[:, 1], bins=[edges_x, edges_y])
    cx, cy = np.meshgrid(edges_x, edges_y, indexing="ij")
    corner_in = cx**2 / 8 + cy**2 / 2 <= 1
    inside = corner_in[:-1, :-1] & corner_in[1:, :-1] & corner_in[:-1, 1:] & corner_in[1:, 1:]
    expected = n * h * h / (4 * np.pi)
    got = counts[inside]
    assert inside.sum() > 100
    z_scores = (got - expected) / np.sqrt(expected)
    assert abs(got.mean() / expected - 1) < 0.01
    assert np.abs(z_scores).max() < 5


def test_hammer_jacobian_equals_sphere_area_element():
    rng = np.random.default_rng(1)
    lon, lat = rng.uniform(-3.0, 3.0, 200), rng.uniform(-1.4, 1.4, 200)
    eps = 1e-6
    dx_dlon = (np.array(hammer(lon + eps, lat)) - np.array(hammer(lon - eps, lat))) / (2 * eps)
    dx_dlat = (np.array(hammer(lon, lat + eps)) - np.array(hammer(lon, lat - eps))) / (2 * eps)
    det = np.abs(dx_dlon[0] * dx_dlat[1] - dx_dlon[1] * dx_dlat[0])
    np.testing.assert_allclose(det, np.cos(lat), rtol=1e-5)
    # lonlat inverts the parametrisation of the unit sphere
    xyz = np.stack([np.cos(lat) * np.cos(lon), np.cos(lat) * np.sin(lon), np.sin(lat)], -1)
    lo, la = lonlat(xyz)
    np.testing.assert_allclose(lo, lon, atol=1e-12)
    np.testing.assert_allclose(la, lat, atol=1e-12)


def test_rotation_to_front_is_a_proper_rotation():
    from vaepriors.figures.latents import rotation_to_front

    rng = np.random.default_rng(2)
    for a in [*rng.normal(size=(5, 3)), np.array([-1.0, 0, 0]), np.array([2.0, 0, 0])]:
        r = rotation_to_front(a)
        np.testing.assert_allclose(r @ (a / np.linalg.norm(a)), [1, 0, 0], atol=1e-12)
        np.testing.assert_allclose(r @ r.T, np.eye(3), atol=1e-12)
        assert np.linalg.det(r) == pytest.approx(1.0)


def test_ellipse_params_of_a_rotated_covariance():
    angle = np.radians(30)
    rot = np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
    cov = rot @ np.diag([4.0, 1.0]) @ rot.T
    width, height, deg = ellipse_params(cov, n_sigma=2)
    assert (width, height) == pytest.approx((8.0, 4.0))
    assert deg % 180 == pytest.approx(30.0)


# --- the density study ---------------------------------------------------------------------------

def test_exact_kde_matches_sklearn_in_low_dimension():
    from sklearn.neighbors import KernelDensity

    rng = np.random.default_rng(0)
    x, q = rng.normal(size=(300, 2)), rng.normal(size=(50, 2))
    ours = kde_log_density(x, q, 0.4, chunk_elements=1000)
    ref = KernelDensity(bandwidth=0.4).fit(x).score_samples(q)
    np.testing.assert_allclose(ours, ref, rtol=1e-8, atol=1e-8)
    # Standardisation adds the log-Jacobian back: densities stay in the codes' own units.
    scaled = StandardisedKDE(3.0 * x, 0.4)
    np.testing.assert_allclose(scaled.log_density(3.0 * q),
                               kde_log_density(x / x.std(0), q / x.std(0), 0.4)
                               - np.log(3.0 * x.std(0)).sum(), rtol=1e-8)


def test_study_sizes():
    assert study_sizes([100, 1000, 0], 500) == [100, 500]
    assert study_sizes([0], 50) == [50]


def test_density_study_and_its_figure(tmp_path, arrays, reference):
    model = tiny_model("ae", latent_dim=2)
    rows = density_rows(model, arrays, seed=0, sizes=[50, 0], candidates=[1, 2],
                        kde_factors=[0.5, 1.0], reference=reference, fd_samples=40)
    table = pd.DataFrame(rows).assign(dataset="fake")
    assert set(table["estimator"]) == {"gmm", "kde"} and set(table["n"]) == {50, 240}
    assert np.isfinite(table[["test_logdens_per_dim", "fd"]].to_numpy()).all()
    table2 = table.assign(latent_dim=3, seed=0)
    both = pd.concat([table, table2, table.assign(seed=1)], ignore_index=True)
    assert written(plot_density_study(both, tmp_path / "density.png", title="t"))
    assert "nats/dim" in density_paragraph(both)


# --- initial weights -------------------------------------------------------------------------------

def test_initial_model_reproduces_the_training_initialisation(tmp_path, arrays, monkeypatch):
    """train_run's model, captured just before training starts, equals the rebuild."""
    from vaepriors.data.prepare import save_processed
    from vaepriors.training import TrainData, run

    path = save_processed(arrays, tmp_path / "fake.npz")
    captured = {}

    class Stop(Exception):
        pass

    class CaptureTrainer:
        def __init__(self, models, *args, **kwargs):
            model = models[0]
            captured["state"] = {k: v.clone() for k, v in model.state_dict().items()}
            captured["model"] = model
            raise Stop

    monkeypatch.setattr(run, "Trainer", CaptureTrainer)
    cfg_model = {"hidden": [12, 8], "gmm_components": 0, "gmm_pretrain_epochs": 0,
                 "ae_density_components": [1]}
    cfg_train = {"threads": 1}
    pixel_mean = TrainData.from_arrays(arrays).x_train.mean(0)
    for name in MODELS:
        with pytest.raises(Stop):
            run.train_run(path, tmp_path / name, "fake", name, 2, 7, cfg_train, cfg_model, progress=False)
        rebuilt = initial_model(captured["model"], seed=7, n_classes=3, pixel_mean=pixel_mean)
        state = rebuilt.state_dict()
        for key, value in captured["state"].items():
            assert torch.equal(state[key], value), (name, key)
        # Without the seed the weights differ: the comparison has teeth.
        other = initial_model(captured["model"], seed=8, n_classes=3, pixel_mean=pixel_mean)
        assert not torch.equal(other.body[0].weight, captured["state"]["body.0.weight"])


# --- figure builders on fake inputs ----------------------------------------------------------------

def test_loglik_and_clustering_figures(tmp_path):
    from vaepriors.evaluation.tables import aggregate, wide_table

    summary = aggregate(fake_metrics())
    loglik, clustering = wide_table(summary, "loglik"), wide_table(summary, "clustering")
    assert written(plot_loglik(loglik, tmp_path / "loglik.png"))
    assert written(plot_clustering(clustering, tmp_path / "clustering"))
    text = loglik_paragraph(loglik)
    assert "best is" in text and "nats" in text
    assert "reference" in clustering_paragraph(clustering)


def test_latent_map_figure(tmp_path):
    rng = np.random.default_rng(0)
    y = rng.integers(0, 3, 90)
    gmm = tiny_model("gmmvae")
    panels = {
        "nvae": {"codes": rng.normal(size=(90, 2)), "ellipses": prior_ellipses(tiny_model("nvae"))},
        "gmmvae": {"codes": rng.normal(size=(90, 2)), "ellipses": prior_ellipses(gmm),
                   "ellipse_label": "components"},
        "ae": {"codes": rng.normal(size=(90, 2)), "ellipses": prior_ellipses(tiny_model("ae"))},
        "svae": {"codes": rng.normal(size=(90, 3)), "ellipses": None},
    }
    means, covs, weights = panels["gmmvae"]["ellipses"]
    assert means.shape == (3, 2) and covs.shape == (3, 2, 2) and weights.sum() == pytest.approx(1)
    assert prior_ellipses(tiny_model("svae")) is None
    assert written(plot_latent_maps(panels, y, tmp_path / "latent.png", title="fake"))


def test_image_grids(tmp_path):
    rng = np.random.default_rng(0)
    tiles = mosaic(rng.random((5, 4, 4)), ncols=3)
    assert tiles.shape == (2 * 5 + 1, 3 * 5 + 1) and np.isnan(tiles[0, 0])
    samples = {m: {2: rng.random((9, D)), 3: rng.random((9, D))} for m in MODELS}
    assert written(plot_sample_grid(samples, SHAPE, tmp_path / "samples.png", grid=3))
    recons = {m: {2: rng.random((3, D))} for m in MODELS}
    assert written(plot_reconstructions(rng.random((3, D)) > 0.5, recons, SHAPE, tmp_path / "rec.png"))


def test_prior_samples_of_every_family_are_bernoulli_means():
    for name in MODELS:
        images = prior_samples(tiny_model(name), 7, seed=0)
        assert images.shape == (7, D) and (images >= 0).all() and (images <= 1).all()
        np.testing.assert_array_equal(images, prior_samples(tiny_model(name), 7, seed=0))


def test_training_curve_figure(tmp_path, runs):
    hist = read_histories([p.parent / "history.csv" for p in runs])
    assert set(hist["model"]) == set(MODELS) and set(hist["latent_dim"]) == {2, 3}
    assert written(plot_training_curves(hist, tmp_path / "curves.png", title="fake"))


def test_sample_quality_figure(tmp_path, runs, reference):
    rows = sample_quality_rows([p for p in runs if "/d2/" in str(p) or "/d3/" in str(p)], reference, 30)
    table = pd.DataFrame(rows)
    assert set(table["model"]) == set(MODELS) and (table["fd"] >= 0).all()
    assert (table["fd_floor"] >= 0).all()
    info = {"fake": {"test_accuracy": 0.9, "hidden": [16, 8]}}
    assert written(plot_sample_quality(table, info, tmp_path / "quality.png"))
    assert "0.9000" in sample_quality_paragraph(table, info)


def test_classifier_round_trip(tmp_path, reference):
    save_classifier(reference.clf, tmp_path / "c.pt")
    again = load_classifier(tmp_path / "c.pt")
    x = torch.rand(5, D)
    assert torch.equal(again.features(x), reference.clf.features(x))


def test_weight_figures_and_summary(tmp_path, runs):
    rows, raw = [], {"init": {}, "trained": {}}
    for name in MODELS:
        trained = tiny_model(name, latent_dim=3)
        assert [n for n, _ in linear_weights(trained)][0].startswith("body")
        init = initial_model(trained, seed=0, n_classes=3)
        for state, net in (("init", init), ("trained", trained)):
            r, w = layer_rows(net, state, fit_seed=0, dataset="fake", model=name, latent_dim=3, seed=0)
            rows += r
            raw[state][name] = w
    table = pd.DataFrame(rows)
    two = {m: raw["trained"][m] for m in ("nvae", "svae")}  # two rows keep the test fast
    assert written(plot_weights(two, table, tmp_path / "weights_trained.png", "trained"))
    assert written(plot_heldout_gain(table, tmp_path / "w_gain.png"))
    text = weights_paragraph(table)
    assert "heavier-tailed" in text

    (tmp_path / "weights_fake.md").write_text("## fake: a table\n\n| a |\n|---|\n| 1 |\n")
    out = tmp_path / "summary.md"
    build_summary(out, figures=[tmp_path / "weights_trained.png"], tables_md=[tmp_path / "weights_fake.md"],
                  paragraphs={"weights": text, "loglik": "LL paragraph"})
    body = out.read_text()
    assert "LL paragraph" in body and "](weights_trained.png)" in body and "### fake: a table" in body
    # a section with nothing in this run gets no heading (no d = 2 run: no latent maps)
    assert "## 9. Weight distributions" in body and "Latent maps" not in body and "## 2. Clustering" not in body


def test_style_is_grayscale_distinct():
    """The four model colours differ in lightness, so a grayscale print keeps them apart."""
    import matplotlib.colors as mc

    lum = sorted(np.dot(mc.to_rgb(style.COLORS[m]), [0.299, 0.587, 0.114]) for m in MODELS)
    assert min(np.diff(lum)) > 0.1
    assert len({style.MARKERS[m] for m in MODELS}) == 4 and len({style.LINESTYLES[m] for m in MODELS}) == 4


def test_loglik_paragraph_gives_each_alternative_its_gap_to_the_gaussian():
    """Every family whose class sets compare_to_baseline (the S-VAE and the three families beyond
    the paper) gets its "minus N-VAE" sentence; the others do not; the VampPrior's anchor is cited."""
    from vaepriors import families
    from vaepriors.evaluation.tables import aggregate, wide_table

    runs = [{**run, "model": m} for m in families.names() for run in fake_metrics() if run["model"] == "nvae"]
    text = loglik_paragraph(wide_table(aggregate(runs), "loglik"))
    baseline = families.get(next(m for m in families.names() if families.get(m).baseline))
    compared = {m for m in families.names() if families.get(m).compare_to_baseline}
    assert compared == {"svae", "psvae", "lvae", "vamp"}
    for m in families.names():
        assert (f"{families.get(m).label} minus {baseline.label}" in text) == (m in compared), m
    assert "Tomczak & Welling (2018)" in text
