"""The heterogeneous VAE: an image encoder and a Fourier-space positional
decoder of the 3-D density, cryoDRGN's architecture.

Units and conventions
---------------------
* Images enter as centred Hartley transforms on the symmetrised ``(D+1)²``
  lattice (:mod:`recon.preprocess`), divided by one global standard deviation.
  Only the disc of radius ``D/2`` (Nyquist) without the DC term, flattened in
  row-major ``[y, x]`` order, is used: ``M`` values per image (cryoDRGN's
  mask). That ordering is centrosymmetric (entry ``i`` sits at ``-k`` of
  entry ``M-1-i``), which the decoder uses to evaluate only half of each slice.
* Frequencies are ``(kx, ky, kz)`` in cycles/pixel; the central slice of a
  particle with rotation ``R`` (cryoDRGN convention) is at ``k @ R`` for the
  in-plane row vectors ``k = (kx, ky, 0)``.
* The decoder maps ``(k, z)`` to ``(Re, Im)`` of the volume's centred 3-D
  Fourier transform and is evaluated only on the half space ``kz <= 0``; the
  other half follows from Hermitian symmetry ``F(-k) = conj F(k)``, so the
  density it describes is real. Hartley values are ``Re - Im``.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import numpy as np
import torch
from torch import nn

from recon.fourier import ihartley_centered, lattice_coords, training_mask
from recon.networks import ResidLinearMLP
from recon.positional import PositionalEncoding


#: The sizes a network may have (inclusive): far beyond any real use (cryoDRGN's largest published
#: models are box 256-320, zdim <= 10, width 1024), small enough to refuse a typo such as
#: ``--zdim 1000000000`` before it asks for gigabytes.
ARCHITECTURE_LIMITS = {
    "box": (8, 1024),
    "zdim": (1, 1024),
    "enc_dim": (1, 16384),
    "enc_layers": (1, 64),
    "dec_dim": (1, 16384),
    "dec_layers": (1, 64),
    "pe_dim": (1, 4096),
}
#: Decoder domains: "fourier" (cryoDRGN's default and cryodiff's) or "hartley" (cryoDRGN's older models).
DOMAINS = ("fourier", "hartley")
#: At most this many weights (1 GB in float32; the box-256, width-1024 model has about 7e7).
MAX_PARAMETERS = 250_000_000


@dataclass
class Architecture:
    """Network sizes (cryoDRGN option names in brackets)."""

    box: int  # D, image size in pixels
    zdim: int  # [--zdim] latent dimension
    enc_dim: int = 1024  # [--enc-dim] encoder hidden width
    enc_layers: int = 3  # [--enc-layers] encoder residual hidden layers
    dec_dim: int = 1024  # [--dec-dim] decoder hidden width
    dec_layers: int = 3  # [--dec-layers] decoder residual hidden layers
    pe_type: str = "gaussian"  # [--pe-type]
    pe_dim: int | None = None  # [--pe-dim] default D/2
    feat_sigma: float = 0.5  # [--feat-sigma] scale of gaussian frequencies
    domain: str = "fourier"  # [--domain] decoder output: (Re, Im) on half the space, or the Hartley value everywhere

    def __post_init__(self):
        if self.pe_dim is None:
            self.pe_dim = self.box // 2 if isinstance(self.box, int) else None
        for name, (low, high) in ARCHITECTURE_LIMITS.items():
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
                raise ValueError(f"{name} = {value!r} is not a whole number from {low} to {high}")
        if self.box % 2:
            raise ValueError(f"box = {self.box} is not even")
        if self.domain not in DOMAINS:
            raise ValueError(f"domain = {self.domain!r} is not one of {', '.join(DOMAINS)}")
        if not (isinstance(self.feat_sigma, (int, float)) and math.isfinite(self.feat_sigma) and self.feat_sigma > 0):
            raise ValueError(f"feat_sigma = {self.feat_sigma!r} is not a finite number above 0")
        if self.parameter_bound() > MAX_PARAMETERS:
            raise ValueError(f"the network would have about {self.parameter_bound():.2g} parameters, more than {MAX_PARAMETERS:.2g} "
                             "(fewer or narrower layers)")

    def parameter_bound(self) -> int:
        """An upper bound on the number of weights (encoder on the full D x D image)."""
        enc = self.box**2 * self.enc_dim + self.enc_layers * self.enc_dim**2 + self.enc_dim * 2 * self.zdim
        dec = (6 * self.pe_dim + self.zdim) * self.dec_dim + self.dec_layers * self.dec_dim**2 + 2 * self.dec_dim
        return enc + dec

    def to_dict(self) -> dict:
        return asdict(self)


class FourierDecoder(nn.Module):
    """``(k [..., 3], z [B, zdim]) -> (Re, Im) [..., 2]`` of the 3-D transform."""

    def __init__(self, arch: Architecture):
        super().__init__()
        self.encoding = PositionalEncoding(arch.pe_type, arch.pe_dim, arch.box, arch.feat_sigma)
        self.mlp = ResidLinearMLP(self.encoding.out_dim + arch.zdim, arch.dec_layers, arch.dec_dim, 2)

    def forward(self, coords: torch.Tensor, z: torch.Tensor | None) -> torch.Tensor:
        """``coords`` ``[B, P, 3]`` (or ``[P, 3]`` with ``z`` of one row)."""
        flip = coords[..., 2] > 0  # evaluate kz > 0 at -k and conjugate
        coords = torch.where(flip.unsqueeze(-1), -coords, coords)
        squeeze = coords.ndim == 2
        if squeeze:
            coords = coords.unsqueeze(0)
        out = self.mlp(self.encoding(coords), z)
        if squeeze:
            out = out[0]
        return torch.stack([out[..., 0], torch.where(flip, -out[..., 1], out[..., 1])], dim=-1)


class HartleyDecoder(nn.Module):
    """``(k [..., 3], z [B, zdim]) -> H [..., 1]``: the Hartley value of the volume's transform at
    ``k``, evaluated everywhere (no Hermitian symmetry), as cryoDRGN's ``--domain hartley``."""

    def __init__(self, arch: Architecture):
        super().__init__()
        self.encoding = PositionalEncoding(arch.pe_type, arch.pe_dim, arch.box, arch.feat_sigma)
        self.mlp = ResidLinearMLP(self.encoding.out_dim + arch.zdim, arch.dec_layers, arch.dec_dim, 1)

    def forward(self, coords: torch.Tensor, z: torch.Tensor | None) -> torch.Tensor:
        squeeze = coords.ndim == 2
        out = self.mlp(self.encoding(coords.unsqueeze(0) if squeeze else coords), z)
        return out[0] if squeeze else out


