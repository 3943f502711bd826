"""Procedural captioned shapes for training and judging small image latent diffusion models.

Conventions:

* Images are float32 RGB in ``[-1, 1]``, shape ``[N, 3, H, W]``, black background (-1);
  ``H`` and ``W`` are multiples of 8 (e.g. 32x32, or aspect buckets such as 24x40).
* Coordinates are in pixels of the ``H x W`` frame: pixel ``(i, j)`` covers
  ``[i, i + 1) x [j, j + 1)``, so its centre is at ``(i + 0.5, j + 0.5)`` (y, x).
* A scene holds one to four objects in distinct quadrants (ordered top left, top
  right, bottom left, bottom right); :func:`sample_shapes` draws one or two. An object
  has a shape (:data:`SHAPES`), a colour (:data:`COLOURS`), a size (:data:`SIZES`) and a
  quadrant (:data:`QUADRANTS`); its centre is the quadrant centre ``(H/4 or 3H/4,
  W/4 or 3W/4)`` plus an offset. Its radius ``r`` is ``min(H, W) / 8`` (small) or
  ``3 min(H, W) / 16`` (large), so that with offsets up to ``side / 16`` per axis a
  large object stays inside its quadrant. Circle: radius ``r``; square: axis-aligned,
  side ``2 r``; triangle: pointing up, equilateral, inscribed in the circle of radius
  ``r``. The centre is each shape's centroid.
* Edges are anti-aliased: a pixel's coverage is ``clamp(0.5 - d / p, 0, 1)`` with ``d``
  the signed distance (a polygon's: the largest distance to its edge lines) from the
  pixel centre to the shape and ``p`` the pixel side, exact for axis-aligned edges.
* SDXL micro-conditioning: the scene is laid out in the frame; an image is the
  ``H x W`` window at ``crop = (top, left)`` of the canvas, which is the frame padded
  with background on the bottom and right, so objects move up-left by ``crop``.
  A low-resolution image is that window rendered at ``original_size = (h, w)`` and
  upsampled bilinearly to ``target_size = (H, W)``.
* Labels (``quadrant_shape``, ``quadrant_colour``, ``quadrant_size``, ``[N, 4]``,
  0 = empty quadrant, else 1 + index into :data:`SHAPES` / :data:`COLOURS` /
  :data:`SIZES`) describe the scene in the frame, whatever the crop and resolution.
* Compositional split: the (shape, colour) pairs of :data:`HELDOUT_PAIRS` (red
  triangle, blue circle, green square) never appear with ``split="train"``; with
  ``split="heldout"`` every image holds at least one; ``split="all"`` has no constraint.
  Pairs are drawn uniformly subject to the split's constraint.
"""

from typing import NamedTuple

import torch
import torch.nn.functional as F

SHAPES = ("circle", "square", "triangle")
COLOURS = ("red", "green", "blue", "yellow")
SIZES = ("small", "large")
QUADRANTS = ("top left", "top right", "bottom left", "bottom right")
#: (shape, colour) pairs never drawn in the training split.
HELDOUT_PAIRS = (("triangle", "red"), ("circle", "blue"), ("square", "green"))
#: Caption words; a token is an index into this tuple, 0 is padding.
VOCABULARY = ("<pad>", "a", "and", "at", "the", *SIZES, *COLOURS, *SHAPES, "top", "bottom", "left", "right")
#: Tokens in the longest caption :func:`sample_shapes` writes (two objects).
CAPTION_LENGTH = 17
#: RGB in [-1, 1] of each colour, rows in :data:`COLOURS` order.
COLOUR_RGB = torch.tensor([[1.0, -1, -1], [-1, 1, -1], [-1, -1, 1], [1, 1, -1]])

_RADIUS = torch.tensor([0.0, 1 / 8, 3 / 16])  # by size label, times min(H, W)
_HELDOUT = torch.zeros(len(SHAPES) * len(COLOURS), dtype=torch.bool)  # by pair = shape * 4 + colour
for _shape, _colour in HELDOUT_PAIRS:
    _HELDOUT[SHAPES.index(_shape) * len(COLOURS) + COLOURS.index(_colour)] = True
_SPLITS = ("train", "heldout", "all")


class ShapeObject(NamedTuple):
    """One object of a scene; ``offset`` is ``(dy, dx)`` from the quadrant centre, in frame pixels."""

    shape: str
    colour: str
    size: str
    quadrant: str
    offset: tuple[float, float] = (0.0, 0.0)


