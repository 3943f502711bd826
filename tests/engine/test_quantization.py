"""ProxConnect++ quantization-aware training: grids, forward/backward quantizers, the optimiser
wrapper against torchao PARQ, exact resume, export, and accuracy on real digits."""

import math

import numpy as np
import pytest
import torch
from torch import nn

from generative import Trainer
from generative.quantization import (METHODS, Annealing, ProxConnect, QuantizationLog, levels, load, pack,
                                     quantizable, rows, save, size_report, unpack)
from generative.quantization.backward import derivative, sign_swish_derivative
from generative.quantization.forward import apply, sign_swish
from generative.quantization.packing import pack_bits, unpack_bits


def mlp(seed=0, width=16):
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(8, width), nn.Tanh(), nn.Linear(width, width), nn.Tanh(),
                         nn.Linear(width, width), nn.Tanh(), nn.Linear(width, 3))


def data(seed=1, n=64):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, 8, generator=g), torch.randint(0, 3, (n,), generator=g)


def run(model, opt, steps, seed=1):
    x, y = data(seed)
    for _ in range(steps):
        opt.zero_grad()
        nn.functional.cross_entropy(model(x), y).backward()
        opt.step()
    return model


def test_binary_scale_is_the_least_squares_optimum():
    w = torch.randn(3, 200)
    a = levels(w, "binary")[:, 1]
    for row, best in zip(w, a):
        trial = torch.linspace(0.1, 2, 2001)
        err = ((row[None] - trial[:, None] * row.sign()[None]) ** 2).sum(1)
        assert abs(trial[err.argmin()] - best) < 1e-3


@pytest.mark.parametrize("scheme, count", [("binary", 2), ("ternary", 3), ("uniform2", 4), ("uniform4", 16)])
def test_grids_are_symmetric_and_increasing(scheme, count):
    g = levels(torch.randn(5, 100), scheme)
    assert g.shape == (5, count)
    assert (g.diff(dim=1) > 0).all() and torch.allclose(g, -g.flip(1))


def test_parq_map_goes_from_clamp_to_rounding():
    grid = torch.tensor([[-1.5, -0.5, 0.5, 1.5]])
    w = torch.tensor([[-3.0, -0.9, -0.1, 0.2, 0.7, 1.4, 2.0]])
    assert torch.equal(apply("parq", w, grid, 1.0), w.clamp(-1.5, 1.5))
    assert torch.equal(apply("parq", w, grid, 1e-6), torch.tensor([[-1.5, -0.5, -0.5, 0.5, 0.5, 1.5, 1.5]]))
    # half relaxed: slope 2 around each interval's midpoint
    assert torch.allclose(apply("parq", torch.tensor([[0.1, 0.9]]), grid, 0.5), torch.tensor([[0.2, 0.8]]))


def test_sign_swish_tends_to_the_sign_and_its_derivative_is_exact():
    x = torch.linspace(-3, 3, 61, dtype=torch.float64, requires_grad=True)
    beta = 3.0
    (grad,) = torch.autograd.grad(sign_swish(x, beta).sum(), x)
    assert torch.allclose(grad, sign_swish_derivative(x.detach(), beta))
    closed = beta * (2 - beta * x * torch.tanh(beta * x / 2)) / (1 + torch.cosh(beta * x))
    assert torch.allclose(grad, closed.detach())
    away = x.detach().abs() > 0.2
    assert torch.allclose(sign_swish(x.detach(), 200.0)[away], x.detach().sign()[away], atol=1e-6)


def test_backward_quantizers():
    grid = torch.tensor([[-1.0, 1.0]])
    w = torch.tensor([[-2.0, -0.5, 0.0, 0.9, 1.5]])
    assert derivative("identity", w, grid, 5.0) is None
    assert torch.equal(derivative("clipped", w, grid, 5.0), torch.tensor([[0.0, 1.0, 1.0, 1.0, 0.0]]))
    assert derivative("sign_swish", w, grid, 5.0)[0, 2] == pytest.approx(5.0)  # SS'_beta(0) = beta


