"""Argument types that refuse impossible numbers at the command line.

argparse calls these on the option's text; a value out of range is answered
with the command's usage and one line naming the option, the value and what
it must be (exit status 2), before any file is read or written. NaN and
infinity are never accepted.
"""

from __future__ import annotations

import argparse
import importlib
import math


def _number(text: str, kind: type) -> float | int:
    try:
        value = kind(text)
    except ValueError:
        what = "a whole number" if kind is int else "a number"
        raise argparse.ArgumentTypeError(f"{text!r} is not {what}") from None
    if kind is float and not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"{text} is not a finite number")
    return value


def positive_int(text: str) -> int:
    """A whole number of 1 or more (counts, sizes, epochs, steps)."""
    value = _number(text, int)
    if value < 1:
        raise argparse.ArgumentTypeError(f"{value} is not 1 or more")
    return value


def nonnegative_int(text: str) -> int:
    """A whole number of 0 or more (an interval where 0 means 'off', a principal-component count)."""
    value = _number(text, int)
    if value < 0:
        raise argparse.ArgumentTypeError(f"{value} is not 0 or more")
    return value


def seed(text: str) -> int:
    """A random seed: a whole number from 0 to 2**32 - 1 (what numpy and torch accept)."""
    value = _number(text, int)
    if not 0 <= value < 2**32:
        raise argparse.ArgumentTypeError(f"{value} is not between 0 and {2**32 - 1}")
    return value


def positive_float(text: str) -> float:
    """A finite number above 0 (pixel sizes in Å, learning rates, signal-to-noise ratios)."""
    value = _number(text, float)
    if value <= 0:
        raise argparse.ArgumentTypeError(f"{value:g} is not above 0")
    return value


def nonnegative_float(text: str) -> float:
    """A finite number of 0 or more (weights, regularisers, weight decay)."""
    value = _number(text, float)
    if value < 0:
        raise argparse.ArgumentTypeError(f"{value:g} is not 0 or more")
    return value


def finite_float(text: str) -> float:
    """Any finite number (latent coordinates, log-likelihood cut-offs)."""
    return _number(text, float)


def fraction(text: str) -> float:
    """A finite number from 0 to 1 inclusive (amplitude contrast, fractions of particles)."""
    value = _number(text, float)
    if not 0 <= value <= 1:
        raise argparse.ArgumentTypeError(f"{value:g} is not between 0 and 1")
    return value


def even_box(text: str) -> int:
    """An even box size in pixels, 8 or more."""
    value = _number(text, int)
    if value < 8 or value % 2:
        raise argparse.ArgumentTypeError(f"{value} is not an even box size of 8 pixels or more")
    return value


def count(limit: int, why: str, low: int = 1):
    """A whole number from ``low`` to ``limit`` (a count whose absurd values would exhaust memory
    or time); ``why`` completes "more than LIMIT ..." in the error, e.g. "latents per call"."""

    def parse(text: str) -> int:
        value = _number(text, int)
        if value < low:
            raise argparse.ArgumentTypeError(f"{value} is not {low} or more")
        if value > limit:
            raise argparse.ArgumentTypeError(f"{value} is more than {limit} {why}")
        return value

    parse.__name__ = "count"  # argparse names the type in its messages
    return parse


def percentage(text: str) -> float:
    """A percentage above 0 and below 100 (of particles to drop)."""
    value = _number(text, float)
    if not 0 < value < 100:
        raise argparse.ArgumentTypeError(f"{value:g} is not a percentage above 0 and below 100")
    return value


def probability(text: str) -> float:
    """A probability above 0 and below 1 (a privacy delta)."""
    value = _number(text, float)
    if not 0 < value < 1:
        raise argparse.ArgumentTypeError(f"{value:g} is not above 0 and below 1")
    return value


class LateChoice:
    """An argparse ``type`` accepting one of the names in ``module.attribute``, read only when a value is
    checked (so building the parser does not import that module: the engine's formulation table
    imports torch). argparse's ``choices`` would be read as the parser is built."""

    def __init__(self, module: str, attribute: str):
        self.module, self.attribute = module, attribute

    def names(self) -> tuple:
        return tuple(getattr(importlib.import_module(self.module), self.attribute))

    def __call__(self, text: str) -> str:
        names = self.names()
        if text not in names:
            raise argparse.ArgumentTypeError(f"{text!r} is not one of {', '.join(names)}")
        return text
