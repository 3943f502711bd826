"""The text encoder, the two-output TextEmbedder, and SDXL's text plus size/crop micro-conditioning."""

import pytest
import torch

from generative.conditioning import Conditioner, Embedder, ScalarEmbedder, TextEmbedder, sinusoidal
from generative.text import TextEncoder

DIM, SCALAR = 16, 8  # text width; sinusoidal width per scalar
IDS = torch.tensor([[5, 3, 7, 0, 0], [2, 0, 0, 0, 0], [0, 0, 0, 0, 0], [1, 2, 3, 4, 5]])


def _encoder():
    torch.manual_seed(0)
    return TextEncoder(10, dim=DIM, depth=2, heads=4, length=8).eval()


def test_encoder_pools_the_non_padded_tokens_and_ignores_padding():
    encoder = _encoder()
    tokens, pooled = encoder(IDS)
    assert tokens.shape == (4, 5, DIM) and pooled.shape == (4, DIM)
    torch.testing.assert_close(pooled[0], tokens[0, :3].mean(0))
    torch.testing.assert_close(pooled[1], tokens[1, 0])
    assert torch.isfinite(tokens).all() and (pooled[2] == 0).all()  # padding only: defined, pooled zero
    torch.testing.assert_close(pooled[3], tokens[3].mean(0))
    short_tokens, short_pooled = encoder(IDS[:2, :3])  # less padding: the same real tokens and pooled vector
    torch.testing.assert_close(short_tokens[0], tokens[0, :3], atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(short_pooled, pooled[:2], atol=1e-5, rtol=1e-5)
    assert (encoder(IDS[:1, [1, 0, 2]])[1] - pooled[0]).abs().max() > 1e-3  # word order matters (positions)
    with pytest.raises(ValueError, match="exceed"):
        encoder(torch.ones(1, 9, dtype=torch.long))


def _sdxl(drop=0.0):
    """SDXL's conditioning: the caption (tokens and pooled vector), then original size, crop top-left and
    target size, each [N, 2], embedded sinusoidally per scalar."""
    return Conditioner([TextEmbedder("caption", _encoder(), drop_rate=drop),
                        ScalarEmbedder("original_size", SCALAR, drop_rate=drop),
                        ScalarEmbedder("crop", SCALAR, drop_rate=drop),
                        ScalarEmbedder("target_size", SCALAR, drop_rate=drop)])


def _batch(n, g):
    return {"caption": torch.randint(1, 10, (n, 5), generator=g),
            "original_size": torch.randint(16, 1024, (n, 2), generator=g).float(),
            "crop": torch.randint(0, 64, (n, 2), generator=g).float(),
            "target_size": torch.tensor([[24.0, 40.0]]).expand(n, 2)}


#: The slice of "vector" each key writes.
SLICES = {"caption": slice(0, DIM), "original_size": slice(DIM, DIM + 2 * SCALAR),
          "crop": slice(DIM + 2 * SCALAR, DIM + 4 * SCALAR), "target_size": slice(DIM + 4 * SCALAR, DIM + 6 * SCALAR)}


def test_sdxl_vector_layout():
    conditioner = _sdxl().eval()
    batch = _batch(3, torch.Generator().manual_seed(0))
    cond = conditioner(batch)
    assert cond["vector"].shape == (3, DIM + 6 * SCALAR) and cond["tokens"].shape == (3, 5, DIM)
    tokens, pooled = conditioner.embedders[0].encoder(batch["caption"])
    torch.testing.assert_close(cond["vector"][:, SLICES["caption"]], pooled)
    torch.testing.assert_close(cond["tokens"], tokens)
    for key in ("original_size", "crop", "target_size"):
        expected = torch.cat([sinusoidal(batch[key][:, j], SCALAR) for j in range(2)], dim=1)
        torch.testing.assert_close(cond["vector"][:, SLICES[key]], expected)


@pytest.mark.parametrize("zero", [["caption"], ["crop"], ["original_size", "target_size"], None])
def test_unconditional_zeroes_exactly_the_named_slices(zero):
    conditioner = _sdxl(drop=0.1).eval()
    batch = _batch(4, torch.Generator().manual_seed(1))
    full, uncond = conditioner(batch), conditioner.unconditional(batch, zero=zero)
    named = set(SLICES) if zero is None else set(zero)  # default: every key with a drop rate
    for key, part in SLICES.items():
        if key in named:
            assert (uncond["vector"][:, part] == 0).all(), key
        else:
            assert torch.equal(uncond["vector"][:, part], full["vector"][:, part]), key
    assert torch.equal(uncond["tokens"], torch.zeros_like(full["tokens"]) if "caption" in named else full["tokens"])


def test_training_drops_each_key_independently_and_the_caption_as_a_whole():
    conditioner = _sdxl(drop=0.3).train()
    batch = _batch(4000, torch.Generator().manual_seed(2))
    with torch.no_grad():
        full = conditioner.eval()(batch)
        cond = conditioner.train()(batch, generator=torch.Generator().manual_seed(3))
    dropped = {}
    for key, part in SLICES.items():
        zero = (cond["vector"][:, part] == 0).all(1)
        kept = (cond["vector"][:, part] == full["vector"][:, part]).all(1)
        assert (zero ^ kept).all(), key  # every example's slice is either intact or zero
        assert abs(zero.float().mean().item() - 0.3) < 0.03, key
        dropped[key] = zero
    tokens_zero = (cond["tokens"] == 0).flatten(1).all(1)
    assert torch.equal(tokens_zero, dropped["caption"])  # tokens and pooled vector dropped together
    assert torch.equal(cond["tokens"][~tokens_zero], full["tokens"][~tokens_zero])
    both = (dropped["caption"] & dropped["crop"]).float().mean().item()
    assert abs(both - 0.09) < 0.02  # independent per key


def test_declared_outputs_are_checked():
    class Wrong(Embedder):
        def forward(self, value):
            return {"tokens": value}

    with pytest.raises(ValueError, match="not its outputs"):
        Conditioner([Wrong("x", ("tokens", "vector"))])({"x": torch.zeros(2, 3, 4)})
    with pytest.raises(ValueError, match="unknown output"):
        Wrong("x", ("tokens", "pooled"))
