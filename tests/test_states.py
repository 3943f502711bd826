"""cryodiff states against a known landscape: latents drawn from a three-component mixture
(weights 0.5, 0.3, 0.2; ``latent_mixture`` in conftest) and a single Gaussian."""

import json

import h5py
import numpy as np
import pytest
import torch

from cryodiff.cli.main import main
from cryodiff.prior import train_prior
from cryodiff.states import bootstrap, find_states, free_energies, populations

N = 6000
WEIGHTS = np.array([0.5, 0.3, 0.2])


@pytest.fixture(scope="module")
def mixture_prior(latent_mixture, tmp_path_factory, one_torch_thread):
    z, component = latent_mixture.sample(N, generator=torch.Generator().manual_seed(11))
    root = tmp_path_factory.mktemp("states")
    np.save(root / "z.npy", z.numpy().astype(np.float32))
    prior = train_prior(z.numpy(), root / "prior", steps=1500, batch_size=256)
    return prior, z.numpy().astype(np.float32), component.numpy(), root


def test_states_are_the_mixture_components(latent_mixture, mixture_prior):
    prior, z, component, _ = mixture_prior
    states = find_states(prior, z, seed=0)
    assert states.count == 3, states.scan
    truth_means = latent_mixture.means.numpy()
    # each mode sits at one component's mean (modes are most populated first: weights 0.5, 0.3, 0.2)
    for k in range(3):
        assert np.linalg.norm(states.modes[k] - truth_means[k]) < 0.3
    assigned = states.labels >= 0
    assert assigned.mean() > 0.97
    assert np.mean(states.labels[assigned] == component[assigned]) > 0.99
    population = populations(states.labels, 3)
    np.testing.assert_allclose(population, WEIGHTS, atol=0.03)
    # the intervals cover the sample's own component fractions (what the bootstrap estimates)
    intervals = bootstrap(states.labels, 3, draws=500, confidence=0.9, seed=1)
    observed = np.bincount(component, minlength=3) / N
    low, high = intervals["population"].T
    assert np.all(low - 0.01 <= observed) and np.all(observed <= high + 0.01)
    assert np.all(high - low < 0.04)  # and are as narrow as 6,000 particles allow (about 0.017 for p = 0.3)
    # dG = -ln(p_i / p_max): 0, ln(5/3), ln(5/2) kT
    np.testing.assert_allclose(free_energies(population), -np.log(WEIGHTS / WEIGHTS.max()), atol=0.12)


def test_one_gaussian_is_one_state(tmp_path, one_torch_thread):
    rng = np.random.default_rng(3)
    z = (rng.standard_normal((3000, 3)) * [2.0, 0.5, 1.0] + [1.0, -2.0, 0.0]).astype(np.float32)
    prior = train_prior(z, tmp_path / "prior", steps=1000, batch_size=256)
    states = find_states(prior, z, seed=0)
    assert states.count == 1, states.scan
    assert np.mean(states.labels == 0) > 0.97
    np.testing.assert_allclose(states.modes[0], [1.0, -2.0, 0.0], atol=0.35)


@pytest.mark.parametrize("counts, run", [
    ([0, 0, 4, 6, 6, 6, 5, 5, 4, 4, 4, 4, 4, 1], (3, 5)),  # six states over 3 bandwidths beat four merged ones over 5
    ([0, 0, 4, 6, 6, 6, 6, 6, 5, 5, 4, 4, 3, 1], (3, 7)),
    ([0, 0, 0, 9, 7, 6, 5, 5, 4, 4, 3, 3, 2, 1], (6, 7)),  # nothing persists over three: the widest run, finest first
])
def test_bandwidth_is_the_finest_count_that_persists(monkeypatch, counts, run):
    from cryodiff import states as states_module

    scan = iter(counts)
    monkeypatch.setattr(states_module, "modes_at", lambda *args: np.zeros((next(scan), 2)))
    bandwidth, listed = states_module.persistent_bandwidth(None, None, 0.01)
    first, last = run
    assert [row["modes"] for row in listed] == counts
    assert bandwidth == pytest.approx(np.sqrt(states_module.BANDWIDTHS[first] * states_module.BANDWIDTHS[last]))


