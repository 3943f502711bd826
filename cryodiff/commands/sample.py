"""Sample latents (and optionally volumes) from a trained diffusion prior.

Writes -o (.txt, one latent per row, or .npy) with N latents in the units of
the VAE's latent space, drawn with --solver over --steps intervals. Solvers
(default first, default steps in brackets) by the prior's formulation:

    edm   dpmpp_2m (25), heun (18), euler (50), ddim (50), genie (12)
    flow  flow_heun (8), flow_euler (50), dpmpp_2m, heun, euler, ddim
    cld   sscs (100), euler_maruyama (400)

("dpmpp" and "em" are short for dpmpp_2m and euler_maruyama). The same --seed
gives the same latents.

--compare-gaussian also writes N draws of the VAE's own prior N(0, I) (the
usual way to sample a VAE) to the same name with .gaussian before the
suffix (samples.gaussian.txt), for contrast.

--volumes DIR --run RUN decodes each latent with the VAE of RUN (a cryodiff
or imported cryoDRGN run whose zdim matches the prior) and writes
DIR/vol_000.mrc, vol_001.mrc, ... in the order of the rows of -o; with
--compare-gaussian the Gaussian latents' volumes go to DIR/gaussian/.
"""

from __future__ import annotations

import logging
from pathlib import Path

from cryodiff.commands._common import output_file
from cryodiff.commands.analyze import add_volume_args, check_box, clear_stale_volumes, save_array, write_volumes
from recon.errors import InputError

HELP = "sample latents and volumes from a trained diffusion prior"
log = logging.getLogger("cryodiff.sample")


def add_args(parser):
    parser.add_argument("prior", help="prior directory written by cryodiff train-prior")
    parser.add_argument("-n", type=int, required=True, help="number of latents")
    parser.add_argument("-o", "--output", required=True, help="latents file (.txt or .npy)")
    parser.add_argument("--solver", help="solver (default: the prior's first; see above)")
    parser.add_argument("--steps", type=int, help="solver steps (default: per solver)")
    parser.add_argument("--seed", type=int, default=0, help="random seed (default: %(default)s)")
    parser.add_argument("--compare-gaussian", action="store_true", help="also write N(0, I) latents to <output>.gaussian.<suffix>")
    parser.add_argument("--volumes", metavar="DIR", help="write the volumes of the latents here (needs --run)")
    parser.add_argument("--run", help="VAE run whose decoder makes the volumes")
    add_volume_args(parser)


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

    if args.n < 1:
        raise InputError("-n", f"{args.n} samples", "use -n 1 or more")
    out = output_file(args.output, (".txt", ".npy"))
    prior = load_prior(args.prior)
    run_ = _load_run(args, prior.zdim)
    z = prior.sample(args.n, solver=args.solver, steps=args.steps, seed=args.seed)
    save_array(out, z)
    latents = {"": z}
    if args.compare_gaussian:
        latents["gaussian"] = prior.gaussian(args.n, seed=args.seed)
        save_array(out.with_name(f"{out.stem}.gaussian{out.suffix}"), latents["gaussian"])
    log.info("wrote %d latents to %s", args.n, out)
    if run_ is not None:
        _write_volumes(run_, Path(args.volumes), latents, args)


def _write_volumes(run_, root: Path, latents: dict, args) -> None:
    """Volumes of each set of latents in ``root/<name>`` with its ``z.txt`` (rows in volume order)."""
    jobs = [(root / name, z) for name, z in latents.items()]
    for folder, z in jobs:
        folder.mkdir(parents=True, exist_ok=True)
        clear_stale_volumes(folder, folder / "z.txt", z)
        save_array(folder / "z.txt", z)
    write_volumes(run_, jobs, args)
