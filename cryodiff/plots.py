"""PNG figures for the command line and notebooks (matplotlib, no display needed)."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from recon.files import atomic_target  # noqa: E402


def save_figure(fig, path: str | Path) -> None:
    """Write ``fig`` as a PNG atomically (a reader never sees half a file) and close it."""
    with atomic_target(path) as tmp:
        fig.savefig(tmp, format="png")
    plt.close(fig)


def point_style(n: int) -> dict:
    """Marker size and opacity that keep clouds of ``n`` points readable."""
    return {"s": float(np.clip(8000 / n, 1, 12)), "alpha": float(np.clip(1500 / n, 0.08, 0.7)), "linewidths": 0, "rasterized": True}


def _draw_fsc(ax, freqs: np.ndarray, curves: dict[str, np.ndarray], apix: float, thresholds: tuple[float, ...]) -> None:
    """FSC curves on ``ax`` against 1/Å, with threshold lines, crossing markers, the
    resolution at each crossing in the legend and a resolution (Å) axis on top."""
    from recon.fsc import crossing

    markers = ("o", "s", "^", "D")
    for label, curve in curves.items():
        (line,) = ax.plot(freqs / apix, curve, lw=1.8)
        notes = []
        for level, marker in zip(thresholds, markers):
            f = crossing(freqs, curve, level)
            if f is None:
                notes.append(f"{level:g}: not reached")
                continue
            if f == 0:
                notes.append(f"{level:g}: below from the start")
                continue
            ax.plot(f / apix, level, marker, color=line.get_color(), ms=6, mfc="white", mew=1.5)
            notes.append(f"{level:g}: {apix / f:.1f} Å")
        line.set_label(f"{label} ({'; '.join(notes)})")
    for level, style in zip(thresholds, ("--", ":", "-.", "-")):
        ax.axhline(level, color="grey", ls=style, lw=1)
        ax.text(0.0, level + 0.02, f"{level:g}", color="grey", fontsize=8)
    ax.set_xlim(0, freqs[-1] / apix)
    ax.set_ylim(-0.1, 1.05)
    ax.set_xlabel("spatial frequency (1/Å)")
    ax.set_ylabel("Fourier shell correlation")
    top = ax.twiny()
    top.set_xlim(ax.get_xlim())
    ticks = [t for t in ax.get_xticks() if 0 < t <= ax.get_xlim()[1]]
    top.set_xticks(ticks, [f"{1 / t:.3g}" for t in ticks])
    top.set_xlabel("resolution (Å)")
    ax.legend(frameon=False, fontsize=7, loc="lower left")
    ax.grid(alpha=0.3)


def plot_fsc(
    freqs: np.ndarray,
    curves: dict[str, np.ndarray],
    apix: float,
    path: str | Path,
    title: str = "",
    thresholds: tuple[float, ...] = (0.5, 0.143),
) -> None:
    """FSC curves against spatial frequency (1/Å) with the threshold lines.

    ``freqs`` are in cycles/pixel; ``curves`` maps a legend label to a curve.
    Where a curve crosses a threshold it gets a marker, and the legend gives
    the resolution there (or says that it is not reached up to Nyquist).
    ``title`` should name what the maps are compared with (a reference map,
    the ground truth, the other half map).
    """
    fig, ax = plt.subplots(figsize=(6.4, 4.4), dpi=120)
    _draw_fsc(ax, freqs, curves, apix, thresholds)
    if title:
        fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    save_figure(fig, path)


def plot_fsc_panels(freqs: np.ndarray, panels: dict[str, dict[str, np.ndarray]], apix: float, path: str | Path,
                    title: str = "", thresholds: tuple[float, ...] = (0.5,)) -> None:
    """One FSC plot per panel side by side (e.g. one per reference state); each panel title
    names its reference. ``freqs`` in cycles/pixel, ``apix`` in Å."""
    fig, axes = plt.subplots(1, len(panels), figsize=(5.2 * len(panels), 4.6), dpi=110, squeeze=False)
    for ax, (name, curves) in zip(axes[0], panels.items()):
        _draw_fsc(ax, freqs, curves, apix, thresholds)
        ax.set_title(f"against the truth of {name}", fontsize=9)
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    save_figure(fig, path)


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
    save_figure(fig, path)


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
    save_figure(fig, path)


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
    save_figure(fig, path)


def scale_bar_length(width_A: float) -> float:
    """A round scale-bar length in Å (1, 2 or 5 × 10^k) close to a quarter of ``width_A``."""
    target = width_A / 4
    power = 10 ** np.floor(np.log10(target))
    return float(max((m * power for m in (1, 2, 5, 10) if m * power <= target), default=power))


def add_scale_bar(ax, apix: float, box: int) -> None:
    """A white scale bar with its length in Å at the lower right of an image of ``box`` pixels."""
    from mpl_toolkits.axes_grid1.anchored_artists import AnchoredSizeBar

    length = scale_bar_length(apix * box)
    bar = AnchoredSizeBar(ax.transData, length / apix, f"{length:g} Å", "lower right", pad=0.2, color="white",
                          frameon=False, size_vertical=max(box / 64, 0.5), fontproperties={"size": 7})
    ax.add_artist(bar)


def projections(volume: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Sums of a ``[z, y, x]`` volume along z (a top view ``[y, x]``) and along x (a side view ``[z, y]``)."""
    return volume.sum(0), volume.sum(2)


