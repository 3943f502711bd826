"""The UNet's SDXL-style options: transformer blocks with cross-attention to cond["tokens"], channels
stacked from cond["concat"], and a small text-conditional model trained with them."""

import hashlib

import pytest
import torch

from generative.blocks.unet import SpatialTransformer, UNet
from generative.conditioning import Conditioner, TextEmbedder
from generative.formulations import EDM
from generative.text import TextEncoder
from generative.trainer import Trainer

#: sha256 of "key:shape" over the state dict of UNet(1, 1, base=8, mults=(1, 2), time_embed_dim=16, vector_dim=4),
#: recorded before the attention and concat options existed (83 tensors, 29497 parameters).
PLAIN_KEYS = "d8abf79656a38399"


def _fingerprint(state):
    return hashlib.sha256(",".join(f"{k}:{tuple(v.shape)}" for k, v in state.items()).encode()).hexdigest()[:16]


def _unzero(net, std=0.1):
    """Random weights where the UNet initialises zeros (output convolutions and projections), so that
    every path reaches the output."""
    with torch.no_grad():
        for m in net.modules():
            if isinstance(m, (torch.nn.Conv2d, torch.nn.Linear)) and not m.weight.any():
                m.weight.normal_(std=std)
                m.bias.normal_(std=std)
    return net


def test_plain_unet_is_unchanged_and_attention_starts_as_the_identity():
    plain_args = dict(base=8, mults=(1, 2), time_embed_dim=16, vector_dim=4)
    torch.manual_seed(0)
    plain = UNet(1, 1, **plain_args)
    assert _fingerprint(plain.state_dict()) == PLAIN_KEYS
    assert sum(p.numel() for p in plain.parameters()) == 29497
    torch.manual_seed(0)
    attn = UNet(1, 1, **plain_args, context_dim=6, attention_levels=(0, 1), heads=2)
    state = attn.state_dict()
    extra = set(state) - set(plain.state_dict())
    assert {k.split(".")[0] for k in extra} == {"down_attn", "mid_attn", "up_attn"}
    for k, v in plain.state_dict().items():  # built after the plain layers: same initial weights
        assert torch.equal(state[k], v), k
    _unzero(plain)
    attn.load_state_dict(plain.state_dict(), strict=False)
    x, c = torch.randn(2, 1, 8, 8), torch.randn(2)
    cond = {"vector": torch.randn(2, 4), "tokens": torch.randn(2, 5, 6)}
    assert torch.equal(attn(x, c, cond), plain(x, c, {"vector": cond["vector"]}))  # zero-initialised projections


def test_shapes_non_square_and_the_tokens_matter():
    torch.manual_seed(1)
    net = _unzero(UNet(3, 2, base=8, mults=(1, 2, 2), time_embed_dim=16, vector_dim=5, context_dim=6,
                       attention_levels=(1, 2), heads=2, concat_channels=2))
    x, c = torch.randn(2, 3, 24, 40), torch.randn(2)
    cond = {"vector": torch.randn(2, 5), "tokens": torch.randn(2, 7, 6), "concat": torch.randn(2, 2, 24, 40)}
    out = net(x, c, cond)
    assert out.shape == (2, 2, 24, 40)
    other_tokens = dict(cond, tokens=torch.randn(2, 3, 6))
    assert (net(x, c, other_tokens) - out).abs().max() > 1e-3
    other_concat = dict(cond, concat=torch.randn(2, 2, 24, 40))
    assert (net(x, c, other_concat) - out).abs().max() > 1e-3
    # a missing entry is the zero conditioning; zero tokens of any length act as one zero token
    zero = {"vector": torch.zeros(2, 5), "tokens": torch.zeros(2, 4, 6), "concat": torch.zeros(2, 2, 24, 40)}
    torch.testing.assert_close(net(x, c), net(x, c, zero), atol=1e-5, rtol=1e-5)
    assert net(x.double(), c.double(), cond).dtype == torch.float64


def test_spatial_transformer_commutes_with_transposing_the_map():
    """Attention has no positions and the rest acts per position, so swapping H and W of the input swaps
    them in the output: the H * W tokens are flattened and restored in the same order."""
    torch.manual_seed(2)
    block = _unzero(SpatialTransformer(8, heads=2, context_dim=4, groups=4))
    h, context = torch.randn(2, 8, 6, 10), torch.randn(2, 3, 4)
    torch.testing.assert_close(block(h.transpose(2, 3), context), block(h, context).transpose(2, 3),
                               atol=1e-5, rtol=1e-5)


