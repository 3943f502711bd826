"""Procedural clips of moving captioned shapes, for video latent diffusion and data curation.

Conventions (frames as in :mod:`generative.data.shapes`):

* A clip is float32 RGB in ``[-1, 1]``, shape ``[N, T, 3, H, W]`` (frames first).
* Motion: every object of a clip moves at constant velocity. The clip was "filmed"
  at :data:`BASE_FPS` frames per second and kept every ``stride``-th frame
  (``stride`` from :data:`STRIDES`), so its frame rate label is ``fps = BASE_FPS /
  stride``. Objects move ``SPEEDS[motion_bucket]`` pixels per filmed frame, so
  ``speed = SPEEDS[motion_bucket] * stride`` pixels per clip frame; directions are
  uniform, but an object never leaves the frame and objects that start apart never
  touch (a scene where the drawn speed allows no such motion is laid out again).
  Frame ``t``'s object centre is the frame-0 centre plus ``t * velocity``.
* Captions and quadrant labels describe frame 0 (the quadrant an object starts in).
* Contaminants for curation (:mod:`generative.curation`): a fraction ``cut_fraction``
  of clips has a hard cut: from frame ``cut_frame`` (in ``[2, T - 2]``; 0 = no cut)
  on, the clip shows another scene whose objects start clear of the first scene's
  objects at that frame; a fraction ``static_fraction`` is static (velocity 0); every frame
  may get independent Gaussian noise of standard deviation ``noise`` (image units).
"""

from __future__ import annotations

import math

import torch

from .shapes import _RADIUS as _RADIUS_FRACTION, _check_frame, draw_scenes, quadrant_centres, render_objects, scene_captions, tokenize
from .shapes import CAPTION_LENGTH

#: Frame rate (frames per second) before striding.
BASE_FPS = 8.0
#: Frame strides (every ``stride``-th filmed frame is kept).
STRIDES = (1, 2)
#: Object speed of each motion bucket, pixels per filmed frame (a clip frame is ``stride`` of them).
SPEEDS = (0.25, 0.5, 0.75, 1.0)


def sample_clips(n, frames=8, height=32, width=32, *, split="train", p_two=0.5, jitter=1 / 16,
                 colour_jitter=0.2, cut_fraction=0.0, static_fraction=0.0, noise=0.0,
                 token_length=CAPTION_LENGTH, generator=None):
    """Draw ``n`` random captioned clips of ``frames`` frames (see the module docstring).

    ``split``, ``p_two``, ``jitter`` and ``colour_jitter`` are those of
    :func:`generative.data.shapes.sample_shapes` (for the frame-0 scene). ``generator``: a
    ``torch.Generator`` or an int seed (``None``: torch's global generator).

    Returns a dict: ``clip`` ``[N, T, 3, H, W]``; ``tokens`` ``[N, L]`` and ``caption`` (list of
    str) of frame 0; ``velocity`` ``[N, 2, 2]`` (dy, dx per object, pixels per clip frame; zeros for
    an absent second object); ``speed`` ``[N]`` (pixels per clip frame), ``motion_bucket`` ``[N]``
    (long, index into :data:`SPEEDS`), ``stride`` ``[N]`` (long), ``fps`` ``[N]`` (float),
    ``static`` ``[N]`` (bool), ``cut_frame`` ``[N]`` (long, 0 = no cut) and the frame-0 labels
    ``quadrant_shape``, ``quadrant_colour``, ``quadrant_size`` ``[N, 4]`` (0 = empty).
    """
    _check_frame(height, width)
    if frames < 2:
        raise ValueError(f"a clip needs at least 2 frames, not {frames}")
    for name, fraction in (("cut_fraction", cut_fraction), ("static_fraction", static_fraction)):
        if not 0.0 <= fraction <= 1.0:
            raise ValueError(f"{name} {fraction} is not a fraction")
    if cut_fraction > 0 and frames < 4:
        raise ValueError(f"a cut needs at least 4 frames (two on each side), not {frames}")
    if not noise >= 0:
        raise ValueError(f"noise {noise} must be >= 0")
    g = torch.Generator().manual_seed(generator) if isinstance(generator, int) else generator
    scene = draw_scenes(n, height, width, split=split, p_two=p_two, jitter=jitter,
                        colour_jitter=colour_jitter, generator=g)
    bucket = torch.randint(len(SPEEDS), (n,), generator=g)
    stride = torch.tensor(STRIDES)[torch.randint(len(STRIDES), (n,), generator=g)]
    static = torch.rand(n, generator=g) < static_fraction
    speed = torch.tensor(SPEEDS)[bucket] * stride * ~static
    has_cut = torch.rand(n, generator=g) < cut_fraction
    cut_frame = torch.randint(2, frames - 1, (n,), generator=g) * has_cut if frames >= 4 else torch.zeros(n).long()
    layout = dict(split=split, p_two=p_two, jitter=jitter, colour_jitter=colour_jitter, generator=g)
    redraw = lambda rows: draw_scenes(len(rows), height, width, **layout)  # noqa: E731
    velocity = _fit_motion(scene, redraw, speed, frames, height, width, g)
    # the second shot starts clear of where the first shot's objects are at the cut
    at_cut = _centres(scene, height, width) + velocity * cut_frame[:, None, None]
    second = redraw(torch.arange(n))
    second_velocity = _fit_motion(second, redraw, speed, frames, height, width, g, avoid=(at_cut, scene))

    t = torch.arange(frames, dtype=torch.float32)
    after_cut = (t[None, :] >= cut_frame[:, None]) & has_cut[:, None]  # [N, T]
    time_in_shot = torch.where(after_cut, t - cut_frame[:, None], t)  # each shot starts at its frame 0
    flat = {}
    for key in scene:
        a, b = scene[key], second[key]
        shape = (n, frames) + a.shape[1:]
        picked = torch.where(after_cut.view(n, frames, *[1] * (a.dim() - 1)), b[:, None], a[:, None])
        flat[key] = picked.expand(shape).reshape(n * frames, *a.shape[1:])
    v = torch.where(after_cut[..., None, None], second_velocity[:, None], velocity[:, None])  # [N, T, 2, 2]
    flat["offset"] = flat["offset"] + (v * time_in_shot[:, :, None, None]).reshape(n * frames, 2, 2)
    clip = render_objects(flat, height, width).reshape(n, frames, 3, height, width)
    if noise > 0:
        clip = clip + noise * torch.randn(clip.shape, generator=g)
    captions = scene_captions(scene)
    batch = {"clip": clip, "tokens": tokenize(captions, token_length), "caption": captions,
             "velocity": velocity, "speed": speed, "motion_bucket": bucket, "stride": stride,
             "fps": BASE_FPS / stride.float(), "static": static, "cut_frame": cut_frame}
    for key in ("shape", "colour", "size"):
        batch[f"quadrant_{key}"] = torch.zeros(n, 4, dtype=torch.long).scatter_add_(1, scene["quadrant"], scene[key])
    return batch


