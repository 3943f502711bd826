"""The MMDiT against diffusers' SD3Transformer2DModel (a test-only reference) and exact invariances."""

import pytest
import torch

from generative.blocks.attention import Attention, JointAttention
from generative.blocks.embeddings import sinusoidal
from generative.blocks.mmdit import MMDiT, centre_crop, sincos_grid

diffusers = pytest.importorskip("diffusers")

C, CONTEXT, VECTOR, DIM, HEADS, PATCH, GRID, SAMPLE = 4, 12, 10, 32, 4, 2, 8, 8


def _randomise(module, seed):
    """Non-zero values everywhere (adaLN-Zero and the output layer start at zero)."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in module.parameters():
            p.copy_(0.2 * torch.randn(p.shape, generator=g))


def _swap_halves(t):
    """Our 2-chunk modulation is (shift, scale); diffusers' AdaLayerNormContinuous is (scale, shift)."""
    a, b = t.chunk(2, dim=0)
    return torch.cat([b, a], dim=0)


def _to_diffusers(ours: MMDiT, depth: int) -> dict:
    s = ours.state_dict()
    out = {
        "pos_embed.proj.weight": s["patchify.weight"], "pos_embed.proj.bias": s["patchify.bias"],
        "time_text_embed.timestep_embedder.linear_1.weight": s["time_embed.0.weight"],
        "time_text_embed.timestep_embedder.linear_1.bias": s["time_embed.0.bias"],
        "time_text_embed.timestep_embedder.linear_2.weight": s["time_embed.2.weight"],
        "time_text_embed.timestep_embedder.linear_2.bias": s["time_embed.2.bias"],
        "time_text_embed.text_embedder.linear_1.weight": s["vector_embed.0.weight"],
        "time_text_embed.text_embedder.linear_1.bias": s["vector_embed.0.bias"],
        "time_text_embed.text_embedder.linear_2.weight": s["vector_embed.2.weight"],
        "time_text_embed.text_embedder.linear_2.bias": s["vector_embed.2.bias"],
        "context_embedder.weight": s["context_embed.weight"], "context_embedder.bias": s["context_embed.bias"],
        "norm_out.linear.weight": _swap_halves(s["final_mod.linear.weight"]),
        "norm_out.linear.bias": _swap_halves(s["final_mod.linear.bias"]),
        "proj_out.weight": s["unpatchify.weight"], "proj_out.bias": s["unpatchify.bias"],
    }
    for i in range(depth):
        ours_, theirs = f"blocks.{i}.", f"transformer_blocks.{i}."
        last = i == depth - 1
        for kind in ("weight", "bias"):
            out[theirs + "norm1.linear." + kind] = s[ours_ + "mod_x.linear." + kind]
            mod_c = s[ours_ + "mod_c.linear." + kind]
            out[theirs + "norm1_context.linear." + kind] = _swap_halves(mod_c) if last else mod_c
            for stream, names in (("x", ("to_q", "to_k", "to_v")), ("c", ("add_q_proj", "add_k_proj", "add_v_proj"))):
                for name, part in zip(names, s[ours_ + f"attn.qkv_{stream}." + kind].chunk(3, dim=0)):
                    out[theirs + f"attn.{name}." + kind] = part
            out[theirs + "attn.to_out.0." + kind] = s[ours_ + "attn.out_x." + kind]
            out[theirs + "ff.net.0.proj." + kind] = s[ours_ + "mlp_x.0." + kind]
            out[theirs + "ff.net.2." + kind] = s[ours_ + "mlp_x.2." + kind]
            if not last:
                out[theirs + "attn.to_add_out." + kind] = s[ours_ + "attn.out_c." + kind]
                out[theirs + "ff_context.net.0.proj." + kind] = s[ours_ + "mlp_c.0." + kind]
                out[theirs + "ff_context.net.2." + kind] = s[ours_ + "mlp_c.2." + kind]
        for ours_norm, their_norm in (("norm_x.q", "norm_q"), ("norm_x.k", "norm_k"),
                                      ("norm_c.q", "norm_added_q"), ("norm_c.k", "norm_added_k")):
            out[theirs + f"attn.{their_norm}.weight"] = s[ours_ + f"attn.{ours_norm}.weight"]
    return out


