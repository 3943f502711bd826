"""Find the states of a landscape: the modes of a diffusion prior's density, each particle's
state, and each state's population and relative free energy with bootstrap intervals.

Each latent climbs the prior's density smoothed by --bandwidth (mean-shift with the
prior's denoiser; standardised latent units, 1 = the latents' spread) and belongs to the
state whose mode it reaches. By default the bandwidth is chosen at the finest number of
modes that stays the same over a factor of 1.6 in scale (docs/states.md). States holding fewer than
--min-population of the particles are dropped and their particles left unassigned (-1).
Population: with --run (default --populations images), each state's maximum-likelihood
share of the particle images: every image is compared with every state's decoded volume in
its pose and CTF under the noise spectrum of the VAE's residuals, and the states' weights
are fitted by expectation-maximisation, which does not depend on where the noisy latents
fall; with --latents (default basins), the fraction of all particles in the state's basin
(--populations mixture: the weight of the state's Gaussian in a mixture fitted to the
assigned latents, where the states are Gaussian enough). Unassigned particles stay out of
every state and count in the total.
dG = -kT ln(p / p_max), also in kcal/mol at --temperature; intervals by --bootstrap
resamplings of the particles at --confidence.
--retrain K also trains K more priors on the same latents with seeds 1..K (the prior's own
settings, into STATES/priors/seedK; reused by a later run) and draws one of the priors for
each resampling, so the intervals include how much the states depend on the prior's training.

STATES (a folder) receives

    states.json      settings, the bandwidth scan, and per state: population, dG (kT and
                     kcal/mol) with intervals, particles, mode latent
    states.csv       the same table, one row per state
    assignments.h5   indices [N] (particle index) and state [N] (-1: unassigned), in the
                     order of the latents; with --populations images also probability
                     [N, K], each particle's probability of belonging to each state given its
                     image (0 for unassigned particles)
    states.png       the latents (first two principal components) coloured by state with
                     the modes marked, and the populations with their intervals
    priors/seedK/    with --retrain: the retrained priors
    summary.html     the table and the plots, for a browser
    z.txt, vol_000.mrc, vol_001.mrc, ...   with --run: each state's mode and its volume
                     (decoded by the run's VAE), with ChimeraX scripts, and support.csv
                     (how well the particles support each mode, docs/support.md)
    state_000_map.mrc, state_000_half1.mrc, state_000_half2.mrc, ...   with --maps: each
                     state's particles backprojected with the run's poses and CTF (half
                     sets from the particle file when it has them)
    state_fsc.png    with --maps: per state, the half-map FSC and the FSC between the
                     decoded volume and the reconstruction

--maps (needs --run) checks each state's decoded volume against its own particles: the
half-map resolution, the decoded volume's agreement with the reconstruction (FSC 0.5) and
whether it is more like another state's reconstruction; an unsupported decoded volume is
flagged in the table, with the reason (docs/states.md).
"""

from __future__ import annotations

import csv
import json
import logging
from pathlib import Path

import numpy as np

from cryodiff.cli.types import nonnegative_int, positive_float, positive_int, probability, seed
from cryodiff.commands._common import add_force_arg, progress_bar
from cryodiff.commands._volumes import add_volume_args, check_box, write_volumes
from cryodiff.output_folder import output_folder
from cryodiff.outputs import prepare_series
from recon.errors import InputError
from recon.files import atomic_target

HELP = "states of the landscape: modes of the prior, each particle's state, populations and free energies"
log = logging.getLogger("cryodiff.states")


