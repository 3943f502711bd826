"""PNG figures for the command line and notebooks (matplotlib, no display needed)."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402


def plot_fsc(freqs: np.ndarray, curves: dict[str, np.ndarray], apix: float, path: str | Path) -> None:
    """FSC curves against spatial frequency (1/Å) with the 0.5 and 0.143 lines.

    ``freqs`` are in cycles/pixel; ``curves`` maps a legend label to a curve.
    """
    fig, ax = plt.subplots(figsize=(6, 4), dpi=120)
    for label, curve in curves.items():
        ax.plot(freqs / apix, curve, label=label, lw=1.8)
    for level, style in ((0.5, "--"), (0.143, ":")):
        ax.axhline(level, color="grey", ls=style, lw=1)
        ax.text(0.0, level + 0.02, f"{level}", color="grey", fontsize=8)
    ax.set_xlim(0, freqs[-1] / apix)
    ax.set_ylim(-0.1, 1.05)
    ax.set_xlabel("spatial frequency (1/Å)")
    ax.set_ylabel("Fourier shell correlation")
    top = ax.twiny()
    top.set_xlim(ax.get_xlim())
    ticks = [t for t in ax.get_xticks() if 0 < t <= ax.get_xlim()[1]]
    top.set_xticks(ticks, [f"{1 / t:.3g}" for t in ticks])
    top.set_xlabel("resolution (Å)")
    ax.legend(frameon=False)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def plot_particles(images: np.ndarray, path: str | Path, title: str = "", columns: int = 6) -> None:
    """A montage of ``[B, D, D]`` images (``[y, x]``, origin at the top left as
    in RELION and cryoSPARC viewers), each scaled to its own range."""
    rows = int(np.ceil(len(images) / columns))
    fig, axes = plt.subplots(rows, columns, figsize=(1.6 * columns, 1.6 * rows + 0.4), dpi=110, squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    for ax, img in zip(axes.flat, images):
        ax.imshow(img, cmap="gray")
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def plot_central_sections(volumes: dict[str, np.ndarray], path: str | Path) -> None:
    """Central z, y and x sections of several ``[z, y, x]`` volumes, one row each."""
    fig, axes = plt.subplots(len(volumes), 3, figsize=(6.5, 2.2 * len(volumes)), dpi=110, squeeze=False)
    for row, (label, vol) in zip(axes, volumes.items()):
        c = vol.shape[0] // 2
        for ax, (name, section) in zip(row, (("z", vol[c]), ("y", vol[:, c]), ("x", vol[:, :, c]))):
            ax.imshow(section, cmap="gray", origin="lower")
            ax.set_xticks([])
            ax.set_yticks([])
            ax.set_title(f"{label}: {name} = 0", fontsize=8)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def plot_latent_comparison(panels: dict[str, np.ndarray], path: str | Path, title: str = "") -> None:
    """Side-by-side scatter plots of ``[N, 2]`` latent projections on shared axes
    (e.g. particle latents, diffusion-prior samples and N(0, I) samples, all in
    the particles' first two principal components)."""
    everything = np.concatenate(list(panels.values()))
    lo, hi = np.percentile(everything, [0.5, 99.5], axis=0)
    pad = 0.05 * (hi - lo)
    fig, axes = plt.subplots(1, len(panels), figsize=(4.2 * len(panels), 4.2), dpi=110, sharex=True, sharey=True, squeeze=False)
    for ax, (label, xy) in zip(axes[0], panels.items()):
        ax.scatter(xy[:, 0], xy[:, 1], s=2, alpha=0.4, color="tab:blue", rasterized=True)
        ax.set_title(label, fontsize=10)
        ax.set_xlabel("PC1 of the particle latents")
        ax.set_xlim(lo[0] - pad[0], hi[0] + pad[0])
        ax.set_ylim(lo[1] - pad[1], hi[1] + pad[1])
        ax.grid(alpha=0.3)
    axes[0][0].set_ylabel("PC2 of the particle latents")
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