def caption(objects):
    """Caption of a scene, e.g. ``"a small red circle at the top left and a large blue
    square at the bottom right"`` (objects in the given order)."""
    return " and ".join(f"a {o.size} {o.colour} {o.shape} at the {o.quadrant}" for o in objects)


def tokenize(captions, length=CAPTION_LENGTH):
    """Token ids ``[N, length]`` (LongTensor, indices into :data:`VOCABULARY`, padded with 0)."""
    index = {word: i for i, word in enumerate(VOCABULARY)}
    rows = []
    for text in captions:
        words = text.split()
        if len(words) > length:
            raise ValueError(f"caption has {len(words)} words, more than {length}: {text!r}")
        unknown = [word for word in words if word not in index]
        if unknown:
            raise ValueError(f"unknown word {unknown[0]!r} in caption {text!r}")
        rows.append([index[word] for word in words] + [0] * (length - len(words)))
    return torch.tensor(rows, dtype=torch.long).reshape(len(captions), length)


def sample_shapes(n, height=32, width=32, *, split="train", p_two=0.5, jitter=1 / 16,
                  colour_jitter=0.2, max_crop=4, crop_fraction=0.0, lowres_fraction=0.0,
                  lowres_scale=0.5, token_length=CAPTION_LENGTH, generator=None):
    """Draw ``n`` random captioned scenes and render them (see the module docstring).

    ``p_two``: probability of two objects (else one), in distinct random quadrants; the
    caption names them in the order drawn (not sorted by quadrant).
    ``jitter``: offsets are uniform in ``+-jitter * H`` (y) and ``+-jitter * W`` (x) pixels.
    ``colour_jitter``: each channel moves towards 0 by a uniform amount in
    ``[0, colour_jitter]`` (image units). A fraction ``crop_fraction`` of images get a
    crop with top and left uniform integers in ``[0, max_crop]`` pixels (others
    ``(0, 0)``); a fraction ``lowres_fraction`` is rendered at ``original_size =
    round(lowres_scale * (H, W))`` and upsampled. ``generator``: a ``torch.Generator``
    or an int seed (``None``: torch's global generator). Returns the batch dict of
    :func:`render_scenes`.
    """
    _check_frame(height, width)
    g = torch.Generator().manual_seed(generator) if isinstance(generator, int) else generator
    scene = draw_scenes(n, height, width, split=split, p_two=p_two, jitter=jitter,
                        colour_jitter=colour_jitter, generator=g)
    cropped = torch.rand(n, generator=g) < crop_fraction
    crop = torch.randint(0, max_crop + 1, (n, 2), generator=g) * cropped[:, None]
    lowres = torch.rand(n, generator=g) < lowres_fraction
    small = torch.tensor([round(lowres_scale * height), round(lowres_scale * width)])
    original_size = torch.where(lowres[:, None], small, torch.tensor([height, width]))
    return _batch(scene, crop, original_size, height, width, token_length)