def plot_volume_gallery(volumes: list[np.ndarray], labels: list[str], apix: float, path: str | Path,
                        title: str = "", columns: int = 10) -> None:
    """Thumbnails of ``[z, y, x]`` volumes: for each, its projection along z (top) and along x
    (bottom), all on one grey scale so that densities compare across volumes; a scale bar in Å
    on the first. ``apix`` is the voxel size in Å."""
    columns = min(columns, len(volumes))
    rows = int(np.ceil(len(volumes) / columns))
    views = [projections(v) for v in volumes]
    lo = min(min(a.min(), b.min()) for a, b in views)
    hi = max(max(a.max(), b.max()) for a, b in views)
    fig, axes = plt.subplots(2 * rows, columns, figsize=(1.25 * columns, 2.5 * rows + 0.5), dpi=110, squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    for i, ((top, side), label) in enumerate(zip(views, labels)):
        r, c = divmod(i, columns)
        for row, (image, view) in enumerate(((top, "z"), (side, "x"))):
            ax = axes[2 * r + row, c]
            ax.imshow(image, cmap="gray", origin="lower", vmin=lo, vmax=hi)
            if i == 0:
                add_scale_bar(ax, apix, image.shape[-1])
                ax.text(0.02, 0.98, f"along {view}", color="white", fontsize=6, va="top", transform=ax.transAxes)
        axes[2 * r, c].set_title(label, fontsize=8)
    if title:
        fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    save_figure(fig, path)


def plot_training_curves(records: list[dict], path: str | Path, title: str = "") -> None:
    """Loss per epoch of a VAE run (``log.jsonl`` records with ``epoch``, ``mse`` and ``kld``):
    the reconstruction error and the KL divergence, each on its own axis."""
    epochs = [r["epoch"] for r in records]
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(8, 3.2), dpi=110)
    ax1.plot(epochs, [r["mse"] for r in records], "o-", ms=3, color="tab:blue")
    ax1.set_ylabel("reconstruction error (MSE, normalised)")
    ax2.plot(epochs, [r["kld"] for r in records], "o-", ms=3, color="tab:orange")
    ax2.set_ylabel("KL divergence (nats per particle)")
    for ax in (ax1, ax2):
        ax.set_xlabel("epoch")
        ax.grid(alpha=0.3)
        ax.xaxis.get_major_locator().set_params(integer=True)
    note = "the error should level off; the KL settles as the latents organise"
    fig.suptitle(f"{title}: {note}" if title else f"training curves: {note}", fontsize=9)
    fig.tight_layout()
    save_figure(fig, path)


def plot_training_log(log_jsonl: str | Path, path: str | Path, title: str = "") -> bool:
    """Plot a VAE run's ``log.jsonl`` (one JSON record per epoch; the last record of an epoch
    wins) with :func:`plot_training_curves`; ``False`` if there is no readable log."""
    import json

    try:
        lines = Path(log_jsonl).read_text(encoding="utf-8").splitlines()
        by_epoch = {r["epoch"]: r for r in (json.loads(line) for line in lines if line.strip())}
    except (OSError, ValueError, KeyError, TypeError):
        return False
    if not by_epoch:
        return False
    plot_training_curves([by_epoch[e] for e in sorted(by_epoch)], path, title)
    return True


