"""The solver registry: every solver passes ``cond`` to the model and calls ``callback`` once per step,
the CLD samplers run through ``generative.sample``, and the formulations' losses and draws take ``cond``."""

import math

import pytest
import torch

from generative import SOLVERS, sample
from generative.cld import CLD, cld_times, gaussian_velocity_score, sample_sscs
from generative.formulations import EDM, FORMULATIONS, VE, VP, CriticallyDamped, RectifiedFlow
from generative.schedules import flow_sigmas, karras_sigmas

STEPS = 6


class PointMass:
    """Conditional toy denoiser of data that sit exactly at ``cond["vector"]`` (``D = c`` at every sigma),
    recording the conditioning of every call."""

    def __init__(self):
        self.seen = []

    def __call__(self, x, sigma, cond=None):
        self.seen.append(cond)
        return cond["vector"].to(x.dtype).expand_as(x)


class GaussianScore:
    """Conditional toy velocity score: the exact CLD score for N(0, I) data, recording the conditioning."""

    def __init__(self, process):
        self.process, self.seen = process, []

    def __call__(self, x, v, t, cond=None):
        self.seen.append(cond)
        return gaussian_velocity_score(x, v, t, self.process)


def _grid(family):
    return {"sigma": karras_sigmas(STEPS), "flow": flow_sigmas(STEPS), "cld": cld_times(STEPS)}[family]


@pytest.mark.parametrize("name", sorted(SOLVERS))
def test_every_solver_passes_cond_and_calls_back_once_per_step(name):
    entry = SOLVERS[name]
    g = torch.Generator().manual_seed(0)
    target = torch.tensor([[1.5, -0.5, 2.0]]).repeat(8, 1)
    cond = {"vector": target}
    steps = []
    options = {"cond": cond, "callback": lambda info: steps.append(info["i"])}
    if entry.stochastic:
        options["generator"] = g
    if entry.family == "cld":
        model = GaussianScore(CLD())
        x_T = torch.cat(CLD().prior(8, 3, generator=g), dim=1)
        out = sample(model, x_T, _grid("cld"), name, process=model.process, **options)
        assert out.shape == (8, 6)
    else:
        model = PointMass()
        grid = _grid(entry.family)
        out = sample(model, grid[0].float() * torch.randn(8, 3, generator=g), grid, name, **options)
        # data at one point: every solver ends there (a step to sigma 0 returns D = c; Euler-type steps
        # contract x - c by sigma'/sigma exactly)
        torch.testing.assert_close(out, target, atol=1e-4, rtol=0)
    assert steps == list(range(STEPS)), steps
    assert model.seen and all(c is cond for c in model.seen)
    expected_calls = entry.evaluations(STEPS) if entry.family != "cld" else entry.per_step * STEPS
    if name != "genie":  # GENIE's exact JVP evaluates the denoiser inside torch.func
        assert len(model.seen) == expected_calls, (len(model.seen), expected_calls)


def test_cld_sampler_through_the_registry_equals_the_plain_function():
    process = CLD()
    score = lambda x, v, t: gaussian_velocity_score(x, v, t, process)  # noqa: E731
    x, v = process.prior(64, 2, generator=torch.Generator().manual_seed(3))
    times = cld_times(50)
    direct = sample_sscs(score, x, v, times, process, generator=torch.Generator().manual_seed(4))
    via = sample(score, torch.cat([x, v], 1), times, "cld_sscs", process=process, generator=torch.Generator().manual_seed(4))
    torch.testing.assert_close(via, torch.cat(direct, 1), atol=0, rtol=0)
    # N(0, I) data: the exact score brings the stationary start back to unit variance in x
    many = sample(score, torch.cat(process.prior(4000, 2, generator=torch.Generator().manual_seed(5)), 1), cld_times(200),
                  "cld_sscs", process=process, generator=torch.Generator().manual_seed(6))
    assert abs(many[:, :2].var().item() - 1.0) < 0.08


def test_unknown_solver_and_bad_grid_are_refused():
    with pytest.raises(ValueError, match="choose from"):
        sample(PointMass(), torch.zeros(2, 1), karras_sigmas(3), "rk4")
    with pytest.raises(ValueError, match="1-D"):
        sample(PointMass(), torch.zeros(2, 1), torch.tensor([1.0]), "euler")


class ConditionalNet(torch.nn.Module):
    """``net(x, c_noise, cond)`` adding a learned multiple of ``cond["vector"]``; records calls with cond."""

    def __init__(self, dim, out=None):
        super().__init__()
        self.lin = torch.nn.Linear(dim + 1, out or dim)
        self.calls = 0

    def forward(self, x, c_noise, cond=None):
        if cond is not None:
            self.calls += 1
            x = x + cond["vector"][:, : x.shape[1]]
        return self.lin(torch.cat([x, c_noise.to(x.dtype)[:, None]], 1))


@pytest.mark.parametrize("form", [EDM(), VE(), VP(), RectifiedFlow(), CriticallyDamped()], ids=lambda f: f.name)
def test_formulations_pass_cond_to_the_network_in_loss_and_draw(form):
    torch.manual_seed(0)
    dim = 3
    net = ConditionalNet(*form.net_dims(dim))
    model = form.wrap(net)
    x0 = torch.randn(16, dim)
    cond = {"vector": torch.ones(16, 2 * dim)}
    loss = form.loss(model, x0, cond=cond, generator=torch.Generator().manual_seed(1))
    assert loss.shape == (16,) and torch.isfinite(loss).all() and net.calls == 1
    solver, steps = form.resolve(None, 4)
    draws = form.draw(model, 16, dim, solver, steps, torch.Generator().manual_seed(2), cond=cond)
    assert draws.shape == (16, dim) and net.calls > 1
    assert form.name in FORMULATIONS or form.name in ("ve", "vp")


def test_resolve_names_defaults_and_refusals():
    assert CriticallyDamped().resolve("sscs", None) == ("cld_sscs", 100)
    assert CriticallyDamped().resolve("em", 7) == ("cld_em", 7)
    assert EDM().resolve(None, None) == ("dpmpp_2m", 25)
    assert RectifiedFlow().resolve(None, None) == ("flow_heun", 8)
    with pytest.raises(ValueError, match="not a sampler of the edm formulation"):
        EDM().resolve("cld_sscs", None)
    with pytest.raises(ValueError, match="1 or more"):
        EDM().resolve("heun", 0)
    assert math.isclose(VP().sigma_max, 152.2, rel_tol=1e-3)


def test_the_docs_solver_table_is_the_registry():
    """docs/engine.md lists every registered solver once, with its family, evaluations per step and
    whether it is stochastic, as the registry states them."""
    from pathlib import Path

    text = (Path(__file__).parents[2] / "docs" / "engine.md").read_text()
    rows = {}
    for line in text.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) == 5 and cells[0].startswith("`") and cells[1] in ("sigma", "flow", "cld"):
            rows[cells[0].strip("`")] = (cells[1], int(cells[2]), cells[3] == "yes")
    assert rows == {name: (s.family, s.per_step, s.stochastic) for name, s in SOLVERS.items()}
