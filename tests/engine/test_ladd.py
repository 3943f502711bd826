"""LADD: the frozen teacher, the two losses (softplus formulas, who gets gradients), the two-player
trainer's exact resume, and a student that learns a caption-dependent toy latent in one step."""

import torch
import torch.nn.functional as F

from generative.blocks.mmdit import MMDiT
from generative.conditioning import Conditioner, TextEmbedder
from generative.formulations import RectifiedFlow
from generative.ladd import (LADD, cache_teacher_samples, conditions, guidance_trainer, ladd_trainer, student_sample,
                             student_times)
from generative.latent_diffusion import LatentDiffusion
from generative.text import TextEncoder
from generative.trainer import Trainer

C, SIZE = 2, 4


def teacher(seed=0, steps=0):
    torch.manual_seed(seed)
    conditioner = Conditioner([TextEmbedder("tokens", TextEncoder(3, dim=16, depth=1, heads=2, length=2), drop_rate=0.2)])
    model = LatentDiffusion(MMDiT(C, context_dim=16, vector_dim=16, dim=32, depth=2, heads=2, patch=2, pos_grid=4),
                            conditioner, RectifiedFlow())
    if steps:
        Trainer(model, lambda m, b, g: m.loss(b, g), lambda step, g: toy(32, g), lr=2e-3, ema_decay=0.0).fit(steps)
    return model


AMPLITUDE = {1: 1.0, 2: 0.3}


def toy(n, generator):
    """Word 1 -> a latent of +1 or -1 everywhere (either sign, equally likely), word 2 -> +-0.3; plus a
    little noise. Bimodal per caption: one step of the teacher from pure noise gives the blurred
    mean (near 0), not a sample."""
    words = torch.randint(1, 3, (n,), generator=generator)
    sign = torch.randint(0, 2, (n,), generator=generator).float() * 2 - 1
    amplitude = torch.where(words == 1, AMPLITUDE[1], AMPLITUDE[2])
    latent = (sign * amplitude)[:, None, None, None] + 0.05 * torch.randn(n, C, SIZE, SIZE, generator=generator)
    return {"tokens": torch.stack([words, torch.zeros_like(words)], dim=1), "latent": latent}


def test_student_times():
    assert torch.allclose(student_times(4), torch.tensor([1.0, 0.75, 0.5, 0.25], dtype=torch.float64))
    assert student_times(1, shift=3.0).tolist() == [1.0]
    assert (student_times(4, shift=3.0)[1:] > student_times(4)[1:]).all()  # shift > 1 spends steps at high noise


def test_teacher_is_frozen_and_losses_are_the_softplus_formulas():
    ladd = LADD(teacher(), feature_blocks=[0, 1], steps=2)
    frozen = [p.detach().clone() for p in ladd.features.parameters()]
    batch = toy(8, torch.Generator().manual_seed(0))
    x = torch.randn(8, C, SIZE, SIZE)
    t = torch.full((8,), 0.5)
    before = [f.detach().clone() for f in ladd.features(x, t, conditions(ladd.teacher_conditioner, batch))]

    loss = ladd.student_loss(batch, torch.Generator().manual_seed(1)).mean()
    loss.backward()
    assert all(p.grad is None for p in ladd.features.parameters())  # the teacher gets nothing
    assert all(p.grad is None for p in ladd.discriminator.parameters())  # the student loss reaches only the student
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in ladd.student.parameters())

    # the same draws by hand: student_loss == mean softplus(-D(fake))
    g = torch.Generator().manual_seed(1)
    fake, _ = ladd._fake(batch, g)
    tr, eps = ladd._renoise(fake, g)
    logits = ladd._logits(fake, batch, tr, eps)
    assert torch.allclose(ladd.student_loss(batch, torch.Generator().manual_seed(1)), F.softplus(-logits).mean(1))

    for p in ladd.student.parameters():
        p.grad = None
    d_loss, parts = ladd.discriminator_loss(batch, torch.Generator().manual_seed(2))
    d_loss.backward()
    assert all(p.grad is None for p in ladd.student.parameters())  # the discriminator step leaves the student alone
    assert all(p.grad is None for p in ladd.features.parameters())
    g = torch.Generator().manual_seed(2)
    with torch.no_grad():
        fake, _ = ladd._fake(batch, g)
        tf, ef = ladd._renoise(fake, g)
        trl, erl = ladd._renoise(batch["latent"], g)
        real_logits = ladd._logits(batch["latent"], batch, trl, erl)
        fake_logits = ladd._logits(fake, batch, tf, ef)
    expected = F.softplus(-real_logits).mean() + F.softplus(fake_logits).mean()
    assert torch.allclose(d_loss.detach(), expected)
    assert parts["d_real"] == F.softplus(-real_logits).mean().item()

    torch.optim.SGD(ladd.discriminator.parameters(), lr=0.1).step()
    after = ladd.features(x, t, conditions(ladd.teacher_conditioner, batch))
    assert all(torch.equal(a, b) for a, b in zip(before, after))  # the teacher's features are unchanged
    assert all(torch.equal(a, b) for a, b in zip(frozen, ladd.features.parameters()))


def test_r1_penalty_adds_to_the_discriminator_loss():
    ladd = LADD(teacher(), feature_blocks=[1], steps=1, r1_weight=10.0, r1_sigma=0.1)
    loss, parts = ladd.discriminator_loss(toy(8, torch.Generator().manual_seed(0)), torch.Generator().manual_seed(1))
    assert parts["r1"] > 0 and loss.item() == pytest_approx(parts["d_real"] + parts["d_fake"] + 10.0 * parts["r1"])


