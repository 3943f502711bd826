"""Quantization-aware training with ProxConnect++ (see docs/quantization.md).

- :mod:`.grids`: the levels a weight may take (binary, ternary, k-bit uniform) per output channel;
- :mod:`.forward`: forward quantizers (proximal maps) and their :class:`Annealing`;
- :mod:`.backward`: backward quantizers (what multiplies the gradient);
- :mod:`.proxconnect`: the optimiser wrapper :class:`ProxConnect` and the named methods;
- :mod:`.packing`: export of the trained weights a few bits each.
"""

from .forward import Annealing
from .grids import SCHEMES, bits, levels, nearest, round_to_grid, rows
from .packing import load, pack, save, size_report, unpack
from .proxconnect import METHODS, ProxConnect, QuantizationLog, quantizable

__all__ = ["Annealing", "METHODS", "ProxConnect", "QuantizationLog", "SCHEMES", "bits", "levels", "load",
           "nearest", "pack", "quantizable", "round_to_grid", "rows", "save", "size_report", "unpack"]
