"""Options and writing of the volume series that eval-vol, analyze, traverse, sample and interpolate produce.

A series is a folder holding ``z.txt`` (one latent per row),
``vol_000.mrc, vol_001.mrc, ...`` (the volume at each row) and ChimeraX
scripts that open them as a series (:mod:`cryodiff.chimerax`), and
``support.csv``: how well the particles support each latent (:mod:`cryodiff.support`;
a warning names each volume outside the data), written through
the folder's output policy (:mod:`cryodiff.output_folder`): volumes this
command wrote there for other latents are removed first, and nothing else is.
"""

from __future__ import annotations

import logging

import numpy as np

from cryodiff.cli.types import even_box
from cryodiff.commands._common import progress_bar
from cryodiff.output_folder import OutputFolder
from cryodiff.outputs import write_chimerax_scripts
from recon.errors import InputError

log = logging.getLogger("cryodiff.volumes")


def add_volume_args(parser) -> None:
    """Options of the volumes a series holds."""
    parser.add_argument("-D", "--box", "-d", "--downsample", type=even_box, help="evaluate volumes on a smaller box (even, pixels); pixel size grows by D/box")
    parser.add_argument("--flip", action="store_true", help="mirror the volumes (the other hand)")
    parser.add_argument("--invert", action="store_true", help="negate the volumes")


def add_prior_arg(parser) -> None:
    """``--prior`` of commands that decode a run's latents without needing a prior."""
    parser.add_argument("--prior", help="diffusion prior of the run's latents: adds its log-density to each volume's support score "
                                        "(default: RUN/prior or RUN/../prior when it was trained on these latents)")


def support_prior(args, run_):
    """The prior of ``--prior``, else the one trained on ``run_``'s latents beside it, else None."""
    from cryodiff.prior import load_prior, matching_prior

    if getattr(args, "prior", None):
        prior = load_prior(args.prior)
        if prior.zdim != run_.zdim:
            raise InputError(args.prior, f"the prior's latents have zdim {prior.zdim} but the VAE's have {run_.zdim}",
                             "give the prior trained on this run's latents")
        return prior
    found = matching_prior(run_.path, run_.latents()) if run_.z_mu is not None else None
    return load_prior(found) if found is not None else None


def check_box(box: int | None, run_) -> None:
    if box is not None and not 8 <= box <= run_.box:
        raise InputError("-D", f"box {box} is not an even size between 8 and {run_.box}", "choose a smaller even box")


def write_volumes(run_, jobs: list[tuple[OutputFolder, np.ndarray]], args, prefix: str = "vol_", prior=None,
                  support_file: str = "support.csv") -> None:
    """Write ``prefix000.mrc ...`` in each job's folder for its latents ``z [M, zdim]`` (one progress bar for all),
    and ``support_file`` scoring each latent against the run's particle latents and ``prior`` (if given)."""
    from recon.io import write_volume

    apix = run_.apix_at(args.box)
    with progress_bar(sum(len(z) for _, z in jobs), "volumes", unit="vol") as bar:
        for folder, z in jobs:
            for i, zi in enumerate(z):
                volume = run_.volume(zi, args.box, flip=args.flip, invert=args.invert)
                write_volume(folder.file(f"{prefix}{i:03d}.mrc"), volume, apix)
                if i == 0:
                    write_chimerax_scripts(folder, len(z), volume, f"cryodiff {folder.command}: volumes of {run_.path.name}", prefix)
                bar.update()
    log.info("volumes at %.4g Å/px, box %d", apix, args.box or run_.box)
    write_support(run_, jobs, prefix, prior, support_file)


def write_support(run_, jobs: list[tuple[OutputFolder, np.ndarray]], prefix: str, prior, support_file: str) -> None:
    """``support_file`` in each job's folder (:func:`cryodiff.support.write_support_csv`); one warning per
    volume the particles do not support. Skipped, with a note, for a run without latents."""
    from cryodiff.support import score, support_reference, write_support_csv
    from recon.files import atomic_target

    if run_.z_mu is None or len(run_.z_mu) < 2:
        log.info("no support scores: the run has no particle latents to compare the volumes with")
        return
    reference = support_reference(run_.latents(), prior)
    for folder, z in jobs:
        support = score(reference, z)
        names = [f"{prefix}{i:03d}.mrc" for i in range(len(z))]
        with atomic_target(folder.file(support_file)) as tmp:
            write_support_csv(tmp, support, names)
        for i in np.flatnonzero(~support.supported):
            log.warning("%s: outside the particles' support (%s): the decoder's extrapolation, not a state the data show",
                        folder.path / names[i], support.describe(i))
        log.info("%d of %d volumes supported by the particles (%s)", support.supported.sum(), len(z), folder.path / support_file)
