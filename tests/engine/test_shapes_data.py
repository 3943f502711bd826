"""Captioned shapes (generative.data.shapes) against ground truth: pixels, centroids, areas,
crops, the held-out split, captions and tokens, low-resolution renders, determinism."""

import math

import pytest
import torch

from generative.data import (
    CAPTION_LENGTH,
    COLOUR_RGB,
    COLOURS,
    HELDOUT_PAIRS,
    QUADRANTS,
    SHAPES,
    SIZES,
    VOCABULARY,
    ShapeObject,
    caption,
    object_radius,
    quadrant_centres,
    render_scenes,
    sample_shapes,
    tokenize,
)

AREA = {"circle": math.pi, "square": 4.0, "triangle": 3 * 3 ** 0.5 / 4}  # times r^2


def _labels_from_caption(text):
    """Per-quadrant (shape, colour, size) labels ``[3, 4]`` parsed back from a caption."""
    labels = torch.zeros(3, 4, dtype=torch.long)
    for part in text.split(" and "):
        words = part.split()  # a SIZE COLOUR SHAPE at the ROW COL
        q = QUADRANTS.index(" ".join(words[-2:]))
        labels[:, q] = torch.tensor([SHAPES.index(words[3]) + 1, COLOURS.index(words[2]) + 1,
                                     SIZES.index(words[1]) + 1])
    return labels


def _mass_and_centroid(coverage):
    """Total coverage ``[N]`` and centroid ``[N, 2]`` (y, x, frame pixels) of ``[N, H, W]`` maps."""
    h, w = coverage.shape[1:]
    mass = coverage.sum((1, 2))
    cy = (coverage.sum(2) * (torch.arange(h) + 0.5)).sum(1) / mass
    cx = (coverage.sum(1) * (torch.arange(w) + 0.5)).sum(1) / mass
    return mass, torch.stack([cy, cx], 1)


def _pairs(batch):
    """Set of (shape, colour) names in each image."""
    return [{(SHAPES[s - 1], COLOURS[c - 1]) for s, c in zip(shapes, colours) if s}
            for shapes, colours in zip(batch["quadrant_shape"].tolist(), batch["quadrant_colour"].tolist())]


@pytest.mark.parametrize("height,width", [(16, 16), (24, 40), (40, 24)])
def test_layout_ranges_and_captions_match_labels(height, width):
    b = sample_shapes(64, height, width, split="all", crop_fraction=0.5, lowres_fraction=0.5, generator=0)
    assert b["image"].shape == (64, 3, height, width) and b["image"].dtype == torch.float32
    assert b["image"].min() >= -1 and b["image"].max() <= 1
    assert b["tokens"].shape == (64, CAPTION_LENGTH) and b["tokens"].dtype == torch.long
    for key in ("crop", "original_size", "target_size"):
        assert b[key].shape == (64, 2) and b[key].dtype == torch.float32
    assert (b["target_size"] == torch.tensor([height, width], dtype=torch.float32)).all()
    n_objects = (b["quadrant_shape"] > 0).sum(1)
    assert set(n_objects.tolist()) == {1, 2}
    for text, shape, colour, size in zip(b["caption"], b["quadrant_shape"], b["quadrant_colour"], b["quadrant_size"]):
        assert torch.equal(_labels_from_caption(text), torch.stack([shape, colour, size]))