def test_sign_swish_staircase_on_more_levels():
    """Binary grid: exactly a SS(w/a). Ternary and 2-bit grids: the staircase tends to rounding
    away from the midpoints as beta grows, and B' is the autograd derivative of the forward map."""
    w = torch.linspace(-2, 2, 81, dtype=torch.float64)[None]
    binary = torch.tensor([[-0.7, 0.7]], dtype=torch.float64)
    assert torch.allclose(apply("sign_swish", w, binary, 0.5), 0.7 * sign_swish(w / 0.7, 4.0))
    for grid in (torch.tensor([[-0.7, 0.0, 0.7]], dtype=torch.float64),
                 torch.tensor([[-0.9, -0.3, 0.3, 0.9]], dtype=torch.float64)):
        midpoints = (grid[:, 1:] + grid[:, :-1]) / 2
        away = (w[0, :, None] - midpoints[0]).abs().min(1).values > 0.05
        hard = apply("hard", w, grid, 0.0)
        sharp = apply("sign_swish", w, grid, 1e-3, beta0=2.0, beta_max=2000.0)  # beta = 2000
        assert torch.allclose(sharp[:, away], hard[:, away], atol=1e-6)
        x = w.clone().requires_grad_(True)
        (grad,) = torch.autograd.grad(apply("sign_swish", x, grid, 0.4).sum(), x)  # beta = 2 / 0.4
        assert torch.allclose(grad, derivative("sign_swish", w, grid, 5.0))


@pytest.mark.parametrize("method", list(METHODS))
@pytest.mark.parametrize("scheme, count", [("binary", 2), ("ternary", 3)])
def test_after_annealing_every_channel_holds_exactly_its_levels(method, scheme, count):
    model = mlp()
    opt = ProxConnect(torch.optim.Adam(model.parameters(), 1e-2), quantizable(model), grid=scheme, method=method,
                      annealing=Annealing(0, 20))
    run(model, opt, 25)
    for (name, w), grid in zip(quantizable(model).items(), opt.grids):
        assert grid.shape == (w.shape[0], count)
        for row, row_grid in zip(rows(w), grid):
            assert torch.isin(row, row_grid).all(), name  # every weight is one of its channel's levels
        used = [len(torch.unique(row)) for row in rows(w)]
        assert max(used) == count and np.mean(used) > count - 0.5, (name, used)
    assert len(torch.unique(model[0].weight)) > 10  # the first layer stays full precision


@pytest.mark.parametrize("per_channel", [False, True])
@pytest.mark.parametrize("setting", ["binaryconnect", "parq1", "parq2"])
def test_equals_torchao_parq_with_sgd(setting, per_channel):
    """torchao's QuantOptimizer refreshing its grid every step (quant_period=1), as ours does."""
    torchao_parq = pytest.importorskip("torchao.prototype.parq", reason="torchao (the cross-check) is not installed")
    from torchao.prototype.parq.optim import ProxHardQuant, ProxPARQ
    from torchao.prototype.parq.quant import UnifQuantizer
    bits, prox, method, annealing = {
        "binaryconnect": (1, ProxHardQuant(), "binaryconnect", Annealing(0, 10)),
        "parq1": (1, ProxPARQ(5, 40), "parq", Annealing(5, 40)),
        "parq2": (2, ProxPARQ(0, 40), "parq", Annealing(0, 40)),
    }[setting]
    reference, ours = mlp(), mlp()
    names = quantizable(reference)
    groups = [{"params": [p for n, p in reference.named_parameters() if n in names], "quant_bits": bits},
              {"params": [p for n, p in reference.named_parameters() if n not in names]}]
    run(reference, torchao_parq.QuantOptimizer(torch.optim.SGD(groups, lr=0.1), UnifQuantizer(), prox,
                                                quant_period=1, quant_per_channel=per_channel), 50)
    run(ours, ProxConnect(torch.optim.SGD(ours.parameters(), lr=0.1), quantizable(ours), grid=f"uniform{bits}",
                          method=method, annealing=annealing, per_channel=per_channel), 50)
    for a, b in zip(reference.parameters(), ours.parameters()):
        assert torch.allclose(a, b, atol=1e-6, rtol=0)


def trainer(model, steps_per_checkpoint, path, log):
    x, y = data()

    def make(m):
        return ProxConnect(torch.optim.Adam(m.parameters(), 1e-2), quantizable(m), grid="binary", method="bnn++",
                           annealing=Annealing(2, 12))

    t = Trainer(model, lambda m, b, g: nn.functional.cross_entropy(m(b[0]), b[1]),
                lambda step, g: (x, y), optimizer=make, ema_decay=0.0, checkpoint_path=path,
                checkpoint_every=steps_per_checkpoint, log_path=log, log_every=1)
    t.hooks.append(QuantizationLog(t.optimizer))
    return t