def _pair(depth=2):
    ours = MMDiT(C, CONTEXT, VECTOR, dim=DIM, depth=depth, heads=HEADS, patch=PATCH, pos_grid=GRID,
                 pos_base=SAMPLE // PATCH)
    _randomise(ours, 0)
    theirs = diffusers.SD3Transformer2DModel(
        sample_size=SAMPLE, patch_size=PATCH, in_channels=C, num_layers=depth, attention_head_dim=DIM // HEADS,
        num_attention_heads=HEADS, joint_attention_dim=CONTEXT, caption_projection_dim=DIM,
        pooled_projection_dim=VECTOR, out_channels=C, pos_embed_max_size=GRID, qk_norm="rms_norm")
    theirs_state = _to_diffusers(ours, depth)
    their_grid = theirs.state_dict()["pos_embed.pos_embed"]  # a fixed buffer: compare, do not copy
    torch.testing.assert_close(ours.pos.reshape(1, GRID * GRID, DIM), their_grid, atol=1e-6, rtol=1e-6)
    theirs_state["pos_embed.pos_embed"] = their_grid
    expected = set(theirs.state_dict())
    assert set(theirs_state) == expected, (set(theirs_state) ^ expected)
    theirs.load_state_dict(theirs_state)
    return ours.eval(), theirs.eval()


@pytest.mark.parametrize("height,width", [(8, 8), (12, 8), (8, 16)])
def test_two_block_mmdit_equals_diffusers_sd3_transformer(height, width):
    ours, theirs = _pair(depth=2)
    g = torch.Generator().manual_seed(1)
    x = torch.randn(3, C, height, width, generator=g)
    t = torch.tensor([0.05, 0.5, 0.97])
    tokens, pooled = torch.randn(3, 5, CONTEXT, generator=g), torch.randn(3, VECTOR, generator=g)
    with torch.no_grad():
        mine = ours(x, t, {"tokens": tokens, "vector": pooled})
        reference = theirs(x, encoder_hidden_states=tokens, pooled_projections=pooled, timestep=1000 * t).sample
    assert mine.shape == (3, C, height, width)
    assert mine.abs().mean() > 0.1  # a real output, not zeros
    torch.testing.assert_close(mine, reference, atol=1e-5, rtol=1e-5)


def test_timestep_embedding_matches_diffusers():
    from diffusers.models.embeddings import get_timestep_embedding

    t = torch.tensor([0.0, 1.0, 17.5, 999.0])
    theirs = get_timestep_embedding(t, 256, flip_sin_to_cos=True, downscale_freq_shift=0)
    torch.testing.assert_close(sinusoidal(t, 256), theirs, atol=1e-6, rtol=1e-6)


def test_cropped_position_embedding_is_the_centre_of_the_full_grid():
    full = sincos_grid(10, 16, base_size=6)
    crop = centre_crop(full, 4, 6).reshape(4, 6, 16)
    torch.testing.assert_close(crop, full[3:7, 2:8])
    assert torch.equal(centre_crop(full, 10, 10), full.reshape(100, 16))
    patch = diffusers.models.embeddings.PatchEmbed(height=12, width=12, patch_size=2, in_channels=1, embed_dim=16,
                                                   pos_embed_max_size=10)
    torch.testing.assert_close(centre_crop(full, 4, 6), patch.cropped_pos_embed(8, 12)[0], atol=1e-6, rtol=1e-6)
    with pytest.raises(ValueError, match="exceed"):
        centre_crop(full, 11, 4)


def test_joint_attention_with_tied_weights_is_one_attention_in_float64():
    torch.manual_seed(2)
    joint = JointAttention(8, 8, heads=2).double()
    with torch.no_grad():
        joint.qkv_c.load_state_dict(joint.qkv_x.state_dict())
        joint.out_c.load_state_dict(joint.out_x.state_dict())
    single = Attention(8, 2).double()
    with torch.no_grad():
        single.q.weight.copy_(joint.qkv_x.weight[:8]), single.q.bias.copy_(joint.qkv_x.bias[:8])
        single.kv.weight.copy_(joint.qkv_x.weight[8:]), single.kv.bias.copy_(joint.qkv_x.bias[8:])
        single.out.load_state_dict(joint.out_x.state_dict())
    x, c = torch.randn(3, 5, 8, dtype=torch.float64), torch.randn(3, 4, 8, dtype=torch.float64)
    out_x, out_c = joint(x, c)
    assert (torch.cat([out_x, out_c], dim=1) - single(torch.cat([x, c], dim=1))).abs().max() < 1e-6


def test_a_fresh_mmdit_outputs_zero_and_its_last_block_does_not_update_the_text():
    model = MMDiT(C, CONTEXT, VECTOR, dim=DIM, depth=3, heads=HEADS, patch=PATCH, pos_grid=GRID)
    x = torch.randn(2, C, 8, 12)
    out = model(x, torch.rand(2), {"tokens": torch.randn(2, 3, CONTEXT), "vector": torch.randn(2, VECTOR)})
    assert out.shape == x.shape and not out.any()
    assert model.blocks[-1].mlp_c is None and model.blocks[-1].attn.out_c is None
    assert all(block.mlp_c is not None for block in model.blocks[:-1])
    with pytest.raises(ValueError, match="divisible by the patch"):
        model(torch.randn(1, C, 7, 8), torch.rand(1), {"tokens": torch.randn(1, 3, CONTEXT), "vector": torch.randn(1, VECTOR)})


def test_text_tokens_reach_the_image_through_joint_attention():
    ours, _ = _pair(depth=2)
    x, t, pooled = torch.randn(2, C, 8, 8), torch.rand(2), torch.randn(2, VECTOR)
    tokens = torch.randn(2, 5, CONTEXT)
    with torch.no_grad():
        a = ours(x, t, {"tokens": tokens, "vector": pooled})
        b = ours(x, t, {"tokens": tokens + 1.0, "vector": pooled})
        c = ours(x, t, {"tokens": tokens[:, [4, 2, 0, 1, 3]], "vector": pooled})
    assert (a - b).abs().max() > 1e-3
    torch.testing.assert_close(a, c, atol=1e-5, rtol=1e-5)  # no position embedding on text: order-free
