"""Explore the latent space of a trained VAE: PCA, UMAP, k-means, volumes and plots.

Writes to RUN/analyze (or -o DIR):

  pca.npy                 [N, C] coordinates of each particle along the principal
                          components of the latents (C = zdim)
  umap.npy                [N, 2] UMAP embedding (zdim >= 3, unless --skip-umap)
  kmeansK/labels.npy      [N] k-means cluster of each particle (0..K-1, numbered along PC1);
                          K = --ksample, e.g. kmeans20/, as cryoDRGN names it, so
                          analyses with other K stay side by side
  kmeansK/centers.txt     [K, zdim] latent of each cluster centre, snapped to its nearest particle
  kmeansK/centers_ind.txt [K] the row of that particle in the run's latents
  kmeansK/vol_000.mrc ... the volume at each centre (unless --skip-vol)
  pc1/z.txt, pc1/vol_000.mrc ...  --n-per-pc latents along PC1, evenly spaced from its
                          5th to its 95th percentile, and their volumes; pc2/ ...
  *.png, summary.md, summary.html   plots and a page saying what to look at
  analysis.json           settings and a fingerprint of the latents (read by cryodiff select)

Particles are named by their row in RUN/latents.h5 (0-based); that is their
position in the particle file unless the run was trained with --ind (then
it is indices[row]). Volumes that an earlier analysis wrote in kmeansK/ or
pcK/ for latents that no longer match are removed (nothing else is). Continue with cryodiff traverse
(paths between particles) and cryodiff select (clusters -> .star).
"""

from __future__ import annotations

import contextlib
import json
import logging
from pathlib import Path

import numpy as np

from cryodiff.cli.types import count, nonnegative_int, positive_int, seed
from cryodiff.analysis_record import ANALYSIS, fingerprint, kmeans_folder, read_record
from cryodiff.commands._common import add_force_arg, progress_bar
from cryodiff.commands._volumes import add_prior_arg, add_volume_args, check_box, support_prior, write_volumes
from cryodiff.output_folder import output_folder
from cryodiff.outputs import prepare_series, save_array
from recon.errors import InputError
from recon.files import atomic_target

HELP = "PCA, UMAP, k-means, volumes and plots of a trained VAE's latent space"
log = logging.getLogger("cryodiff.analyze")


def add_args(parser):
    parser.add_argument("run", help="run directory written by cryodiff train-vae (or import-cryodrgn)")
    parser.add_argument(
        "epoch", nargs="?", type=positive_int,
        help="analyse the weights and latents kept after this epoch (train-vae --checkpoint), as in cryoDRGN's "
        "'analyze WORKDIR EPOCH' (default: the final ones)",
    )
    parser.add_argument("-o", "--outdir", help="output folder (default: RUN/analyze, or RUN/analyze.EPOCH)")
    parser.add_argument("--ksample", type=positive_int, default=20, help="number of k-means clusters, one volume each (default: %(default)s)")
    parser.add_argument("--pc", type=nonnegative_int, default=2, help="number of principal components to traverse (default: %(default)s)")
    parser.add_argument("--n-per-pc", type=count(10**4, "volumes per component", low=2), default=10, help="volumes per principal-component traversal (default: %(default)s)")
    parser.add_argument("--skip-umap", action="store_true", help="do not run UMAP (the slowest step on large data sets)")
    parser.add_argument("--skip-vol", action="store_true", help="do not generate volumes")
    add_volume_args(parser)
    add_prior_arg(parser)
    parser.add_argument("--seed", type=seed, default=0, help="random seed of k-means and UMAP (default: %(default)s)")
    add_force_arg(parser)








def _check_args(args, run_, n: int) -> None:
    check_box(args.box, run_)
    if args.ksample > n:
        raise InputError("--ksample", f"{args.ksample} clusters for {n} particles", f"choose between 1 and {n}")


def run(args) -> None:
    from recon.run import load_run

    run_ = load_run(args.run, epoch=args.epoch)
    z = run_.latents()
    _check_args(args, run_, len(z))
    default = "analyze" if args.epoch is None else f"analyze.{args.epoch}"
    out = Path(args.outdir) if args.outdir else run_.path / default
    inputs = [run_.path / name for name in ("config.json", "checkpoint.pt", "latents.h5")]
    with contextlib.ExitStack() as stack:
        folder = stack.enter_context(output_folder(out, "analyze", kind="analyze", inputs=inputs, force=args.force))
        subfolder = lambda name: stack.enter_context(  # noqa: E731 - one line per series folder
            output_folder(out / name, "analyze", kind="analyze", inputs=inputs, force=args.force))
        _analyze(args, run_, z, folder, subfolder)
    log.info("done: open %s", out / "summary.html")


