"""A learned simulator: a particle-image diffusion model conditioned on defocus and in-plane angle.

The training images are made by recon's own simulation, the functions that
``cryodiff simulate`` runs (:func:`recon.simulate.clean_images`: the exact
projection of the synthetic molecule, the CTF of :mod:`recon.ctf` applied in
Fourier space, the stored sign convention ``image = -(CTF * projection) + noise``,
white noise at a signal-to-noise ratio defined as there). Only two things vary
from particle to particle (:class:`SimulationSetup` fixes the rest):

* the **defocus** (Å, positive = underfocus, no astigmatism), uniform in
  ``[defocus_min_A, defocus_max_A]``;
* the **in-plane angle** psi (degrees), uniform in [0, 360): RELION's
  ``rlnAnglePsi`` with ``rlnAngleRot`` and ``rlnAngleTilt`` fixed to the view
  (``view_rot_deg``, ``view_tilt_deg``), so the rotation matrix is
  :func:`recon.io.rotations.relion_euler_to_matrix` of ``(rot, tilt, psi)``.

The defaults are those of ``cryodiff simulate`` (3 Å/px, 300 kV, Cs 2.7 mm,
amplitude contrast 0.1, defocus 1.0-2.5 µm) at box 32 and SNR 10: the CTF of
box-32 images then has 2 (at 1.0 µm) to 5 (at 2.5 µm) zeros below 10 Fourier
pixels (0.104 1/Å), where the molecule's signal still exceeds the noise, and
more up to Nyquist (16 Fourier pixels, 1/6 Å^-1).

The model (:class:`LearnedSimulator`) is a :class:`generative.latent_diffusion.LatentDiffusion`
working on the images themselves, no autoencoder: an image divided by one
global scale (the standard deviation of the training images, so the data have
unit variance, EDM with ``sigma_data = 1``) and rearranged by
``pixel_unshuffle`` into ``[4, D/2, D/2]`` (an exact permutation of the pixels,
so white noise stays white; the network works at half resolution, four times
cheaper). The network is a :class:`generative.blocks.unet.UNet` with
``vector_dim``; the :class:`generative.conditioning.Conditioner` holds

* ``ScalarEmbedder("defocus")``: the defocus in µm times :data:`DEFOCUS_EMBED_SCALE`
  (1.0-2.5 µm becomes 40-100, so the sinusoidal embedding's fastest
  frequencies, 1 rad per unit, turn ~10 times over the range and its slow
  ones vary nearly linearly);
* ``ScalarEmbedder("angle")``: ``ANGLE_EMBED_SCALE * (cos psi, sin psi)``.
  An angle is periodic: psi itself would put 359° and 1° at opposite ends of
  its embedding, and the network would have to learn that they are the same
  image; the point on the circle is continuous and periodic by construction.

Both enter the UNet only through ``cond["vector"]`` (added to the time
embedding). Two fixed coordinate channels (x, y stacked on the input, CoordConv)
were tried as well and changed nothing measurable (one seed, 2000 steps: psi
error 1.2 degrees with and without, CTF-zero error 0.08 px with, 0.09 without),
so they are left out.

The two scalar embedders each drop their embedding with probability
``drop_rate`` during training, so classifier-free guidance can act on them.

Checks (usable on any images, real or generated):

* :func:`check_ctf_zeros`: the radial power spectrum of many images at one
  defocus (whitened by the spectrum of the CTF-free projection,
  :func:`reference_spectrum`), its local minima against the zeros that
  :func:`recon.ctf.compute_ctf` gives for that defocus (:func:`ctf_zeros`), in
  Fourier pixels (divide by ``box * apix`` for 1/Å), and the defocus that best
  explains the spectrum (:func:`fit_defocus`);
* :func:`check_psi`: psi of each image estimated by correlation with the clean
  (CTF-applied) images rotated over a grid of angles (:func:`estimate_psi`),
  the mean absolute circular error against the requested psi (chance: 90°).

Measured by ``benchmarks/learned_simulator.py`` (10000 particles, 2000 steps of
batch 32 in 218 s on one loaded CPU thread, 251k parameters; 256 samples at each
of 1.1, 1.5, 2.0 and 2.4 µm, Heun 18 steps): the first three CTF zeros of the
samples lie 0.15 Fourier px (0.0015 1/Å) from recon.ctf's on average at guidance
1 and 0.14 px at guidance 2 (real simulated images: 0.05 px), the worst at
1.1 µm, whose third zero (11.3 px) sits where the signal is below the noise;
psi is followed to 1.2 degrees at guidance 1 and 0.76 at guidance 2 (real images:
0.14; shuffled requests: 91).
"""