def add_args(parser):
    parser.add_argument("prior", help="prior directory written by cryodiff train-prior")
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--run", help="cryodiff run directory: its latents, and its VAE for the states' volumes")
    source.add_argument("--latents", help="latents without a VAE: .h5 with z_mu, cryoDRGN z.N.pkl or .npy [N, zdim]")
    parser.add_argument("-o", "--outdir", required=True, help="states folder (created)")
    parser.add_argument("--bandwidth", type=positive_float, help="smoothing of the density in standardised latent units "
                        "(default: the finest number of states that persists over a factor of 1.6, between 0.05 and 1)")
    parser.add_argument("--min-population", type=probability, default=0.01,
                        help="smallest fraction of particles that makes a state (default: %(default)s)")
    parser.add_argument("--starts", type=positive_int, default=2000, help="particles whose ascents find the modes (default: %(default)s)")
    parser.add_argument("--populations", choices=("basins", "mixture", "images"),
                        help="basins: the fraction of particles in each basin; mixture: weights of one Gaussian per "
                        "state fitted to the latents, which gives back to a state the particles whose noisy latents "
                        "spilled into a neighbour's basin, where the states are Gaussian enough; images: each state's "
                        "maximum-likelihood share of the particle images given the states' decoded volumes, poses "
                        "and CTFs (needs --run; the most accurate, docs/states.md) (default: images with --run, basins with --latents)")
    parser.add_argument("--bootstrap", type=positive_int, default=1000, help="resamplings of the particles for the intervals (default: %(default)s)")
    parser.add_argument("--confidence", type=probability, default=0.9, help="level of the intervals (default: %(default)s)")
    parser.add_argument("--temperature", type=positive_float, default=295.0,
                        help="kelvin, for dG in kcal/mol: the sample's temperature before vitrification (default: %(default)s)")
    parser.add_argument("--retrain", type=nonnegative_int, default=0, metavar="K",
                        help="also retrain the prior K times with other seeds and include that spread in the intervals (default: %(default)s)")
    parser.add_argument("--seed", type=seed, default=0, help="random seed of the starts and the bootstrap (default: %(default)s)")
    parser.add_argument("--maps", action="store_true", help="reconstruct each state from its particles (gold-standard halves) "
                                                           "and check its decoded volume against them; needs --run")
    parser.add_argument("--particles", help="with --maps or --populations images: the run's particle file, if it moved since training")
    parser.add_argument("--reg", type=positive_float, default=0.1,
                        help="with --maps: Wiener-style regulariser, fraction of the mean CTF² weight (default: %(default)s)")
    add_volume_args(parser)
    add_force_arg(parser)


def _table(states, population, intervals, temperature: float) -> list[dict]:
    from cryodiff.states import free_energies, kcal_per_mol

    dg = free_energies(population)
    rows = []
    for k in range(states.count):
        low_dg, high_dg = intervals["dG_kT"][k]
        rows.append({
            "state": k, "particles": int(np.sum(states.labels == k)),
            "population": float(population[k]), "basin_population": float(np.mean(states.labels == k)),
            "population_low": float(intervals["population"][k][0]), "population_high": float(intervals["population"][k][1]),
            "dG_kT": float(dg[k]), "dG_kT_low": float(low_dg), "dG_kT_high": float(high_dg),
            "dG_kcal_mol": float(kcal_per_mol(dg[k], temperature)),
            "dG_kcal_mol_low": float(kcal_per_mol(low_dg, temperature)),
            "dG_kcal_mol_high": float(kcal_per_mol(high_dg, temperature)),
            "mode": [float(v) for v in states.modes[k]],
        })
        if "sampling_population" in intervals:
            rows[-1].update(population_sampling_low=float(intervals["sampling_population"][k][0]),
                            population_sampling_high=float(intervals["sampling_population"][k][1]))
    return rows


def _write_outputs(folder, rows: list[dict], states, indices: np.ndarray, record: dict, mixture) -> None:
    import h5py

    with atomic_target(folder.file("states.json")) as tmp:
        tmp.write_text(json.dumps({**record, "states": rows}, indent=2) + "\n")
    with atomic_target(folder.file("states.csv")) as tmp, open(tmp, "w", newline="") as f:
        writer = csv.writer(f)
        columns = [key for key in rows[0] if key not in ("mode", "likeness")] if rows else ["state"]
        zdim = len(rows[0]["mode"]) if rows else 0
        writer.writerow(columns + [f"mode_z{i}" for i in range(zdim)])
        for row in rows:
            writer.writerow([f"{row[c]:.6g}" if isinstance(row[c], float) else row[c] for c in columns]
                            + [f"{v:.6g}" for v in row["mode"]])
    with atomic_target(folder.file("assignments.h5")) as tmp, h5py.File(tmp, "w") as h5:
        h5["indices"] = indices
        h5["state"] = states.labels.astype(np.int32)
        if record["populations_from"] == "images":
            from cryodiff.state_likelihood import responsibilities

            probability = np.zeros((len(states.labels), states.count), np.float32)
            probability[states.labels >= 0] = responsibilities(mixture)
            h5["probability"] = probability
        h5.attrs["unassigned"] = -1


