"""cryodiff compare against known occupancies: labels drawn with set probabilities per condition,
latents from the three-component mixture of conftest, and simulated particles with conditions."""

import csv
import json

import numpy as np
import pytest
import torch

from cryodiff.cli.main import main
from cryodiff.compare import compare_conditions

P_REF = np.array([0.5, 0.3, 0.2])
P_BOUND = np.array([0.35, 0.45, 0.2])  # state 0 down by 0.15, state 1 up by 0.15


def _labels(rng, p, n):
    return rng.choice(len(p), size=n, p=p)


def test_difference_of_015_is_found_with_an_interval_excluding_zero():
    rng = np.random.default_rng(0)
    labels = np.concatenate([_labels(rng, P_REF, 3000), _labels(rng, P_BOUND, 3000)])
    condition = np.repeat([0, 1], 3000)
    result = compare_conditions(labels, condition, 3, ["apo", "bound"], draws=500)
    np.testing.assert_allclose(result.difference[1], P_BOUND - P_REF, atol=0.05)
    low, high = result.difference_interval[1].T
    assert high[0] < 0 < low[1]  # both changes detected
    assert low[2] <= 0 <= high[2]  # the unchanged state is not
    assert [r["excludes_zero"] for r in result.rows() if r["condition"] == "bound"] == [True, True, False]


def test_mixture_occupancies_correct_the_tails_that_cross_basins():
    """Two overlapping Gaussian states (3 sd apart) cut at the midpoint; the small state's true
    occupancy is 0.2 in apo and 0.5 in bound. Basin counts make the difference about 0.26 (apo's large
    state spills into the small one's basin); the mixture's refitted weights give 0.30."""
    from cryodiff.states import fit_mixture

    rng = np.random.default_rng(2)
    n = 8000
    condition = np.repeat([0, 1], n)
    component = np.concatenate([rng.random(n) < 0.2, rng.random(n) < 0.5]).astype(int)
    u = rng.standard_normal((2 * n, 2))
    u[:, 0] += 3.0 * component
    labels = (u[:, 0] > 1.5).astype(int)
    truth = np.mean(component[n:]) - np.mean(component[:n])
    counts = compare_conditions(labels, condition, 2, draws=200)
    assert abs(counts.difference[1, 1] - truth) > 0.025
    result = compare_conditions(labels, condition, 2, mixture=fit_mixture(u, labels, 2), draws=200)
    assert abs(result.difference[1, 1] - truth) < 0.015
    low, high = result.difference_interval[1, 1]
    assert low <= truth <= high
    np.testing.assert_allclose(result.occupancy[:, 1], [np.mean(component[:n]), np.mean(component[n:])], atol=0.015)


def test_simultaneous_intervals_hold_for_all_states_together():
    """Two conditions from one six-state distribution, 150 repetitions: the simultaneous 90 %
    intervals cover 0 for every state at once in about 90 % of repetitions; per-state intervals
    do so far less often (each state's 10 % adds up)."""
    p6 = np.array([0.27, 0.18, 0.09, 0.06, 0.24, 0.16])
    rng = np.random.default_rng(4)
    together, per_state = [], []
    for rep in range(150):
        labels = np.concatenate([_labels(rng, p6, 1500), _labels(rng, p6, 1500)])
        condition = np.repeat([0, 1], 1500)
        for simultaneous, hits in ((True, together), (False, per_state)):
            low, high = compare_conditions(labels, condition, 6, draws=300, seed=rep,
                                           simultaneous=simultaneous).difference_interval[1].T
            hits.append(bool(np.all((low <= 0) & (0 <= high))))
    assert 0.83 <= np.mean(together) <= 0.97
    assert np.mean(per_state) < 0.75


def test_intervals_cover_the_true_difference_at_their_level():
    """Over 200 repetitions, 90 % intervals of a difference cover the truth about 90 % of the time, and
    for two conditions from one distribution they cover 0 about as often."""
    rng = np.random.default_rng(1)
    covered, covered_same = [], []
    for rep in range(200):
        labels = np.concatenate([_labels(rng, P_REF, 800), _labels(rng, P_BOUND, 800), _labels(rng, P_REF, 800)])
        condition = np.repeat([0, 1, 2], 800)
        result = compare_conditions(labels, condition, 3, draws=300, seed=rep, simultaneous=False)
        low, high = result.difference_interval[1, 0]
        covered.append(low <= P_BOUND[0] - P_REF[0] <= high)
        low, high = result.difference_interval[2, 0]
        covered_same.append(low <= 0 <= high)
    assert 0.83 <= np.mean(covered) <= 0.96
    assert 0.83 <= np.mean(covered_same) <= 0.96


@pytest.fixture(scope="module")
def two_condition_states(latent_mixture, tmp_path_factory, one_torch_thread):
    """Latents of two conditions drawn from the mixture with component weights P_REF and P_BOUND,
    their prior and states, and the labels file."""
    from generative.mixtures import GaussianMixture

    root = tmp_path_factory.mktemp("compare")
    parts, names = [], []
    for name, weights, seed_ in (("apo", P_REF, 5), ("bound", P_BOUND, 6)):
        mixture = GaussianMixture(weights, latent_mixture.means, latent_mixture.covs)
        z, _ = mixture.sample(2500, generator=torch.Generator().manual_seed(seed_))
        parts.append(z.numpy().astype(np.float32))
        names += [name] * 2500
    np.save(root / "z.npy", np.concatenate(parts))
    (root / "labels.txt").write_text("\n".join(names) + "\n")
    assert main(["train-prior", str(root / "z.npy"), "-o", str(root / "prior"), "--steps", "3000", "--threads", "1",
                 "--labels", str(root / "labels.txt")]) in (0, None)  # conditional: compare adds log-density ratios
    assert main(["states", str(root / "prior"), "--latents", str(root / "z.npy"), "-o", str(root / "states"),
                 "--bootstrap", "100", "--bandwidth", "0.3", "--starts", "500"]) in (0, None)
    return root