from __future__ import annotations

import math
import warnings
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch.nn import functional as F

from generative.blocks.unet import UNet
from generative.conditioning import Conditioner, ScalarEmbedder
from generative.formulations import EDM
from generative.latent_diffusion import LatentDiffusion
from generative.trainer import Trainer
from recon.ctf import compute_ctf
from recon.files import atomic_target
from recon.fourier import fft_centered
from recon.io.rotations import relion_euler_to_matrix
from recon.simulate import GOOD, ParticleTruth, clean_images, make_molecule, project

#: Defocus fed to the scalar embedder: micrometres times this.
DEFOCUS_EMBED_SCALE = 40.0
#: The in-plane angle fed to the scalar embedder: this times (cos psi, sin psi).
ANGLE_EMBED_SCALE = 16.0
#: Format version of :meth:`LearnedSimulator.save` files.
FILE_VERSION = 1


# --------------------------------------------------------------------------- simulation


@dataclass(frozen=True)
class SimulationSetup:
    """What the training images share: box, optics, view, noise, defocus range.

    Units: ``apix`` Å/px, ``voltage_kv`` kV, ``cs_mm`` mm, defocus Å
    (positive = underfocus), angles degrees. ``snr`` is the variance of the
    noise-free images over the whole box divided by the noise variance, as in
    ``cryodiff simulate`` (``None``: no noise). ``state`` and ``subunit`` fix
    the molecule's conformation (:mod:`recon.simulate`).
    """

    box: int = 32
    apix: float = 3.0
    voltage_kv: float = 300.0
    cs_mm: float = 2.7
    amplitude_contrast: float = 0.1
    defocus_min_A: float = 10000.0
    defocus_max_A: float = 25000.0
    snr: float | None = 10.0
    view_rot_deg: float = 0.0
    view_tilt_deg: float = 90.0
    state: float = 0.5
    subunit: bool = True

    def __post_init__(self):
        if not (isinstance(self.box, int) and self.box >= 16 and self.box % 4 == 0):
            raise ValueError(f"box must be an integer >= 16 divisible by 4, got {self.box!r}")
        for name in ("apix", "voltage_kv", "defocus_min_A", "defocus_max_A"):
            value = getattr(self, name)
            if not (math.isfinite(value) and value > 0):
                raise ValueError(f"{name} must be a positive finite number, got {value!r}")
        if not self.defocus_min_A < self.defocus_max_A:
            raise ValueError(f"defocus_min_A ({self.defocus_min_A}) must be below defocus_max_A ({self.defocus_max_A})")
        if not (math.isfinite(self.cs_mm) and self.cs_mm >= 0):
            raise ValueError(f"cs_mm must be >= 0, got {self.cs_mm!r}")
        if not 0 <= self.amplitude_contrast < 1:
            raise ValueError(f"amplitude_contrast must be in [0, 1), got {self.amplitude_contrast!r}")
        if self.snr is not None and not (math.isfinite(self.snr) and self.snr > 0):
            raise ValueError(f"snr must be positive (or None for no noise), got {self.snr!r}")
        if not 0 <= self.state <= 1:
            raise ValueError(f"state must be in [0, 1], got {self.state!r}")

    @property
    def fourier_pixel(self) -> float:
        """One Fourier pixel in 1/Å: ``1 / (box * apix)``."""
        return 1.0 / (self.box * self.apix)

    def ctf_rows(self, defocus_A: np.ndarray) -> np.ndarray:
        """``[N, 9]`` CTF parameter rows (:mod:`recon.ctf_columns` order), no astigmatism."""
        df = np.asarray(defocus_A, dtype=np.float64)
        n = len(df)
        return np.stack([np.full(n, float(self.box)), np.full(n, self.apix), df, df, np.zeros(n),
                         np.full(n, self.voltage_kv), np.full(n, self.cs_mm),
                         np.full(n, self.amplitude_contrast), np.zeros(n)], 1)

    def rotations(self, psi_deg: np.ndarray) -> np.ndarray:
        """``[N, 3, 3]`` rotation matrices of the view with in-plane angle ``psi_deg`` (RELION psi)."""
        psi = np.asarray(psi_deg, dtype=np.float64)
        return relion_euler_to_matrix(np.full(len(psi), self.view_rot_deg), np.full(len(psi), self.view_tilt_deg), psi)

    def truth(self, defocus_A, psi_deg) -> ParticleTruth:
        """The :class:`recon.simulate.ParticleTruth` of centred particles with these defocus and psi values."""
        df, psi = _check_conditions(defocus_A, psi_deg)
        n = len(df)
        return ParticleTruth(np.full(n, float(self.state)), np.full(n, bool(self.subunit)), self.rotations(psi),
                             np.zeros((n, 2)), self.ctf_rows(df), np.full(n, GOOD, dtype=np.uint8))


