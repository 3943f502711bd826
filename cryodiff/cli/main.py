"""Entry point of the ``cryodiff`` command.

Each command lives in its own module under :mod:`cryodiff.commands` and
provides ``HELP`` (one line), ``add_args(parser)`` and ``run(args)``.
cryoDRGN-style underscore spellings (``train_vae``) are accepted for every
hyphenated command name.

Mistakes in the user's input (:class:`recon.errors.InputError`) print one
line naming the file, the problem and the fix, and exit with status 2; pass
``--debug`` to see the traceback instead.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys

from recon.errors import InputError

#: Command name -> module in cryodiff.commands, in the order ``--help`` lists them.
COMMANDS = {
    "demo": "demo",
    "simulate": "simulate",
    "downsample": "downsample",
    "backproject": "backproject",
    "fsc": "fsc",
    "train-vae": "train_vae",
    "eval-vol": "eval_vol",
    "import-cryodrgn": "import_cryodrgn",
    "analyze": "analyze",
    "traverse": "traverse",
    "select": "select",
    "train-prior": "train_prior",
    "sample": "sample",
    "interpolate": "interpolate",
    "score-particles": "score_particles",
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="cryodiff",
        description="Learn and explore the landscape of shapes of a flexible molecule from cryo-EM particles.",
    )
    parser.add_argument("--debug", action="store_true", help="show full tracebacks on errors")
    parser.add_argument("-v", "--verbose", action="store_true", help="log debug messages")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", title="commands")
    for name, module_name in COMMANDS.items():
        module = importlib.import_module(f"cryodiff.commands.{module_name}")
        aliases = [name.replace("-", "_")] if "-" in name else []
        p = sub.add_parser(
            name,
            aliases=aliases,
            help=module.HELP,
            description=module.__doc__,
            formatter_class=argparse.RawDescriptionHelpFormatter,
        )
        module.add_args(p)
        p.set_defaults(handler=module.run)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 2
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(message)s",
        datefmt="%Y-%m-%d %H:%M:%S",
    )
    try:
        args.handler(args)
    except InputError as err:
        if args.debug:
            raise
        print(f"cryodiff {args.command}: error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"cryodiff {args.command}: interrupted", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