def pytest_approx(value):
    import pytest
    return pytest.approx(value, rel=1e-5)


def make_trainer(tmp_path, name, data):
    ladd = LADD(teacher(), feature_blocks=[0, 1], steps=2)
    return ladd, ladd_trainer(ladd, lambda step, g: pick(data, g), lr=1e-3, discriminator_lr=1e-3, ema_decay=0.9,
                              checkpoint_path=str(tmp_path / f"{name}.pt"), checkpoint_every=100,
                              log_path=str(tmp_path / f"{name}.jsonl"), log_every=1)


def pick(data, g):
    i = torch.randint(len(data["latent"]), (16,), generator=g)
    return {k: v[i] for k, v in data.items()}


def test_two_player_resume_is_bit_identical(tmp_path):
    data = toy(64, torch.Generator().manual_seed(5))
    _, whole = make_trainer(tmp_path, "whole", data)
    whole.fit(6)
    _, part = make_trainer(tmp_path, "part", data)
    part.fit(3)
    ladd, resumed = make_trainer(tmp_path, "part", data)
    resumed.load(tmp_path / "part.pt")
    resumed.fit(6)
    for a, b in zip(whole.model.state_dict().values(), resumed.model.state_dict().values()):
        assert torch.equal(a, b)
    for a, b in zip(whole.hooks[0].ladd.discriminator.state_dict().values(), ladd.discriminator.state_dict().values()):
        assert torch.equal(a, b)
    lines = (tmp_path / "part.jsonl").read_text().splitlines()
    assert len(lines) == 6 and '"d_real"' in lines[-1]


def amplitude_error(latents, words):
    """Mean |(|per-sample mean| - the caption's amplitude)|: 0 for sharp samples of the right caption."""
    target = torch.tensor([AMPLITUDE[int(w)] for w in words])
    return (latents.flatten(1).mean(1).abs() - target).abs().mean().item()


def test_one_step_student_learns_sharp_samples_of_the_caption():
    """Ground truth: word 1 means +-1 everywhere, word 2 means +-0.3. The teacher at 20 steps draws
    such samples; in one step it gives their blurred mean. The one-step student, distilled adversarially
    from the teacher's cached samples, must draw sharp samples of the right amplitude. (Not asserted: that
    both signs stay equally likely; on this toy the adversarial student tends to keep one mode.)"""
    trained = teacher(steps=300)
    words = torch.tensor([1] * 32 + [2] * 32)
    prompts = {"tokens": torch.stack([words, torch.zeros_like(words)], dim=1)}
    cache = cache_teacher_samples(trained, [prompts] * 4, (C, SIZE, SIZE), steps=20)
    assert cache["latent"].shape == (256, C, SIZE, SIZE)
    teacher_error = amplitude_error(cache["latent"][:64], words)
    torch.manual_seed(0)  # the discriminator heads' initialisation
    ladd = LADD(trained, feature_blocks=[0, 1], steps=1, renoise_mean=0.0)
    g = torch.Generator().manual_seed(3)
    before = amplitude_error(student_sample(ladd.student, prompts, (C, SIZE, SIZE), steps=1, generator=g), words)
    ladd_trainer(ladd, lambda step, g: pick(cache, g), lr=3e-3, discriminator_lr=3e-3, ema_decay=0.0).fit(150)
    g = torch.Generator().manual_seed(3)
    after = amplitude_error(student_sample(ladd.student, prompts, (C, SIZE, SIZE), steps=1, generator=g), words)
    assert teacher_error < 0.15 and before > 0.3
    assert after < 0.7 * before  # measured over 4 head initialisations and 100-250 steps: 0.08-0.23 from 0.35


def guided_error(ladd, data, guidance):
    """Mean squared gap between the student's velocity and the teacher's guided velocity
    ``v_u + w (v_c - v_u)``, computed here from the teacher's two outputs, at fixed noisy latents."""
    g = torch.Generator().manual_seed(11)
    t, x_t = ladd._noised(data["latent"], g)
    with torch.no_grad():
        teacher = ladd.teacher.model
        v_c = teacher(x_t, t, conditions(ladd.teacher_conditioner, data))
        v_u = teacher(x_t, t, ladd.teacher_conditioner.unconditional(data))
        v = ladd.student.model(x_t, t, conditions(ladd.student.conditioner, data))
    return (v - (v_u + guidance * (v_c - v_u))).pow(2).mean().item()


def test_guidance_warm_start_makes_the_student_the_guided_teacher():
    """The student starts as the conditional teacher; after guidance distillation at w = 3 its velocity
    is the teacher's guided velocity (the gap falls well below its starting value), and the teacher,
    which only supplies targets, is unchanged."""
    trained = teacher(steps=150)
    data = toy(64, torch.Generator().manual_seed(2))
    ladd = LADD(trained, feature_blocks=[0, 1], steps=4)
    frozen = [p.detach().clone() for p in ladd.teacher.parameters()]
    before = guided_error(ladd, data, 3.0)
    guidance_trainer(ladd, lambda step, g: pick(data, g), 3.0, lr=2e-3, ema_decay=0.0).fit(150)
    after = guided_error(ladd, data, 3.0)
    assert before > 1e-3
    assert after < 0.25 * before, (before, after)
    assert all(torch.equal(p, q) for p, q in zip(frozen, ladd.teacher.parameters()))
    assert all(p.grad is None for p in ladd.teacher.parameters())
