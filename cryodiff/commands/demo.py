"""Run the whole pipeline on built-in synthetic data, and tell its story in pictures.

1. Simulates particles of a flexible molecule with known ground truth: a
   domain that swings between three populated states (A, B, C) and a
   subunit bound in 40 % of particles (particles.png).
2. Reconstructs by backprojection the consensus of all particles and, for
   each state, only the particles truly in it (maps/).
3. Trains the heterogeneous VAE on all particles, and 4. analyses its latent
   landscape (vae/analyze/summary.html).
5. Compares, for each state, the consensus map, that state's own
   backprojection and the VAE's map at that state with the true structure
   (fsc.png, sections.png), and colours the latent landscape by the truth
   the VAE never saw (landscape.png); numbers in results.json.
6. Trains the latent diffusion prior and 7. compares its samples and the
   VAE's N(0, I) with the particles' latents (prior_vs_gaussian.png);
   volumes sampled from the prior go to prior/volumes/.

The demo records its finished stages in OUTDIR/demo.json: run it again with
the same options and it skips what is done and continues an interrupted
stage (training resumes from its last checkpoint); --force starts over. About
6 minutes on an idle 2-core CPU with the defaults; --full is a larger data set
(10,000 particles, box 64, lower SNR) that takes about 2.5 hours on 2 CPU cores.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np

from cryodiff.cli.types import count, even_box, positive_float, positive_int, seed
from cryodiff.commands._common import progress_bar
from recon.errors import InputError

HELP = "simulate a data set with known structure and run the whole pipeline on it (a tour of cryodiff)"
log = logging.getLogger("cryodiff.demo")

#: Default and --full sizes: (particles, box px, SNR, VAE epochs, prior steps).
SIZES = {"default": (3000, 32, 0.5, 8, 1500), "full": (10000, 64, 0.1, 20, 6000)}
#: Names of the three state modes of the simulated molecule (recon.simulate.STATE_MODES, in order).
STATE_NAMES = ("A", "B", "C")
#: A particle belongs to a state's class when its true state lies this close to the mode.
CLASS_WINDOW = 0.06


def add_args(parser):
    parser.add_argument("outdir", help="output folder (created; an earlier demo there is continued)")
    parser.add_argument("--full", action="store_true", help="the larger version: 10000 particles, box 64, SNR 0.1, 20 epochs (about 2.5 hours on 2 CPU cores)")
    parser.add_argument("-n", type=count(10**6, "particles for the demo"), help="number of particles (default: 3000, --full 10000)")
    parser.add_argument("-D", "--box", type=even_box, help="box size in pixels, even (default: 32, --full 64)")
    parser.add_argument("--snr", type=positive_float, help="signal-to-noise ratio (default: 0.5, --full 0.1)")
    parser.add_argument("--epochs", type=positive_int, help="VAE training epochs (default: 8, --full 20)")
    parser.add_argument("--prior-steps", type=positive_int, help="diffusion prior training steps (default: 1500, --full 6000)")
    parser.add_argument("--seed", type=seed, default=0, help="random seed (default: %(default)s)")
    parser.add_argument("--force", action="store_true", help="start over: remove this demo's earlier outputs in OUTDIR first")


def settings_of(args) -> dict:
    """The demo's size settings: the options given, the rest from the default or --full size."""
    n, box, snr, epochs, steps = SIZES["full" if args.full else "default"]
    chosen = {
        "n": args.n or n, "box": args.box or box, "snr": args.snr if args.snr is not None else snr,
        "epochs": args.epochs or epochs, "prior_steps": args.prior_steps or steps, "seed": args.seed,
    }
    if chosen["n"] < 100:
        raise InputError("-n", f"{chosen['n']} particles are too few for the tour", "use -n 100 or more")
    if not 16 <= chosen["box"] <= 256:
        raise InputError("--box", f"box {chosen['box']} is not an even size from 16 to 256", "pass e.g. -D 32")
    return chosen


