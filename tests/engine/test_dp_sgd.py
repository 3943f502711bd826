"""DP-SGD: per-example gradients against opacus and a loop over single examples, clipping
bounds under adversarial examples, noise multiplicity, noise, Poisson sampling and the DPTrainer."""

import json

import pytest
import torch
from opacus import GradSampleModule

from generative import privacy
from generative.dp import add_noise, clip_and_sum, per_example_gradients, poisson_indices
from generative.dp_trainer import DPTrainer
from generative.losses import edm_weight
from generative.blocks.mlp import ResidualMLP
from generative.preconditioning import Preconditioned, edm
from generative.blocks.unet import UNet
from generative.conditioning import ClassEmbedder, Conditioner

WEIGHT = edm_weight(0.5)


def _perturbed(module, seed):
    """``module`` with every parameter moved off its (partly zero) initialisation."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in module.parameters():
            p += 0.1 * torch.randn(p.shape, generator=g)
    return module


def _fixed_draw_loss(model, batch, generator):
    """EDM loss with the noise level and noise vector given in the batch: ``(x0, sigma, noise)``."""
    x0, sigma, noise = batch
    s = sigma.view(-1, *[1] * (x0.ndim - 1))
    return WEIGHT(sigma) * ((model(x0 + s * noise, sigma) - x0) ** 2).flatten(1).mean(1)


def _class_loss(model, batch, generator):
    """As :func:`_fixed_draw_loss` for a class-conditional denoiser: ``model["denoiser"]`` reads the
    ``cond`` that ``model["classes"]`` makes of the labels in the batch."""
    x0, labels, sigma, noise = batch
    cond = model["classes"]({"label": labels})
    return _fixed_draw_loss(lambda x, s: model["denoiser"](x, s, cond), (x0, sigma, noise), generator)


def _mlp():
    torch.manual_seed(0)
    return _perturbed(Preconditioned(ResidualMLP(5, hidden=16, depth=2, embed_dim=8), edm(0.5)), 1)


def _unet():
    torch.manual_seed(0)
    unet = UNet(1, 1, base=8, mults=(1, 2), time_embed_dim=16, vector_dim=8, groups=4)
    model = torch.nn.ModuleDict({"denoiser": Preconditioned(unet, edm(0.5)),
                                 "classes": Conditioner([ClassEmbedder("label", 4, 8)])})
    return _perturbed(model, 2)


def _vector_batch(b, seed=3, scale=None):
    g = torch.Generator().manual_seed(seed)
    x0 = torch.randn(b, 5, generator=g)
    if scale is not None:
        x0 = x0 * scale[:, None]
    return x0, 0.05 + 2 * torch.rand(b, generator=g), torch.randn(b, 5, generator=g)


def _image_batch(b, seed=4):
    g = torch.Generator().manual_seed(seed)
    return (torch.randn(b, 1, 8, 8, generator=g), torch.randint(0, 4, (b,), generator=g),
            0.05 + 2 * torch.rand(b, generator=g), torch.randn(b, 1, 8, 8, generator=g))


def _opacus_per_example(model, loss_fn, batch):
    gsm = GradSampleModule(model, loss_reduction="sum")
    loss_fn(gsm._module, batch, None).sum().backward()
    return {name.removeprefix("_module."): p.grad_sample for name, p in gsm.named_parameters()}


@pytest.mark.filterwarnings("ignore:Full backward hook")
@pytest.mark.parametrize("net, loss_fn, make_batch", [(_mlp, _fixed_draw_loss, _vector_batch),
                                                      (_unet, _class_loss, _image_batch)],
                         ids=["ResidualMLP", "class-conditional-UNet"])
def test_per_example_gradients_equal_opacus_grad_sample_module(net, loss_fn, make_batch):
    batch = make_batch(7)
    ours, losses = per_example_gradients(net(), loss_fn, batch)
    reference = _opacus_per_example(net(), loss_fn, batch)
    assert ours.keys() == reference.keys()
    for name, g in reference.items():
        torch.testing.assert_close(ours[name], g, rtol=1e-4, atol=1e-6, msg=name)
    torch.testing.assert_close(losses, loss_fn(net(), batch, None), rtol=1e-5, atol=1e-7)


def _random_loss(model, x0, generator):
    """EDM loss drawing ``ln sigma ~ N(-1.2, 1.2^2)`` and the noise from ``generator``."""
    sigma = (-1.2 + 1.2 * torch.randn(len(x0), generator=generator)).exp()
    noise = torch.randn(x0.shape, generator=generator)
    return _fixed_draw_loss(model, (x0, sigma, noise), generator)


def test_noise_multiplicity_averages_k_independent_draws_per_example():
    model, (x0, _, _) = _mlp(), _vector_batch(6)
    k = 3
    ours, losses = per_example_gradients(model, _random_loss, x0, torch.Generator().manual_seed(9), k)
    # reference: the same draws taken as [B, K] and [B, K, d] up front, one example at a time
    g = torch.Generator().manual_seed(9)
    sigma = (-1.2 + 1.2 * torch.randn(6, k, generator=g)).exp()
    noise = torch.randn(6, k, 5, generator=g)
    assert len(set(sigma.flatten().tolist())) == 6 * k
    for i in range(6):
        model.zero_grad()
        loss = _fixed_draw_loss(model, (x0[i].expand(k, 5), sigma[i], noise[i]), None).mean()
        loss.backward()
        assert losses[i].item() == pytest.approx(loss.item(), rel=1e-5)
        for name, p in model.named_parameters():
            torch.testing.assert_close(ours[name][i], p.grad, rtol=1e-4, atol=1e-6)


def _norms(grads):
    return torch.stack([g.flatten(1).pow(2).sum(1) for g in grads.values()]).sum(0).sqrt()


def test_every_clipped_contribution_is_at_most_c_even_for_adversarial_examples():
    c = 0.5
    scale = torch.tensor([1.0, 1e3, 1.0, 1e5, 0.01, 1e7])
    grads, _ = per_example_gradients(_mlp(), _fixed_draw_loss, _vector_batch(6, scale=scale))
    norms = _norms(grads)
    assert norms[[1, 3, 5]].min() > 1e3 * c  # the adversarial examples really have huge gradients
    for i in range(6):
        one = {k: g[i:i + 1] for k, g in grads.items()}
        summed, _ = clip_and_sum(one, c)
        contribution = torch.sqrt(sum(s.double().pow(2).sum() for s in summed.values()))
        assert contribution <= c
        if norms[i] < c:  # small gradients pass unchanged
            for k in one:
                torch.testing.assert_close(summed[k], one[k][0])
    # sensitivity: removing any one example moves the clipped sum by at most C
    full, _ = clip_and_sum(grads, c)
    for i in range(6):
        rest, _ = clip_and_sum({k: torch.cat([g[:i], g[i + 1:]]) for k, g in grads.items()}, c)
        assert torch.sqrt(sum((full[k] - rest[k]).double().pow(2).sum() for k in full)) <= c


def _draw_loss(model, x, generator):
    """Linear model, loss ``z * (w . x)`` with ``z ~ N(0, 100^2)`` per draw: per-draw gradients are
    large and cancel on average."""
    z = 100 * torch.randn(len(x), generator=generator)
    return z * model(x)[:, 0]


def test_clipping_applies_to_the_k_averaged_gradient():
    model = torch.nn.Linear(4, 1, bias=False)
    x = torch.randn(5, 4, generator=torch.Generator().manual_seed(0))
    k, c = 64, 1.0
    grads, _ = per_example_gradients(model, _draw_loss, x, torch.Generator().manual_seed(1), k)
    summed, norms = clip_and_sum(grads, c)
    z = 100 * torch.randn(5, k, generator=torch.Generator().manual_seed(1))
    averaged = z.mean(1, keepdim=True) * x  # gradient of the K-averaged loss, per example
    torch.testing.assert_close(grads["weight"][:, 0], averaged, rtol=1e-4, atol=1e-5)
    factor = (c / averaged.norm(dim=1)).clamp(max=1)
    torch.testing.assert_close(summed["weight"][0], (factor[:, None] * averaged).sum(0), rtol=1e-4, atol=1e-5)
    # clipping each draw first would give a different (much smaller) sum
    per_draw = z[:, :, None] * x[:, None, :]
    clipped_first = (per_draw * (c / per_draw.norm(dim=2, keepdim=True)).clamp(max=1)).mean(1).sum(0)
    assert (clipped_first - summed["weight"][0]).norm() > 0.1 * summed["weight"].norm()


def test_noise_has_std_sigma_c_over_expected_batch_size():
    summed = {"a": torch.zeros(300, 300), "b": torch.full((50_000,), 2.0)}
    noisy = add_noise(summed, 1.5, 0.8, 40.0, torch.Generator().manual_seed(0))
    assert noisy["a"].std().item() == pytest.approx(1.5 * 0.8 / 40, rel=0.01)
    assert noisy["a"].mean().abs().item() < 5e-4  # 5 standard errors
    assert noisy["b"].mean().item() == pytest.approx(2.0 / 40, abs=7e-4)


def test_poisson_sampling_includes_each_example_with_probability_q():
    g = torch.Generator().manual_seed(0)
    counts, sizes = torch.zeros(500), []
    for _ in range(400):
        idx = poisson_indices(500, 0.2, g)
        assert (idx.diff() > 0).all()
        counts[idx] += 1
        sizes.append(len(idx))
    sizes = torch.tensor(sizes, dtype=torch.float64)
    assert sizes.mean().item() == pytest.approx(100, abs=1.5)
    assert sizes.var().item() == pytest.approx(500 * 0.2 * 0.8, rel=0.2)  # binomial, not fixed
    assert (counts / 400).sub(0.2).abs().max() < 0.1


# ---------------------------------------------------------------- DPTrainer


def _data(n=40, seed=5):
    return _vector_batch(n, seed)


def _trainer(n=40, **kw):
    data = _data(n)
    settings = dict(sample_rate=0.25, delta=1e-5, noise_multiplier=1.3, max_grad_norm=0.7,
                    lr=1e-2, ema_decay=0.9, log_every=5, seed=4)
    settings.update(kw)
    return DPTrainer(_mlp(), _fixed_draw_loss, lambda idx: tuple(t[idx] for t in data), n, **settings)


def test_train_step_matches_an_independent_dp_sgd_step():
    trainer = _trainer(physical_batch=3)
    model = _mlp()
    g = trainer._generator()  # the generator of step 0, as train_step will draw it
    trainer.train_step()
    idx = (torch.rand(40, generator=g) < 0.25).nonzero().flatten()
    x0, sigma, noise = (t[idx] for t in _data())
    total = {name: torch.zeros_like(p) for name, p in model.named_parameters()}
    for i in range(len(idx)):
        model.zero_grad()
        _fixed_draw_loss(model, (x0[i:i + 1], sigma[i:i + 1], noise[i:i + 1]), None).sum().backward()
        norm = torch.sqrt(sum(p.grad.pow(2).sum() for p in model.parameters()))
        for name, p in model.named_parameters():
            total[name] += p.grad * min(1.0, 0.7 / norm.item())
    for name, p in trainer.model.named_parameters():
        expected = (total[name] + 1.3 * 0.7 * torch.randn(p.shape, generator=g)) / (0.25 * 40)
        torch.testing.assert_close(p.grad, expected, rtol=1e-4, atol=1e-6, msg=name)
    assert trainer.accountant.history == [(1.3, 0.25, 1)]


def test_physical_batch_size_does_not_change_the_step():
    small, large = _trainer(physical_batch=2), _trainer(physical_batch=1000)
    small.fit(3)
    large.fit(3)
    for a, b in zip(small.model.parameters(), large.model.parameters()):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-6)


def test_spent_epsilon_is_the_accountants_and_is_logged_and_checkpointed(tmp_path):
    log, ckpt = tmp_path / "log.jsonl", tmp_path / "ckpt.pt"
    trainer = _trainer(target_epsilon=2.0, steps=20, noise_multiplier=None, log_path=str(log),
                       checkpoint_path=str(ckpt))
    records = trainer.fit(20)
    assert trainer.epsilon() == pytest.approx(privacy.epsilon(trainer.noise_multiplier, 0.25, 20, 1e-5))
    assert 2.0 - 0.01 < trainer.epsilon() <= 2.0
    logged = [json.loads(line) for line in log.read_text().splitlines()]
    assert [r["step"] for r in logged] == [5, 10, 15, 20] and logged == records
    assert all(a["epsilon"] < b["epsilon"] for a, b in zip(logged, logged[1:]))
    assert logged[1]["epsilon"] == pytest.approx(privacy.epsilon(trainer.noise_multiplier, 0.25, 10, 1e-5))
    saved = torch.load(ckpt, weights_only=True)["privacy"]
    assert saved["epsilon"] == trainer.epsilon() and saved["steps"] == 20 and saved["delta"] == 1e-5


def test_resume_repeats_the_uninterrupted_run_and_keeps_the_spent_epsilon(tmp_path):
    full = _trainer(noise_draws=2)
    full.fit(8)
    ckpt = tmp_path / "ckpt.pt"
    first = _trainer(noise_draws=2, checkpoint_path=str(ckpt))
    first.fit(4)
    resumed = _trainer(noise_draws=2)
    resumed.load(str(ckpt))
    assert resumed.step == 4 and resumed.epsilon() == first.epsilon() > 0
    resumed.fit(8)
    for a, b in zip(full.ema.parameters(), resumed.ema.parameters()):
        assert torch.equal(a, b)
    assert resumed.epsilon() == full.epsilon()
    with pytest.raises(ValueError, match="noise_multiplier"):
        _trainer(noise_multiplier=2.0).load(str(ckpt))


def test_fit_refuses_to_exceed_the_budget_before_training(tmp_path):
    trainer = _trainer(target_epsilon=5.0, steps=10, checkpoint_path=str(tmp_path / "ckpt.pt"))
    before = [p.clone() for p in trainer.model.parameters()]
    with pytest.raises(ValueError, match=r"would spend epsilon .* above the budget 5.0"):
        trainer.fit(200)
    assert trainer.step == 0 and not (tmp_path / "ckpt.pt").exists()
    assert all(torch.equal(a, b) for a, b in zip(before, trainer.model.parameters()))


@pytest.mark.parametrize("kw, phrase", [
    (dict(target_epsilon=0.01, steps=5000, sample_rate=1.0, noise_multiplier=None), "cannot be met"),
    (dict(delta=0.05), "not below 1 / N"),
    (dict(noise_multiplier=None), "give either noise_multiplier"),
    (dict(max_grad_norm=0.0), "max_grad_norm"),
    (dict(noise_draws=0), "noise_draws"),
    (dict(sample_rate=0.0), "sample rate"),
    (dict(target_epsilon=1.0, steps=100, noise_multiplier=0.5), "above the target"),
])
def test_bad_settings_raise_before_training(kw, phrase):
    with pytest.raises(ValueError, match=phrase):
        _trainer(**kw)


def test_empty_poisson_batch_still_takes_a_noisy_step_and_counts():
    trainer = _trainer(n=40, sample_rate=1e-4)
    before = [p.clone() for p in trainer.model.parameters()]
    loss, grad_norm = trainer.train_step()
    assert loss != loss and grad_norm > 0  # NaN loss: no example was sampled
    assert not all(torch.equal(a, b) for a, b in zip(before, trainer.model.parameters()))
    assert trainer.accountant.history == [(1.3, 1e-4, 1)]
