"""Procedural data sets for the engine: captioned shapes (:mod:`generative.data.shapes`)."""

from .shapes import (
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

__all__ = [
    "CAPTION_LENGTH", "COLOURS", "COLOUR_RGB", "HELDOUT_PAIRS", "QUADRANTS", "SHAPES", "SIZES",
    "VOCABULARY", "ShapeObject", "caption", "object_radius", "quadrant_centres", "render_scenes",
    "sample_shapes", "tokenize",
]