def test_self_attention_only_and_errors():
    x, c = torch.randn(1, 1, 8, 8), torch.zeros(1)
    net = _unzero(UNet(1, 1, base=8, time_embed_dim=16, attention_levels=(1,), heads=2))
    assert net.up_attn["1"].block.cross is None and net(x, c).shape == (1, 1, 8, 8)
    with pytest.raises(ValueError, match="without context_dim"):
        net(x, c, {"tokens": torch.randn(1, 2, 4)})
    with pytest.raises(ValueError, match="without concat_channels"):
        net(x, c, {"concat": torch.randn(1, 1, 8, 8)})
    with pytest.raises(ValueError, match="needs attention_levels"):
        UNet(1, 1, base=8, context_dim=4)
    with pytest.raises(ValueError, match="not levels"):
        UNet(1, 1, base=8, mults=(1, 2), context_dim=4, attention_levels=(2,))


# A caption names the position of the square: "top|bottom left|right" in either order, padded to 4.
TOP, BOTTOM, LEFT, RIGHT = 1, 2, 3, 4
CORNERS = [((1, 1), (TOP, LEFT)), ((1, 4), (TOP, RIGHT)), ((4, 1), (BOTTOM, LEFT)), ((4, 4), (BOTTOM, RIGHT))]


def _templates():
    t = -torch.ones(4, 1, 8, 8)
    for k, ((i, j), _) in enumerate(CORNERS):
        t[k, 0, i:i + 3, j:j + 3] = 1.0
    return t


TEMPLATES = _templates()


def _captions(labels, g):
    words = torch.tensor([w for _, w in CORNERS])[labels]
    swap = torch.rand(len(labels), generator=g) < 0.5
    words = torch.where(swap[:, None], words.flip(1), words)
    return torch.cat([words, torch.zeros(len(labels), 2, dtype=torch.long)], dim=1)


def _batch(n, g):
    labels = torch.randint(0, 4, (n,), generator=g)
    return TEMPLATES[labels] + 0.05 * torch.randn(n, 1, 8, 8, generator=g), _captions(labels, g), labels


def test_text_conditional_model_trains_and_reads_the_caption():
    """UNet + TextEncoder + Conditioner trained jointly with EDM for 200 steps (about 8 s of CPU): the loss
    falls, and at sigma = 2 the denoiser is better with the right caption than with none (the unconditional
    branch), and with none than with a wrong one (measured: errors 0.027, 0.158, 0.786)."""
    torch.manual_seed(0)
    form = EDM(sigma_data=TEMPLATES.std().item(), p_mean=-0.5, p_std=1.5)
    unet = UNet(1, 1, base=8, mults=(1, 2), time_embed_dim=32, vector_dim=16, context_dim=16,
                attention_levels=(1,), heads=2)
    text = Conditioner([TextEmbedder("caption", TextEncoder(5, dim=16, depth=1, heads=2, length=4), drop_rate=0.2)])
    model = torch.nn.ModuleDict({"denoiser": form.wrap(unet), "text": text})

    def loss(model, batch, g):
        x0, captions, _ = batch
        return form.loss(model["denoiser"], x0, model["text"]({"caption": captions}, generator=g), generator=g)

    trainer = Trainer(model, loss, lambda step, g: _batch(16, g), lr=2e-3, ema_decay=0.9, log_every=40)
    records = trainer.fit(200)
    assert records[-1]["loss"] < 0.5 * records[0]["loss"]

    model = trainer.model.eval()
    g = torch.Generator().manual_seed(1)
    x0, captions, labels = _batch(256, g)
    x = x0 + 2.0 * torch.randn(x0.shape, generator=g)
    sigma = torch.full((len(x0),), 2.0)
    with torch.no_grad():
        def error(caption_ids, zero=None):
            batch = {"caption": caption_ids}
            cond = model["text"](batch) if zero is None else model["text"].unconditional(batch, zero=zero)
            return ((model["denoiser"](x, sigma, cond) - x0) ** 2).mean().item()

        right = error(captions)
        wrong = error(_captions((labels + 1 + torch.randint(0, 3, labels.shape, generator=g)) % 4, g))
        none = error(captions, zero=["caption"])
    assert right < 0.5 * none and none < 0.5 * wrong
