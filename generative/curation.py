"""Video data curation as in Stable Video Diffusion, for clips ``[N, T, C, H, W]``.

SVD filters its training videos by cut detection (a clip spanning a hard cut
teaches the model to jump between scenes) and by motion (static clips teach it
not to move), then captions the rest. Here:

* cuts: the mean absolute difference between consecutive frames is flat along a
  clip that moves at constant speed and jumps at a cut; a transition is a cut when
  its difference exceeds the clip's median difference by ``cut_threshold`` (image
  units), which is robust to the clip's own motion and to per-frame noise (both
  raise every difference alike);
* motion: phase correlation (:func:`phase_correlation`) between the first and last
  frame of the clip's longest shot gives its displacement in pixels, divided by the
  frames between them: pixels per frame; a clip is static below ``static_threshold``.

The thresholds are calibrated on :mod:`generative.data.clips` (see
docs/video_ldm.md); :func:`precision_recall` scores a detector against known truth.
"""

from __future__ import annotations

import torch


def frame_differences(clips: torch.Tensor) -> torch.Tensor:
    """Mean absolute difference ``[N, T - 1]`` between frames ``t + 1`` and ``t`` (image units)."""
    return (clips[:, 1:] - clips[:, :-1]).abs().flatten(2).mean(2)


def detect_cuts(clips: torch.Tensor, cut_threshold: float = 0.01) -> torch.Tensor:
    """Bool ``[N, T - 1]``: True where frame ``t + 1`` starts a new shot: the transition's frame
    difference exceeds the larger of its neighbours' (the one neighbour at either end) by
    ``cut_threshold`` (see the module docstring)."""
    diff = frame_differences(clips)
    if diff.shape[1] == 1:
        raise ValueError("cut detection needs clips of at least 3 frames (a transition and a neighbour)")
    left = torch.cat([diff[:, 1:2], diff[:, :-1]], dim=1)  # the first transition has only a right neighbour
    right = torch.cat([diff[:, 1:], diff[:, -2:-1]], dim=1)  # the last only a left one
    return diff - torch.maximum(left, right) > cut_threshold


def phase_correlation(a: torch.Tensor, b: torch.Tensor, near: torch.Tensor | None = None,
                      radius: float = 4.0) -> torch.Tensor:
    """Shift ``[N, 2]`` (dy, dx, pixels, sub-pixel) that moves image ``a`` onto image ``b``.

    ``a``, ``b``: ``[N, C, H, W]``. The normalised cross-power spectrum of the mean-subtracted
    images (cross spectra summed over channels, so objects of different colours do not match)
    has its inverse-transform peak at the shift; a parabola through the peak and its two
    neighbours on each axis refines it to sub-pixel precision. Shifts wrap at half the image
    size. ``near`` (``[N, 2]`` pixels) limits the peak search to ``radius`` pixels per axis
    around it, which keeps a scene of look-alike objects from matching one object to another.
    Hand-written because no library of the stack offers a batched torch version
    (scikit-image's ``phase_cross_correlation`` works on one NumPy pair at a time).
    """
    a, b = (x - x.mean((-2, -1), keepdim=True) for x in (a, b))
    cross = (torch.fft.fft2(b) * torch.fft.fft2(a).conj()).sum(1)
    surface = torch.fft.ifft2(cross / cross.abs().clamp_min(1e-8)).real  # [N, H, W]
    n, height, width = surface.shape
    search = surface
    if near is not None:
        def far(size, centre):  # [N, size]: wrapped distance of each shift from centre > radius
            offset = torch.arange(size)[None, :] - centre[:, None]
            return (torch.remainder(offset + size / 2, size) - size / 2).abs() > radius
        outside = far(height, near[:, 0])[:, :, None] | far(width, near[:, 1])[:, None, :]
        search = surface.masked_fill(outside, -torch.inf)
    peak = search.flatten(1).argmax(1)
    py, px = peak // width, peak % width
    rows = torch.arange(n)

    def refine(minus, centre, plus):
        curvature = minus - 2 * centre + plus
        return torch.where(curvature < 0, 0.5 * (minus - plus) / curvature.clamp_max(-1e-8), torch.zeros_like(centre))

    c = surface[rows, py, px]
    dy = py + refine(surface[rows, (py - 1) % height, px], c, surface[rows, (py + 1) % height, px])
    dx = px + refine(surface[rows, py, (px - 1) % width], c, surface[rows, py, (px + 1) % width])
    dy = torch.where(dy > height / 2, dy - height, dy)
    dx = torch.where(dx > width / 2, dx - width, dx)
    return torch.stack([dy, dx], 1)