def test_bootstrap_interval_covers_the_truth_at_its_level():
    """Coverage of the percentile interval over many samples of a known population (0.2)."""
    rng = np.random.default_rng(0)
    covered = 0
    for trial in range(200):
        labels = (rng.random(2000) < 0.2).astype(int) - 1  # state 0 with probability 0.2, else unassigned
        low, high = bootstrap(labels, 1, draws=300, confidence=0.9, seed=trial)["population"][0]
        covered += low <= 0.2 <= high
    assert 0.84 <= covered / 200 <= 0.96


def test_mixture_gives_back_the_tail_that_spilled_into_a_neighbours_basin():
    """Two overlapping Gaussians (weights 0.8, 0.2, 3 sd apart) cut at the midpoint: the small
    state's basin count is 0.04 too high (it gains more of the large state's tail than it loses);
    the mixture's weights and their bootstrap interval hold the truth."""
    from cryodiff.states import fit_mixture, mixture_populations

    rng = np.random.default_rng(0)
    n = 20000
    component = (rng.random(n) < 0.2).astype(int)
    u = rng.standard_normal((n, 3))
    u[:, 0] += 3.0 * component
    labels = (u[:, 0] > 1.5).astype(int)
    labels[np.abs(u[:, 1]) > 3.3] = -1  # about 0.1 % unassigned: they stay out of both states
    truth = np.bincount(component[labels >= 0], minlength=2) / n
    counts = populations(labels, 2)
    assert counts[1] - truth[1] > 0.03
    mixture = fit_mixture(u, labels, 2)
    assert mixture is not None
    np.testing.assert_allclose(mixture_populations(mixture, labels, 2), truth, atol=0.01)
    low, high = bootstrap(labels, 2, mixtures=[mixture], draws=300, confidence=0.9, seed=1)["population"].T
    assert np.all(low <= truth) and np.all(truth <= high)
    low, high = bootstrap(labels, 2, draws=300, confidence=0.9, seed=1)["population"].T
    assert not (low[1] <= truth[1] <= high[1])  # the basin counts' interval misses it


def test_mixture_is_refused_when_it_does_not_hold_to_the_states():
    from cryodiff.states import fit_mixture

    rng = np.random.default_rng(1)
    u = rng.standard_normal((4000, 2))
    u[:2000, 0] += 6.0
    halves = np.arange(4000) % 2  # two "states" that mix both clusters: the fit splits them by cluster
    assert fit_mixture(u, halves, 2) is None
    assert fit_mixture(u, (np.arange(4000) < 2000).astype(int), 2) is not None
    assert fit_mixture(u, np.r_[np.zeros(3997, int), np.ones(3, int)], 2) is None  # a state too small to fit


def test_states_command_writes_the_table(mixture_prior, tmp_path):
    _, _, _, root = mixture_prior
    out = tmp_path / "states"
    assert main(["states", str(root / "prior"), "--latents", str(root / "z.npy"), "-o", str(out),
                 "--bootstrap", "200"]) in (0, None)
    record = json.loads((out / "states.json").read_text())
    assert len(record["states"]) == 3 and record["particles"] == N
    assert [s["state"] for s in record["states"]] == [0, 1, 2]
    assert record["populations_from"] == "basins"
    first = record["states"][0]
    assert first["dG_kT"] == 0.0 and first["population_low"] < first["population"] < first["population_high"]
    assert first["basin_population"] == first["population"]
    assert abs(first["population"] - 0.5) < 0.03
    rows = (out / "states.csv").read_text().splitlines()
    assert len(rows) == 4 and rows[0].startswith("state,particles,population")
    with h5py.File(out / "assignments.h5") as h5:
        np.testing.assert_array_equal(h5["indices"][()], np.arange(N))
        assert set(np.unique(h5["state"][()])) <= {-1, 0, 1, 2}
    assert (out / "states.png").stat().st_size > 10_000


