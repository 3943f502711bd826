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
    draw_scenes,
    object_radius,
    quadrant_centres,
    render_objects,
    render_scenes,
    sample_shapes,
    scene_captions,
    tokenize,
)

__all__ = [
    "CAPTION_LENGTH", "COLOURS", "COLOUR_RGB", "HELDOUT_PAIRS", "QUADRANTS", "SHAPES", "SIZES",
    "VOCABULARY", "ShapeObject", "caption", "draw_scenes", "object_radius", "quadrant_centres", "render_objects", "render_scenes",
    "sample_shapes", "scene_captions", "tokenize",
]