def _analyze(args, run_, z: np.ndarray, folder, subfolder) -> None:
    """The analysis into ``folder`` (its series in ``subfolder(name)``)."""
    from recon.analysis import kmeans_centres, pc_traversal, pca, umap_embedding

    out = folder.path
    log.info("analysing %d particles, zdim %d -> %s", len(z), z.shape[1], out)
    fit = pca(z)
    save_array(folder.file("pca.npy"), fit.projections.astype(np.float32))
    emb = None
    if z.shape[1] >= 3 and not args.skip_umap:
        from recon.analysis import UMAP_FIT_LIMIT

        if len(z) > UMAP_FIT_LIMIT:
            log.info("UMAP fitted on %d of the %d particles, the others placed by the fitted model", UMAP_FIT_LIMIT, len(z))
        else:
            log.info("UMAP of %d particles (the first call compiles numba code, ~15 s)", len(z))
        with progress_bar(len(z), "UMAP", unit="particle") as bar:
            emb = umap_embedding(z, seed=args.seed, progress=bar.update)
        save_array(folder.file("umap.npy"), emb)
    labels, centres, rows = kmeans_centres(z, args.ksample, seed=args.seed)
    kdir = subfolder(kmeans_folder(out, args.ksample).name)
    prepare_series(kdir, centres, zfile="centers.txt")
    save_array(kdir.file("labels.npy"), labels)
    save_array(kdir.file("centers_ind.txt"), rows, fmt="%d")

    jobs = [(kdir, centres)]
    for k in range(1, min(args.pc, len(fit.components)) + 1):
        zk = pc_traversal(fit, k, args.n_per_pc)
        pdir = subfolder(f"pc{k}")
        prepare_series(pdir, zk)
        jobs.append((pdir, zk))
    if not args.skip_vol:
        write_volumes(run_, jobs, args, prior=support_prior(args, run_))

    earlier = read_record(out, z) or {}
    record = {
        "run": str(run_.path.resolve()),
        "n_particles": len(z),
        "zdim": int(z.shape[1]),
        "latents_sha256": fingerprint(z),
        "ksample": args.ksample,
        "kmeans": sorted(set(earlier.get("kmeans", [])) | {args.ksample}),
        "seed": args.seed,
        "explained_variance_ratio": fit.explained_variance_ratio.tolist(),
        "pc_traversals": [f.path.name for f, _ in jobs[1:]],
        "umap": emb is not None,
    }
    with atomic_target(folder.file(ANALYSIS)) as tmp:
        tmp.write_text(json.dumps(record, indent=2))
    figures = _plots(out, z, fit, emb, labels, rows)
    figures |= _run_figures(out, run_, [f.path for f, _ in jobs], run_.apix_at(args.box))
    _summary(out, run_, fit, emb is not None, labels, rows, figures, [f.path.name for f, _ in jobs], args)


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


def _run_figures(out: Path, run_, folders: list[Path], apix: float) -> dict[str, str]:
    """Training curves (if the run has its log) and thumbnails of the volumes written in
    ``folders`` (if any); returns figure key -> file name."""
    from cryodiff.plots import plot_training_log, plot_volume_gallery
    from recon.io import read_volume

    files = {}
    if plot_training_log(run_.path / "log.jsonl", out / "training.png", f"training of {run_.path.name}"):
        files["training"] = "training.png"
    for folder in folders:
        paths = sorted(folder.glob("vol_*.mrc"))
        if not paths:
            continue
        kind = "cluster" if folder.name.startswith("kmeans") else folder.name.upper()
        name = f"{folder.name}_volumes.png"
        title = (f"volumes at the k-means centres ({folder.name}/vol_NNN.mrc)" if kind == "cluster"
                 else f"volumes along {kind} from its 5th to its 95th percentile ({folder.name}/vol_NNN.mrc)")
        plot_volume_gallery([read_volume(p)[0] for p in paths], [f"{kind} {i}" for i in range(len(paths))], apix, out / name,
                            f"{title}; projections along z (top) and x (bottom), one grey scale")
        files[f"volumes:{folder.name}"] = name
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
            (("training.png", "training curves: reconstruction error and KL divergence per epoch"),) if "training" in figures else (),
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
    sections += [_cluster_section(out, labels, rows, figures["counts"]), _volume_section(figures), _next_steps(out, run_, rows, has_umap)]
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
                "each is a real particle and its volume is `kmeansK/vol_NNN.mrc` (K clusters).",
            ),
            ((figures["pca"], "particles in PC1/PC2, coloured by k-means cluster"),
             (figures["pca_hex"], "particle density in PC1/PC2 with the k-means centres")),
        ),
    ]


def _cluster_section(out: Path, labels: np.ndarray, rows: np.ndarray, counts_png: str):
    from cryodiff.analysis_report import Section

    k, n = len(rows), len(labels)
    counts = np.bincount(labels, minlength=k)
    kdir = kmeans_folder(out, k).name
    volume = [f"{kdir}/vol_{i:03d}.mrc" if (out / kdir / f"vol_{i:03d}.mrc").is_file() else "-" for i in range(k)]
    return Section(
        "k-means clusters",
        (
            f"{k} clusters, numbered along PC1. k-means cuts a continuum into pieces of similar size, so a "
            "cluster is not necessarily a distinct state: compare the volumes of neighbouring clusters. "
            "Small clusters far from the rest often hold junk particles worth removing. "
            f"Open the centre volumes together, e.g. in ChimeraX: `open {kdir}/vol_*.mrc`.",
        ),
        ((counts_png, "particles in each k-means cluster"),),
        (
            ["cluster", "particles", "%", "centre particle (row)", "volume"],
            [[i, int(counts[i]), f"{100 * counts[i] / n:.1f}", int(rows[i]), volume[i]] for i in range(k)],
        ),
    )


def _volume_section(figures: dict[str, str]):
    from cryodiff.analysis_report import Section

    galleries = tuple((name, f"thumbnails of {key.split(':')[1]}/") for key, name in figures.items() if key.startswith("volumes:"))
    if not galleries:
        return Section("Volumes", ("No volumes were generated (`--skip-vol`).",))
    return Section(
        "Volumes",
        (
            "Each thumbnail is a volume projected along z (top) and along x (bottom), all on one grey scale, so "
            "a part that fades from one volume to the next is a part that moves away or leaves. The scale bar is in Å. "
            "Open the MRC files in ChimeraX or napari for a proper look.",
        ),
        galleries,
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
            f"`pca.npy`, {'`umap.npy`, ' if has_umap else ''}`kmeans{len(rows)}/labels.npy` and `kmeans{len(rows)}/centers.txt`.",
        ),
    )