def plot_score_histogram(log_prob: np.ndarray, cutoff: float, path: str | Path, title: str = "") -> None:
    """Histogram of per-particle log-likelihoods (nats) with the suggested cut-off marked and
    the share of particles below it."""
    fig, ax = plt.subplots(figsize=(6.4, 3.8), dpi=110)
    low = float(np.percentile(log_prob, 0.1))
    values = np.clip(log_prob, low, None)
    ax.hist(values, bins=int(np.clip(np.sqrt(len(values)), 20, 120)), color="tab:blue", alpha=0.85)
    ax.set_yscale("log")
    share = 100 * float(np.mean(log_prob < cutoff))
    ax.axvline(cutoff, color="tab:red", lw=1.5, ls="--", label=f"suggested cut-off {cutoff:.2f} nats: {share:.1f} % below")
    ax.set_xlabel("log-likelihood of the particle's latent under the prior (nats; lowest 0.1 % piled at the left)")
    ax.set_ylabel("particles")
    ax.legend(fontsize=8, frameon=False)
    ax.set_title(title or f"{len(log_prob)} particles: low scores are junk or rare states; look before you drop", fontsize=9)
    fig.tight_layout()
    save_figure(fig, path)


def plot_map_rows(rows: dict[str, dict[str, np.ndarray]], apix: float, path: str | Path, title: str = "") -> None:
    """A grid of side views (sum along x, ``[z, y]``) of ``[z, y, x]`` volumes: one row per
    entry of ``rows`` (e.g. a state), one column per map (e.g. truth, consensus, ...), each
    map scaled to its own range; a scale bar in Å on the first."""
    names = list(next(iter(rows.values())))
    fig, axes = plt.subplots(len(rows), len(names), figsize=(2.1 * len(names), 2.2 * len(rows) + 0.4), dpi=110, squeeze=False)
    for r, (row, maps) in enumerate(rows.items()):
        for c, name in enumerate(names):
            ax = axes[r, c]
            ax.imshow(maps[name].sum(2), cmap="gray", origin="lower")
            ax.set_xticks([])
            ax.set_yticks([])
            if r == 0:
                ax.set_title(name, fontsize=9)
            if c == 0:
                ax.set_ylabel(row, fontsize=9)
            if r == c == 0:
                add_scale_bar(ax, apix, maps[name].shape[-1])
    fig.suptitle(title or "side views (projection along x) of each state's true structure and its maps", fontsize=9)
    fig.tight_layout()
    save_figure(fig, path)


def plot_landscape_truth(xy: np.ndarray, state: np.ndarray, subunit: np.ndarray, path: str | Path,
                         state_r2: float | None = None, subunit_accuracy: float | None = None) -> None:
    """Particle latents in two coordinates ``xy`` [N, 2] (e.g. PC1/PC2), coloured on the left by the
    true continuous state and on the right by whether the subunit is bound: the ground truth of a
    simulation, which the VAE never saw."""
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.8), dpi=110, sharex=True, sharey=True)
    style = point_style(len(xy))
    pts = axes[0].scatter(xy[:, 0], xy[:, 1], c=state, cmap="viridis", vmin=0, vmax=1, **style)
    fig.colorbar(pts, ax=axes[0], label="true state (domain swing, 0 to 1)")
    bound = np.asarray(subunit).astype(bool)
    for flag, colour, label in ((False, "tab:grey", "subunit absent"), (True, "tab:red", "subunit bound")):
        axes[1].scatter(xy[bound == flag, 0], xy[bound == flag, 1], color=colour, label=label, **style)
    axes[1].legend(markerscale=6, fontsize=8, frameon=False)
    for ax, what, score in ((axes[0], "true state", state_r2), (axes[1], "true subunit occupancy", subunit_accuracy)):
        ax.set_xlabel("PC1 of the particle latents")
        quality = "" if score is None else f" (kNN from z: {'R²' if ax is axes[0] else 'accuracy'} {score:.2f})"
        ax.set_title(f"coloured by the {what}{quality}", fontsize=9)
        ax.grid(alpha=0.3)
    axes[0].set_ylabel("PC2 of the particle latents")
    fig.suptitle("the latent landscape the VAE learned, coloured by the simulation's ground truth it never saw", fontsize=10)
    fig.tight_layout()
    save_figure(fig, path)