def draw_scenes(n, height=32, width=32, *, split="train", p_two=0.5, jitter=1 / 16, colour_jitter=0.2,
                generator=None):
    """Draw ``n`` random scenes as tensors (the layout step of :func:`sample_shapes`, same arguments):
    a dict of long ``shape``, ``colour``, ``size`` (1 + index, 0 = absent) and ``quadrant`` ``[N, 2]``,
    float ``offset`` ``[N, 2, 2]`` (frame pixels) and ``rgb`` ``[N, 2, 3]``, as :func:`render_objects`
    takes them. ``generator``: a ``torch.Generator`` or ``None``."""
    if split not in _SPLITS:
        raise ValueError(f"split must be one of {_SPLITS}, not {split!r}")
    g = generator
    present = torch.stack([torch.ones(n, dtype=torch.bool), torch.rand(n, generator=g) < p_two], 1)
    quadrant = torch.rand(n, 4, generator=g).argsort(1)[:, :2]
    pair = _draw_pairs(present, split, g)
    size = torch.randint(1, len(SIZES) + 1, (n, 2), generator=g)
    offset = (2 * torch.rand(n, 2, 2, generator=g) - 1) * jitter * torch.tensor([height, width])
    rgb = COLOUR_RGB[pair % len(COLOURS)]
    rgb = rgb - rgb.sign() * colour_jitter * torch.rand(n, 2, 3, generator=g)
    return {"shape": (pair // len(COLOURS) + 1) * present, "colour": (pair % len(COLOURS) + 1) * present,
            "size": size * present, "quadrant": quadrant, "offset": offset, "rgb": rgb}


def render_scenes(scenes, height=32, width=32, crop=None, original_size=None, token_length=CAPTION_LENGTH):
    """Render chosen scenes, e.g. prompts for sampling or ground truth for tests.

    ``scenes``: a sequence of scenes, each a sequence of one to four
    :class:`ShapeObject` in distinct quadrants, drawn in the exact colours of
    :data:`COLOUR_RGB`. ``crop``: ``[N, 2]`` (top, left) integer pixels, default zeros.
    ``original_size``: ``[N, 2]`` (h, w) render size in pixels, at most ``(H, W)``,
    default ``(H, W)``.

    Returns a dict: ``image`` ``[N, 3, H, W]`` float32 in [-1, 1], ``tokens`` ``[N, L]``,
    ``caption`` (list of str), ``crop``, ``original_size``, ``target_size`` (float
    ``[N, 2]``, pixels) and ``quadrant_shape``, ``quadrant_colour``, ``quadrant_size``
    (long ``[N, 4]``, 0 = empty).
    """
    _check_frame(height, width)
    n, k = len(scenes), max(len(objects) for objects in scenes)
    scene = {key: torch.zeros(n, k, dtype=torch.long) for key in ("shape", "colour", "size", "quadrant")}
    scene["offset"], scene["rgb"] = torch.zeros(n, k, 2), torch.zeros(n, k, 3)
    for row, objects in enumerate(scenes):
        if not 1 <= len(objects) <= 4 or len({o.quadrant for o in objects}) < len(objects):
            raise ValueError(f"scene {row} must hold one to four objects in distinct quadrants")
        for col, o in enumerate(objects):
            scene["shape"][row, col] = _index(SHAPES, o.shape) + 1
            scene["colour"][row, col] = _index(COLOURS, o.colour) + 1
            scene["size"][row, col] = _index(SIZES, o.size) + 1
            scene["quadrant"][row, col] = _index(QUADRANTS, o.quadrant)
            scene["offset"][row, col] = torch.tensor(o.offset)
            scene["rgb"][row, col] = COLOUR_RGB[scene["colour"][row, col] - 1]
    crop = torch.zeros(n, 2, dtype=torch.long) if crop is None else torch.as_tensor(crop).long()
    original_size = (torch.tensor([[height, width]] * n) if original_size is None
                     else torch.as_tensor(original_size).long())
    return _batch(scene, crop, original_size, height, width, token_length)


def render_objects(scene, height=32, width=32):
    """Render scene tensors at full resolution without a crop: ``scene`` holds long ``shape``,
    ``colour``, ``size`` (1 + index, 0 = no object) and ``quadrant`` ``[N, K]``, float ``offset``
    ``[N, K, 2]`` (dy, dx from the quadrant centre, frame pixels; it may move an object out of its
    quadrant) and ``rgb`` ``[N, K, 3]``. Returns images ``[N, 3, H, W]`` in [-1, 1]; objects are
    painted in ``K`` order. For callers that move objects, e.g. :mod:`generative.data.clips`."""
    _check_frame(height, width)
    n = len(scene["shape"])
    return _render(scene, torch.zeros(n, 2), (height, width), (height, width))


def scene_captions(scene):
    """Captions (list of str) of scene tensors as :func:`render_objects` takes them."""
    return _captions(scene)


def quadrant_centres(height, width):
    """Centres ``[4, 2]`` (y, x, frame pixels) of the quadrants in :data:`QUADRANTS` order."""
    return torch.tensor([[(0.5 + row) * height / 2, (0.5 + col) * width / 2] for row in (0, 1) for col in (0, 1)])


def object_radius(size, height, width):
    """Radius in pixels of an object of ``size`` (a name from :data:`SIZES`) in an ``H x W`` frame."""
    return _RADIUS[_index(SIZES, size) + 1].item() * min(height, width)


def _check_frame(height, width):
    if height % 8 or width % 8 or height <= 0 or width <= 0:
        raise ValueError(f"height and width must be positive multiples of 8, not {height} x {width}")


def _index(names, name):
    if name not in names:
        raise ValueError(f"unknown {name!r}; expected one of {names}")
    return names.index(name)


def _draw_pairs(present, split, generator):
    """(shape, colour) pair ids ``shape * 4 + colour`` ``[N, 2]``, uniform given the split's constraint."""
    pair = torch.randint(len(_HELDOUT), present.shape, generator=generator)
    if split == "all":
        return pair
    while True:
        bad = (_HELDOUT[pair] & present).any(1) != (split == "heldout")
        if not bad.any():
            return pair
        pair[bad] = torch.randint(len(_HELDOUT), (int(bad.sum()), pair.shape[1]), generator=generator)


def _batch(scene, crop, original_size, height, width, token_length):
    """Render a scene dict (long ``shape``, ``colour``, ``size``, ``quadrant`` ``[N, K]`` with
    0 = no object, float ``offset`` ``[N, K, 2]`` and ``rgb`` ``[N, K, 3]``) into a batch dict."""
    n = len(crop)
    image = torch.empty(n, 3, height, width)
    for size in set(map(tuple, original_size.tolist())):
        rows = (original_size == torch.tensor(size)).all(1).nonzero()[:, 0]
        part = {key: value[rows] for key, value in scene.items()}
        image.index_copy_(0, rows, _render(part, crop[rows].float(), size, (height, width)))
    captions = _captions(scene)
    batch = {"image": image, "tokens": tokenize(captions, token_length), "caption": captions,
             "crop": crop.float(), "original_size": original_size.float(),
             "target_size": torch.tensor([[height, width]] * n, dtype=torch.float32)}
    for key in ("shape", "colour", "size"):  # quadrants of a scene are distinct; absent objects add 0
        batch[f"quadrant_{key}"] = torch.zeros(n, 4, dtype=torch.long).scatter_add_(1, scene["quadrant"], scene[key])
    return batch


def _captions(scene):
    rows = zip(*(scene[key].tolist() for key in ("shape", "colour", "size", "quadrant")))
    return [caption([ShapeObject(SHAPES[s - 1], COLOURS[c - 1], SIZES[z - 1], QUADRANTS[q])
                     for s, c, z, q in zip(*row) if s]) for row in rows]


def _render(scene, crop, size, frame):
    """Images ``[N, 3, H, W]`` of the canvas window at ``crop`` ``[N, 2]``, rendered at
    ``size = (h, w)`` pixels, upsampled bilinearly to ``frame = (H, W)`` when smaller."""
    (h, w), (height, width) = size, frame
    py, px = height / h, width / w  # output pixel side in frame pixels
    pixel = (py * px) ** 0.5
    y = crop[:, :1] + (torch.arange(h) + 0.5) * py  # [N, h] pixel centres, frame coordinates
    x = crop[:, 1:] + (torch.arange(w) + 0.5) * px
    # fraction of each pixel inside the frame: the canvas padding is background
    inside = ((height - y) / py + 0.5).clamp(0, 1)[:, :, None] * ((width - x) / px + 0.5).clamp(0, 1)[:, None, :]
    centre = quadrant_centres(height, width)[scene["quadrant"]] + scene["offset"]  # [N, K, 2]
    radius = _RADIUS[scene["size"]] * min(height, width) / pixel  # [N, K], output pixels
    image = torch.full((len(crop), 3, h, w), -1.0)
    for k in range(centre.shape[1]):
        dy = (y - centre[:, k, :1]) / pixel  # [N, h], output pixels
        dx = (x - centre[:, k, 1:]) / pixel  # [N, w]
        coverage = torch.zeros(len(crop), h, w)
        for label, distance in enumerate((_circle, _square, _triangle), 1):
            rows = (scene["shape"][:, k] == label).nonzero()[:, 0]
            r = radius[rows, k, None, None]
            coverage[rows] = (0.5 - distance(dy[rows, :, None], dx[rows, None, :], r)).clamp_(0, 1)
        coverage *= inside
        image = torch.lerp(image, scene["rgb"][:, k, :, None, None].expand_as(image), coverage[:, None])
    if (h, w) != (height, width):
        image = F.interpolate(image, size=(height, width), mode="bilinear", align_corners=False)
    return image


# Signed distances (negative inside) at offsets ``dy [N, h, 1]``, ``dx [N, 1, w]`` from the
# centre of a shape of radius ``r [N, 1, 1]``, all in the same unit.

def _circle(dy, dx, r):
    return torch.sqrt(dy ** 2 + dx ** 2) - r


def _square(dy, dx, r):
    return torch.maximum(dy.abs(), dx.abs()) - r


def _triangle(dy, dx, r):
    """Largest distance to the base line ``dy = r / 2`` and the two slanted edge lines,
    each at distance ``r / 2`` from the centre."""
    return torch.maximum(dy - r / 2, 3 ** 0.5 / 2 * dx.abs() - (dy + r) / 2)
