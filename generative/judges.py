"""A learned judge for captioned-shapes images (:mod:`generative.data.shapes`).

:class:`ShapeClassifier` reads images ``[N, 3, H, W]`` in ``[-1, 1]`` (``H``, ``W``
multiples of 8) and labels each quadrant (order top left, top right, bottom left,
bottom right) with the label conventions of the shapes data: shape 0 = empty, 1..3
(:data:`~generative.data.shapes.SHAPES`), colour 0 = empty, 1..4, size 0 = empty, 1..2.
Its ``features`` (penultimate activations) feed a Frechet distance
(:func:`generative.metrics.frechet_distance`); :func:`prompt_adherence` scores
generated images against the scenes their captions asked for.
"""

import math

import torch
import torch.nn.functional as F
from torch import nn

from .data.shapes import COLOURS, SHAPES, SIZES, sample_shapes

_CLASSES = {"shape": len(SHAPES) + 1, "colour": len(COLOURS) + 1, "size": len(SIZES) + 1}


class ShapeClassifier(nn.Module):
    """Conv trunk with batch norm (a 4x4 stride-2 stem and one more stride-2 stage, so an
    ``H x W`` image becomes ``H/4 x W/4`` features) then ``AdaptiveAvgPool2d(2)``: each
    pooled cell averages the features of one quadrant exactly (``H/4`` and ``W/4`` are
    even). Heads shared by the four cells predict shape, colour and size (each
    including the empty class). Call ``eval()`` before judging (batch norm)."""

    def __init__(self, width=24, hidden=64):
        super().__init__()
        c = width

        def stage(c_in, c_out, kernel, stride):
            return [nn.Conv2d(c_in, c_out, kernel, stride, padding=1, bias=False), nn.BatchNorm2d(c_out), nn.ReLU()]

        self.trunk = nn.Sequential(*stage(3, c, 4, 2), *stage(c, c, 3, 1), *stage(c, 2 * c, 3, 2),
                                   *stage(2 * c, 2 * c, 3, 1), nn.AdaptiveAvgPool2d(2))
        self.cell = nn.Sequential(nn.Linear(2 * c, hidden), nn.ReLU())
        self.heads = nn.ModuleDict({key: nn.Linear(hidden, k) for key, k in _CLASSES.items()})

    def _cells(self, images):
        """Per-quadrant features ``[N, 4, hidden]``, quadrants in row-major order."""
        pooled = self.trunk(images).flatten(2).transpose(1, 2)  # [N, 4, 2c], cells row-major
        return self.cell(pooled)

    def forward(self, images):
        """Logits ``{"shape": [N, 4, 4], "colour": [N, 4, 5], "size": [N, 4, 3]}``."""
        cells = self._cells(images)
        return {key: head(cells) for key, head in self.heads.items()}

    @torch.no_grad()
    def features(self, images):
        """Penultimate features ``[N, 4 * hidden]`` (the four quadrant cells concatenated)."""
        return self._cells(images).flatten(1)

    @torch.no_grad()
    def predict(self, images):
        """Predicted labels ``{"shape", "colour", "size"}``, each long ``[N, 4]``."""
        return {key: logits.argmax(-1) for key, logits in self(images).items()}


def train_shape_classifier(steps=600, batch_size=32, sizes=((32, 32),), lr=3e-3, width=24, seed=0, **data):
    """Train a :class:`ShapeClassifier` on fresh renders of ``sample_shapes(split="all")``
    (crop ``(0, 0)``, full resolution), cycling through the ``(H, W)`` of ``sizes`` one
    batch each; AdamW with a cosine learning-rate decay, loss the sum of the three
    cross-entropies over the quadrants. ``data`` goes to
    :func:`~generative.data.shapes.sample_shapes` (e.g. ``colour_jitter``). Deterministic
    given ``seed`` (on CPU). ``width``: the classifier's channel width. Returns the
    classifier in eval mode.

    Object radii are fractions of ``min(H, W)``, so sizes whose ``min(H, W)`` differ make
    "small" and "large" overlap in pixels (a large object at 24x40 is 4.5 px, a small one
    at 32x32 4 px) and the size head must learn the frame scale from context: train one
    judge per ``min(H, W)`` when size accuracy matters. On a busy machine one torch
    thread (``torch.set_num_threads(1)``) can be many times faster than two.
    """
    generator = torch.Generator().manual_seed(seed)
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        model = ShapeClassifier(width)
    optimiser = torch.optim.AdamW(model.parameters(), lr=lr)
    schedule = torch.optim.lr_scheduler.LambdaLR(optimiser, lambda step: 0.5 * (1 + math.cos(math.pi * step / steps)))
    model.train()
    for step in range(steps):
        h, w = sizes[step % len(sizes)]
        batch = sample_shapes(batch_size, h, w, split="all", generator=generator, **data)
        logits = model(batch["image"])
        loss = sum(F.cross_entropy(logits[key].flatten(0, 1), batch[f"quadrant_{key}"].flatten())
                   for key in _CLASSES)
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
        schedule.step()
    return model.eval()


def prompt_adherence(classifier, images, batch):
    """How well ``images`` ``[N, 3, H, W]`` (rendered or sampled with crop ``(0, 0)``)
    show the scenes of ``batch`` (its ``quadrant_shape``, ``quadrant_colour`` and
    ``quadrant_size`` labels, ``[N, 4]``), judged by ``classifier.predict``.

    A requested object is a quadrant with ``quadrant_shape > 0``. Over all requested
    objects of all images:

    * ``"position"``: fraction with an object predicted in the requested quadrant
      (predicted shape not empty);
    * ``"shape"``, ``"colour"``, ``"size"``: fraction whose predicted label in the
      requested quadrant equals the requested one (an empty prediction is wrong).

    ``"all"``: fraction of images in which every requested object has all four right
    and every quadrant the caption does not mention is predicted empty. Returns floats
    in ``[0, 1]``.
    """
    predicted = classifier.predict(images)
    wanted = batch["quadrant_shape"] > 0
    right = {key: predicted[key] == batch[f"quadrant_{key}"] for key in _CLASSES}
    right["position"] = predicted["shape"] > 0
    scores = {key: ok[wanted].float().mean().item() for key, ok in right.items()}
    every = torch.stack(list(right.values())).all(0)
    image_right = torch.where(wanted, every, predicted["shape"] == 0).all(1)
    scores["all"] = image_right.float().mean().item()
    return scores
