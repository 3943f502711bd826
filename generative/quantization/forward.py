"""Forward quantizers of ProxConnect: the map from latent full-precision weights to the
weights the network computes with, and the annealing that hardens it.

Every map takes latent weights as rows ``w [rows, n]``, their grid ``[rows, L]``
(:mod:`generative.quantization.grids`) and the relaxation ``rho`` in ``(0, 1]``
of the :class:`Annealing` (1: loosest, towards 0: hard), and returns ``[rows, n]``.
Once annealing ends, every map is rounding to the nearest level.

- ``hard``: the nearest level whatever ``rho`` (BinaryConnect, BNN, BNN+).
- ``parq``: the proximal map of PARQ's piecewise-affine regulariser, ProxConnect's
  generalisation of the sign: between two neighbouring levels ``q_k < q_k+1`` with
  midpoint ``c``, ``F(w) = clamp(c + (w - c) / rho, q_k, q_k+1)``, and weights beyond
  the outer levels are clamped to them. At ``rho = 1`` this is the identity inside the
  grid's range; as ``rho -> 0`` the slope ``1/rho`` grows until ``F`` is rounding.
- ``relax``: BinaryRelax's convex mix ``rho w + (1 - rho) round(w)``.
- ``sign_swish``: BNN++'s forward quantizer. On a binary grid ``{-a, a}`` it is
  ``F(w) = a SS_beta(w / a)`` with the SignSwish
  ``SS_beta(x) = 2 sigmoid(beta x) (1 + beta x (1 - sigmoid(beta x))) - 1`` and
  ``beta = min(beta0 / rho, beta_max)``, which tends to ``a sign(w)`` as ``beta`` grows.
  On a grid of more levels ``q_0 < ... < q_L-1`` it is the staircase of such steps,
  one per gap, each of half-height ``h_k = (q_k+1 - q_k) / 2`` centred on the midpoint
  ``c_k``: ``F(w) = q_0 + sum_k h_k (1 + SS_beta((w - c_k) / h_k))``, which is the binary
  form for two levels and tends to rounding as ``beta`` grows. The staircase is our
  extension of ProxConnect++'s pair to ternary and k-bit grids, not from the paper.
"""

import math
from dataclasses import dataclass

import torch

from .grids import round_to_grid

FORWARD = ("hard", "parq", "relax", "sign_swish")


@dataclass(frozen=True)
class Annealing:
    """Relaxation ``rho`` of the forward quantizer per optimiser step.

    Steps before ``start`` are warm-up (the network uses its full-precision weights);
    from ``start`` to ``end`` ``rho`` falls from 1 towards 0 along ``shape``: ``"sigmoid"``
    (PARQ's schedule: a decreasing logistic of the progress ``f = (step - start) / (end - start)``
    with ``steepness`` around ``f = 1/2``, rescaled to run from exactly 1 at ``f = 0`` to 0 at
    ``f = 1``) or ``"linear"`` (``1 - f``, BinaryRelax's); from ``end`` on, ``rho = 0``: rounding.
    """

    start: int = 0
    end: int = 1000
    shape: str = "sigmoid"
    steepness: float = 10.0

    def __post_init__(self):
        if not 0 <= self.start < self.end:
            raise ValueError(f"annealing needs 0 <= start < end, got start={self.start}, end={self.end}")
        if self.shape not in ("sigmoid", "linear"):
            raise ValueError(f"annealing shape must be 'sigmoid' or 'linear', got {self.shape!r}")
        if not self.steepness > 0:
            raise ValueError(f"annealing steepness must be positive, got {self.steepness}")

    def relaxation(self, step: int) -> float | None:
        """``rho`` at optimiser step ``step`` (0-based): ``None`` during warm-up, else in ``[0, 1]``."""
        if step < self.start:
            return None
        if step >= self.end:
            return 0.0
        f = (step - self.start) / (self.end - self.start)
        if self.shape == "linear":
            return 1.0 - f
        s = self.steepness

        def logistic(u):
            return 1.0 / (1.0 + math.exp(-u))

        top, bottom = logistic(s / 2), logistic(-s / 2)
        return max((logistic(s * (0.5 - f)) - bottom) / (top - bottom), torch.finfo(torch.float32).tiny)


def sign_swish(x: torch.Tensor, beta: float) -> torch.Tensor:
    """SignSwish ``SS_beta(x)``: odd, 0 at 0, tends to ``sign(x)`` as ``beta`` grows."""
    s = torch.sigmoid(beta * x)
    return 2 * s * (1 + beta * x * (1 - s)) - 1


def sign_swish_beta(rho: float, beta0: float, beta_max: float) -> float:
    """SignSwish sharpness at relaxation ``rho``: ``min(beta0 / rho, beta_max)``."""
    return beta_max if rho <= beta0 / beta_max else beta0 / rho


def sign_swish_staircase(w: torch.Tensor, grid: torch.Tensor, beta: float) -> torch.Tensor:
    """``q_0 + sum_k h_k (1 + SS_beta((w - c_k) / h_k))`` over the gaps of each row's ``grid [rows, L]``
    (see the module docstring), for latent rows ``w [rows, n]``."""
    half = (grid[:, 1:] - grid[:, :-1])[:, None, :] / 2  # [rows, 1, L-1]
    centre = (grid[:, 1:] + grid[:, :-1])[:, None, :] / 2
    steps = half * (1 + sign_swish((w[:, :, None] - centre) / half, beta))
    return grid[:, :1] + steps.sum(-1)


def apply(kind: str, w: torch.Tensor, grid: torch.Tensor, rho: float, *, beta0: float = 2.0,
          beta_max: float = 50.0) -> torch.Tensor:
    """Forward quantizer ``kind`` (one of :data:`FORWARD`) of latent rows ``w`` on ``grid`` at ``rho``."""
    if kind == "hard" or rho == 0:
        return round_to_grid(w, grid)
    if kind == "parq":
        upper_index = torch.searchsorted(grid.contiguous(), w.contiguous()).clamp(max=grid.shape[1] - 1)
        lower = grid.gather(1, (upper_index - 1).clamp(min=0))
        upper = grid.gather(1, upper_index)
        centre = (lower + upper) / 2
        return torch.minimum(torch.maximum(centre + (w - centre) / rho, lower), upper)
    if kind == "relax":
        return rho * w + (1 - rho) * round_to_grid(w, grid)
    if kind == "sign_swish":
        return sign_swish_staircase(w, grid, sign_swish_beta(rho, beta0, beta_max))
    raise ValueError(f"unknown forward quantizer {kind!r}; choose one of {', '.join(FORWARD)}")