def _centres(scene, height, width):
    """Frame-0 object centres ``[N, K, 2]`` (y, x pixels) of scene tensors."""
    return quadrant_centres(height, width)[scene["quadrant"]] + scene["offset"]


def _clearance(scene_a, scene_b, height, width):
    """``[N, K, K]`` distance between objects below which their bounding circles come within a
    pixel (a square's corner is sqrt(2) r from its centre)."""
    radius_a = _RADIUS_FRACTION[scene_a["size"]] * min(height, width)
    radius_b = _RADIUS_FRACTION[scene_b["size"]] * min(height, width)
    return 2 ** 0.5 * (radius_a[:, :, None] + radius_b[:, None, :]) + 1


def _rows(scene, rows):
    return {key: value[rows] for key, value in scene.items()}


def _fit_motion(scene, redraw_scenes, speed, frames, height, width, generator, avoid=None, rounds=100):
    """Velocities ``[N, 2, 2]`` for ``scene`` (changed in place): rows whose objects cannot move at
    ``speed`` as :func:`_velocities` requires, or (with ``avoid = (centres [N, K, 2], other_scene)``)
    whose objects start overlapping those of ``other_scene`` placed at those centres, get
    ``redraw_scenes(rows)`` until they fit (at most ``rounds`` layouts)."""
    velocity = torch.zeros(len(speed), 2, 2)
    rows = torch.arange(len(speed))
    part = scene
    for _ in range(rounds):
        v, stuck = _velocities(part, speed[rows], frames, height, width, generator)
        if avoid is not None:
            centres, other = avoid[0][rows], _rows(avoid[1], rows)
            distance = (_centres(part, height, width)[:, :, None] - centres[:, None]).norm(dim=-1)
            both = (part["shape"] > 0)[:, :, None] & (other["shape"] > 0)[:, None, :]
            radius = _RADIUS_FRACTION[part["size"]][:, :, None] + _RADIUS_FRACTION[other["size"]][:, None, :]
            stuck |= (both & (distance < radius * min(height, width))).flatten(1).any(1)
        velocity[rows] = v
        if part is not scene:
            for key in scene:
                scene[key][rows] = part[key]
        rows = rows[stuck]
        if not len(rows):
            return velocity
        part = redraw_scenes(rows)
    raise RuntimeError(f"{len(rows)} scenes found no room for motion at their speed in {rounds} layouts")


def _velocities(scene, speed, frames, height, width, generator, tries=100):
    """Velocities ``[N, 2, 2]`` (dy, dx, pixels per clip frame) of magnitude ``speed`` ``[N]`` in
    uniformly random directions, redrawn until every object stays in the frame (its centre at
    least its radius from the edges) and the two objects of a scene keep a pixel of background
    between their bounding circles in every frame or, if they start closer, never come more than
    a pixel closer (an occlusion changes the frame difference as a cut does). Returns the
    velocities and a bool ``[N]`` marking scenes without such motion after ``tries`` draws (their
    layout must change)."""
    centre = _centres(scene, height, width)  # [N, 2, 2]
    present = scene["shape"] > 0
    radius = _RADIUS_FRACTION[scene["size"]] * min(height, width)  # [N, 2]
    clearance = _clearance(scene, scene, height, width)[:, 0, 1]
    low, high = radius[..., None], torch.tensor([height, width]) - radius[..., None]  # [N, 2, 2]
    t = torch.arange(frames, dtype=torch.float32)[None, :, None, None]
    velocity = torch.zeros(len(speed), 2, 2)
    rows = torch.arange(len(speed))
    for _ in range(tries):
        angle = 2 * math.pi * torch.rand(len(rows), 2, generator=generator)
        v = torch.stack([torch.sin(angle), torch.cos(angle)], -1) * speed[rows, None, None] * present[rows, :, None]
        path = centre[rows, None] + t * v[:, None]  # [R, T, 2, 2]
        outside = ((path < low[rows, None]) | (path > high[rows, None])).any(-1) & present[rows, None]
        gap = (path[:, :, 0] - path[:, :, 1]).norm(dim=-1)  # [R, T]
        close = present[rows, 1] & (gap.min(1).values < torch.minimum(gap[:, 0] - 1, clearance[rows]))
        velocity[rows] = v
        rows = rows[outside.flatten(1).any(1) | close]
        if not len(rows):
            break
    stuck = torch.zeros(len(speed), dtype=torch.bool)
    stuck[rows] = True
    return velocity, stuck
