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
import difflib
import errno
import importlib
import logging
import sys

from cryodiff import __version__
from cryodiff.threads import prepare_environment
from recon.errors import InputError

#: What to do about the storage errors a user can meet (full disk, read-only or foreign folder).
_STORAGE_FIXES = {
    errno.ENOSPC: "free space on that disk, or write to another one; a training run continues with --resume",
    errno.EDQUOT: "free space within your quota, or write elsewhere; a training run continues with --resume",
    errno.EROFS: "the file system is read-only: choose an output folder on a writable disk",
    errno.EACCES: "you may not write or read there: choose another folder, or change its permissions",
    errno.EPERM: "you may not write or read there: choose another folder, or change its permissions",
}

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
    "export-cryodrgn": "export_cryodrgn",
    "analyze": "analyze",
    "traverse": "traverse",
    "select": "select",
    "train-prior": "train_prior",
    "sample": "sample",
    "interpolate": "interpolate",
    "score-particles": "score_particles",
    "states": "states",
    "compare": "compare",
    "movie": "movie",
}


class _Parser(argparse.ArgumentParser):
    """argparse with cryodiff's error style: a bad option value is one line naming the option
    and the fix; a missing or unknown argument also shows the command's usage. A command may set
    ``late_epilog``, a function returning the text after the options, called only when the help
    is shown (so building the parser imports no heavy module)."""

    late_epilog = None

    def format_help(self):
        if self.late_epilog is not None:
            self.epilog = self.late_epilog()
        return super().format_help()

    def error(self, message: str):
        if message.startswith(("unrecognized arguments", "the following arguments are required")) or "invalid choice" in message:
            self.print_usage(sys.stderr)
        end = "" if message.endswith("?") else "."
        self.exit(2, f"{self.prog}: error: {message}{end} Fix: see {self.prog} --help\n")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="cryodiff",
        description="Learn and explore the landscape of shapes of a flexible molecule from cryo-EM particles.",
    )
    parser.add_argument("--debug", action="store_true", help="show full tracebacks on errors")
    parser.add_argument("-v", "--verbose", action="store_true", help="log debug messages")
    parser.add_argument("--version", action="version", version=f"cryodiff {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", title="commands", parser_class=_Parser)
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
        p.set_defaults(handler=module.run, subparser=p)
    return parser


def suggestion(unknown: str, parser: argparse.ArgumentParser) -> str:
    """``"; did you mean --apix?"`` for the option of ``parser`` closest to ``unknown``, or ``""``."""
    if not unknown.startswith("-"):
        return ""
    name = unknown.split("=", 1)[0]
    options = [o for action in parser._actions for o in action.option_strings]  # argparse has no public list
    same_but_case = [o for o in options if o.lower() == name.lower()]
    close = same_but_case or difflib.get_close_matches(name, options, n=1, cutoff=0.6)
    return f"; did you mean {close[0]}?" if close else ""


def parse(parser: argparse.ArgumentParser, argv: list[str] | None) -> argparse.Namespace:
    """Parse ``argv``; an unknown option is answered with the subcommand's usage (not the
    top-level one) and the closest option it has."""
    args, unknown = parser.parse_known_args(argv)
    if unknown:
        sub = getattr(args, "subparser", parser)
        sub.error(f"unrecognized arguments: {' '.join(unknown)}{suggestion(unknown[0], sub)}")
    return args


def main(argv: list[str] | None = None) -> int:
    """Run one cryodiff command; the return value is the exit code (0 done, 2 bad input, 130
    interrupted). A process of a torchrun group ends here instead of returning (see
    :func:`recon.distributed.end_process`)."""
    code = _run(argv)
    distributed = sys.modules.get("recon.distributed")  # loaded by the commands that can run under torchrun
    if distributed is not None:
        distributed.end_process(code)
    return code


def _run(argv: list[str] | None) -> int:
    prepare_environment()  # before anything imports torch: OpenMP reads it once, when it loads
    parser = build_parser()
    try:
        args = parse(parser, argv)
    except SystemExit as done:  # --help, or a usage error already printed: a return code, for callers of main()
        return int(done.code or 0)
    if args.command is None:
        parser.print_usage(sys.stderr)
        print("cryodiff: error: no command given. Fix: name a command (cryodiff --help lists them; cryodiff demo is a "
              "first tour)", file=sys.stderr)
        return 2
    level = logging.DEBUG if args.verbose else logging.INFO
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(message)s", datefmt="%Y-%m-%d %H:%M:%S")
    logging.getLogger().setLevel(level)  # also when a host (a notebook, pytest) configured logging first
    handlers = list(logging.getLogger().handlers)
    try:
        _threads(args)
        args.handler(args)
    except InputError as err:
        if args.debug:
            raise
        print(f"cryodiff {args.command}: error: {err}", file=sys.stderr)
        return 2
    except OSError as err:
        if args.debug or err.filename is None:
            raise
        fix = _STORAGE_FIXES.get(err.errno, "check the path, and that you may read and write there")
        print(f"cryodiff {args.command}: error: {err.filename}: {err.strerror}. Fix: {fix}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"cryodiff {args.command}: interrupted", file=sys.stderr)
        return 130
    finally:
        for handler in set(logging.getLogger().handlers) - set(handlers):  # a command's log file (run.log)
            logging.getLogger().removeHandler(handler)
            handler.close()
    return 0


def _threads(args: argparse.Namespace) -> None:
    """Set torch's CPU threads: the command's --threads, else every CPU this process may use."""
    from cryodiff.threads import configure_threads

    try:
        used = configure_threads(getattr(args, "threads", None))
    except ValueError as err:
        raise InputError("--threads", str(err), "give --threads 1 or more, or leave it out for the default") from None
    logging.getLogger("cryodiff").debug("using %d CPU threads", used)


if __name__ == "__main__":
    sys.exit(main())