def plot_states(z: np.ndarray, labels: np.ndarray, modes: np.ndarray, rows: list[dict], path: str | Path,
                confidence: float) -> None:
    """Left: latents ``z [N, zdim]`` on their first two principal components, coloured by state
    (grey: unassigned), each state's mode a numbered star. Right: each state's population with
    its interval, and dG (kT) above the bar."""
    from sklearn.decomposition import PCA

    z = np.asarray(z, dtype=np.float64)
    pca = PCA(n_components=min(2, z.shape[1])).fit(z)
    xy, centres = pca.transform(z), pca.transform(np.asarray(modes, dtype=np.float64))
    if xy.shape[1] == 1:
        xy, centres = np.c_[xy, np.zeros(len(xy))], np.c_[centres, np.zeros(len(centres))]
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.6), dpi=110, gridspec_kw={"width_ratios": [1.3, 1]})
    style = point_style(len(xy))
    colours = plt.get_cmap("tab10" if len(rows) <= 10 else "tab20")
    axes[0].scatter(xy[labels < 0, 0], xy[labels < 0, 1], color="lightgrey", label="unassigned", **style)
    for k in range(len(rows)):
        axes[0].scatter(xy[labels == k, 0], xy[labels == k, 1], color=colours(k % colours.N), **style)
        axes[0].scatter(*centres[k], marker="*", s=220, color=colours(k % colours.N), edgecolor="black", zorder=3)
        axes[0].annotate(str(k), centres[k], xytext=(6, 6), textcoords="offset points", fontsize=10, weight="bold")
    axes[0].set(xlabel="PC1 of the particle latents", ylabel="PC2")
    axes[0].set_title(f"{len(rows)} states (stars: modes of the prior); grey: unassigned", fontsize=9)
    axes[0].grid(alpha=0.3)
    population = np.array([r["population"] for r in rows])
    error = np.array([[r["population"] - r["population_low"], r["population_high"] - r["population"]] for r in rows]).T
    bars = axes[1].bar(np.arange(len(rows)), population, yerr=error, capsize=4,
                       color=[colours(k % colours.N) for k in range(len(rows))])
    for bar, row in zip(bars, rows):
        axes[1].annotate(f"{row['dG_kT']:.2f} kT", (bar.get_x() + bar.get_width() / 2, row["population_high"]),
                         xytext=(0, 3), textcoords="offset points", ha="center", fontsize=8)
    axes[1].set(xlabel="state", ylabel="fraction of all particles", xticks=np.arange(len(rows)))
    reach = " and the basin counts" if "population_sampling_low" in rows[0] else ""
    axes[1].set_title(f"populations, {100 * confidence:g} % bootstrap intervals{reach}; dG = -kT ln(p / p_max)", fontsize=9)
    axes[1].grid(alpha=0.3, axis="y")
    fig.tight_layout()
    save_figure(fig, path)