def estimates(s: dict) -> dict[str, float]:
    """Seconds per stage on an idle 2-core CPU (AMD EPYC, AVX2), measured on a fresh clone at the
    default size (the VAE at 110 images/s, UMAP including its first-run compilation), scaled by the work."""
    images = s["n"] * (s["box"] / 32) ** 2
    volume = (s["box"] / 32) ** 3
    return {
        "simulate": 4 * images / 3000,
        "backproject": 12 * images / 3000 * s["box"] / 32,
        "train-vae": 27.5 * s["epochs"] * images / 3000 + 5,
        "analyze": 50 + 30 * volume,
        "compare": 3 + 2 * volume,
        "train-prior": 0.029 * s["prior_steps"] + 3,
        "sample": 2 + 2 * volume,
    }


def run(args) -> None:
    from cryodiff.pipeline import Stage, run_stages

    s = settings_of(args)
    out = Path(args.outdir)
    demo = Demo(out, s)
    t = estimates(s)
    stages = [
        Stage("simulate", f"simulate {s['n']} particles (box {s['box']}, SNR {s['snr']:g})", t["simulate"], ("data", "particles.png"), demo.simulate),
        Stage("backproject", "backproject the consensus and each true state", t["backproject"], ("maps",), demo.backproject),
        Stage("train-vae", f"train the VAE ({s['epochs']} epochs)", t["train-vae"], ("vae",), demo.train_vae),
        Stage("analyze", "analyse the latent landscape (PCA, UMAP, k-means)", t["analyze"], ("vae/analyze",), demo.analyze),
        Stage("compare", "compare maps and landscape with the truth", t["compare"],
              ("fsc.png", "sections.png", "landscape.png", "results.json"), demo.compare),
        Stage("train-prior", f"train the diffusion prior ({s['prior_steps']} steps)", t["train-prior"], ("prior",), demo.train_prior),
        Stage("sample", "sample the prior and compare it with N(0, I)", t["sample"],
              ("prior/volumes", "prior_vs_gaussian.png"), demo.sample),
    ]
    run_stages(out, stages, s, command="demo", force=args.force, record="demo.json")
    log.info("done. The story in pictures, in order:")
    log.info("  %s: what the particles look like", out / "particles.png")
    log.info("  %s and %s: consensus vs one state's particles vs the VAE, against the truth", out / "fsc.png", out / "sections.png")
    log.info("  %s: the latent landscape coloured by the truth the VAE never saw", out / "landscape.png")
    log.info("  %s: clusters, their volumes and what to do next", out / "vae" / "analyze" / "summary.html")
    log.info("  %s: the diffusion prior follows the data, N(0, I) does not", out / "prior_vs_gaussian.png")


def _call(argv: list[str]) -> None:
    """Run one cryodiff command in this process; its own error line has been printed if it fails."""
    from cryodiff.cli.main import main

    if main(argv) != 0:
        raise InputError(f"cryodiff {argv[0]}", "the demo's stage failed (see the message above)", "fix that and re-run the demo to continue")