def test_object_pixels_sit_in_their_labelled_quadrant():
    """Without colour jitter a quadrant holding a colour shows exactly that colour over
    black (off channels stay -1, on channels reach 1 inside), its coverage mass is the
    area of the labelled shape and size, and empty quadrants are pure background."""
    h = w = 32
    b = sample_shapes(200, h, w, split="all", p_two=0.7, colour_jitter=0.0, generator=1)
    quads = b["image"].reshape(200, 3, 2, h // 2, 2, w // 2).permute(0, 2, 4, 1, 3, 5).reshape(200, 4, 3, h // 2, w // 2)
    for n, q in zip(*torch.nonzero(torch.ones(200, 4)).T.tolist()):
        pixels = quads[n, q]
        colour = b["quadrant_colour"][n, q].item()
        if colour == 0:
            assert (pixels == -1).all()
            continue
        rgb = COLOUR_RGB[colour - 1]
        assert (pixels[rgb < 0] == -1).all()
        on = pixels[rgb > 0]
        assert torch.allclose(on.amax((1, 2)), torch.ones(len(on)))
        r = object_radius(SIZES[b["quadrant_size"][n, q] - 1], h, w)
        area = AREA[SHAPES[b["quadrant_shape"][n, q] - 1]] * r ** 2
        assert ((on[0] + 1) / 2).sum().item() == pytest.approx(area, rel=0.05)  # anti-aliasing: +3 % at most


@pytest.mark.parametrize("shape", SHAPES)
def test_centroid_is_the_requested_centre_and_moves_by_the_crop(shape):
    h, w = 32, 40
    offsets = [(1.3, -0.7), (-2.0, 2.5), (0.0, 0.0), (0.6, 1.9)]
    scenes = [[ShapeObject(shape, "red", size, q, offset)] for size in SIZES for q, offset in zip(QUADRANTS, offsets)]
    centre = quadrant_centres(h, w).repeat(2, 1) + torch.tensor(offsets).repeat(2, 1)
    frame = render_scenes(scenes, h, w)
    _, centroid = _mass_and_centroid((frame["image"][:, 0] + 1) / 2)
    assert (centroid - centre).abs().max() < 0.2

    crop = torch.tensor([[3, 1], [0, 4], [4, 0], [2, 2]]).repeat(2, 1)
    cropped = render_scenes(scenes, h, w, crop=crop)
    _, moved = _mass_and_centroid((cropped["image"][:, 0] + 1) / 2)
    torch.testing.assert_close(moved, centroid - crop, atol=1e-4, rtol=0)
    for n, (top, left) in enumerate(crop.tolist()):
        assert torch.equal(cropped["image"][n, :, :h - top, :w - left], frame["image"][n, :, top:, left:])
        assert (cropped["image"][n, :, h - top:] == -1).all() and (cropped["image"][n, :, :, w - left:] == -1).all()
    assert torch.equal(cropped["crop"], crop.float())
    for key in ("quadrant_shape", "quadrant_colour", "quadrant_size", "tokens"):
        assert torch.equal(cropped[key], frame[key])

    lowres = render_scenes(scenes, h, w, original_size=[[h // 2, w // 2]] * len(scenes))
    _, low_centroid = _mass_and_centroid((lowres["image"][:, 0] + 1) / 2)
    assert (low_centroid - centre).abs().max() < 0.25


def test_heldout_pairs_never_in_train_and_always_in_heldout():
    heldout = set(HELDOUT_PAIRS)
    train = _pairs(sample_shapes(1000, 16, 16, split="train", generator=2))
    assert not set().union(*train) & heldout
    assert len(set().union(*train)) == len(SHAPES) * len(COLOURS) - len(heldout)
    assert all(pairs & heldout for pairs in _pairs(sample_shapes(1000, 16, 16, split="heldout", generator=3)))
    everything = _pairs(sample_shapes(1000, 16, 16, split="all", generator=4))
    assert any(pairs & heldout for pairs in everything) and any(not pairs & heldout for pairs in everything)


def test_caption_and_tokenize_round_trip():
    objects = [ShapeObject("circle", "red", "small", "top left"), ShapeObject("square", "blue", "large", "bottom right")]
    text = caption(objects)
    assert text == "a small red circle at the top left and a large blue square at the bottom right"
    tokens = tokenize([text, caption(objects[:1])])
    assert tokens.shape == (2, CAPTION_LENGTH) and VOCABULARY[0] == "<pad>"
    assert " ".join(VOCABULARY[t] for t in tokens[0]) == text
    assert " ".join(VOCABULARY[t] for t in tokens[1] if t) == caption(objects[:1])
    assert (tokens[1, 8:] == 0).all() and (tokens[1, :8] > 0).all()
    b = sample_shapes(50, 16, 16, generator=5)
    assert [" ".join(VOCABULARY[t] for t in row if t) for row in b["tokens"]] == b["caption"]
    with pytest.raises(ValueError, match="'purple'"):
        tokenize(["a small purple circle at the top left"])
    with pytest.raises(ValueError, match="more than 4"):
        tokenize([text], length=4)


def _high_frequency_energy(images):
    """Spectral energy per image above a quarter of the sampling frequency on either axis."""
    spectrum = torch.fft.fft2(images).abs() ** 2
    f = torch.fft.fftfreq(images.shape[-1]).abs()
    return spectrum[..., (f[:, None] > 0.25) | (f[None, :] > 0.25)].sum(-1).sum(-1)


def test_lowres_renders_have_less_high_frequency_energy():
    b = sample_shapes(300, 32, 32, split="all", lowres_fraction=0.5, generator=6)
    low = b["original_size"][:, 0] == 16
    assert set(map(tuple, b["original_size"].tolist())) <= {(16.0, 16.0), (32.0, 32.0)} and 0.35 < low.float().mean() < 0.65
    scenes = [[ShapeObject(s, c, "large", q)] for s in SHAPES for c in COLOURS for q in QUADRANTS]
    full = render_scenes(scenes, 32, 32)
    half = render_scenes(scenes, 32, 32, original_size=[[16, 16]] * len(scenes))
    assert torch.equal(half["original_size"], torch.tensor([[16.0, 16.0]] * len(scenes)))
    assert (_high_frequency_energy(half["image"]) < 0.5 * _high_frequency_energy(full["image"])).all()
    energy = _high_frequency_energy(b["image"])
    assert energy[low].mean() < 0.5 * energy[~low].mean()


def test_crops_and_determinism():
    kwargs = {"split": "all", "crop_fraction": 0.5, "max_crop": 3, "lowres_fraction": 0.3}
    a = sample_shapes(200, 24, 40, generator=7, **kwargs)
    b = sample_shapes(200, 24, 40, generator=torch.Generator().manual_seed(7), **kwargs)
    c = sample_shapes(200, 24, 40, generator=8, **kwargs)
    for key, value in a.items():
        assert value == b[key] if key == "caption" else torch.equal(value, b[key])
    assert not torch.equal(a["image"], c["image"])
    crop = a["crop"]
    assert (crop == crop.round()).all() and crop.min() == 0 and crop.max() == 3
    assert 0.3 < (crop > 0).any(1).float().mean() < 0.6
    assert (sample_shapes(50, 16, 16, generator=9)["crop"] == 0).all()


def test_invalid_requests():
    with pytest.raises(ValueError, match="multiples of 8"):
        sample_shapes(2, 20, 16)
    with pytest.raises(ValueError, match="split"):
        sample_shapes(2, 16, 16, split="test")
    with pytest.raises(ValueError, match="distinct quadrants"):
        render_scenes([[ShapeObject("circle", "red", "small", "top left")] * 2], 16, 16)
    with pytest.raises(ValueError, match="'hexagon'"):
        render_scenes([[ShapeObject("hexagon", "red", "small", "top left")]], 16, 16)
