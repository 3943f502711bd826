"""Helpers shared by commands: progress bars, output paths, particle options."""

from __future__ import annotations

import argparse
from pathlib import Path

from tqdm import tqdm

from cryodiff.cli.types import fraction, positive_float, positive_int
from recon.errors import InputError


def progress_bar(total: int, desc: str, unit: str = "img") -> tqdm:
    """A progress bar on stderr showing items/s."""
    return tqdm(total=total, desc=desc, unit=unit, dynamic_ncols=True, mininterval=0.5)


def log_to_file(path: Path) -> None:
    """Also write the log lines (INFO and above, with times) to ``path``, appending: a
    human-readable record of a run beside its outputs, as cryoDRGN's run.log."""
    import logging

    handler = logging.FileHandler(path, encoding="utf-8")
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s", "%Y-%m-%d %H:%M:%S"))
    handler.setLevel(logging.INFO)
    logging.getLogger().addHandler(handler)


def output_file(path: str, suffixes: tuple[str, ...], option: str = "-o") -> Path:
    """Check an output file's suffix (where and whether it may be written is the output
    policy's business: :mod:`cryodiff.output_folder`)."""
    out = Path(path)
    if out.suffix.lower() not in suffixes:
        raise InputError(out, f"{option} must end with {' or '.join(suffixes)}", f"rename it, e.g. {out.with_suffix(suffixes[0]).name}")
    return out


def add_force_arg(parser: argparse.ArgumentParser) -> None:
    """``--force``: the one way past the output policy's refusals (inputs and other commands' files stay protected)."""
    parser.add_argument(
        "--force", action="store_true",
        help="write into a folder that holds files cryodiff did not write, or replace an output file that exists "
        "(never an input, never a file of another cryodiff command's output folder)",
    )


def particle_inputs(args: argparse.Namespace, images=None) -> list[Path]:
    """The files a particle-reading command reads: particle file, pose/CTF pickles, index file
    and (when opened) the image stacks of ``images`` (an ImageStack); outputs may never be
    written onto them."""
    given = [getattr(args, name, None) for name in ("particles", "poses", "ctf", "ind")]
    stacks = [] if images is None else images.files
    return [Path(p) for p in given if p] + list(stacks)


def add_particle_args(parser: argparse.ArgumentParser, batch_default: int = 256) -> None:
    """Options every command reading particles shares (cryoDRGN names)."""
    parser.add_argument("particles", help="particles: .star (RELION), .cs (cryoSPARC), .mrcs stack or .txt list of stacks")
    parser.add_argument("--datadir", help="folder with the stacks that a .star/.cs refers to (default: beside the file)")
    parser.add_argument("--poses", help="cryoDRGN pose.pkl to use instead of the poses in the particle file")
    parser.add_argument("--ctf", help="cryoDRGN ctf.pkl to use instead of the CTF in the particle file")
    parser.add_argument("--ind", help="indices of the particles to use (.npy, .txt or cryoDRGN .pkl), 0-based")
    parser.add_argument("--apix", "--Apix", type=positive_float, help="pixel size in Å, for files that lack it (RELION 3.0 without optics)")
    parser.add_argument("-w", "--amplitude-contrast", type=fraction, help="amplitude contrast, for files that lack it")
    parser.add_argument(
        "--uninvert-data",
        dest="invert",
        action="store_false",
        help="do not multiply images by -1 (by default they are, as in cryoDRGN)",
    )
    parser.add_argument("-b", "--batch-size", type=positive_int, default=batch_default, help="images per batch (default: %(default)s)")


def load_particles(args: argparse.Namespace):
    """Open the particles named on the command line; returns ``(particles, indices)``.

    ``indices`` are the 0-based particles selected by ``--ind`` (all if absent).
    """
    from recon.io import read_particles
    from recon.io.indices import selected_indices

    particles = read_particles(
        args.particles,
        datadir=args.datadir,
        poses=args.poses,
        ctf=args.ctf,
        apix=args.apix,
        amplitude_contrast=args.amplitude_contrast,
    )
    return particles, selected_indices(args.ind, len(particles))


def batches(images, indices, batch_size: int, bar=None):
    """Yield ``(indices, images)`` batches read lazily from an image stack."""
    for start in range(0, len(indices), batch_size):
        idx = indices[start : start + batch_size]
        yield idx, images[idx]
        if bar is not None:
            bar.update(len(idx))
