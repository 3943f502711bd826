"""Figures and the summary page of ``cryodiff analyze`` (matplotlib, no display needed).

The plot functions take 2-D coordinates of every particle (PCA projections
or a UMAP embedding) and the coordinates of the k-means centres, and write
one PNG each, atomically. :func:`write_summary` turns a list of
:class:`Section` into ``summary.md`` (figures linked by relative path) and a
self-contained ``summary.html`` (figures embedded).
"""

from __future__ import annotations

import base64
import html
import re
from pathlib import Path
from typing import NamedTuple

import matplotlib

matplotlib.use("Agg")
import matplotlib.patheffects as pe  # noqa: E402
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from cryodiff.plots import point_style, save_figure  # noqa: E402
from recon.files import atomic_target  # noqa: E402

#: Outline that keeps centre numbers readable on any background.
_OUTLINE = [pe.withStroke(linewidth=2.5, foreground="white")]


def cluster_colours(k: int) -> np.ndarray:
    """RGBA ``[k, 4]`` of clusters 0..k-1: tab20 with its light/dark pairs
    split, so neighbouring cluster numbers get different hues."""
    order = np.r_[0:20:2, 1:20:2]
    return plt.get_cmap("tab20")(order[np.arange(k) % 20])


#: Label positions tried around a centre, in points (x, y) from it.
_OFFSETS = ((4, 3), (4, -11), (-11, 3), (-11, -11), (6, -4), (-14, -4), (-3, 6), (-3, -15))


def _label_centres(fig, ax, centres: np.ndarray) -> None:
    """Mark the k-means centres ``[K, 2]`` with a cross and their cluster
    number, lay out ``fig`` with the legend in a strip under the axes, and
    put each number where it overlaps no other number or cross."""
    ax.scatter(centres[:, 0], centres[:, 1], marker="x", s=30, c="black", linewidths=1.2, label="k-means centre (number = cluster)", zorder=3)
    fig.tight_layout(rect=(0, 0.05, 1, 1))
    fig.legend(*ax.get_legend_handles_labels(), loc="lower center", fontsize=8, frameon=False)
    ax.autoscale_view()
    scale = fig.dpi / 72  # pixels per point
    pixels = ax.transData.transform(centres)
    taken = [(x - 4 * scale, y - 4 * scale, x + 4 * scale, y + 4 * scale) for x, y in pixels]
    for i, (x, y) in enumerate(pixels):
        width, height = (5 * len(str(i)) + 2) * scale, 9 * scale
        for dx, dy in _OFFSETS:
            box = (x + dx * scale, y + dy * scale, x + dx * scale + width, y + dy * scale + height)
            if not any(box[0] < b[2] and b[0] < box[2] and box[1] < b[3] and b[1] < box[3] for b in taken):
                break
        taken.append(box)
        ax.annotate(str(i), centres[i], xytext=(dx, dy), textcoords="offset points", fontsize=8, fontweight="bold",
                    va="bottom", ha="left", path_effects=_OUTLINE, zorder=4)


def pca_axis_labels(ratio: np.ndarray) -> tuple[str, str]:
    """Axis names ``PC1 (43.2 % of variance)`` for the first two PCs."""
    return tuple(f"PC{i + 1} ({100 * ratio[i]:.1f} % of variance)" for i in range(2))


def plot_latent_scatter(
    xy: np.ndarray, labels: np.ndarray, centres: np.ndarray, axis_labels: tuple[str, str], title: str, path: str | Path
) -> None:
    """Particles ``xy`` [N, 2] coloured by k-means cluster, centres ``[K, 2]`` numbered."""
    k = len(centres)
    fig, ax = plt.subplots(figsize=(6, 5.6), dpi=120)
    ax.scatter(xy[:, 0], xy[:, 1], c=cluster_colours(k)[labels], **point_style(len(xy)))
    ax.set_xlabel(axis_labels[0])
    ax.set_ylabel(axis_labels[1])
    ax.set_title(f"{title}: {len(xy)} particles, colour = k-means cluster (K = {k})", fontsize=10)
    _label_centres(fig, ax, centres)
    save_figure(fig, path)