def test_trainer_resume_is_bit_identical(tmp_path):
    whole = trainer(mlp(), 100, tmp_path / "a.pt", tmp_path / "a.jsonl")
    whole.fit(16)
    part = trainer(mlp(), 100, tmp_path / "b.pt", tmp_path / "b.jsonl")
    part.fit(7)
    resumed = trainer(mlp(seed=5), 100, tmp_path / "b.pt", tmp_path / "b.jsonl")
    resumed.load(tmp_path / "b.pt")
    resumed.fit(16)
    for a, b in zip(whole.model.state_dict().values(), resumed.model.state_dict().values()):
        assert torch.equal(a, b)
    for a, b in zip(whole.optimizer.latent, resumed.optimizer.latent):
        assert torch.equal(a, b)
    last = [line for line in (tmp_path / "b.jsonl").read_text().splitlines()][-1]
    assert '"relaxation": 0.0' in last and '"on_grid": 1.0' in last


def test_pack_round_trip_and_size(tmp_path):
    codes = torch.randint(0, 8, (1001,))
    assert torch.equal(unpack_bits(pack_bits(codes, 3), 3, 1001), codes)
    model = mlp(width=64)
    opt = ProxConnect(torch.optim.Adam(model.parameters(), 1e-2), quantizable(model), grid="ternary",
                      method="parq", annealing=Annealing(0, 10))
    run(model, opt, 12)
    packed = pack(model, opt)
    save(packed, tmp_path / "q.pt")
    with pytest.raises(FileExistsError):
        save(packed, tmp_path / "q.pt")
    state = unpack(load(tmp_path / "q.pt"))
    for name, value in model.state_dict().items():
        assert torch.equal(state[name], value), name
    report = size_report(packed)
    n = 2 * 64 * 64
    assert report["quantized_float32_bytes"] == 4 * n
    assert report["quantized_packed_bytes"] == n // 4 + 2 * 64 * 3 * 4  # 2 bits a weight + the grids
    # before annealing ends the weights are off-grid: export refuses
    fresh = mlp(width=64)
    early = ProxConnect(torch.optim.Adam(fresh.parameters(), 1e-2), quantizable(fresh), grid="ternary",
                        method="parq", annealing=Annealing(0, 10))
    run(fresh, early, 3)
    with pytest.raises(ValueError, match="not on their grid"):
        pack(fresh, early)


def test_bad_settings_are_errors():
    model = mlp()
    with pytest.raises(ValueError, match="unknown quantization grid"):
        ProxConnect(torch.optim.SGD(model.parameters(), 0.1), quantizable(model), grid="int3")
    with pytest.raises(ValueError, match="unknown quantization method"):
        ProxConnect(torch.optim.SGD(model.parameters(), 0.1), quantizable(model), method="xnor")
    with pytest.raises(ValueError, match="start < end"):
        Annealing(10, 5)
    with pytest.raises(ValueError, match="empty"):
        ProxConnect(torch.optim.SGD(model.parameters(), 0.1), {})
    other = mlp(seed=3)
    with pytest.raises(ValueError, match="parameter of the base optimiser"):
        ProxConnect(torch.optim.SGD(model.parameters(), 0.1), quantizable(other))


def test_binary_mlp_learns_real_digits():
    """Ground truth: sklearn's handwritten digits; a 1-bit (BNN++) MLP must still read them."""
    from sklearn.datasets import load_digits
    digits = load_digits()
    x = torch.tensor(digits.data / 16, dtype=torch.float32)
    y = torch.tensor(digits.target)
    train, test = slice(0, 1400), slice(1400, None)
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(64, 256), nn.ReLU(), nn.Linear(256, 256), nn.ReLU(), nn.Linear(256, 10))
    opt = ProxConnect(torch.optim.Adam(model.parameters(), 3e-3), quantizable(model), grid="binary",
                      method="bnn++", annealing=Annealing(0, 600))
    g = torch.Generator().manual_seed(0)
    for _ in range(700):
        i = torch.randint(0, 1400, (64,), generator=g)
        opt.zero_grad()
        nn.functional.cross_entropy(model(x[train][i]), y[train][i]).backward()
        opt.step()
    assert {len(torch.unique(r)) for r in rows(model[2].weight)} == {2}
    accuracy = (model(x[test]).argmax(1) == y[test]).float().mean().item()
    assert accuracy > 0.9, accuracy
    assert math.isfinite(accuracy) and np.isfinite(model[2].weight.detach().numpy()).all()