def _retrained_states(args, prior, z: np.ndarray, k: int, bandwidth: float, inputs: list):
    """The states (at ``bandwidth``) under the prior retrained with seed ``k`` in STATES/priors/seedK,
    trained there with the prior's own settings unless a finished one for these latents is there."""
    from cryodiff.prior import load_prior, train_prior
    from cryodiff.states import find_states

    path = Path(args.outdir) / "priors" / f"seed{k}"
    again = None
    if (path / "prior.pt").is_file():
        again = load_prior(path)
        if again.settings.seed != k or again.info.get("n_latents") != len(z) or not np.allclose(again.std, prior.std):
            raise InputError(path, "holds a prior of other latents or another seed", "remove it, or write the states to another -o")
        log.info("retrained prior %d of %d: reusing %s", k, args.retrain, path)
    else:
        log.info("retraining the prior with seed %d (%d of %d) into %s", k, k, args.retrain, path)
        settings = prior.settings
        with output_folder(path, "states", kind="train-prior", inputs=inputs, force=args.force) as folder:
            for name in ("prior.json", "prior.pt", "checkpoint.pt", "log.jsonl"):
                folder.file(name)
            again = train_prior(z, folder.path, steps=settings.steps, batch_size=settings.batch_size, lr=settings.lr, seed=k,
                                formulation=settings.formulation, dp_epsilon=settings.dp_epsilon, dp_delta=settings.dp_delta,
                                source=str(args.run or args.latents), progress=True)
    return find_states(again, z, bandwidth=bandwidth, min_population=args.min_population, starts=args.starts, seed=args.seed)


def run(args) -> None:
    from cryodiff.commands.score_particles import particle_indices
    from cryodiff.plots import plot_states
    from cryodiff.states_report import write_summary
    from cryodiff.prior import load_prior, read_latents
    from cryodiff.state_likelihood import image_mixture
    from cryodiff.states import (bootstrap, find_states, fit_mixture, match_states, mixture_populations, populations,
                                 widen_to)

    prior = load_prior(args.prior)
    prior.require_denoiser("finding states")
    source = Path(args.run or args.latents)
    z = read_latents(source)
    if z.shape[1] != prior.zdim:
        raise InputError(source, f"the latents have zdim {z.shape[1]} but the prior's have zdim {prior.zdim}",
                         "give the latents the prior was trained on (or of the same VAE)")
    run_ = None
    if args.run:
        from recon.run import load_run

        run_ = load_run(args.run)
        if run_.zdim != prior.zdim:
            raise InputError(args.run, f"the VAE has zdim {run_.zdim} but the prior's latents have zdim {prior.zdim}",
                             "give the run whose latents the prior was trained on")
        check_box(args.box, run_)
    elif args.box or args.flip or args.invert or args.maps or args.populations == "images":
        raise InputError("-D/--flip/--invert/--maps/--populations images", "volumes, maps and image likelihoods "
                         "need the VAE of a run", "give --run RUN instead of --latents")
    if args.populations is None:
        args.populations = "images" if args.run else "basins"
    particles = None
    if args.maps or args.populations == "images":
        from cryodiff.selection import run_particles

        particles = run_particles(run_, args.particles)
    indices = particle_indices(source, len(z))
    inputs = [source / "latents.h5" if source.is_dir() else source, Path(args.prior) / "prior.pt"]
    if run_ is not None:
        inputs.append(run_.path / "checkpoint.pt")
    with output_folder(args.outdir, "states", kind="states", inputs=inputs, force=args.force) as folder:
        for name in ("states.json", "states.csv", "assignments.h5", "states.png", "summary.html"):
            folder.file(name)  # refused here, before any work, if another command's output holds the name
        with progress_bar(len(z), "assigning", unit="particle") as bar:
            states = find_states(prior, z, bandwidth=args.bandwidth, min_population=args.min_population,
                                 starts=args.starts, seed=args.seed, progress=bar.update)
        if states.count == 0:
            raise InputError(args.outdir, f"no state holds {args.min_population:g} of the particles at bandwidth "
                             f"{states.bandwidth:.3g}", "lower --min-population or raise --bandwidth")
        u = prior.standardise(z).numpy()

        likelihoods = _image_likelihoods(args, run_, particles, z, states) if args.populations == "images" else None

        def fit(labels):
            if likelihoods is not None:
                return image_mixture(likelihoods, labels)
            return fit_mixture(u, labels, states.count, seed=args.seed) if args.populations == "mixture" else None

        mixture = fit(states.labels)
        if args.populations == "mixture" and mixture is None:
            log.warning("the Gaussian mixture did not hold to the states (a state too small, or not Gaussian enough: "
                        "a Gaussian took over another state's particles): populations are the basin counts")
        population = mixture_populations(mixture, states.labels, states.count)
        label_sets, mixtures, retrained = [states.labels], [mixture], []
        for k in range(1, args.retrain + 1):
            other = _retrained_states(args, prior, z, k, states.bandwidth, inputs)
            label_sets.append(match_states(states, other, prior.std))
            mixtures.append(fit(label_sets[-1]))
            retrained.append({"seed": k, "states": other.count,
                              "population": mixture_populations(mixtures[-1], label_sets[-1], states.count).round(4).tolist()})
        with progress_bar(args.bootstrap, "bootstrap", unit="draw") as bar:
            intervals = bootstrap(np.stack(label_sets), states.count, mixtures=mixtures, draws=args.bootstrap,
                                  confidence=args.confidence, seed=args.seed, progress=bar.update)
        if likelihoods is not None and mixture is not None:
            intervals = widen_to(intervals, populations(states.labels, states.count))
        rows = _table(states, population, intervals, args.temperature)
        record = {"format": "cryodiff-states", "version": 1, "prior": str(args.prior), "latents": str(source),
                  "particles": len(z), "unassigned": int(np.sum(states.labels < 0)), "bandwidth": states.bandwidth,
                  "bandwidth_scan": states.scan, "min_population": args.min_population,
                  "populations_from": "basins" if mixture is None else args.populations,
                  "intervals_include": "particle sampling" + (" and the basin count" if "sampling_population" in intervals else ""),
                  "bootstrap": args.bootstrap,
                  "confidence": args.confidence, "temperature_K": args.temperature, "seed": args.seed,
                  "retrained_priors": retrained}
        images = ["states.png"]
        folder.remove(folder.owned("state_*.mrc") + folder.owned("state_fsc.png"))  # an earlier --maps run's
        if args.maps:
            _validate_maps(folder, run_, states, particles, rows, args.reg)
            images.append("state_fsc.png")
        _write_outputs(folder, rows, states, indices, record, mixture)
        plot_states(z, states.labels, states.modes, rows, folder.file("states.png"), args.confidence)
        with atomic_target(folder.file("summary.html")) as tmp:
            write_summary(tmp, rows, record, images)
        if run_ is not None:
            prepare_series(folder, states.modes)
            write_volumes(run_, [(folder, states.modes)], args, prior=prior)
    for row in rows:
        log.info("state %d: %d particles, population %.3f [%.3f, %.3f], dG %.2f kT [%.2f, %.2f] = %.2f kcal/mol at %g K",
                 row["state"], row["particles"], row["population"], row["population_low"], row["population_high"],
                 row["dG_kT"], row["dG_kT_low"], row["dG_kT_high"], row["dG_kcal_mol"], args.temperature)
    log.info("%d states at bandwidth %.3g; %d particles unassigned; table in %s", states.count, states.bandwidth,
             record["unassigned"], Path(args.outdir) / "states.csv")
    for row in rows:
        if row.get("decoded_supported") is False:
            log.warning("state %d: the decoded volume is not supported by its particles: it %s", row["state"], row["support_note"])