def plot_latent_hexbin(xy: np.ndarray, centres: np.ndarray, axis_labels: tuple[str, str], title: str, path: str | Path) -> None:
    """Particle density of ``xy`` [N, 2] in hexagonal bins, centres ``[K, 2]`` numbered."""
    fig, ax = plt.subplots(figsize=(6.4, 5.6), dpi=120)
    gridsize = int(np.clip(np.sqrt(len(xy)) / 2, 10, 60))
    hb = ax.hexbin(xy[:, 0], xy[:, 1], gridsize=gridsize, mincnt=1, cmap="viridis", linewidths=0.1)
    fig.colorbar(hb, ax=ax, label="particles per bin")
    ax.set_xlabel(axis_labels[0])
    ax.set_ylabel(axis_labels[1])
    ax.set_title(f"{title}: particle density", fontsize=10)
    _label_centres(fig, ax, centres)
    save_figure(fig, path)


def plot_latent_histogram(z: np.ndarray, centres: np.ndarray, path: str | Path) -> None:
    """Histogram of one-dimensional latents ``z`` [N] with the k-means centres ``[K]`` marked."""
    fig, ax = plt.subplots(figsize=(6.4, 4), dpi=120)
    ax.hist(z, bins=int(np.clip(np.sqrt(len(z)), 10, 100)), color="tab:blue", alpha=0.8)
    for rank, i in enumerate(np.argsort(centres, kind="stable")):  # numbers in two staggered rows above the axes
        ax.axvline(centres[i], color="black", lw=0.8, ls="--")
        ax.text(centres[i], 1.01 + 0.05 * (rank % 2), str(i), transform=ax.get_xaxis_transform(),
                ha="center", va="bottom", fontsize=8, fontweight="bold")
    ax.set_xlabel("z (dashed: k-means centres, numbered)")
    ax.set_ylabel("particles")
    ax.set_title(f"latent distribution of {len(z)} particles", fontsize=10, pad=26)
    fig.tight_layout()
    save_figure(fig, path)


def plot_explained_variance(ratio: np.ndarray, path: str | Path) -> None:
    """Fraction of the latent variance along each PC (bars) and cumulated (line), in %."""
    pcs = np.arange(1, len(ratio) + 1)
    fig, ax = plt.subplots(figsize=(max(4.5, 0.45 * len(ratio) + 2), 3.8), dpi=120)
    ax.bar(pcs, 100 * ratio, color="tab:blue", label="per component")
    ax.plot(pcs, 100 * np.cumsum(ratio), "o-", color="tab:orange", ms=4, label="cumulative")
    for x, r in zip(pcs, 100 * ratio):  # inside tall bars, clear of the cumulative line
        ax.text(x, r / 2 if r > 8 else r + 1, f"{r:.0f}", ha="center", va="center" if r > 8 else "bottom", fontsize=7,
                color="white" if r > 8 else "black")
    ax.set_xticks(pcs, [f"PC{i}" for i in pcs], rotation=45 if len(pcs) > 10 else 0)
    ax.set_ylim(0, 108)
    ax.set_ylabel("variance explained (%)")
    ax.set_title("PCA of the latents", fontsize=10)
    ax.legend(loc="center right", fontsize=8)
    ax.grid(axis="y", alpha=0.3)
    fig.tight_layout()
    save_figure(fig, path)