def test_states_command_fits_the_mixture_when_asked(mixture_prior, tmp_path):
    _, _, component, root = mixture_prior
    out = tmp_path / "states"
    assert main(["states", str(root / "prior"), "--latents", str(root / "z.npy"), "-o", str(out),
                 "--bootstrap", "100", "--populations", "mixture"]) in (0, None)
    record = json.loads((out / "states.json").read_text())
    assert record["populations_from"] == "mixture"
    population = np.array([s["population"] for s in record["states"]])
    np.testing.assert_allclose(population, np.bincount(component, minlength=3) / N, atol=0.01)
    for s in record["states"]:  # well-separated Gaussian states: the mixture and the counts agree
        assert abs(s["basin_population"] - s["population"]) < 0.02
        assert s["population_low"] < s["population"] < s["population_high"]


def test_states_command_with_a_run_writes_each_states_volume(tiny_vae_run, tmp_path):
    from recon.io import read_volume
    from recon.run import load_run

    run = load_run(tiny_vae_run)
    prior = tmp_path / "prior"
    assert main(["train-prior", str(tiny_vae_run), "-o", str(prior), "--steps", "300", "--threads", "1"]) in (0, None)
    out = tmp_path / "states"
    assert main(["states", str(prior), "--run", str(tiny_vae_run), "-o", str(out), "--bandwidth", "0.5",
                 "--min-population", "0.05", "--bootstrap", "50"]) in (0, None)
    record = json.loads((out / "states.json").read_text())
    modes = np.loadtxt(out / "z.txt", ndmin=2)
    assert len(modes) == len(record["states"]) >= 1
    volume, apix = read_volume(out / "vol_000.mrc")
    np.testing.assert_allclose(volume, run.volume(modes[0]), rtol=1e-4, atol=1e-5)
    assert apix == pytest.approx(run.apix)


def test_states_command_refuses_bad_input(mixture_prior, tmp_path, fails_with_one_line):
    _, _, _, root = mixture_prior
    fails_with_one_line(["states", str(root / "prior"), "--latents", str(root / "z.npy"), "-o", str(tmp_path / "a"),
                         "--min-population", "1.5"], "--min-population")
    fails_with_one_line(["states", str(root / "prior"), "--latents", str(root / "z.npy"), "-o", str(tmp_path / "b"),
                         "-D", "16"], "--run")
    np.save(tmp_path / "wrong.npy", np.zeros((50, 2), np.float32) + np.arange(50)[:, None])
    fails_with_one_line(["states", str(root / "prior"), "--latents", str(tmp_path / "wrong.npy"), "-o", str(tmp_path / "c")],
                        "zdim")
    assert not (tmp_path / "a").exists() and not (tmp_path / "c").exists()


def test_match_states_pairs_modes_across_priors():
    from cryodiff.states import States, match_states

    reference = States(np.array([[0.0, 0.0], [4.0, 0.0], [0.0, 4.0]]), np.array([0, 1, 2, 2, -1]), 0.3, [])
    # the same states found in another order, one missing and one extra far away
    other = States(np.array([[0.1, 3.9], [0.05, 0.0], [9.0, 9.0]]), np.array([1, 2, 0, 0, 2]), 0.3, [])
    np.testing.assert_array_equal(match_states(reference, other, np.ones(2)), [0, -1, 2, 2, -1])


def test_retrained_priors_widen_the_intervals(mixture_prior, tmp_path):
    _, _, _, root = mixture_prior
    common = ["states", str(root / "prior"), "--latents", str(root / "z.npy"), "--bootstrap", "400"]
    assert main([*common, "-o", str(tmp_path / "one")]) in (0, None)
    assert main([*common, "-o", str(tmp_path / "two"), "--retrain", "1"]) in (0, None)
    one = json.loads((tmp_path / "one" / "states.json").read_text())
    two = json.loads((tmp_path / "two" / "states.json").read_text())
    assert (tmp_path / "two" / "priors" / "seed1" / "prior.pt").is_file()
    (retrained,) = two["retrained_priors"]
    assert retrained["seed"] == 1 and retrained["states"] == 3
    np.testing.assert_allclose(retrained["population"], WEIGHTS, atol=0.03)  # the other prior finds the same states
    width = lambda record: np.array([s["population_high"] - s["population_low"] for s in record["states"]])  # noqa: E731
    assert np.all(width(two) >= 0.8 * width(one))