def _image_likelihoods(args, run_, particles, z: np.ndarray, states) -> np.ndarray:
    """``[N, K]`` log-likelihoods of each particle's image under each state's decoded volume."""
    from cryodiff.state_likelihood import noise_power, particles_as_trained, state_log_likelihoods

    data = particles_as_trained(run_, particles)
    power = noise_power(run_, data, z, seed=args.seed)
    with progress_bar(len(z), "image likelihoods", unit="particle") as bar:
        return state_log_likelihoods(run_, data, states.modes, power, progress=bar.update)


def _validate_maps(folder, run_, states, particles, rows: list[dict], reg: float) -> None:
    """Reconstruct each state, write its maps and state_fsc.png, and add the validation to ``rows``."""
    from cryodiff.plots import plot_state_fsc
    from cryodiff.state_maps import MIN_PARTICLES, validate_states
    from recon.io import write_volume

    decoded = np.stack([run_.volume(mode) for mode in states.modes])
    with progress_bar(int(np.sum(states.labels >= 0)), "reconstructing", unit="image") as bar:
        validations = validate_states(run_, states.labels, decoded, particles, reg=reg, progress=bar.update)
    for v, row in zip(validations, rows):
        if v is None:
            row.update(half_map_resolution_A=None, half_sets=None, agreement_resolution_A=None, likeness=None,
                       decoded_supported=None, support_note=f"fewer than {MIN_PARTICLES} particles: not reconstructed")
            continue
        for suffix, volume in (("map", v.map.volume), ("half1", v.map.half1), ("half2", v.map.half2)):
            write_volume(folder.file(f"state_{v.state:03d}_{suffix}.mrc"), volume, v.map.apix)
        agreement = v.resolution(v.agreement_frequency)
        row.update(half_map_resolution_A=v.resolution(v.half_frequency), half_sets=v.map.half_source,
                   agreement_resolution_A=agreement if np.isfinite(agreement) else None,
                   likeness=[round(float(x), 4) for x in v.likeness], decoded_supported=v.supported,
                   support_note=v.reason)
        log.info("state %d: %s; decoded volume agrees to %s (FSC 0.5)%s", v.state, v.map.describe(),
                 f"{agreement:.3g} Å" if np.isfinite(agreement) else "no frequency", "" if v.supported else ": NOT supported")
    plot_state_fsc([v for v in validations if v is not None], folder.file("state_fsc.png"))
