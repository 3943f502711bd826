"""The one exception type for mistakes in what a user hands us.

Every reader and command raises :class:`InputError` for bad input (a missing
file, a wrong field, inconsistent metadata). The message always names the file,
the problem and the fix, so the command line can print it as a single line and
exit with status 2 instead of showing a traceback.
"""

from __future__ import annotations

import os


class InputError(Exception):
    """A user-facing input problem.

    Parameters
    ----------
    path
        The file (or directory, or option) the problem is in.
    problem
        What is wrong, naming the field or column where there is one.
    fix
        What the user can do about it.
    """

    def __init__(self, path: str | os.PathLike | None, problem: str, fix: str):
        self.path = None if path is None else os.fspath(path)
        self.problem = problem
        self.fix = fix
        where = f"{self.path}: " if self.path else ""
        super().__init__(f"{where}{problem}. Fix: {fix}")


class TrainingDiverged(Exception):
    """Training produced a non-finite loss; the message names the epoch and the
    last good checkpoint to resume from (with other settings)."""