def plot_cluster_counts(labels: np.ndarray, k: int, path: str | Path) -> None:
    """Number of particles in each of the ``k`` k-means clusters."""
    counts = np.bincount(labels, minlength=k)
    fig, ax = plt.subplots(figsize=(max(4.5, 0.35 * k + 1.5), 3.8), dpi=120)
    ax.bar(np.arange(k), counts, color=cluster_colours(k), edgecolor="black", linewidth=0.4)
    for i, c in enumerate(counts):
        ax.text(i, c, str(c), ha="center", va="bottom", fontsize=7, rotation=90 if k > 12 else 0)
    ax.set_xticks(np.arange(k))
    ax.set_xlim(-0.7, k - 0.3)
    ax.set_ylim(0, counts.max() * 1.18)
    ax.set_xlabel("k-means cluster")
    ax.set_ylabel("particles")
    ax.set_title(f"particles per cluster ({len(labels)} in all)", fontsize=10)
    fig.tight_layout()
    save_figure(fig, path)


class Section(NamedTuple):
    """One part of the summary: a heading, paragraphs (markdown with
    ``code`` spans only), figures as ``(file relative to the summary,
    caption)`` and an optional table ``(header, rows)``."""

    heading: str
    paragraphs: tuple[str, ...]
    figures: tuple[tuple[str, str], ...] = ()
    table: tuple[list[str], list[list]] | None = None


def _markdown(title: str, sections: list[Section]) -> str:
    lines = [f"# {title}", ""]
    for s in sections:
        lines += [f"## {s.heading}", ""]
        for p in s.paragraphs:
            lines += [p, ""]
        for file, caption in s.figures:
            lines += [f"![{caption}]({file})", "", f"*{caption}*", ""]
        if s.table:
            header, rows = s.table
            lines += ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
            lines += ["| " + " | ".join(map(str, row)) + " |" for row in rows]
            lines.append("")
    return "\n".join(lines)


def _inline_html(text: str) -> str:
    return re.sub(r"`([^`]+)`", r"<code>\1</code>", html.escape(text))


def _html(title: str, sections: list[Section], folder: Path) -> str:
    parts = [
        "<!DOCTYPE html>",
        f'<html lang="en"><head><meta charset="utf-8"><title>{html.escape(title)}</title>',
        "<style>body{font-family:sans-serif;max-width:60em;margin:2em auto;padding:0 1em;line-height:1.45}"
        "img{max-width:100%;border:1px solid #ddd}figure{margin:1em 0}figcaption{color:#555;font-size:90%}"
        "table{border-collapse:collapse}td,th{border:1px solid #ccc;padding:2px 8px;text-align:right}"
        "code{background:#f3f3f3;padding:0 3px}</style></head><body>",
        f"<h1>{html.escape(title)}</h1>",
    ]
    for s in sections:
        parts.append(f"<h2>{html.escape(s.heading)}</h2>")
        parts += [f"<p>{_inline_html(p)}</p>" for p in s.paragraphs]
        for file, caption in s.figures:
            data = base64.b64encode((folder / file).read_bytes()).decode()
            parts.append(
                f'<figure><img src="data:image/png;base64,{data}" alt="{html.escape(caption)}">'
                f"<figcaption>{_inline_html(caption)} ({html.escape(file)})</figcaption></figure>"
            )
        if s.table:
            header, rows = s.table
            parts.append("<table><tr>" + "".join(f"<th>{html.escape(h)}</th>" for h in header) + "</tr>")
            parts += ["<tr>" + "".join(f"<td>{_inline_html(str(v))}</td>" for v in row) + "</tr>" for row in rows]
            parts.append("</table>")
    parts.append("</body></html>")
    return "\n".join(parts)


def write_summary(folder: str | Path, title: str, sections: list[Section]) -> None:
    """Write ``folder/summary.md`` and ``folder/summary.html`` (figure files
    are relative to ``folder``; the HTML embeds them, so it can be moved)."""
    folder = Path(folder)
    for name, text in (("summary.md", _markdown(title, sections)), ("summary.html", _html(title, sections, folder))):
        with atomic_target(folder / name) as tmp:
            tmp.write_text(text, encoding="utf-8")
