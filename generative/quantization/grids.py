"""Quantization grids: the values a weight may take once quantized, and rounding onto them.

Weights are quantized by rows: a weight tensor is viewed as ``[rows, -1]`` with
``rows = weight.shape[0]`` (the output channels of ``nn.Linear`` and ``nn.Conv*``)
when ``per_channel`` is true, or as one row otherwise. Every row gets its own
grid of ``L`` increasing levels, computed from that row's full-precision weights
``w``:

- ``binary``: ``{-a, +a}`` with ``a = mean|w|``, the scale that minimises
  ``||w - a sign(w)||^2`` (XNOR-Net's closed form).
- ``ternary``: ``{-a, 0, +a}`` with ``a`` the mean of ``|w|`` over the weights with
  ``|w| > 0.7 mean|w|`` (the ternary-weight-network approximation of the optimal
  scale); rounding to the nearest level puts the zero threshold at ``a / 2``.
- ``uniform<k>`` (``uniform2`` ... ``uniform8``): ``2**k`` evenly spaced levels
  ``(j + 1/2) s`` for ``j = -2**(k-1) ... 2**(k-1) - 1``, with the range
  ``r = min(k mean|w|, max|w|)`` and ``s = r / (2**(k-1) - 1/2)``. This is the
  grid of torchao PARQ's ``UnifQuantizer``, so ``binary`` equals ``uniform1``.

Grids are tensors ``[rows, L]`` in the weights' dtype; codes (indices into a
row's grid) are what :mod:`generative.quantization.packing` stores.
"""

import torch

SCHEMES = ("binary", "ternary", *(f"uniform{k}" for k in range(1, 9)))


def check_scheme(scheme: str) -> str:
    """``scheme`` itself, or a ``ValueError`` naming the known ones."""
    if scheme not in SCHEMES:
        raise ValueError(f"unknown quantization grid {scheme!r}; choose one of {', '.join(SCHEMES)}")
    return scheme


def bits(scheme: str) -> int:
    """Bits one stored code needs: 1 (binary), 2 (ternary), k (``uniform<k>``)."""
    check_scheme(scheme)
    return {"binary": 1, "ternary": 2}.get(scheme) or int(scheme.removeprefix("uniform"))


def rows(weight: torch.Tensor, per_channel: bool = True) -> torch.Tensor:
    """``weight`` viewed as ``[rows, -1]`` (one row per output channel, or a single row)."""
    if per_channel and weight.dim() > 1:
        return weight.reshape(weight.shape[0], -1)
    return weight.reshape(1, -1)


@torch.no_grad()
def levels(weight_rows: torch.Tensor, scheme: str) -> torch.Tensor:
    """The grid ``[rows, L]`` of each row of ``weight_rows [rows, n]`` (increasing levels)."""
    check_scheme(scheme)
    size = weight_rows.abs()
    tiny = torch.finfo(weight_rows.dtype).tiny
    if scheme == "binary":
        a = size.mean(1, keepdim=True).clamp(min=tiny)
        return torch.cat([-a, a], dim=1)
    if scheme == "ternary":
        big = size > 0.7 * size.mean(1, keepdim=True)
        a = ((size * big).sum(1, keepdim=True) / big.sum(1, keepdim=True).clamp(min=1)).clamp(min=tiny)
        return torch.cat([-a, torch.zeros_like(a), a], dim=1)
    k = bits(scheme)
    span = torch.minimum(k * size.mean(1, keepdim=True), size.amax(1, keepdim=True)).clamp(min=tiny)
    step = span / (2 ** (k - 1) - 0.5)
    j = torch.arange(-2 ** (k - 1), 2 ** (k - 1), dtype=weight_rows.dtype, device=weight_rows.device) + 0.5
    return j * step


def nearest(weight_rows: torch.Tensor, grid: torch.Tensor) -> torch.Tensor:
    """Code (index into its row's ``grid [rows, L]``) of the level nearest each weight; ``[rows, n]``
    int64. A weight exactly half-way between two levels takes the lower one."""
    midpoints = (grid[:, :-1] + grid[:, 1:]) / 2
    if midpoints.shape[1] <= 16:  # counting the midpoints below each weight beats a batched binary search
        code = torch.zeros(weight_rows.shape, dtype=torch.int64, device=weight_rows.device)
        for j in range(midpoints.shape[1]):
            code += weight_rows > midpoints[:, j:j + 1]
        return code
    return torch.searchsorted(midpoints.contiguous(), weight_rows.contiguous())


def round_to_grid(weight_rows: torch.Tensor, grid: torch.Tensor) -> torch.Tensor:
    """Each weight replaced by the nearest level of its row's grid; ``[rows, n]``."""
    return grid.gather(1, nearest(weight_rows, grid))
