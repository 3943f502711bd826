"""Backward quantizers of ProxConnect++: what multiplies the gradient on its way from the
quantized weights the network used back to the latent full-precision weights.

ProxConnect++ updates latent weights ``w`` with ``w <- w - lr * B'(w) * dL/dq`` where
``q = F(w)`` are the forward-quantized weights (:mod:`generative.quantization.forward`)
and ``B`` is the backward quantizer. Each function here returns ``B'(w)`` for latent rows
``w [rows, n]`` with their grid ``[rows, L]``, or ``None`` for the identity:

- ``identity``: ``B(w) = w`` (BinaryConnect's straight-through gradient; ProxConnect, PARQ).
- ``clipped``: ``B(w) = clamp(w, -r, r)`` with ``r`` the row's outermost level, so the
  gradient passes where ``|w| <= r`` (BNN's hard-tanh).
- ``sign_swish``: ``B(w) = a SS_beta(w / a)`` on a binary grid ``{-a, a}``, whose derivative
  is ``SS'_beta(w / a) = beta (2 - u tanh(u / 2)) / (1 + cosh u)`` with ``u = beta w / a``
  (BNN+; BNN++ uses the same function forward). The scale ``a`` is held constant. On a grid
  of more levels, ``B`` is the SignSwish staircase of the forward module and
  ``B'(w) = sum_k SS'_beta((w - c_k) / h_k)`` over its gaps (midpoints ``c_k``, half-gaps ``h_k``).
"""

import torch

BACKWARD = ("identity", "clipped", "sign_swish")


def sign_swish_derivative(x: torch.Tensor, beta: float) -> torch.Tensor:
    """``d SS_beta(x) / dx``, written with the sigmoid (finite for any ``beta x``)."""
    s = torch.sigmoid(beta * x)
    return 2 * beta * s * (1 - s) * (2 + beta * x * (1 - 2 * s))


def derivative(kind: str, w: torch.Tensor, grid: torch.Tensor, beta: float) -> torch.Tensor | None:
    """``B'(w)`` of backward quantizer ``kind`` (one of :data:`BACKWARD`), ``None`` for the identity."""
    if kind == "identity":
        return None
    if kind == "clipped":
        return (w.abs() <= grid.abs().amax(1, keepdim=True)).to(w.dtype)
    if kind == "sign_swish":
        half = (grid[:, 1:] - grid[:, :-1])[:, None, :] / 2  # [rows, 1, L-1]
        centre = (grid[:, 1:] + grid[:, :-1])[:, None, :] / 2
        return sign_swish_derivative((w[:, :, None] - centre) / half, beta).sum(-1)
    raise ValueError(f"unknown backward quantizer {kind!r}; choose one of {', '.join(BACKWARD)}")
