"""State populations from the particle images: each state's maximum-likelihood share of the images.

Counting the particles in each basin of the latent density (:mod:`cryodiff.states`) is
biased where states sit close together: a particle's latent is noisy, and the part of a
state whose latents cross a basin boundary is counted in the neighbour (a small state
between two large ones loses the most). The images themselves hold more than the latents:
each particle can be compared with every state's volume directly, as a 3-D classification
with fixed maps does (RELION, cryoSPARC heterogeneous refinement).

1. **Noise spectrum.** The residual between each particle's Hartley image and the VAE's
   prediction of it (the decoder's slice at the particle's latent, pose and CTF) is taken
   as noise; its power is averaged over particles in each Fourier shell
   (:func:`noise_power`, in the normalised units the encoder sees).
2. **Image likelihoods.** For every particle and state, the Gaussian log-likelihood of the
   particle's image given the decoder's slice at the state's mode, with the particle's
   pose and CTF and the shell noise powers (:func:`state_log_likelihoods`).
3. **Populations.** The states' weights in the mixture of those likelihoods, found by
   expectation-maximisation with the likelihoods fixed
   (:func:`cryodiff.states.mixture_weights`), times the fraction of particles assigned to a
   state. Each particle's responsibilities are its probabilities of belonging to each state.

The likelihood assumes what the VAE assumes: Gaussian noise, independent between Fourier
pixels, with a power that depends on the shell only; and that the state's mode volume
stands for all its particles (motion inside a state is left out). Frequencies in cycles per
pixel; latents in the VAE's original units.
"""

from __future__ import annotations

import numpy as np
import torch

from cryodiff.states import Mixture, mixture_weights
from recon import loader
from recon.training import Batch, TrainingData

#: Particles whose residuals estimate the noise spectrum.
NOISE_PARTICLES = 2000


def particles_as_trained(run, particles) -> TrainingData:
    """The run's particles (``particles``: :func:`cryodiff.selection.run_particles`) with the poses,
    shifts and CTF of its latents' rows, in their order."""
    meta = particles.meta.subset(np.asarray(run.indices, dtype=np.int64))
    rotations, shifts = meta.require_poses()
    return TrainingData(particles.images, np.asarray(run.indices, dtype=np.int64), rotations, shifts, meta.ctf,
                        particles.meta.box, run.apix)


def _settings(run) -> tuple[float, bool, bool]:
    training = run.config.get("training", {})
    return float(run.config["normalization"]["std"]), bool(training.get("invert", True)), bool(training.get("window", True))


def _shells(model) -> tuple[torch.Tensor, int]:
    """Shell index of each lattice point of the training mask ``[M]`` (radius in pixels, rounded) and the count."""
    radius = (model.coords[:, :2].norm(dim=1) * model.arch.box).round().long()
    return radius, int(radius.max()) + 1


@torch.no_grad()
def noise_power(run, data: TrainingData, z: np.ndarray, *, particles: int = NOISE_PARTICLES, seed: int = 0,
                batch_size: int = 256) -> np.ndarray:
    """Mean power per Fourier shell ``[S]`` (shell ``s``: radius ``s`` pixels, rounded) of the residual
    between the encoder's input images and the decoder's CTF-modulated slices at latents ``z [N, zdim]``,
    from up to ``particles`` particles drawn at random (``seed``)."""
    model = run.model
    scale, invert, window = _settings(run)
    rng = np.random.default_rng(seed)
    rows = np.sort(rng.choice(len(data.indices), size=min(particles, len(data.indices)), replace=False))
    shell, count = _shells(model)
    power, points = torch.zeros(count, dtype=torch.float64), torch.zeros(count, dtype=torch.float64)
    for pos, images in loader.Batches(data.images, data.indices, data.box, loader.batches_of(rows, batch_size)):
        batch = Batch(model, data, pos, images, scale, invert, window)
        pred = model.decode_slices(batch.rotations, torch.as_tensor(z[pos], dtype=torch.float32))
        if batch.ctf is not None:
            pred = pred * batch.ctf
        residual = (batch.target - pred).double().pow(2)
        power.index_add_(0, shell, residual.sum(0))
        points.index_add_(0, shell, torch.full((len(shell),), float(len(pos)), dtype=torch.float64))
    return (power / points.clamp(min=1)).numpy()


@torch.no_grad()
def state_log_likelihoods(run, data: TrainingData, modes: np.ndarray, power: np.ndarray, *, batch_size: int = 256,
                          progress=None) -> np.ndarray:
    """``[N, K]``: the log-likelihood (up to a constant per particle) of each particle's image under
    each state, ``-1/2 sum_j (y_j - c_j s_kj)^2 / P(shell of j)`` over the Fourier pixels ``j`` of the
    training mask, where ``y`` is the image as the VAE sees it, ``c`` its CTF, ``s_k`` the decoder's
    slice at mode ``k`` (``modes [K, zdim]``, original units) in the particle's pose, and ``P`` the
    noise power (:func:`noise_power`). ``progress(n)`` after each batch of ``n`` particles."""
    model = run.model
    scale, invert, window = _settings(run)
    shell, _ = _shells(model)
    weight = torch.as_tensor(1.0 / np.maximum(power, np.finfo(np.float32).tiny), dtype=torch.float32)[shell]
    modes = torch.as_tensor(np.asarray(modes, dtype=np.float32))
    n = len(data.indices)
    out = np.zeros((n, len(modes)))
    for pos, images in loader.Batches(data.images, data.indices, data.box, loader.batches_of(np.arange(n), batch_size)):
        batch = Batch(model, data, pos, images, scale, invert, window)
        for k, mode in enumerate(modes):
            pred = model.decode_slices(batch.rotations, mode.expand(len(pos), -1))
            if batch.ctf is not None:
                pred = pred * batch.ctf
            out[pos, k] = (-0.5 * ((batch.target - pred).pow(2) * weight).sum(1)).double().numpy()
        if progress is not None:
            progress(len(pos))
    return out


def image_mixture(log_likelihoods: np.ndarray, labels: np.ndarray) -> Mixture:
    """The :class:`~cryodiff.states.Mixture` of the assigned particles' (``labels [N] >= 0``) image
    log-likelihoods ``[N, K]``, its weights fitted by expectation-maximisation from equal weights."""
    count = log_likelihoods.shape[1]
    start = Mixture(np.asarray(log_likelihoods, dtype=np.float64)[labels >= 0], np.full(count, 1.0 / count))
    return Mixture(start.log_density, mixture_weights(start))


def responsibilities(mixture: Mixture) -> np.ndarray:
    """``[M, K]``: each of the mixture's particles' probability of belonging to each state."""
    logits = mixture.log_density + np.log(np.maximum(mixture.weights, np.finfo(float).tiny))
    logits -= logits.max(axis=1, keepdims=True)
    weights = np.exp(logits)
    return weights / weights.sum(axis=1, keepdims=True)


def mixture_from_probabilities(probability: np.ndarray) -> Mixture:
    """The :class:`~cryodiff.states.Mixture` behind the responsibilities ``[M, K]`` of its particles (as
    ``assignments.h5`` keeps them): weights their mean (the fitted weights are), log-densities
    ``log r - log w`` (each particle's own constant drops out of every weight refit)."""
    probability = np.asarray(probability, dtype=np.float64)
    weights = probability.mean(0)
    with np.errstate(divide="ignore"):
        return Mixture(np.log(probability) - np.log(np.maximum(weights, np.finfo(float).tiny)), weights)