def test_compare_command_reports_the_known_changes(two_condition_states, latent_mixture):
    root = two_condition_states
    states = json.loads((root / "states" / "states.json").read_text())["states"]
    assert len(states) == 3
    # which mixture component each state is: the nearest component mean to its mode
    component = [int(np.argmin(np.linalg.norm(latent_mixture.means.numpy() - s["mode"], axis=1))) for s in states]
    assert main(["compare", str(root / "states"), "--labels", str(root / "labels.txt"), "-o", str(root / "cmp"),
                 "--bootstrap", "300"]) in (0, None)
    with open(root / "cmp" / "compare.csv") as f:
        rows = [r for r in csv.DictReader(f) if r["condition"] == "bound"]
    for row in rows:
        k = component[int(row["state"])]
        truth = (P_BOUND - P_REF)[k]
        assert abs(float(row["difference"]) - truth) <= 0.05
        assert (row["excludes_zero"] == "True") == (truth != 0)
        assert abs(float(row["log_ratio_nats"]) - np.log(P_BOUND[k] / P_REF[k])) <= 0.25
    assert (root / "cmp" / "compare.png").stat().st_size > 10_000
    record = json.loads((root / "cmp" / "compare.json").read_text())
    assert record["reference"] == "apo" and record["conditions"] == {"apo": 2500, "bound": 2500}


def test_compare_refuses_bad_input(two_condition_states, tmp_path, fails_with_one_line):
    root = two_condition_states
    states = str(root / "states")
    fails_with_one_line(["compare", states, "--labels", str(root / "labels.txt"), "-o", str(tmp_path / "a"), "--reference", "holo"],
                        "--reference", "'holo' is not a condition")
    one = tmp_path / "one.txt"
    one.write_text("apo\n" * 5000)
    fails_with_one_line(["compare", states, "--labels", str(one), "-o", str(tmp_path / "b")], "one condition")
    short = tmp_path / "short.txt"
    short.write_text("apo\nbound\n")
    fails_with_one_line(["compare", states, "--labels", str(short), "-o", str(tmp_path / "c")], "2 labels for 5000 latents")
    fails_with_one_line(["compare", states, "--condition", "rlnGroupName", "-o", str(tmp_path / "d")],
                        "latents without a run", "--particles")
    fails_with_one_line(["compare", str(tmp_path), "--labels", str(short), "-o", str(tmp_path / "e")], "not a states folder")


def test_simulated_conditions_are_read_from_the_particle_file(tmp_path):
    from recon.io import read_particles
    from recon.synthetic import read_truth

    sim = tmp_path / "sim"
    assert main(["simulate", str(sim), "-n", "400", "-D", "16", "--conditions", "apo:1,0,0", "bound:0,0,1:1.0"]) in (0, None)
    truth = read_truth(sim / "truth.h5")
    table = read_particles(sim / "particles.star").meta.table
    assert np.bincount(truth["condition"]).tolist() == [200, 200]
    assert (table["rlnGroupName"].to_numpy() == np.array(["apo", "bound"])[truth["condition"]]).all()
    bound = truth["condition"] == 1
    assert truth["subunit"][bound].all() and truth["state"][bound].mean() > 0.75 and truth["state"][~bound].mean() < 0.25
    assert [c["name"] for c in truth["conditions"]] == ["apo", "bound"]

    # the column conditions a prior: train-vae (tiny), train-prior --condition, sample --condition
    vae, prior = tmp_path / "vae", tmp_path / "prior"
    assert main(["train-vae", str(sim / "particles.star"), "-o", str(vae), "--zdim", "2", "--enc-dim", "16", "--dec-dim", "16",
                 "--enc-layers", "1", "--dec-layers", "1", "-n", "1", "--threads", "1"]) in (0, None)
    assert main(["train-prior", str(vae), "-o", str(prior), "--condition", "rlnGroupName", "--steps", "50", "--threads", "1"]) in (0, None)
    assert json.loads((prior / "prior.json").read_text())["settings"]["conditions"] == ["apo", "bound"]
    assert main(["sample", str(prior), "-n", "5", "-o", str(tmp_path / "z.txt"), "--condition", "bound"]) in (0, None)
    assert np.loadtxt(tmp_path / "z.txt").shape == (5, 2)


def test_conditions_that_do_not_exist_are_refused(tmp_path, fails_with_one_line, two_condition_states):
    root = two_condition_states
    fails_with_one_line(["sample", str(root / "prior"), "-n", "5", "-o", str(tmp_path / "z.txt"), "--condition", "holo"],
                        "'holo' is not a condition", "apo, bound")
    fails_with_one_line(["train-prior", str(root / "z.npy"), "-o", str(tmp_path / "p"), "--condition", "rlnGroupName"],
                        "latents without a run", "--particles")


@pytest.mark.parametrize("spec, phrase", [(["apo:1,0,0"], "one condition is no comparison"),
                                          (["apo:1,0", "b:0,0,1"], "three finite weights"),
                                          (["apo:1,0,0", "apo:0,0,1"], "names repeat"),
                                          (["apo:1,0,0:1.5", "b:0,0,1"], "not between 0 and 1")])
def test_simulate_refuses_bad_conditions(tmp_path, fails_with_one_line, spec, phrase):
    fails_with_one_line(["simulate", str(tmp_path / "s"), "-n", "10", "-D", "16", "--conditions", *spec], "--conditions", phrase)