def _as_array(values, name: str) -> np.ndarray:
    try:
        array = np.atleast_1d(np.asarray(values, dtype=np.float64))
    except (TypeError, ValueError) as err:
        raise ValueError(f"{name} must be numbers, got {values!r}") from err
    if array.ndim != 1:
        raise ValueError(f"{name} must be a number or a 1-D sequence, got shape {array.shape}")
    if not np.isfinite(array).all():
        raise ValueError(f"{name} must be finite, got {array[~np.isfinite(array)][:3].tolist()}")
    return array


def _check_conditions(defocus_A, psi_deg, n: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Defocus (Å, > 0) and psi (degrees, any finite value, wrapped to [0, 360)) as float64 arrays of
    one common length (``n`` when given; scalars and length-1 arrays are repeated)."""
    df = _as_array(defocus_A, "defocus_A")
    psi = _as_array(psi_deg, "psi_deg")
    if (df <= 0).any():
        raise ValueError(f"defocus_A must be positive (Å, underfocus), got {df[df <= 0][:3].tolist()}")
    lengths = {len(df), len(psi)} - {1}
    if n is not None:
        if not (isinstance(n, (int, np.integer)) and n >= 1):
            raise ValueError(f"n must be a positive integer, got {n!r}")
        lengths |= {int(n)}
    if len(lengths) > 1:
        raise ValueError(f"defocus_A ({len(df)}), psi_deg ({len(psi)}) and n ({n}) do not match")
    size = lengths.pop() if lengths else 1
    return np.broadcast_to(df, size).copy(), np.mod(np.broadcast_to(psi, size), 360.0)


def clean_particles(setup: SimulationSetup, defocus_A, psi_deg) -> torch.Tensor:
    """Noise-free images ``[N, D, D]`` (float64, stored sign convention) from
    :func:`recon.simulate.clean_images`, the function ``cryodiff simulate`` uses."""
    truth = setup.truth(defocus_A, psi_deg)
    return clean_images(make_molecule(), truth, np.arange(len(truth.states)), setup.box)


def noise_std_for(setup: SimulationSetup, seed: int = 0, n: int = 500) -> float:
    """Noise standard deviation giving ``setup.snr`` for ``n`` particles of random defocus and psi
    (0 when ``snr`` is None), as ``cryodiff simulate`` sets it: ``sqrt(var(clean) / snr)``."""
    if setup.snr is None:
        return 0.0
    rng = np.random.default_rng(seed)
    clean = clean_particles(setup, rng.uniform(setup.defocus_min_A, setup.defocus_max_A, n), rng.uniform(0, 360, n))
    return float(math.sqrt(clean.var().item() / setup.snr))


def simulate_particles(setup: SimulationSetup, defocus_A, psi_deg, noise_std: float, seed: int = 0) -> torch.Tensor:
    """Noisy images ``[N, D, D]`` float32: :func:`clean_particles` plus white noise of ``noise_std``."""
    clean = clean_particles(setup, defocus_A, psi_deg)
    rng = np.random.default_rng(seed)
    noise = rng.normal(0.0, noise_std, tuple(clean.shape))
    return (clean + torch.as_tensor(noise)).float()


@dataclass
class TrainingSet:
    """Simulated particles with their truth: ``images`` ``[N, D, D]`` float32 (stored sign
    convention, simulation units), ``defocus_A`` ``[N]``, ``psi_deg`` ``[N]`` (degrees in
    [0, 360)), the ``noise_std`` added, and the :class:`SimulationSetup`."""

    images: torch.Tensor
    defocus_A: np.ndarray
    psi_deg: np.ndarray
    noise_std: float
    setup: SimulationSetup = field(default_factory=SimulationSetup)


def make_training_set(n: int = 10000, setup: SimulationSetup | None = None, seed: int = 0) -> TrainingSet:
    """``n`` particles with defocus uniform in the setup's range (Å) and psi uniform in [0, 360) degrees.

    The noise level is set from these particles' clean images (``var / snr``), as
    ``cryodiff simulate`` sets it from its first chunk."""
    if not (isinstance(n, (int, np.integer)) and n >= 1):
        raise ValueError(f"n must be a positive integer, got {n!r}")
    setup = SimulationSetup() if setup is None else setup
    rng = np.random.default_rng(seed)
    defocus = rng.uniform(setup.defocus_min_A, setup.defocus_max_A, n)
    psi = rng.uniform(0.0, 360.0, n)
    clean = torch.cat([clean_particles(setup, defocus[i:i + 1000], psi[i:i + 1000]) for i in range(0, n, 1000)])
    noise_std = 0.0 if setup.snr is None else float(math.sqrt(clean.var().item() / setup.snr))
    images = clean + torch.as_tensor(rng.normal(0.0, noise_std, tuple(clean.shape))) if noise_std else clean
    return TrainingSet(images.float(), defocus, psi, noise_std, setup)


# --------------------------------------------------------------------------- model


@dataclass(frozen=True)
class ModelConfig:
    """Network, conditioning and training-noise settings.

    ``base``, ``mults``: UNet widths (on the half-resolution grid of ``pixel_unshuffle``);
    ``embed_dim``: sinusoidal width per scalar (3 scalars: defocus, cos psi, sin psi);
    ``drop_rate``: per-embedder probability of dropping the condition in training (guidance);
    ``p_mean``, ``p_std``: EDM's training noise levels, ``ln sigma ~ N(p_mean, p_std^2)``.

    EDM's default ``p_mean = -1.2`` spends two thirds of the steps below sigma 0.5 (data std 1),
    where the noisy image already shows the particle; what the conditions decide (where the
    particle lies, which rings) is settled at higher noise. Runs of 2000 steps (box 32, one seed,
    guidance 1, 64 samples at 1.2 and 2.0 µm): ``p_mean`` -1.2 gave a mean psi error of 28-36
    degrees and the fitted defocus pulled to the middle of the range (11.9, 18.3 kÅ); -0.4 gave
    1.8-2.0 degrees; 0 gave 1.2 degrees and all three CTF zeros within 0.09 px on average;
    0.4 gave 0.9-1.0 degrees but lost the third zero at 1.2 µm (fine rings are learned at low
    noise).
    """

    base: int = 16
    mults: tuple[int, ...] = (1, 2, 2)
    embed_dim: int = 32
    time_embed_dim: int = 128
    drop_rate: float = 0.1
    p_mean: float = 0.0
    p_std: float = 1.2


class LearnedSimulator:
    """A trained conditional diffusion model of particle images; see the module doc.

    ``model`` is the :class:`generative.latent_diffusion.LatentDiffusion` (weights of the EMA when made
    by :func:`train_learned_simulator`); ``scale`` the global standard deviation that images are
    divided by; ``noise_std`` the noise of the training images (simulation units).
    """

    def __init__(self, setup: SimulationSetup, config: ModelConfig | None = None, scale: float = 1.0,
                 noise_std: float = 0.0):
        self.setup = setup
        self.config = ModelConfig() if config is None else config
        self.scale, self.noise_std = float(scale), float(noise_std)
        c = self.config
        embedders = [ScalarEmbedder("defocus", c.embed_dim, c.drop_rate), ScalarEmbedder("angle", c.embed_dim, c.drop_rate)]
        network = UNet(4, 4, base=c.base, mults=tuple(c.mults), time_embed_dim=c.time_embed_dim,
                       vector_dim=3 * c.embed_dim)
        self.model = LatentDiffusion(network, Conditioner(embedders), EDM(sigma_data=1.0, p_mean=c.p_mean, p_std=c.p_std))

    # conversions between images and the model's space
    def to_model(self, images: torch.Tensor) -> torch.Tensor:
        """``[N, D, D]`` images (simulation units) -> ``[N, 4, D/2, D/2]`` (unit variance)."""
        return F.pixel_unshuffle(images.float().unsqueeze(1) / self.scale, 2)

    def from_model(self, x: torch.Tensor) -> torch.Tensor:
        """Inverse of :meth:`to_model`."""
        return F.pixel_shuffle(x, 2).squeeze(1) * self.scale

    def conditions(self, defocus_A: np.ndarray, psi_deg: np.ndarray) -> dict:
        """The conditioner's batch for these (checked) defocus values (Å) and angles (degrees)."""
        psi = torch.as_tensor(np.deg2rad(psi_deg), dtype=torch.float32)
        return {"defocus": torch.as_tensor(defocus_A / 1e4 * DEFOCUS_EMBED_SCALE, dtype=torch.float32)[:, None],
                "angle": ANGLE_EMBED_SCALE * torch.stack([psi.cos(), psi.sin()], 1)}

    def sample(self, defocus_A, psi_deg, n: int | None = None, *, guidance: float = 1.0, solver: str | None = "heun",
               steps: int | None = 18, seed: int = 0, batch_size: int = 256) -> torch.Tensor:
        """Images ``[n, D, D]`` float32 in simulation units and sign convention (as :class:`TrainingSet`).

        ``defocus_A`` (Å, > 0) and ``psi_deg`` (degrees, RELION psi; wrapped to [0, 360)) are numbers or
        sequences of length ``n`` (``n`` defaults to the longer one). ``guidance`` is the classifier-free
        guidance scale on both conditions (1: the plain conditional model); ``solver`` and ``steps``
        as :meth:`generative.latent_diffusion.LatentDiffusion.sample`; noise from ``seed``.
        Defocus outside the training range warns (the model extrapolates)."""
        df, psi = _check_conditions(defocus_A, psi_deg, n)
        if not math.isfinite(guidance):
            raise ValueError(f"guidance must be finite, got {guidance!r}")
        lo, hi = self.setup.defocus_min_A, self.setup.defocus_max_A
        if ((df < lo) | (df > hi)).any():
            warnings.warn(f"defocus outside the training range {lo:g}-{hi:g} Å: the model extrapolates", stacklevel=2)
        generator = torch.Generator().manual_seed(seed)
        half = self.setup.box // 2
        out = []
        for i in range(0, len(df), batch_size):
            batch = self.conditions(df[i:i + batch_size], psi[i:i + batch_size])
            x = self.model.sample(batch, (4, half, half), guidance=guidance, solver=solver, steps=steps,
                                  generator=generator)
            out.append(self.from_model(x))
        return torch.cat(out)

    def state(self) -> dict:
        """Everything :meth:`from_state` needs: plain numbers, strings, tuples and tensors."""
        return {"version": FILE_VERSION, "setup": asdict(self.setup), "config": asdict(self.config),
                "scale": self.scale, "noise_std": self.noise_std, "weights": self.model.state_dict()}

    @classmethod
    def from_state(cls, state: dict) -> LearnedSimulator:
        if state.get("version") != FILE_VERSION:
            raise ValueError(f"not a learned-simulator file of version {FILE_VERSION} (version {state.get('version')!r})")
        config = state["config"]
        sim = cls(SimulationSetup(**state["setup"]), ModelConfig(**{**config, "mults": tuple(config["mults"])}),
                  state["scale"], state["noise_std"])
        sim.model.load_state_dict(state["weights"])
        return sim

    def save(self, path: str | Path, overwrite: bool = False) -> None:
        """Write the simulator (setup, config, scale, weights) to ``path`` (``torch.save``, atomically: a
        temporary file moved into place). An existing file is kept unless ``overwrite``."""
        if Path(path).exists() and not overwrite:
            raise FileExistsError(f"{path} exists; choose another file or pass overwrite=True")
        with atomic_target(path) as tmp:
            torch.save(self.state(), tmp)

    @classmethod
    def load(cls, path: str | Path) -> LearnedSimulator:
        """Read a file written by :meth:`save` (``torch.load(weights_only=True)``: no code runs)."""
        return cls.from_state(torch.load(path, map_location="cpu", weights_only=True))


def train_learned_simulator(data: TrainingSet, steps: int = 1000, *, batch_size: int = 32, lr: float = 2e-3,
                            ema_decay: float = 0.99, config: ModelConfig | None = None, seed: int = 0,
                            progress: bool = False, log_every: int = 50, log_path: str | Path | None = None,
                            simulator: LearnedSimulator | None = None):
    """Train a :class:`LearnedSimulator` on ``data`` with :class:`generative.trainer.Trainer`
    (Adam at ``lr``, gradient clipping 1, EMA ``ema_decay``); batches drawn uniformly with
    replacement from the per-step generator. ``simulator`` continues training an existing one.
    Returns ``(simulator with the EMA weights, log records)``; the records hold the training
    loss averaged over each ``log_every`` steps."""
    if not (isinstance(steps, int) and steps >= 1):
        raise ValueError(f"steps must be a positive integer, got {steps!r}")
    if simulator is None:
        scale = float(data.images.std())
        simulator = LearnedSimulator(data.setup, config, scale, data.noise_std)
    sim = simulator
    x_all = sim.to_model(data.images)
    cond_all = sim.conditions(data.defocus_A, data.psi_deg)

    def batch_fn(step, generator):
        idx = torch.randint(len(x_all), (batch_size,), generator=generator)
        return {"latent": x_all[idx], **{k: v[idx] for k, v in cond_all.items()}}

    def loss_fn(model, batch, generator):
        return model.loss(batch, generator=generator)

    trainer = Trainer(sim.model, loss_fn, batch_fn, lr=lr, ema_decay=ema_decay, seed=seed,
                      log_every=log_every, progress=progress, log_path=log_path)
    records = trainer.fit(steps)
    sim.model.load_state_dict(trainer.ema.state_dict())
    return sim, records


# --------------------------------------------------------------------------- checks


def radial_power_spectrum(images: torch.Tensor, bin_width: float = 0.5) -> tuple[np.ndarray, np.ndarray]:
    """Mean ``|FFT|^2`` over images ``[N, D, D]``, averaged in rings of ``bin_width`` Fourier pixels.

    Returns ``(radii, power)``: ring centres in Fourier pixels (multiply by ``1 / (D apix)`` for 1/Å)
    from 0 to ``D/2``, rings without a lattice point left out."""
    images = torch.as_tensor(images, dtype=torch.float64)
    if images.ndim != 3 or images.shape[-1] != images.shape[-2] or not torch.isfinite(images).all():
        raise ValueError(f"images must be finite [N, D, D], got shape {tuple(images.shape)}")
    box = images.shape[-1]
    power = (fft_centered(images).abs() ** 2).mean(0).flatten()
    k = torch.arange(box, dtype=torch.float64) - box // 2
    r = torch.sqrt(k[None, :] ** 2 + k[:, None] ** 2).flatten()
    bins = torch.round(r / bin_width).long()
    keep = r <= box / 2
    nb = round(box / 2 / bin_width) + 1
    total = torch.zeros(nb, dtype=torch.float64).index_add_(0, bins[keep], power[keep])
    count = torch.zeros(nb, dtype=torch.float64).index_add_(0, bins[keep], torch.ones_like(power[keep]))
    filled = count > 0
    return (torch.arange(nb, dtype=torch.float64)[filled] * bin_width).numpy(), (total[filled] / count[filled]).numpy()


def reference_spectrum(setup: SimulationSetup, bin_width: float = 0.5, angles: int = 36) -> tuple[np.ndarray, np.ndarray]:
    """Radial power spectrum of the CTF-free, noise-free projection of the view (averaged over
    ``angles`` in-plane angles): the molecule's own spectrum, which :func:`check_ctf_zeros` divides by
    so that its dips are not taken for CTF zeros."""
    truth = setup.truth(np.full(angles, setup.defocus_min_A), np.arange(angles) * 360.0 / angles)
    proj = project(make_molecule(), truth.states, truth.subunit, truth.rotations, truth.shifts_px, setup.box)
    return radial_power_spectrum(proj, bin_width)


def ctf_curve(setup: SimulationSetup, defocus_A, radii_px: np.ndarray) -> np.ndarray:
    """The CTF of :func:`recon.ctf.compute_ctf` along a radius: ``[G, M]`` for ``G`` defocus values
    (Å) at ``M`` radii in Fourier pixels (``[M]`` for one defocus given as a number)."""
    s = torch.as_tensor(np.asarray(radii_px, dtype=np.float64) * setup.fourier_pixel)
    freqs = torch.stack([s, torch.zeros_like(s)], 1)  # [M, 2] along +x, in 1/Å
    df = torch.as_tensor(np.atleast_1d(np.asarray(defocus_A, dtype=np.float64)))

    def same(value):
        return torch.full_like(df, float(value))

    ctf = compute_ctf(freqs, df, df, same(0.0), same(setup.voltage_kv), same(setup.cs_mm),
                      same(setup.amplitude_contrast)).numpy()
    return ctf[0] if np.ndim(defocus_A) == 0 else ctf


def ctf_zeros(setup: SimulationSetup, defocus_A: float, count: int = 3) -> np.ndarray:
    """The first ``count`` zeros of the CTF (radii in Fourier pixels) below Nyquist, located as sign
    changes of :func:`recon.ctf.compute_ctf` on a grid of 1/1000 Fourier pixel, linearly interpolated."""
    df = _check_conditions(defocus_A, 0.0)[0]
    if len(df) != 1:
        raise ValueError("ctf_zeros takes one defocus")
    r = np.linspace(0.0, setup.box / 2, setup.box * 500 + 1)
    c = ctf_curve(setup, df[0], r)
    i = np.nonzero(np.sign(c[1:]) != np.sign(c[:-1]))[0]
    zeros = r[i] - c[i] * (r[i + 1] - r[i]) / (c[i + 1] - c[i])
    return zeros[:count]


def spectrum_minima(radii: np.ndarray, power: np.ndarray) -> np.ndarray:
    """Local minima of a radial spectrum (radii in Fourier pixels), each refined by the vertex of
    the parabola through the minimum bin and its neighbours (in log power)."""
    y = np.log(np.maximum(np.asarray(power, dtype=np.float64), 1e-300))
    r = np.asarray(radii, dtype=np.float64)
    out = []
    for i in range(1, len(y) - 1):
        if y[i] < y[i - 1] and y[i] <= y[i + 1]:
            (x0, x1, x2), (y0, y1, y2) = r[i - 1:i + 2], y[i - 1:i + 2]
            denom = (x0 - x1) * (x0 - x2) * (x1 - x2)
            a = (x2 * (y1 - y0) + x1 * (y0 - y2) + x0 * (y2 - y1)) / denom
            b = (x2 ** 2 * (y0 - y1) + x1 ** 2 * (y2 - y0) + x0 ** 2 * (y1 - y2)) / denom
            out.append(float(np.clip(-b / (2 * a), x0, x2)) if a > 0 else float(x1))
    return np.array(out)


def whitened_spectrum(images: torch.Tensor, setup: SimulationSetup, background=None,
                      bin_width: float = 0.5) -> tuple[np.ndarray, np.ndarray]:
    """Radial power spectrum of ``images`` divided by ``background`` ``(radii, power)`` (default
    :func:`reference_spectrum` of ``setup``); rings from 1 Fourier pixel to Nyquist."""
    radii, power = radial_power_spectrum(images, bin_width)
    b_radii, b_power = reference_spectrum(setup, bin_width) if background is None else background
    b = np.interp(radii, b_radii, b_power)
    keep = (radii >= 1.0) & (b > 0)
    return radii[keep], power[keep] / b[keep]


def fit_defocus(images: torch.Tensor, setup: SimulationSetup, background=None, grid_A: np.ndarray | None = None,
                max_radius_px: float | None = None) -> float:
    """The defocus (Å) whose ``CTF^2`` correlates best (Pearson, over rings from 2 Fourier pixels to
    ``max_radius_px``, default 3/4 of Nyquist) with the whitened log spectrum of ``images``.
    ``grid_A`` defaults to 0.5-4 µm in steps of 10 Å."""
    radii, w = whitened_spectrum(images, setup, background)
    hi = 0.375 * setup.box if max_radius_px is None else max_radius_px
    keep = (radii >= 2.0) & (radii <= hi)
    radii, w = radii[keep], np.log(w[keep])
    w = (w - w.mean()) / (w.std() + 1e-12)
    grid = np.arange(5000.0, 40000.0, 10.0) if grid_A is None else np.asarray(grid_A, dtype=np.float64)
    ctf2 = ctf_curve(setup, grid, radii) ** 2  # [G, M]
    ctf2 = (ctf2 - ctf2.mean(1, keepdims=True)) / (ctf2.std(1, keepdims=True) + 1e-12)
    return float(grid[np.argmax(ctf2 @ w)])


def check_ctf_zeros(images: torch.Tensor, defocus_A: float, setup: SimulationSetup, count: int = 3,
                    background=None, fit: bool = True) -> dict:
    """Compare the local minima of the whitened radial power spectrum of ``images`` (all made at
    ``defocus_A`` Å) with the first ``count`` CTF zeros of :func:`ctf_zeros`.

    Each predicted zero is paired with the nearest minimum within half the distance to its
    neighbouring zeros (the first zero's lower neighbour is the origin); a zero without one is
    *missed* and its error counts as that half distance. Returns a dict: ``zeros_px``,
    ``minima_px`` (paired minima, NaN where missed), ``errors_px``, ``mean_abs_error_px``,
    ``mean_abs_error_inv_A`` (1/Å), ``missed``, ``fourier_pixel_inv_A``, and with ``fit`` the
    ``fitted_defocus_A`` of :func:`fit_defocus` and its error ``defocus_error_A``."""
    df = _check_conditions(defocus_A, 0.0)[0]
    if len(df) != 1:
        raise ValueError(f"check_ctf_zeros takes one defocus (the images' common defocus), got {len(df)}")
    df = float(df[0])
    radii, w = whitened_spectrum(images, setup, background)
    minima = spectrum_minima(radii, w)
    zeros = ctf_zeros(setup, df, count + 1)
    paired, errors = [], []
    for k in range(min(count, len(zeros))):
        lower = zeros[k - 1] if k else 0.0
        upper = zeros[k + 1] if k + 1 < len(zeros) else setup.box / 2
        window = 0.5 * min(zeros[k] - lower, upper - zeros[k])
        near = minima[np.abs(minima - zeros[k]) <= window] if len(minima) else minima
        if len(near):
            best = near[np.argmin(np.abs(near - zeros[k]))]
            paired.append(float(best))
            errors.append(abs(float(best) - zeros[k]))
        else:
            paired.append(float("nan"))
            errors.append(window)
    errors = np.array(errors)
    result = {"defocus_A": df, "zeros_px": zeros[:count].round(4).tolist(), "minima_px": np.round(paired, 4).tolist(),
              "errors_px": errors.round(4).tolist(), "mean_abs_error_px": float(errors.mean()),
              "mean_abs_error_inv_A": float(errors.mean() * setup.fourier_pixel),
              "missed": int(np.isnan(paired).sum()), "fourier_pixel_inv_A": setup.fourier_pixel}
    if fit:
        fitted = fit_defocus(images, setup, background)
        result.update(fitted_defocus_A=fitted, defocus_error_A=fitted - df)
    return result


def circular_error_deg(a, b) -> np.ndarray:
    """Absolute difference of angles in degrees on the circle, in [0, 180]."""
    d = np.mod(np.asarray(a, dtype=np.float64) - np.asarray(b, dtype=np.float64), 360.0)
    return np.minimum(d, 360.0 - d)


def estimate_psi(images: torch.Tensor, defocus_A, setup: SimulationSetup, step_deg: float = 2.0) -> np.ndarray:
    """In-plane angle (degrees, [0, 360)) of each image ``[N, D, D]``: the psi of the best-correlated
    (Pearson) clean, CTF-applied image of the view (:func:`clean_particles` at that image's defocus,
    ``defocus_A`` a number or ``[N]``) over a grid of ``step_deg``, refined by a parabola through
    the best grid angle and its neighbours."""
    images = torch.as_tensor(images, dtype=torch.float64)
    if images.ndim != 3 or not torch.isfinite(images).all():
        raise ValueError(f"images must be finite [N, D, D], got shape {tuple(images.shape)}")
    df, _ = _check_conditions(defocus_A, 0.0, len(images))
    grid = np.arange(0.0, 360.0, step_deg)
    out = np.empty(len(images))

    def normalise(x):
        x = x.flatten(1)
        x = x - x.mean(1, keepdim=True)
        return x / x.norm(dim=1, keepdim=True).clamp_min(1e-12)

    for value in np.unique(df):
        rows = np.nonzero(df == value)[0]
        refs = normalise(clean_particles(setup, np.full(len(grid), value), grid))
        corr = normalise(images[rows]) @ refs.T  # [n, G]
        best = corr.argmax(1).numpy()
        g = len(grid)
        y0, y1, y2 = (corr[np.arange(len(rows)), (best + d) % g].numpy() for d in (-1, 0, 1))
        denom = y0 - 2 * y1 + y2
        offset = np.where(denom < 0, 0.5 * (y0 - y2) / np.where(denom < 0, denom, -1.0), 0.0)
        out[rows] = np.mod(grid[best] + np.clip(offset, -1, 1) * step_deg, 360.0)
    return out


def check_psi(images: torch.Tensor, defocus_A, psi_deg, setup: SimulationSetup, step_deg: float = 2.0) -> dict:
    """Estimated psi (:func:`estimate_psi`) of ``images`` against the requested ``psi_deg``: mean and
    median absolute circular error (degrees), the fraction within 10 degrees, and ``chance_deg`` (90:
    the mean error of a uniformly random guess)."""
    df, psi = _check_conditions(defocus_A, psi_deg, len(images))
    err = circular_error_deg(estimate_psi(images, df, setup, step_deg), psi)
    return {"mean_abs_error_deg": float(err.mean()), "median_abs_error_deg": float(np.median(err)),
            "within_10_deg": float((err <= 10).mean()), "chance_deg": 90.0, "n": len(err)}