def longest_shot(cuts: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """First and last frame indices ``[N]`` of each clip's longest shot, given ``cuts`` ``[N, T - 1]``."""
    n, transitions = cuts.shape
    first, last = torch.zeros(n, dtype=torch.long), torch.zeros(n, dtype=torch.long)
    for i, row in enumerate(cuts.tolist()):
        starts = [0] + [t + 1 for t, cut in enumerate(row) if cut]
        ends = starts[1:] + [transitions + 1]
        best = max(range(len(starts)), key=lambda k: ends[k] - starts[k])
        first[i], last[i] = starts[best], ends[best] - 1
    return first, last


def clip_motion(clips: torch.Tensor, cuts: torch.Tensor | None = None, max_step: float = 4.0,
                radius: float = 1.5) -> torch.Tensor:
    """Speed ``[N]`` in pixels per frame over each clip's longest shot (the whole clip without
    ``cuts`` ``[N, T - 1]``; 0 for a one-frame shot).

    The shot's first frame is tracked to each later frame by :func:`phase_correlation`: to the
    next frame within ``max_step`` pixels, then to frame ``k`` within ``radius`` pixels of ``k``
    times the velocity measured so far, and the velocity becomes the shift over ``k``. The long
    baselines make slow motion measurable, and the tracking keeps the search on one object where
    several move differently (their peaks, merged at first, separate as the baseline grows), so the
    speed is that object's."""
    n, frames = clips.shape[:2]
    if cuts is None:
        cuts = torch.zeros(n, frames - 1, dtype=torch.bool)
    first, last = longest_shot(cuts)
    rows = torch.arange(n)
    velocity = torch.zeros(n, 2)
    for k in range(1, int((last - first).max()) + 1):
        active = first + k <= last
        index = rows[active]
        shift = phase_correlation(clips[index, first[active]], clips[index, first[active] + k],
                                  velocity[active] * k, max_step if k == 1 else radius)
        velocity[active] = shift / k
    return velocity.norm(dim=1)


def curate(clips: torch.Tensor, cut_threshold: float = 0.01, static_threshold: float = 0.1) -> dict:
    """Run the filters on ``clips`` ``[N, T, C, H, W]``. Returns a dict of ``[N]`` tensors:
    ``has_cut`` (bool), ``motion`` (pixels per frame), ``static`` (bool: motion below
    ``static_threshold``) and ``keep`` (bool: neither cut nor static)."""
    if clips.dim() != 5 or clips.shape[1] < 2:
        raise ValueError(f"clips must be [N, T >= 2, C, H, W], not {tuple(clips.shape)}")
    cuts = detect_cuts(clips, cut_threshold)
    motion = clip_motion(clips, cuts)
    has_cut, static = cuts.any(1), motion < static_threshold
    return {"has_cut": has_cut, "motion": motion, "static": static, "keep": ~has_cut & ~static}


def precision_recall(predicted: torch.Tensor, truth: torch.Tensor) -> tuple[float, float]:
    """Precision and recall of bool ``predicted`` against bool ``truth`` (1.0 where undefined:
    no positive predictions, or no true positives to find)."""
    hits = (predicted & truth).sum().item()
    return (hits / predicted.sum().item() if predicted.any() else 1.0,
            hits / truth.sum().item() if truth.any() else 1.0)
