"""Moving-shape clips and the curation filters, against the generator's known motion, cuts and statics."""

import math

import pytest
import torch

from generative.curation import clip_motion, curate, detect_cuts, phase_correlation, precision_recall
from generative.data import render_scenes, ShapeObject
from generative.data.clips import BASE_FPS, SPEEDS, sample_clips


@pytest.fixture(scope="module")
def clips():
    return sample_clips(200, 8, 32, 32, cut_fraction=0.2, static_fraction=0.2, noise=0.05, generator=0)


def test_labels_follow_the_motion_model():
    b = sample_clips(64, 4, 16, 16, generator=1)
    assert b["clip"].shape == (64, 4, 3, 16, 16)
    assert torch.allclose(b["speed"], torch.tensor(SPEEDS)[b["motion_bucket"]] * b["stride"])
    assert torch.allclose(b["fps"], BASE_FPS / b["stride"].float())
    present = b["quadrant_shape"].gt(0).sum(1)
    speeds = b["velocity"].norm(dim=-1)  # [N, 2]: every present object moves at the clip's speed
    assert torch.allclose(speeds[:, 0], b["speed"], atol=1e-5)
    assert torch.allclose(speeds[:, 1], b["speed"] * (present == 2), atol=1e-5)


def test_objects_stay_whole_in_the_frame():
    """Painted mass (image + 1 summed) is constant along a clip up to anti-aliasing (<= 3 %): no object
    leaves the frame (a large object's edge column alone is ~5 %) and none covers another."""
    b = sample_clips(200, 8, 32, 32, generator=2)
    mass = (b["clip"] + 1).sum((2, 3, 4))
    assert (mass / mass[:, :1] - 1).abs().max() < 0.03
    assert b["speed"].min() > 0  # they did move


def test_frame_zero_is_the_captioned_scene_and_a_static_clip_stands_still():
    b = sample_clips(8, 4, 16, 16, static_fraction=1.0, jitter=0.0, colour_jitter=0.0, generator=3)
    assert torch.equal(b["clip"], b["clip"][:, :1].expand_as(b["clip"]))
    for i, text in enumerate(b["caption"]):  # re-render the caption: frame 0 matches exactly
        objects = [ShapeObject(*_parse(part)) for part in text.split(" and ")]
        assert torch.allclose(b["clip"][i, 0], render_scenes([objects], 16, 16)["image"][0], atol=1e-5)


def _parse(part):
    words = part.split()  # "a small red circle at the top left"
    return words[3], words[2], words[1], " ".join(words[6:])


def test_phase_correlation_finds_known_shifts():
    g = torch.Generator().manual_seed(4)
    image = torch.nn.functional.avg_pool2d(torch.randn(6, 3, 32, 32, generator=g), 3, 1, 1)
    shift = torch.tensor([[3, -5], [0, 0], [-7, 2], [1.5, 0.0], [-0.5, 2.25], [0.25, -0.25]])
    # shift by a Fourier phase ramp (exact for band-limited periodic images)
    k = torch.fft.fftfreq(32)
    ramp = torch.exp(-2j * math.pi * (shift[:, 0, None, None] * k[:, None] + shift[:, 1, None, None] * k[None, :]))
    moved = torch.fft.ifft2(torch.fft.fft2(image) * ramp[:, None]).real
    found = phase_correlation(image, moved)
    assert torch.allclose(found[:3], shift[:3], atol=1e-3)
    assert (found - shift).abs().max() < 0.15


def test_tracked_speed_matches_the_generator():
    b = sample_clips(100, 8, 32, 32, p_two=0.0, noise=0.05, generator=5)
    error = clip_motion(b["clip"]) - b["speed"]
    assert error.abs().max() < 0.1


def test_curation_finds_every_cut_and_every_static_clip(clips):
    out = curate(clips["clip"])
    has_cut = clips["cut_frame"] > 0
    assert precision_recall(out["has_cut"], has_cut) == (1.0, 1.0)
    assert precision_recall(out["static"], clips["static"]) == (1.0, 1.0)
    assert torch.equal(out["keep"], ~has_cut & ~clips["static"])
    cuts = detect_cuts(clips["clip"])  # and at the right transition
    rows = has_cut.nonzero()[:, 0]
    assert torch.equal(cuts[rows].float().argmax(1) + 1, clips["cut_frame"][rows])


def test_precision_recall_counts():
    predicted = torch.tensor([True, True, False, False, True])
    truth = torch.tensor([True, False, True, False, True])
    assert precision_recall(predicted, truth) == (2 / 3, 2 / 3)
    assert precision_recall(torch.zeros(3, dtype=torch.bool), torch.zeros(3, dtype=torch.bool)) == (1.0, 1.0)


@pytest.mark.parametrize("kwargs, message", [
    (dict(frames=1), "at least 2 frames"),
    (dict(frames=3, cut_fraction=0.5), "at least 4 frames"),
    (dict(static_fraction=1.5), "not a fraction"),
    (dict(noise=float("nan")), "noise"),
])
def test_bad_arguments_are_refused(kwargs, message):
    with pytest.raises(ValueError, match=message):
        sample_clips(4, **kwargs)
