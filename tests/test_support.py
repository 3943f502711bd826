"""Support scores against a known landscape: latents from the three-component mixture of conftest
(``latent_mixture``), whose modes, fresh draws and empty regions are known."""

import csv

import numpy as np
import pytest
import torch

from cryodiff.cli.main import main
from cryodiff.prior import train_prior
from cryodiff.support import FLAG_PERCENTILE, score, support_reference


@pytest.fixture(scope="module")
def landscape(latent_mixture, tmp_path_factory, one_torch_thread):
    z, _ = latent_mixture.sample(4000, generator=torch.Generator().manual_seed(3))
    prior = train_prior(z.numpy(), tmp_path_factory.mktemp("support") / "prior", steps=1200, batch_size=256)
    return z.numpy().astype(np.float32), prior


def _far_points(latent_mixture) -> np.ndarray:
    """Latents well outside every component: 8 component stds beyond each mean, and the origin-free corners."""
    means = latent_mixture.means.numpy()
    return np.concatenate([means + 8 * np.sqrt(np.diagonal(latent_mixture.covs.numpy(), axis1=1, axis2=2)),
                           np.full((1, 4), 12.0), np.full((1, 4), -12.0)])


@pytest.mark.parametrize("with_prior", [True, False])
def test_modes_and_fresh_draws_are_supported_and_far_points_are_not(latent_mixture, landscape, with_prior):
    z, prior = landscape
    reference = support_reference(z, prior if with_prior else None)
    modes = score(reference, latent_mixture.means.numpy())
    assert modes.supported.all()
    assert (modes.neighbours >= 20).all()  # a mode is denser than the median particle
    far = score(reference, _far_points(latent_mixture))
    assert not far.supported.any()
    assert (far.neighbours == 0).all()
    fresh, _ = latent_mixture.sample(600, generator=torch.Generator().manual_seed(99))
    flagged = 1 - score(reference, fresh.numpy()).supported.mean()
    # each score flags about FLAG_PERCENTILE % of the data's own draws; with both, at most about twice that
    assert flagged <= 4 * FLAG_PERCENTILE / 100
    if with_prior:
        assert np.isfinite(modes.log_density).all() and (modes.density_percentile > 50).all()
        assert (far.density_percentile == 0).all()
        # the prior's density ranks points as the true density does
        truth = latent_mixture.log_prob(fresh).numpy()
        estimate = score(reference, fresh.numpy()).log_density
        assert np.corrcoef(np.argsort(np.argsort(truth)), np.argsort(np.argsort(estimate)))[0, 1] > 0.9
    else:
        assert np.isnan(modes.log_density).all()


def test_eval_vol_writes_support_and_warns_outside_the_data(tiny_vae_run, tmp_path, caplog):
    from recon.run import load_run

    z = load_run(tiny_vae_run).latents()
    inside, outside = z.mean(0), z.mean(0) + 40 * z.std(0)
    out = tmp_path / "vols"
    argv = ["eval-vol", str(tiny_vae_run), "-o", str(out), "-z", *map(str, inside), *map(str, outside)]
    with caplog.at_level("WARNING"):
        assert main(argv) in (0, None)
    with open(out / "vol_support.csv") as f:
        rows = list(csv.DictReader(f))
    assert [r["volume"] for r in rows] == ["vol_000.mrc", "vol_001.mrc"]
    assert [r["supported"] for r in rows] == ["yes", "no"]
    assert rows[1]["neighbours"] == "0" and rows[0]["log_density"] == "nan"  # no prior beside this run
    warnings = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    assert any("vol_001.mrc: outside the particles' support" in w for w in warnings)
    assert not any("vol_000.mrc" in w for w in warnings)


def test_sample_volumes_carry_the_prior_density(tiny_vae_run, tmp_path):
    prior = tmp_path / "prior"
    assert main(["train-prior", str(tiny_vae_run), "-o", str(prior), "--steps", "200", "--threads", "1"]) in (0, None)
    assert main(["sample", str(prior), "-n", "3", "-o", str(tmp_path / "z.txt"), "--volumes", str(tmp_path / "vols"),
                 "--run", str(tiny_vae_run), "-D", "8"]) in (0, None)
    with open(tmp_path / "vols" / "support.csv") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 3
    assert all(np.isfinite(float(r["log_density"])) and 0 <= float(r["density_percentile"]) <= 100 for r in rows)
