"""Explore the latent space of a trained VAE: PCA, UMAP, k-means, volumes and plots.

Writes to RUN/analyze (or -o DIR):

  pca.npy                 [N, C] coordinates of each particle along the principal
                          components of the latents (C = zdim)
  umap.npy                [N, 2] UMAP embedding (zdim >= 3, unless --skip-umap)
  kmeans/labels.npy       [N] k-means cluster of each particle (0..K-1, numbered along PC1)
  kmeans/centers.txt      [K, zdim] latent of each cluster centre, snapped to its nearest particle
  kmeans/centers_ind.txt  [K] the row of that particle in the run's latents
  kmeans/vol_000.mrc ...  the volume at each centre (unless --skip-vol)
  pc1/z.txt, pc1/vol_000.mrc ...  --n-per-pc latents along PC1, evenly spaced from its
                          5th to its 95th percentile, and their volumes; pc2/ ...
  *.png, summary.md, summary.html   plots and a page saying what to look at
  analysis.json           settings and a fingerprint of the latents (read by cryodiff select)

Particles are named by their row in RUN/latents.h5 (0-based); that is their
position in the particle file unless the run was trained with --ind (then
it is indices[row]). Volumes left in kmeans/ or pcK/ by an earlier analysis
whose latents no longer match are removed. Continue with cryodiff traverse
(paths between particles) and cryodiff select (clusters -> .star).
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
from pathlib import Path

import numpy as np

from cryodiff.commands._common import progress_bar
from recon.errors import InputError
from recon.io.mrc import atomic_target

HELP = "PCA, UMAP, k-means, volumes and plots of a trained VAE's latent space"
log = logging.getLogger("cryodiff.analyze")
ANALYSIS = "analysis.json"


def add_args(parser):
    parser.add_argument("run", help="run directory written by cryodiff train-vae (or import-cryodrgn)")
    parser.add_argument("-o", "--outdir", help="output folder (default: RUN/analyze)")
    parser.add_argument("--ksample", type=int, default=20, help="number of k-means clusters, one volume each (default: %(default)s)")
    parser.add_argument("--pc", type=int, default=2, help="number of principal components to traverse (default: %(default)s)")
    parser.add_argument("--n-per-pc", type=int, default=10, help="volumes per principal-component traversal (default: %(default)s)")
    parser.add_argument("--skip-umap", action="store_true", help="do not run UMAP (the slowest step on large data sets)")
    parser.add_argument("--skip-vol", action="store_true", help="do not generate volumes")
    add_volume_args(parser)
    parser.add_argument("--seed", type=int, default=0, help="random seed of k-means and UMAP (default: %(default)s)")


def add_volume_args(parser) -> None:
    """Options of the volumes an analysis writes (shared with traverse)."""
    parser.add_argument("-D", "--box", type=int, help="evaluate volumes on a smaller box (even, pixels); pixel size grows by D/box")
    parser.add_argument("--flip", action="store_true", help="mirror the volumes (the other hand)")
    parser.add_argument("--invert", action="store_true", help="negate the volumes")


def latents_of(run_) -> np.ndarray:
    """The run's posterior means ``z_mu`` [N, zdim], or a clear error if training did not finish."""
    if run_.z_mu is None:
        raise InputError(run_.path, "the run has no latents.h5 (training did not finish)", "finish training with cryodiff train-vae --resume")
    return np.asarray(run_.z_mu, dtype=np.float32)


def fingerprint(z: np.ndarray) -> str:
    """SHA-256 of the float32 latents: tells whether an analysis belongs to them."""
    return hashlib.sha256(np.ascontiguousarray(z, dtype=np.float32).tobytes()).hexdigest()


def check_box(box: int | None, run_) -> None:
    if box is not None and (box % 2 or not 8 <= box <= run_.box):
        raise InputError("-D", f"box {box} is not an even size between 8 and {run_.box}", "choose a smaller even box")


