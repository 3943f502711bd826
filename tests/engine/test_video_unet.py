"""Temporal layers on a frozen image UNet (Video LDM / SVD): identity at start, exact image-model limits,
only temporal weights train, per-frame guidance."""

import copy

import pytest
import torch

from generative.blocks.temporal import AlphaBlender
from generative.blocks.unet import UNet
from generative.conditioning import Conditioner, ScalarEmbedder, TextEmbedder, cfg, frame_guidance
from generative.formulations import RectifiedFlow
from generative.latent_diffusion import LatentDiffusion
from generative.text import TextEncoder
from generative.video_unet import VideoUNet

N, T, C, S = 2, 4, 3, 8


def image_unet(vector_dim=6):
    torch.manual_seed(0)
    net = UNet(C, C, base=16, mults=(1, 2), time_embed_dim=32, vector_dim=vector_dim, context_dim=8,
               attention_levels=(1,), heads=2)
    for p in net.parameters():  # a "trained" image model: no zero-initialised outputs
        p.data.normal_(0, 0.2)
    return net


def inputs(seed=1, video_vector=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(N, T, C, S, S, generator=g)
    c_noise = torch.randn(N, generator=g)
    cond = {"vector": torch.randn(N, 6 + video_vector, generator=g), "tokens": torch.randn(N, 5, 8, generator=g)}
    return x, c_noise, cond


def frame_by_frame(image, x, c_noise, cond, video_vector=0):
    frame_cond = {"vector": cond["vector"][:, :cond["vector"].shape[1] - video_vector], "tokens": cond["tokens"]}
    frame_cond = {k: v.repeat_interleave(T, 0) for k, v in frame_cond.items()}
    return image(x.flatten(0, 1), c_noise.repeat_interleave(T, 0), frame_cond).reshape(x.shape)


def randomise_temporal(video):
    for p in video.temporal_parameters():
        p.data.normal_(0, 0.3)


@pytest.mark.parametrize("blend, alpha", [("fixed", 0.0), ("fixed", 0.3), ("learned", 0.2), ("learned_with_images", 0.7)])
def test_a_new_video_model_is_the_image_model(blend, alpha):
    image = image_unet()
    video = VideoUNet(copy.deepcopy(image), blend=blend, alpha=alpha, heads=2, video_vector_dim=4)
    x, c_noise, cond = inputs(video_vector=4)
    assert torch.equal(video(x, c_noise, cond), frame_by_frame(image, x, c_noise, cond, video_vector=4))


def test_alpha_one_or_image_only_frames_are_the_image_model_for_any_temporal_weights():
    image = image_unet()
    x, c_noise, cond = inputs()
    expected = frame_by_frame(image, x, c_noise, cond)
    fixed = VideoUNet(copy.deepcopy(image), blend="fixed", alpha=1.0, heads=2)
    randomise_temporal(fixed)
    assert torch.equal(fixed(x, c_noise, cond), expected)
    mixed = VideoUNet(copy.deepcopy(image), blend="learned_with_images", heads=2)
    randomise_temporal(mixed)
    assert not torch.allclose(mixed(x, c_noise, cond), expected, atol=1e-3)  # the temporal layers do act
    image_only = torch.tensor([True, False])
    out = mixed(x, c_noise, {**cond, "image_only": image_only})
    assert torch.equal(out[0], expected[0])
    assert not torch.allclose(out[1], expected[1], atol=1e-3)


def test_only_temporal_parameters_train_and_alpha_stays_in_the_open_interval():
    image = image_unet()
    video = VideoUNet(copy.deepcopy(image), blend="learned", heads=2)
    randomise_temporal(video)
    frozen = {k: v.clone() for k, v in video.image.state_dict().items()}
    optimizer = torch.optim.Adam(video.parameters(), lr=0.1)
    x, c_noise, cond = inputs()
    for step in range(60):  # push every alpha towards 2: the logit grows, sigmoid keeps alpha below 1
        optimizer.zero_grad()
        loss = video(x, c_noise, cond).pow(2).mean() + sum((b.alpha() - 2) ** 2 for b in video.blend.values())
        loss.backward()
        if step == 0:
            assert all(p.grad is None for p in video.image.parameters())
            assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in video.temporal_parameters())
        optimizer.step()
    assert all(torch.equal(v, frozen[k]) for k, v in video.image.state_dict().items())
    alphas = torch.stack([b.alpha() for b in video.blend.values()])
    assert (alphas > 0.9).all() and (alphas < 1).all()


