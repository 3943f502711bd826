"""Export of a quantization-aware-trained model: codes packed a few bits per weight.

:func:`pack` turns the model's state dict into ``{"quantized": {name: entry}, "full_precision":
{name: tensor}}`` where each quantized weight's ``entry`` holds ``codes`` (uint8 bytes, ``bits``
bits per weight, little-endian within a byte), its ``grid [rows, L]`` (float32, one row of levels
per output channel or one for the tensor), its ``shape`` and ``per_channel``. Everything is a
tensor, number or list, so :func:`load` reads it back with ``torch.load(weights_only=True)``.
:func:`unpack` gives the state dict back, exactly (the quantized weights are grid levels).
"""

import os
import tempfile

import torch

from .grids import bits as scheme_bits


def pack_bits(codes: torch.Tensor, bits: int) -> torch.Tensor:
    """Flattened ``codes`` (integers in ``[0, 2**bits)``) as uint8 bytes, ``bits`` bits per code."""
    flat = codes.reshape(-1).to(torch.int64)
    if flat.numel() and int(flat.max()) >= 2 ** bits:
        raise ValueError(f"a code does not fit in {bits} bits")
    shifts = torch.arange(bits, device=flat.device)
    stream = ((flat[:, None] >> shifts) & 1).reshape(-1)
    stream = torch.cat([stream, stream.new_zeros(-stream.numel() % 8)])
    return (stream.reshape(-1, 8) << torch.arange(8, device=flat.device)).sum(1).to(torch.uint8)


def unpack_bits(packed: torch.Tensor, bits: int, count: int) -> torch.Tensor:
    """The first ``count`` codes (int64) stored by :func:`pack_bits`."""
    stream = ((packed.to(torch.int64)[:, None] >> torch.arange(8, device=packed.device)) & 1).reshape(-1)
    stream = stream[:count * bits].reshape(count, bits)
    return (stream << torch.arange(bits, device=packed.device)).sum(1)


def pack(model: torch.nn.Module, optimizer) -> dict:
    """The model's state with the optimiser's quantized weights as packed codes (a ``ValueError``
    if annealing has not finished, i.e. a weight is off its grid)."""
    names = {id(p): name for name, p in model.named_parameters()}
    quantized = {}
    b = scheme_bits(optimizer.grid)
    for i, p in enumerate(optimizer.weights):
        codes = optimizer.codes(i)
        quantized[names[id(p)]] = {"codes": pack_bits(codes, b).cpu(), "bits": b,
                                   "grid": optimizer.grids[i].detach().float().cpu(),
                                   "shape": list(p.shape), "per_channel": optimizer.per_channel}
    rest = {k: v.detach().cpu().clone() for k, v in model.state_dict().items() if k not in quantized}
    return {"scheme": optimizer.grid, "quantized": quantized, "full_precision": rest}


def unpack(packed: dict) -> dict:
    """The state dict :func:`pack` was made from (quantized weights as float32 grid levels)."""
    state = dict(packed["full_precision"])
    for name, entry in packed["quantized"].items():
        count = 1
        for n in entry["shape"]:
            count *= n
        grid = entry["grid"]
        codes = unpack_bits(entry["codes"], entry["bits"], count).reshape(grid.shape[0], -1)
        state[name] = grid.gather(1, codes).reshape(entry["shape"])
    return state


def size_report(packed: dict) -> dict:
    """Bytes of the quantized weights as float32 vs packed (codes + grids), and of the whole model."""
    fp32 = sum(4 * torch.Size(e["shape"]).numel() for e in packed["quantized"].values())
    small = sum(e["codes"].numel() + 4 * e["grid"].numel() for e in packed["quantized"].values())
    rest = sum(t.numel() * t.element_size() for t in packed["full_precision"].values())
    return {"quantized_float32_bytes": fp32, "quantized_packed_bytes": small,
            "quantized_ratio": fp32 / small if small else None,
            "model_float32_bytes": fp32 + rest, "model_packed_bytes": small + rest,
            "model_ratio": (fp32 + rest) / (small + rest) if small + rest else None}


def save(packed: dict, path) -> None:
    """Write :func:`pack`'s output atomically; an existing file is an error (never overwritten)."""
    path = os.fspath(path)
    if os.path.exists(path):
        raise FileExistsError(f"{path} exists; choose a new file name for the quantized model")
    folder = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(dir=folder, prefix=".quantized-", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            torch.save(packed, f)
        os.link(tmp, path)  # fails rather than replace a file created meanwhile
    finally:
        os.unlink(tmp)


def load(path) -> dict:
    """Read a file written by :func:`save` (``weights_only=True``: no code is unpickled)."""
    return torch.load(path, map_location="cpu", weights_only=True)