def save_array(path: Path, array: np.ndarray, fmt: str = "%.8g") -> None:
    """Write ``array`` atomically: ``.npy`` as numpy binary, anything else as text (one row per line)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_target(path) as tmp:
        if path.suffix == ".npy":
            with open(tmp, "wb") as f:
                np.save(f, array, allow_pickle=False)
        else:
            np.savetxt(tmp, array, fmt=fmt)


def clear_stale_volumes(folder: Path, zfile: Path, z: np.ndarray) -> None:
    """Remove ``vol_NNN.mrc`` in ``folder`` if ``zfile`` (the latents they were
    made from) is missing or differs from ``z``: they belong to another analysis."""
    if zfile.is_file():
        old = np.loadtxt(zfile, ndmin=2)
        if old.shape == z.shape and np.allclose(old, z, rtol=1e-6, atol=1e-7):
            return
    stale = [p for p in folder.glob("vol_*.mrc") if re.fullmatch(r"vol_\d{3,}\.mrc", p.name)]
    for p in stale:
        p.unlink()
    if stale:
        log.info("removed %d volumes of an earlier analysis from %s", len(stale), folder)


def write_volumes(run_, jobs: list[tuple[Path, np.ndarray]], args) -> None:
    """Write ``folder/vol_000.mrc ...`` for each ``(folder, z [M, zdim])`` job, one progress bar for all."""
    from recon.io import write_volume

    apix = run_.apix_at(args.box)
    with progress_bar(sum(len(z) for _, z in jobs), "volumes", unit="vol") as bar:
        for folder, z in jobs:
            folder.mkdir(parents=True, exist_ok=True)
            for i, zi in enumerate(z):
                write_volume(folder / f"vol_{i:03d}.mrc", run_.volume(zi, args.box, flip=args.flip, invert=args.invert), apix)
                bar.update()
    log.info("volumes at %.4g Å/px, box %d", apix, args.box or run_.box)


def _check_args(args, run_, n: int) -> None:
    check_box(args.box, run_)
    if args.pc < 0:
        raise InputError("--pc", f"{args.pc} principal components", "use --pc 0 (none) or more")
    if args.n_per_pc < 2:
        raise InputError("--n-per-pc", f"{args.n_per_pc} points do not make a traversal", "use --n-per-pc 2 or more")
    if not 1 <= args.ksample <= n:
        raise InputError("--ksample", f"{args.ksample} clusters for {n} particles", f"choose between 1 and {n}")


def run(args) -> None:
    from recon.analysis import kmeans_centres, pc_traversal, pca, umap_embedding
    from recon.run import load_run

    run_ = load_run(args.run)
    z = latents_of(run_)
    _check_args(args, run_, len(z))
    out = Path(args.outdir) if args.outdir else run_.path / "analyze"
    out.mkdir(parents=True, exist_ok=True)
    log.info("analysing %d particles, zdim %d -> %s", len(z), z.shape[1], out)

    fit = pca(z)
    save_array(out / "pca.npy", fit.projections.astype(np.float32))
    emb = None
    if z.shape[1] >= 3 and not args.skip_umap:
        log.info("UMAP of %d particles (the first call compiles numba code, ~15 s)", len(z))
        emb = umap_embedding(z, seed=args.seed)
        save_array(out / "umap.npy", emb)
    labels, centres, rows = kmeans_centres(z, args.ksample, seed=args.seed)
    clear_stale_volumes(out / "kmeans", out / "kmeans" / "centers.txt", centres)
    save_array(out / "kmeans" / "labels.npy", labels)
    save_array(out / "kmeans" / "centers.txt", centres)
    save_array(out / "kmeans" / "centers_ind.txt", rows, fmt="%d")

    jobs = [(out / "kmeans", centres)]
    for k in range(1, min(args.pc, len(fit.components)) + 1):
        zk = pc_traversal(fit, k, args.n_per_pc)
        clear_stale_volumes(out / f"pc{k}", out / f"pc{k}" / "z.txt", zk)
        save_array(out / f"pc{k}" / "z.txt", zk)
        jobs.append((out / f"pc{k}", zk))
    if not args.skip_vol:
        write_volumes(run_, jobs, args)

    record = {
        "run": str(run_.path.resolve()),
        "n_particles": len(z),
        "zdim": int(z.shape[1]),
        "latents_sha256": fingerprint(z),
        "ksample": args.ksample,
        "seed": args.seed,
        "explained_variance_ratio": fit.explained_variance_ratio.tolist(),
        "pc_traversals": [folder.name for folder, _ in jobs[1:]],
        "umap": emb is not None,
    }
    with atomic_target(out / ANALYSIS) as tmp:
        tmp.write_text(json.dumps(record, indent=2))
    figures = _plots(out, z, fit, emb, labels, rows)
    _summary(out, run_, fit, emb is not None, labels, rows, figures, [folder.name for folder, _ in jobs], args)
    log.info("done: open %s", out / "summary.html")


def _plots(out: Path, z: np.ndarray, fit, emb, labels: np.ndarray, rows: np.ndarray) -> dict[str, str]:
    """Write the PNGs; returns figure key -> file name."""
    from cryodiff import analysis_report as rep

    files = {"counts": "cluster_counts.png"}
    rep.plot_cluster_counts(labels, len(rows), out / files["counts"])
    if z.shape[1] == 1:
        files["hist"] = "z_hist.png"
        rep.plot_latent_histogram(z[:, 0], z[rows, 0], out / files["hist"])
        return files
    files |= {"variance": "pca_variance.png", "pca": "z_pca.png", "pca_hex": "z_pca_hexbin.png"}
    rep.plot_explained_variance(fit.explained_variance_ratio, out / files["variance"])
    xy, names = fit.projections[:, :2], rep.pca_axis_labels(fit.explained_variance_ratio)
    rep.plot_latent_scatter(xy, labels, xy[rows], names, "PCA", out / files["pca"])
    rep.plot_latent_hexbin(xy, xy[rows], names, "PCA", out / files["pca_hex"])
    if emb is not None:
        files |= {"umap": "umap.png", "umap_hex": "umap_hexbin.png"}
        rep.plot_latent_scatter(emb, labels, emb[rows], ("UMAP1", "UMAP2"), "UMAP", out / files["umap"])
        rep.plot_latent_hexbin(emb, emb[rows], ("UMAP1", "UMAP2"), "UMAP", out / files["umap_hex"])
    return files


def _traversal_text(folders: list[str], n: int, volumes: bool) -> str:
    if not folders:
        return "No principal-component traversal was requested (`--pc 0`)."
    where = ", ".join(f"`{f}/`" for f in folders)
    if not volumes:
        return (
            f"{where} hold {n} latents each (`z.txt`) along the PCs, from the 5th to the 95th percentile; "
            "volumes were skipped (`--skip-vol`)."
        )
    return (
        f"{where} hold {n} volumes each along the PCs, from the 5th to the 95th percentile of the particles' "
        "coordinates (latents in `z.txt`). Play them as a movie, e.g. in ChimeraX: `open pc1/vol_*.mrc vseries true`."
    )


def _summary(out: Path, run_, fit, has_umap: bool, labels, rows, figures: dict[str, str], folders: list[str], args) -> None:
    from cryodiff.analysis_report import Section, write_summary

    zdim = fit.components.shape[1]
    traversal = _traversal_text(folders[1:], args.n_per_pc, all((out / f / "vol_000.mrc").is_file() for f in folders[1:]))
    sections = [
        Section(
            "Run",
            (
                f"Run `{run_.path}`: {len(labels)} particles, zdim {zdim}. Particles are named by their row in the run's "
                "`latents.h5` (0-based), which is their position in the particle file unless training used `--ind`.",
            ),
        )
    ]
    if "hist" in figures:
        sections.append(
            Section(
                "Latent distribution",
                ("With one latent dimension the histogram is the whole landscape: peaks are populated states.", traversal),
                ((figures["hist"], "histogram of z with the k-means centres"),),
            )
        )
    else:
        sections += _pca_sections(fit.explained_variance_ratio, traversal, figures)
    if has_umap:
        sections.append(
            Section(
                "Latent space in UMAP coordinates",
                ("UMAP keeps neighbourhoods, not distances or densities: use it to spot groups of particles, "
                 "not to measure how different they are.",),
                ((figures["umap"], "UMAP embedding, coloured by k-means cluster"),
                 (figures["umap_hex"], "UMAP density with the k-means centres")),
            )
        )
    elif zdim >= 3:
        sections.append(Section("Latent space in UMAP coordinates", ("UMAP was skipped (`--skip-umap`).",)))
    sections += [_cluster_section(out, labels, rows, figures["counts"]), _next_steps(out, run_, rows, has_umap)]
    write_summary(out, f"cryodiff analyze: {run_.path}", sections)


def _pca_sections(ratio: np.ndarray, traversal: str, figures: dict[str, str]) -> list:
    from cryodiff.analysis_report import Section

    return [
        Section(
            "Principal components",
            (
                f"PC1 carries {100 * ratio[0]:.1f} % of the latent variance and PC2 {100 * ratio[1]:.1f} %. "
                "When one or two components dominate, most of the heterogeneity is one or two concerted motions; "
                "a flat spectrum means it is spread over many directions and the PC traversals tell less.",
                traversal,
            ),
            ((figures["variance"], "variance explained by each principal component"),),
        ),
        Section(
            "Latent space in PCA coordinates",
            (
                "Separate islands suggest discrete states; elongated ridges suggest continuous motion. "
                "In the density plot the bright bins are the populated states; thin bridges between them "
                "are rare or transient conformations, or mixtures. The numbers mark the k-means centres: "
                "each is a real particle and its volume is `kmeans/vol_NNN.mrc`.",
            ),
            ((figures["pca"], "particles in PC1/PC2, coloured by k-means cluster"),
             (figures["pca_hex"], "particle density in PC1/PC2 with the k-means centres")),
        ),
    ]


def _cluster_section(out: Path, labels: np.ndarray, rows: np.ndarray, counts_png: str):
    from cryodiff.analysis_report import Section

    k, n = len(rows), len(labels)
    counts = np.bincount(labels, minlength=k)
    volume = [f"kmeans/vol_{i:03d}.mrc" if (out / "kmeans" / f"vol_{i:03d}.mrc").is_file() else "-" for i in range(k)]
    return Section(
        "k-means clusters",
        (
            f"{k} clusters, numbered along PC1. k-means cuts a continuum into pieces of similar size, so a "
            "cluster is not necessarily a distinct state: compare the volumes of neighbouring clusters. "
            "Small clusters far from the rest often hold junk particles worth removing. "
            "Open the centre volumes together, e.g. in ChimeraX: `open kmeans/vol_*.mrc`.",
        ),
        ((counts_png, "particles in each k-means cluster"),),
        (
            ["cluster", "particles", "%", "centre particle (row)", "volume"],
            [[i, int(counts[i]), f"{100 * counts[i] / n:.1f}", int(rows[i]), volume[i]] for i in range(k)],
        ),
    )


def _next_steps(out: Path, run_, rows: np.ndarray, has_umap: bool):
    from cryodiff.analysis_report import Section

    analysis = "" if out.resolve() == (run_.path / "analyze").resolve() else f" --analysis {out}"
    return Section(
        "Next steps",
        (
            f"A path between the first and the last centre that stays where particles are: "
            f"`cryodiff traverse {run_.path} --graph {rows[0]} {rows[-1]}`.",
            f"Keep some clusters for refinement elsewhere: `cryodiff select {run_.path} --clusters 0 1{analysis} -o subset.star` "
            "(writes a RELION .star and a 0-based index list for cryoSPARC).",
            f"Any other latent: `cryodiff eval-vol {run_.path} -z ...`; the arrays behind these plots are "
            f"`pca.npy`, {'`umap.npy`, ' if has_umap else ''}`kmeans/labels.npy` and `kmeans/centers.txt`.",
        ),
    )