class Demo:
    """The demo's stages over one output folder ``out`` and size settings ``s``."""

    def __init__(self, out: Path, s: dict):
        self.out, self.s = out, s
        self.data, self.maps, self.vae, self.prior = out / "data", out / "maps", out / "vae", out / "prior"

    @property
    def apix(self) -> float:
        return 3.0 * 64 / self.s["box"]  # the molecule spans the same 192 Å box at any size

    def simulate(self) -> None:
        from cryodiff.plots import plot_particles
        from recon.io import read_particles
        from recon.synthetic import write_synthetic_dataset

        s = self.s
        with progress_bar(s["n"], "simulate") as bar:
            write_synthetic_dataset(self.data, n=s["n"], box=s["box"], apix=self.apix, snr=s["snr"], seed=s["seed"], progress=bar.update)
        images = read_particles(self.data / "particles.star").images[:12]
        plot_particles(images, self.out / "particles.png", f"simulated particles (SNR {s['snr']:g}, box {s['box']}, {self.apix:g} Å/px)")

    def classes(self) -> dict[str, np.ndarray]:
        """Particles truly in each state (within :data:`CLASS_WINDOW` of its mode, subunit bound)."""
        from recon.simulate import STATE_MODES
        from recon.synthetic import read_truth

        truth = read_truth(self.data / "truth.h5")
        return {
            name: np.flatnonzero((np.abs(truth["state"] - mode) < CLASS_WINDOW) & (truth["subunit"] == 1))
            for name, (mode, _, _) in zip(STATE_NAMES, STATE_MODES)
        }

    def backproject(self) -> None:
        from recon.backproject import backproject
        from recon.io import read_particles, write_volume

        particles = read_particles(self.data / "particles.star")
        meta = particles.meta
        jobs = {"consensus": np.arange(len(meta))} | {f"class_{k}": v for k, v in self.classes().items()}
        self.maps.mkdir(exist_ok=True)
        for name, idx in jobs.items():
            with progress_bar(len(idx), f"backproject {name}") as bar:
                batches = ((idx[i : i + 256], particles.images[idx[i : i + 256]]) for i in range(0, len(idx), 256))
                rec = backproject(batches, meta.rotations, meta.shifts_px, meta.ctf, meta.box, meta.apix, progress=bar.update)
            write_volume(self.maps / f"{name}.mrc", rec.volume, rec.apix)
        log.info("backprojected %s", ", ".join(f"{name}: {len(idx)} particles" for name, idx in jobs.items()))

    def train_vae(self) -> None:
        s = self.s
        argv = ["train-vae", str(self.data / "particles.star"), "-o", str(self.vae), "--zdim", "8", "-n", str(s["epochs"]),
                "--enc-dim", "256", "--dec-dim", "256", "-b", "32", "--lr", "1e-3", "--seed", str(s["seed"])]
        _call(argv + (["--resume"] if (self.vae / "checkpoint.pt").is_file() else []))

    def analyze(self) -> None:
        _call(["analyze", str(self.vae), "--ksample", "12"])

    def compare(self) -> None:
        """Maps and latents against the truth: fsc.png, sections.png, landscape.png, results.json."""
        from cryodiff.plots import plot_fsc_panels, plot_landscape_truth, plot_map_rows
        from recon.analysis import latent_medoid, pca
        from recon.evaluation import state_r2, subunit_accuracy
        from recon.fsc import describe_resolution, fsc, resolution
        from recon.io import read_volume, write_volume
        from recon.run import load_run
        from recon.simulate import STATE_MODES, make_molecule, render_volume
        from recon.synthetic import read_truth

        truth = read_truth(self.data / "truth.h5")
        run_ = load_run(self.vae)
        z = run_.latents()
        rows = {int(p): r for r, p in enumerate(run_.indices)}
        consensus = read_volume(self.maps / "consensus.mrc")[0]
        panels, sections, results = {}, {}, {"states": {}}
        for (name, members), (mode, _, weight) in zip(self.classes().items(), STATE_MODES):
            reference = render_volume(make_molecule(), mode, True, self.s["box"])
            zs = z[[rows[int(p)] for p in members]]
            vae_map = run_.volume(zs[latent_medoid(zs)])
            write_volume(self.maps / f"vae_{name}.mrc", vae_map, run_.apix)
            maps = {
                "consensus": ("consensus (all particles)", consensus),
                "backprojection": (f"backprojection of state {name}'s {len(members)} particles",
                                   read_volume(self.maps / f"class_{name}.mrc")[0]),
                "vae": (f"VAE at state {name} (trained on all particles)", vae_map),
            }
            curves = {key: fsc(vol, reference) for key, (_, vol) in maps.items()}
            freqs = curves["consensus"][0]
            panels[f"state {name} (true state {mode:g}, {100 * weight:.0f} % of particles)"] = {
                maps[key][0]: curve for key, (_, curve) in curves.items()
            }
            sections[f"state {name}"] = {"truth": reference} | {key: vol for key, (_, vol) in maps.items()}
            results["states"][name] = {"true_state": mode, "particles": int(len(members))} | {
                f"{key}_fsc0.5_A": resolution(freqs, curve, 0.5, self.apix) for key, (_, curve) in curves.items()
            }
        plot_fsc_panels(freqs, panels, self.apix, self.out / "fsc.png",
                        "FSC against each state's true structure. The consensus (blue) dips at low resolution, where the states "
                        "differ: it blurs them together.\nOne state's own particles (orange) are few, so its map falls off first at "
                        "high resolution. The VAE (green) learns from all particles and still matches each state.")
        plot_map_rows(sections, self.apix, self.out / "sections.png")
        results |= {"state_r2": state_r2(z, truth["state"][run_.indices]), "subunit_accuracy": subunit_accuracy(z, truth["subunit"][run_.indices])}
        plot_landscape_truth(pca(z).projections[:, :2], truth["state"][run_.indices], truth["subunit"][run_.indices], self.out / "landscape.png",
                             results["state_r2"], results["subunit_accuracy"])
        (self.out / "results.json").write_text(json.dumps(_finite(results), indent=2))
        for name, r in results["states"].items():
            log.info("state %s: FSC 0.5 vs its true structure at %s", name, ", ".join(
                f"{key} {describe_resolution(r[f'{key}_fsc0.5_A'], 0.5, self.apix)}" for key in ("consensus", "backprojection", "vae")))
        log.info("VAE latents vs the truth: state R² %.2f, subunit accuracy %.3f (cross-validated kNN)", results["state_r2"], results["subunit_accuracy"])

    def train_prior(self) -> None:
        argv = ["train-prior", str(self.vae), "-o", str(self.prior), "--steps", str(self.s["prior_steps"]), "--seed", str(self.s["seed"])]
        _call(argv + (["--resume"] if (self.prior / "checkpoint.pt").is_file() else []))

    def sample(self) -> None:
        from recon.run import load_run

        _call(["sample", str(self.prior), "-n", "4", "-o", str(self.prior / "samples.txt"), "--volumes",
               str(self.prior / "volumes"), "--run", str(self.vae), "--seed", str(self.s["seed"])])
        compare_prior(load_run(self.vae).latents(), self.prior, self.out / "prior_vs_gaussian.png", self.s["seed"])