def test_states_maps_reconstruct_each_state_and_write_the_summary(tiny_vae_run, tmp_path):
    from recon.io import read_volume

    prior = tmp_path / "prior"
    assert main(["train-prior", str(tiny_vae_run), "-o", str(prior), "--steps", "300", "--threads", "1"]) in (0, None)
    out = tmp_path / "states"
    assert main(["states", str(prior), "--run", str(tiny_vae_run), "-o", str(out), "--bandwidth", "1.0",
                 "--min-population", "0.25", "--bootstrap", "50", "--maps"]) in (0, None)
    record = json.loads((out / "states.json").read_text())
    assignments = h5py.File(out / "assignments.h5", "r")["state"][()]
    for row in record["states"]:
        k = row["state"]
        volume, apix = read_volume(out / f"state_{k:03d}_map.mrc")
        assert volume.shape == (16, 16, 16) and (out / f"state_{k:03d}_half2.mrc").is_file()
        assert row["half_map_resolution_A"] >= 2 * apix and isinstance(row["decoded_supported"], bool)
        assert row["particles"] == np.sum(assignments == k)
    summary = (out / "summary.html").read_text()
    assert "half-map resolution" in summary and "state_fsc.png" in summary and (out / "state_fsc.png").is_file()


def test_states_maps_need_a_run(mixture_prior, tmp_path, fails_with_one_line):
    _, _, _, root = mixture_prior
    fails_with_one_line(["states", str(root / "prior"), "--latents", str(root / "z.npy"), "-o", str(tmp_path / "s"), "--maps"],
                        "--maps", "give --run RUN")
    fails_with_one_line(["states", str(root / "prior"), "--latents", str(root / "z.npy"), "-o", str(tmp_path / "t"),
                         "--populations", "images"], "--populations images", "give --run RUN")


def test_states_image_populations_write_each_particles_probabilities(tiny_vae_run, tmp_path):
    prior = tmp_path / "prior"
    assert main(["train-prior", str(tiny_vae_run), "-o", str(prior), "--steps", "300", "--threads", "1"]) in (0, None)
    out = tmp_path / "states"
    assert main(["states", str(prior), "--run", str(tiny_vae_run), "-o", str(out), "--bandwidth", "0.5",
                 "--min-population", "0.05", "--bootstrap", "50", "--populations", "images"]) in (0, None)
    record = json.loads((out / "states.json").read_text())
    with h5py.File(out / "assignments.h5") as h5:
        labels, probability = h5["state"][()], h5["probability"][()]
    assert record["populations_from"] == "images" and probability.shape == (len(labels), len(record["states"]))
    np.testing.assert_allclose(probability[labels >= 0].sum(1), 1.0, atol=1e-5)
    populations = np.array([row["population"] for row in record["states"]])
    np.testing.assert_allclose(populations, probability.mean(0), atol=1e-4)  # the weights are the mean responsibilities
    assert record["intervals_include"] == "particle sampling and the basin count"
    for row in record["states"]:
        assert row["population_low"] <= row["population"] <= row["population_high"]
        assert row["population_low"] <= row["basin_population"] <= row["population_high"]
        assert row["population_low"] <= row["population_sampling_low"] <= row["population_sampling_high"] <= row["population_high"]


def test_widen_to_reaches_the_other_estimate_only_where_it_lies_outside():
    from cryodiff.states import widen_to

    intervals = {"population": np.array([[0.50, 0.60], [0.25, 0.35]]), "dG_kT": np.array([[0.0, 0.0], [0.5, 0.9]])}
    wider = widen_to(intervals, np.array([0.62, 0.30]))  # state 1's estimate and both dG lie inside
    np.testing.assert_allclose(wider["population"], [[0.50, 0.62], [0.25, 0.35]])
    np.testing.assert_allclose(wider["dG_kT"], intervals["dG_kT"])
    wider = widen_to(intervals, np.array([0.62, 0.20]))
    np.testing.assert_allclose(wider["population"], [[0.50, 0.62], [0.20, 0.35]])
    np.testing.assert_allclose(wider["dG_kT"][1], [0.5, np.log(0.62 / 0.20)])
    np.testing.assert_allclose(wider["sampling_population"], intervals["population"])