class HetVAE(nn.Module):
    """Encoder + decoder with the lattice they share.

    ``encode(h)`` takes ``[B, M]`` masked Hartley images (phase-flipped by the
    sign of their CTF) and returns ``(mu, logvar)`` ``[B, zdim]``;
    ``decode_slices(rotations, z)`` returns the ``[B, M]`` Hartley values of the
    central slices, before the CTF.
    """

    def __init__(self, arch: Architecture):
        super().__init__()
        self.arch = arch
        mask = training_mask(arch.box)
        self.register_buffer("mask", mask, persistent=False)
        self.register_buffer("coords", lattice_coords(arch.box)[mask], persistent=False)  # [M, 3]
        n = int(mask.sum())
        self.encoder = ResidLinearMLP(n, arch.enc_layers, arch.enc_dim, 2 * arch.zdim)
        self.decoder = FourierDecoder(arch) if arch.domain == "fourier" else HartleyDecoder(arch)

    @property
    def n_pixels(self) -> int:
        """``M``: lattice points in the training mask (Nyquist disc without DC)."""
        return self.coords.shape[0]

    def encode(self, hartley: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        out = self.encoder(hartley)
        return out[:, : self.arch.zdim], out[:, self.arch.zdim :]

    def decode_slices(self, rotations: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        if self.arch.domain == "hartley":
            return self.decoder(self.coords @ rotations, z)[..., 0]
        n = self.n_pixels
        evaluated = (n + 1) // 2  # the first half of the centrosymmetric list
        coords = self.coords[:evaluated] @ rotations  # [B, evaluated, 3]
        f = self.decoder(coords, z)
        top = f[..., 0] - f[..., 1]
        bottom = (f[..., 0] + f[..., 1])[:, : n - evaluated].flip(-1)  # H(-k) = Re + Im
        return torch.cat([top, bottom], dim=-1)

    @torch.no_grad()
    def volume(self, z: torch.Tensor | np.ndarray | None, box: int | None = None, chunk: int = 65536) -> np.ndarray:
        """The density ``[z, y, x]`` at latent ``z`` ``[zdim]``, float32.

        ``box`` (default: the training box ``D``) evaluates on a smaller grid:
        frequencies up to the new Nyquist only, pixel size ``apix * D / box``.
        Values are in the normalised units of the training data (multiply by
        the normalisation std for the data's units); voxel values keep their
        scale for any ``box``.
        """
        full = self.arch.box
        box = full if box is None else box
        if box % 2 or box > full:
            raise ValueError(f"box must be even and at most {full}, got {box}")
        extent = 0.5 * box / full
        k = torch.linspace(-extent, extent, box + 1, device=self.coords.device)
        gz, gy, gx = torch.meshgrid(k, k, k, indexing="ij")
        coords = torch.stack([gx, gy, gz], -1).reshape(-1, 3)  # centrosymmetric order
        zrow = None if z is None else torch.as_tensor(np.asarray(z), dtype=torch.float32, device=coords.device).reshape(1, -1)
        if self.arch.domain == "hartley":  # every lattice point, as cryoDRGN evaluates a Hartley decoder
            hartley = torch.cat([self.decoder(coords[s : s + chunk], zrow)[..., 0] for s in range(0, len(coords), chunk)])
            return self._density(hartley, box)
        n = coords.shape[0]
        half = n // 2
        inside = coords[: half + 1].norm(dim=-1) <= extent
        points = coords[: half + 1][inside]
        values = torch.zeros(half + 1, 2, device=points.device)
        inside_values = torch.cat([self.decoder(points[s : s + chunk], zrow) for s in range(0, len(points), chunk)])
        values[inside] = inside_values
        hartley = torch.cat([values[:, 0] - values[:, 1], (values[:half, 0] + values[:half, 1]).flip(0)])
        return self._density(hartley, box)

    def _density(self, hartley: torch.Tensor, box: int) -> np.ndarray:
        """``[z, y, x]`` density from Hartley values on the ``(box+1)³`` lattice (flattened)."""
        hartley = hartley.reshape(box + 1, box + 1, box + 1)[:-1, :-1, :-1]
        vol = ihartley_centered(hartley.double().cpu(), 3) * (box / self.arch.box) ** 3
        return vol.float().numpy()


def kl_per_particle(mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """KL(N(mu, exp(logvar)) || N(0, I)) of each row: ``[B]`` from ``[B, zdim]``."""
    return -0.5 * (1 + logvar - mu.pow(2) - logvar.exp()).sum(dim=1)


def kl_divergence(mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """Mean over the batch of KL(N(mu, exp(logvar)) || N(0, I))."""
    return kl_per_particle(mu, logvar).mean()