def _finite(value):
    """``value`` with infinite floats (no resolution at all) written as ``None``-free strings, for strict JSON."""
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, float) and np.isinf(value):
        return "none (below the threshold from the lowest frequency)"
    return value


def compare_prior(z: np.ndarray, prior_dir: Path, png: Path, seed: int) -> None:
    """Plot particle latents, prior samples and N(0, I) samples in the latents'
    PCA, and log their energy distances to the latents (standardised units)."""
    import torch

    from cryodiff.plots import plot_latent_comparison
    from cryodiff.prior import load_prior
    from generative.metrics import energy_distance
    from recon.analysis import pca

    prior = load_prior(prior_dir)
    half = len(z) // 2
    order = np.random.default_rng(seed).permutation(len(z))
    data, held_out = z[order[:half]], z[order[half : 2 * half]]
    samples = prior.sample(half, solver="dpmpp_2m", steps=15, seed=seed)
    gaussian = prior.gaussian(half, seed)
    scale = z.std(0)

    def distance(x):
        return float(energy_distance(torch.as_tensor(x / scale, dtype=torch.float64), torch.as_tensor(data / scale, dtype=torch.float64)))

    d_prior, d_gauss, d_floor = distance(samples), distance(gaussian), distance(held_out)
    log.info(
        "energy distance to the particle latents (0 = same distribution; lower is closer to the data): "
        "prior samples %.4f, N(0, I) samples %.4f; two halves of the data differ by %.4f",
        d_prior, d_gauss, d_floor,
    )
    fit = pca(z)

    def project(x):
        return (np.asarray(x, dtype=np.float64) - fit.mean) @ fit.components[:2].T

    plot_latent_comparison(
        {
            f"particle latents (other half: {d_floor:.3f})": project(data),
            f"diffusion prior samples: {d_prior:.3f}": project(samples),
            f"N(0, I) samples: {d_gauss:.3f}": project(gaussian),
        },
        png,
        "latents in their first two principal components; in each title the energy distance to the particle "
        "latents (0 = same distribution, lower is closer to the data)",
    )
