"""The conditioning dict: embedders, drop rates, the unconditional branch and guidance with a known answer."""

import pytest
import torch

from generative import sample
from generative.conditioning import ClassEmbedder, Conditioner, Identity, ScalarEmbedder, cfg, sinusoidal
from generative.mixtures import GaussianMixture
from generative.schedules import karras_sigmas


def _conditioner(drop=0.3):
    return Conditioner([ClassEmbedder("label", 5, 8, drop_rate=drop), ScalarEmbedder("size", 4),
                        Identity("text", "tokens", drop_rate=drop), Identity("frame", "concat")])


def _batch(n=6):
    return {"label": torch.arange(n) % 5, "size": torch.rand(n, 2) * 32, "text": torch.randn(n, 3, 7),
            "frame": torch.randn(n, 2, 4, 4)}


def test_entries_shapes_and_concatenation():
    batch = _batch()
    cond = _conditioner().eval()(batch)
    assert set(cond) == {"vector", "tokens", "concat"}
    assert cond["vector"].shape == (6, 8 + 2 * 4)  # class (8) + two scalars (4 each)
    assert cond["tokens"].shape == (6, 3, 7) and cond["concat"].shape == (6, 2, 4, 4)
    torch.testing.assert_close(cond["vector"][:, 8:12], sinusoidal(batch["size"][:, 0], 4))


def test_drop_rate_zeroes_whole_examples_at_that_rate():
    conditioner = _conditioner(drop=0.3).train()
    batch = _batch(20000)
    cond = conditioner(batch, generator=torch.Generator().manual_seed(0))
    class_dropped = (cond["vector"][:, :8] == 0).all(1)
    text_dropped = (cond["tokens"] == 0).flatten(1).all(1)
    assert abs(class_dropped.float().mean().item() - 0.3) < 0.015
    assert abs(text_dropped.float().mean().item() - 0.3) < 0.015
    assert abs((class_dropped & text_dropped).float().mean().item() - 0.09) < 0.01  # independent per embedder
    assert not (cond["vector"][:, 8:] == 0).all(1).any()  # no drop rate: never dropped
    eval_cond = conditioner.eval()(batch)
    assert not (eval_cond["vector"][:, :8] == 0).all(1).any()  # eval: nothing dropped


def test_unconditional_zeroes_exactly_the_named_keys():
    conditioner, batch = _conditioner().eval(), _batch()
    full = conditioner(batch)
    default = conditioner.unconditional(batch)  # the keys with a drop rate: label and text
    assert (default["vector"][:, :8] == 0).all() and (default["tokens"] == 0).all()
    torch.testing.assert_close(default["vector"][:, 8:], full["vector"][:, 8:])
    torch.testing.assert_close(default["concat"], full["concat"])
    only_text = conditioner.unconditional(batch, zero=["text"])
    torch.testing.assert_close(only_text["vector"], full["vector"])
    assert (only_text["tokens"] == 0).all()
    with pytest.raises(ValueError, match="no embedder reads"):
        conditioner.unconditional(batch, zero=["caption"])


def test_cfg_on_a_mixture_is_the_guided_score():
    """Guidance with exact denoisers: the conditional model is one component of a two-component mixture,
    the unconditional one the mixture. At scale 1 samples follow the component; the guided denoiser is
    D_u + s (D_c - D_u) at every sigma."""
    means = torch.tensor([[-2.0, 0.0], [2.0, 0.0]], dtype=torch.float64)
    both = GaussianMixture.isotropic([0.5, 0.5], means, [0.3, 0.3])
    right = GaussianMixture.isotropic([1.0], means[1:], [0.3])

    def denoise(x, sigma, cond):
        conditional = (cond["vector"][:, 0] > 0)[:, None]
        return torch.where(conditional, right.denoise(x, sigma), both.denoise(x, sigma))

    n = 2000
    cond, uncond = {"vector": torch.ones(n, 1, dtype=torch.float64)}, {"vector": torch.zeros(n, 1, dtype=torch.float64)}
    x_T = 80 * torch.randn(n, 2, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    x = sample(cfg(denoise, uncond, 1.0), x_T, karras_sigmas(40), "heun", cond=cond)
    assert (x[:, 0] > 0).float().mean() > 0.99
    assert abs(x[:, 0].mean().item() - 2.0) < 0.05
    free = sample(cfg(denoise, uncond, 0.0), x_T, karras_sigmas(40), "heun", cond=cond)
    assert abs((free[:, 0] > 0).float().mean().item() - 0.5) < 0.05
    probe, sigma = torch.randn(5, 2, dtype=torch.float64), torch.full((5,), 1.3, dtype=torch.float64)
    d_u, d_c = both.denoise(probe, sigma), right.denoise(probe, sigma)
    guided = cfg(denoise, {"vector": torch.zeros(5, 1, dtype=torch.float64)}, 3.0)
    torch.testing.assert_close(guided(probe, sigma, {"vector": torch.ones(5, 1, dtype=torch.float64)}), d_u + 3.0 * (d_c - d_u))
