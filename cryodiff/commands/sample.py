"""Sample latents (and optionally volumes) from a trained diffusion prior.

Writes -o (.txt, one latent per row, or .npy) with N latents in the units of
the VAE's latent space, drawn with --solver over --steps intervals (the
solvers of each formulation are listed at the end). The same --seed gives the
same latents.

--compare-gaussian also writes N draws of the VAE's own prior N(0, I) (the
usual way to sample a VAE) to the same name with .gaussian before the
suffix (samples.gaussian.txt), for contrast.

--volumes DIR --run RUN decodes each latent with the VAE of RUN (a cryodiff
or imported cryoDRGN run whose zdim matches the prior) and writes
DIR/vol_000.mrc, vol_001.mrc, ... in the order of the rows of -o; with
--compare-gaussian the Gaussian latents' volumes go to DIR/gaussian/.
"""

from __future__ import annotations

import contextlib
import logging
from pathlib import Path

from cryodiff.cli.types import count, positive_int, seed
from cryodiff.commands._common import add_force_arg, output_file, progress_bar
from cryodiff.commands._volumes import add_volume_args, check_box, write_volumes
from cryodiff.output_folder import output_files, output_folder
from cryodiff.outputs import prepare_series, save_array
from recon.errors import InputError

HELP = "sample latents and volumes from a trained diffusion prior"
log = logging.getLogger("cryodiff.sample")


def _solvers_epilog() -> str:
    from cryodiff.prior_formulations import solver_table

    return "solvers by the prior's formulation (default first; default steps, network evaluations per step):\n" + solver_table()


def add_args(parser):
    parser.late_epilog = _solvers_epilog
    parser.add_argument("prior", help="prior directory written by cryodiff train-prior")
    parser.add_argument("-n", type=count(10**7, "latents per call (write several files instead)"), required=True, help="number of latents")
    parser.add_argument("-o", "--output", required=True, help="latents file (.txt or .npy)")
    parser.add_argument("--solver", help="solver (default: the prior's first; see above)")
    parser.add_argument("--steps", type=positive_int, help="solver steps (default: per solver)")
    parser.add_argument("--seed", type=seed, default=0, help="random seed (default: %(default)s)")
    parser.add_argument("--condition", metavar="NAME", help="a conditional prior's condition (default: all conditions together)")
    parser.add_argument("--compare-gaussian", action="store_true", help="also write N(0, I) latents to <output>.gaussian.<suffix>")
    parser.add_argument("--volumes", metavar="DIR", help="write the volumes of the latents here (needs --run)")
    parser.add_argument("--run", help="VAE run whose decoder makes the volumes")
    add_volume_args(parser)
    add_force_arg(parser)


def _load_run(args, zdim: int):
    """The VAE of --run, checked against the prior's zdim and -D, or None without --volumes."""
    from recon.run import load_run

    if args.volumes is None:
        if args.run is not None:
            raise InputError("--run", "--run given without --volumes", "add --volumes DIR to write volumes")
        return None
    if args.run is None:
        raise InputError("--volumes", "volumes need the VAE that decodes the latents", "add --run RUN")
    run_ = load_run(args.run)
    if run_.zdim != zdim:
        raise InputError(args.run, f"the VAE has zdim {run_.zdim} but the prior's latents have zdim {zdim}", "give the run whose latents the prior was trained on")
    check_box(args.box, run_)
    return run_


def run(args) -> None:
    from cryodiff.prior import load_prior

    out = output_file(args.output, (".txt", ".npy"))
    prior = load_prior(args.prior)
    prior.cond(args.condition)  # an unknown condition or solver is refused before anything is written
    prior.resolve(args.solver, args.steps)
    run_ = _load_run(args, prior.zdim)
    files = [out] + ([out.with_name(f"{out.stem}.gaussian{out.suffix}")] if args.compare_gaussian else [])
    inputs = [Path(args.prior) / "prior.json", Path(args.prior) / "prior.pt"]
    names = [""] + (["gaussian"] if args.compare_gaussian else [])
    with contextlib.ExitStack() as stack:
        # every output is checked before anything is sampled or written
        stack.enter_context(output_files(files, "sample", inputs=inputs, force=args.force))
        folders = [] if run_ is None else [
            stack.enter_context(output_folder(Path(args.volumes) / name, "sample", kind="sample",
                                              inputs=inputs + [run_.path / "checkpoint.pt"], force=args.force))
            for name in names]
        with progress_bar(args.n, "sampling", unit="latent") as bar:
            latents = {"": prior.sample(args.n, solver=args.solver, steps=args.steps, seed=args.seed, progress=bar.update,
                                        condition=args.condition)}
        if args.compare_gaussian:
            latents["gaussian"] = prior.gaussian(args.n, seed=args.seed)
        for path, values in zip(files, latents.values()):
            save_array(path, values)
        log.info("wrote %d latents to %s", args.n, out)
        if folders:
            jobs = [(folder, z) for folder, z in zip(folders, latents.values())]
            for folder, z in jobs:
                prepare_series(folder, z)
            write_volumes(run_, jobs, args, prior=prior)