def plot_state_fsc(validations, path: str | Path) -> None:
    """One panel per state (:class:`cryodiff.state_maps.StateMap`): the half-map FSC of its particles'
    reconstruction, the FSC the true map would reach against that reconstruction (C_ref) and the FSC
    between the decoded volume and the reconstruction, against spatial frequency (1/Å); 0.143 and 0.5
    marked. The title says whether the decoded volume is supported."""
    from cryodiff.state_maps import reference_fsc

    cols = min(len(validations), 4)
    rows = -(-len(validations) // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(3.3 * cols, 2.8 * rows), dpi=110, squeeze=False)
    for ax in axes.flat[len(validations):]:
        ax.axis("off")
    for ax, v in zip(axes.flat, validations):
        x = v.map.freqs / v.map.apix
        ax.plot(x, v.map.curve, "--", color="grey", label="half maps")
        ax.plot(x, reference_fsc(v.map.curve), ":", color="black", label="C_ref (truth vs map)")
        ax.plot(x, v.agreement, color="tab:blue" if v.supported else "tab:red", label="decoded vs map")
        for level in (0.143, 0.5):
            ax.axhline(level, color="lightgrey", lw=0.8, zorder=0)
        ax.set(ylim=(-0.1, 1.05), xlabel="spatial frequency (1/Å)", ylabel="FSC")
        verdict = "supported" if v.supported else "NOT supported"
        ax.set_title(f"state {v.state}: {v.map.n_particles} particles, decoded {verdict}", fontsize=8,
                     color="black" if v.supported else "tab:red")
        ax.grid(alpha=0.3)
    axes.flat[0].legend(fontsize=7, loc="lower left")
    fig.tight_layout()
    save_figure(fig, path)


def plot_comparison(comparison, z: np.ndarray, condition: np.ndarray, modes: np.ndarray, path: str | Path) -> None:
    """Left: each state's occupancy per condition (:class:`cryodiff.compare.Comparison`) with its
    interval. Middle: each condition's difference from the reference with its interval. Right: the
    latents ``z [N, zdim]`` on their first two principal components, coloured by the density of
    condition 1 minus that of the reference (``condition [N]``: indices; each density normalised to
    its particles), the states' ``modes`` numbered."""
    from scipy.ndimage import gaussian_filter
    from sklearn.decomposition import PCA

    names, k = comparison.names, comparison.occupancy.shape[1]
    fig, axes = plt.subplots(1, 3, figsize=(15, 4.4), dpi=110)
    width = 0.8 / len(names)
    x = np.arange(k)
    for c, name in enumerate(names):
        occ, ci = comparison.occupancy[c], comparison.occupancy_interval[c]
        axes[0].bar(x + (c - (len(names) - 1) / 2) * width, occ, width, yerr=[occ - ci[:, 0], ci[:, 1] - occ], capsize=3,
                    label=f"{name} ({comparison.counts[c]} particles)")
    axes[0].set(xlabel="state", ylabel="fraction of the condition's particles", xticks=x)
    axes[0].set_title(f"occupancy, {100 * comparison.confidence:g} % bootstrap intervals", fontsize=9)
    axes[0].legend(fontsize=8)
    others = range(1, len(names))
    width = 0.8 / max(len(names) - 1, 1)
    for i, c in enumerate(others):
        diff, ci = comparison.difference[c], comparison.difference_interval[c]
        axes[1].bar(x + (i - (len(names) - 2) / 2) * width, diff, width, yerr=[diff - ci[:, 0], ci[:, 1] - diff], capsize=3,
                    color=f"C{c}", label=f"{names[c]} - {names[0]}")
    axes[1].axhline(0, color="black", lw=0.8)
    axes[1].set(xlabel="state", ylabel="occupancy difference", xticks=x)
    kind = "simultaneous over the states" if comparison.simultaneous else "per state"
    axes[1].set_title(f"difference from the reference ({100 * comparison.confidence:g} % intervals, {kind});\n"
                      "an interval off 0 is a change", fontsize=9)
    axes[1].legend(fontsize=8)
    z = np.asarray(z, dtype=np.float64)
    pca = PCA(n_components=2).fit(z)
    xy, centres = pca.transform(z), pca.transform(np.asarray(modes, dtype=np.float64).reshape(-1, z.shape[1]))
    edges = [np.linspace(*np.percentile(xy[:, d], [0.5, 99.5]), 41) for d in range(2)]
    density = [np.histogram2d(xy[condition == c, 0], xy[condition == c, 1], bins=edges)[0] / max(np.sum(condition == c), 1)
               for c in (0, 1)]
    change = gaussian_filter(density[1] - density[0], 1.0).T  # one-bin smoothing: a map, not shot noise
    limit = np.abs(change).max() or 1.0
    image = axes[2].imshow(change, origin="lower", cmap="RdBu_r", vmin=-limit, vmax=limit, aspect="auto",
                           extent=[edges[0][0], edges[0][-1], edges[1][0], edges[1][-1]])
    for s, centre in enumerate(centres):
        axes[2].annotate(str(s), centre, fontsize=10, weight="bold", ha="center", va="center")
    fig.colorbar(image, ax=axes[2], label="fraction of particles per bin")
    axes[2].set(xlabel="PC1 of the particle latents", ylabel="PC2")
    axes[2].set_title(f"density of {names[1]} minus {names[0]} (red: more in {names[1]})", fontsize=9)
    fig.tight_layout()
    save_figure(fig, path)