def test_clips_do_not_mix_and_the_temporal_reach_is_local():
    video = VideoUNet(image_unet(), blend="fixed", alpha=0.0, heads=2)
    randomise_temporal(video)
    x, c_noise, cond = inputs()
    out = video(x, c_noise, cond)
    other = x.clone()
    other[1] = torch.randn_like(other[1])
    assert torch.equal(video(other, c_noise, cond)[0], out[0])  # clip 1 never reaches clip 0
    later = x.clone()
    later[0, -1] += 1.0
    changed = (video(later, c_noise, cond)[0] - out[0]).abs().flatten(1).amax(1)
    assert (changed > 1e-4).all()  # temporal attention lets the last frame reach every frame


def test_blender_refuses_unknown_strategies_and_bad_alpha():
    with pytest.raises(ValueError, match="strategy"):
        AlphaBlender("average")
    with pytest.raises(ValueError, match="alpha"):
        AlphaBlender("learned", 1.0)


def test_per_frame_guidance_with_equal_scales_is_ordinary_guidance():
    torch.manual_seed(0)
    conditioner = Conditioner([TextEmbedder("tokens", TextEncoder(5, dim=8, depth=1, heads=2, length=3), drop_rate=0.1),
                               ScalarEmbedder("fps", 4)])
    video = VideoUNet(image_unet(vector_dim=8), heads=2, video_vector_dim=4)
    randomise_temporal(video)
    model = LatentDiffusion(video, conditioner, RectifiedFlow())
    batch = {"tokens": torch.tensor([[1, 2, 0], [3, 4, 1]]), "fps": torch.tensor([4.0, 8.0])}

    def run(guidance):
        return model.sample(batch, (T, C, S, S), guidance=guidance, solver="flow_euler", steps=3,
                            generator=torch.Generator().manual_seed(2))

    assert torch.equal(run(frame_guidance(T, 2.5, 2.5)), run(2.5))
    ramp = run(frame_guidance(T, 1.0, 3.0))
    assert not torch.allclose(ramp, run(2.5))
    denoise, cond = model.denoiser(batch)
    uncond = conditioner.unconditional(batch)
    x, sigma = torch.randn(N, T, C, S, S), torch.full((N,), 0.5)
    per_frame = cfg(denoise, uncond, frame_guidance(T, 1.0, 3.0))(x, sigma, cond)
    for t, scale in enumerate(torch.linspace(1.0, 3.0, T).tolist()):  # frame t gets its own scale
        assert torch.allclose(per_frame[:, t], cfg(denoise, uncond, scale)(x, sigma, cond)[:, t], atol=1e-5)


def test_temporal_decoder_starts_as_the_image_decoder_and_trains_only_temporal_layers():
    from generative.autoencoder import AutoencoderKL
    from generative.video_decoder import TemporalDecoder, flicker

    torch.manual_seed(0)
    ae = AutoencoderKL(3, 4, base=8, mults=(1, 2), groups=2)
    for p in ae.parameters():
        p.data.normal_(0, 0.2)
    decoder = TemporalDecoder(copy.deepcopy(ae), groups=2)
    z = torch.randn(N, T, 4, 4, 4)
    expected = ae.decode(z.flatten(0, 1)).reshape(N, T, 3, 8, 8)
    assert torch.equal(decoder.decode(z), expected)
    randomise_temporal(decoder)
    decoder.decode(z).pow(2).mean().backward()
    assert all(p.grad is None for p in decoder.autoencoder.parameters())
    assert all(p.grad is not None for p in decoder.temporal_parameters())
    still = expected[:, :1].expand(N, T, 3, 8, 8)
    assert torch.equal(flicker(still), torch.zeros(N))
    blink = torch.stack([torch.zeros(3, 8, 8), torch.ones(3, 8, 8)] * 2)[None]  # 0, 1, 0, 1
    assert torch.allclose(flicker(blink), torch.tensor([1.0]))


def test_noise_augmentation_of_the_conditioning_frame():
    from generative.video_unet import noise_augment

    latent = torch.randn(2, 4, 16, 16)
    g = torch.Generator().manual_seed(0)
    out = noise_augment(latent, torch.tensor([0.0, 0.5]), g)
    assert torch.equal(out[0], latent[0])
    assert abs((out[1] - latent[1]).std().item() - 0.5) < 0.05
    with pytest.raises(ValueError, match=">= 0"):
        noise_augment(latent, torch.tensor([-1.0, 0.0]))


def test_concat_channels_start_silent():
    from generative.video_unet import with_concat_channels

    image = image_unet()
    wider = with_concat_channels(image, 4)
    x, c_noise, cond = inputs()
    frames = x.flatten(0, 1)[:N]
    concat = torch.randn(N, 4, S, S)
    assert torch.equal(wider(frames, c_noise, {**cond, "concat": concat}), image(frames, c_noise, cond))
    video = VideoUNet(wider, heads=2)
    out = video(x, c_noise, {**cond, "concat": concat})  # the frame's latent reaches every frame
    assert out.shape == x.shape
    with pytest.raises(ValueError, match="already"):
        with_concat_channels(wider, 4)
