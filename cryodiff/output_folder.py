"""Where a command may write, and what it may delete: one policy for every command.

Every folder a cryodiff command writes into holds a small manifest,
``.cryodiff-outputs.json``, naming the files cryodiff wrote there and which
command wrote each. A folder that is one command's own output (a VAE run, a
prior, an analysis, a folder of volumes) also records that command as its
``kind``. From that record follow the rules (each refusal is one line naming
the path and the fix, exit status 2):

* An input of the command is never written onto.
* A dedicated folder is refused when it holds another kind of cryodiff output,
  or files cryodiff did not write, unless ``force``; even with ``force`` a file
  that another command recorded is never replaced.
* A single output file that exists is replaced only if this command wrote it
  before (or with ``force``), and never when another command's dedicated
  folder recorded it (``score-particles -o RUN/latents.h5`` is refused).
* Only files recorded as this command's own are deleted, never through a
  symbolic link, and never outside the folder.
* A lock (``.cryodiff.lock``, released by the kernel if the process dies) keeps
  two processes from writing one folder; temporary files that a killed
  process left behind are removed when the folder is taken again.

Files are still written atomically (:func:`recon.files.atomic_target`); this
module only decides whether and where.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import os
import re
import shutil
from collections.abc import Iterable, Iterator
from pathlib import Path

from recon.errors import InputError
from recon.files import atomic_target

MANIFEST = ".cryodiff-outputs.json"
LOCK = ".cryodiff.lock"
#: What :func:`recon.files.atomic_target` names its temporary files.
_TEMPORARY = re.compile(r"\..+\.[0-9a-f]{32}\.tmp|\.(ckpt|log)-\w+\.tmp")
#: Files cryodiff keeps in any folder it writes to; never outputs, never refused.
_OWN = {MANIFEST, LOCK}
#: Files that mark a folder as one command's output, for folders written before cryodiff kept
#: records: such a folder is protected like a recorded one (a run's config.json and weights,
#: a prior's prior.json, a simulation's truth.h5, the demo's record).
_EARLIER_OUTPUTS = {"config.json": "train-vae", "prior.json": "train-prior", "truth.h5": "simulate", "demo.json": "demo"}


def _same_file(a: Path, b: Path) -> bool:
    try:
        return a.exists() and b.exists() and os.path.samefile(a, b)
    except OSError:
        return False


def _read_manifest(folder: Path) -> dict:
    path = folder / MANIFEST
    if path.is_symlink():
        raise InputError(path, "is a symbolic link", "remove the link; cryodiff keeps its record of outputs as a plain file")
    try:
        record = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return {"kind": None, "files": {}}
    except (OSError, ValueError, UnicodeDecodeError):
        raise InputError(path, "the record of cryodiff's outputs in this folder is unreadable", "delete it if the folder holds nothing of value, or choose another folder") from None
    if not isinstance(record, dict) or not isinstance(record.get("files"), dict):
        raise InputError(path, "is not a record cryodiff wrote", "delete it, or choose another folder")
    return {"kind": record.get("kind"), "files": {str(k): str(v) for k, v in record["files"].items()}}


class OutputFolder:
    """A folder this command writes into, locked while the command runs (see module doc).

    ``kind`` is the command's name when the folder is its own output, ``None``
    when the command only adds files to a folder it shares (e.g. ``-o map.mrc``).
    """

    def __init__(self, path: str | os.PathLike, command: str, *, kind: str | None, inputs: Iterable = (), force: bool = False,
                 marker: str | None = None):
        self.path = Path(path)
        self.command, self.kind, self.force, self.marker = command, kind, force, marker
        self.inputs = [Path(p) for p in inputs if p]
        self.written: dict[str, str] = {}
        self._lock_fd: int | None = None
        self._recorded = False
        self._entries_at_open: set[str] = set()
        self.record: dict = {"kind": None, "files": {}}

    # ------------------------------------------------------------ opening
    def open(self) -> OutputFolder:
        if self.path.exists() and not self.path.is_dir():
            raise InputError(self.path, "is a file, not a folder", "give a folder for the output (a new name is created)")
        if self.kind is not None and self.path.is_symlink():
            raise InputError(self.path, "is a symbolic link", "give the folder it points to, or a new folder; cryodiff does not write through links")
        for given in self.inputs:
            if _same_file(self.path, given):
                raise InputError(self.path, "is one of this command's inputs", "write the output to another folder")
        try:
            self.path.mkdir(parents=True, exist_ok=True)
        except OSError as err:
            raise InputError(self.path, f"cannot create the folder ({err.strerror})", "choose a folder you can write to") from None
        created_lock = self._lock()
        try:
            self.record = _read_manifest(self.path)
            self._recorded = (self.path / MANIFEST).is_file()
            self._entries_at_open = {p.name for p in self.path.iterdir()}
            if self.record["kind"] is None and not self.record["files"]:
                self.record["kind"] = self._earlier_kind()
            if self.kind is not None:
                self._check_dedicated()
            self._remove_temporaries()
        except BaseException:
            if created_lock:  # leave a refused folder as it was
                (self.path / LOCK).unlink(missing_ok=True)
            self.close()
            raise
        return self

    def _earlier_kind(self) -> str | None:
        """The command whose output this unrecorded folder is, judged by its marker files
        (this command's own ``marker`` first: such a folder is adopted as its own)."""
        if self.kind is not None and self.marker and (self.path / self.marker).is_file():
            return self.kind
        return next((kind for name, kind in _EARLIER_OUTPUTS.items() if (self.path / name).is_file()), None)

    def _lock(self) -> bool:
        """Take the folder's lock; True when this call created the lock file."""
        lock = self.path / LOCK
        existed = lock.exists()
        try:
            fd = os.open(lock, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW, 0o644)
        except OSError as err:
            raise InputError(self.path, f"cannot write here ({err.strerror})", "choose a folder you can write to") from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise InputError(self.path, "another cryodiff process is writing to this folder", "wait for it to finish, or choose another folder") from None
        self._lock_fd = fd
        return not existed

    def _check_dedicated(self) -> None:
        kind = self.record["kind"]
        if kind is not None and kind != self.kind and not self.force:
            raise InputError(self.path, f"holds the output of cryodiff {kind}, not of {self.kind}",
                             "choose another folder (nothing here was changed)")
        foreign = sorted(p.name for p in self.path.iterdir()
                         if p.name not in _OWN and not _TEMPORARY.fullmatch(p.name) and p.name not in self.record["files"]
                         and not self._known_subfolder(p))
        if kind is None and foreign and not self.force:
            raise InputError(self.path, f"holds files cryodiff did not write ({', '.join(foreign[:3])}{', ...' if len(foreign) > 3 else ''})",
                             "choose a new or empty folder, or pass --force to write beside them")

    def _known_subfolder(self, entry: Path) -> bool:
        """A subfolder that is cryodiff's own output (e.g. RUN/analyze), not a user's file."""
        return entry.is_dir() and not entry.is_symlink() and (entry / MANIFEST).is_file()

    def _remove_temporaries(self) -> None:
        for entry in self.path.iterdir():
            if _TEMPORARY.fullmatch(entry.name) and entry.is_file() and not entry.is_symlink():
                entry.unlink(missing_ok=True)

    # ------------------------------------------------------------ files
    def file(self, name: str) -> Path:
        """The path to write ``name`` (relative, in this folder), after checking that this
        command may write it; the file is recorded as this command's output."""
        target = self.path / name
        if target.parent != self.path:
            raise ValueError(f"{name!r} is not a plain file name in {self.path}")
        for given in self.inputs:
            if _same_file(target, given):
                raise InputError(target, "is one of this command's inputs", "write the output under another name")
        if target.is_symlink():
            raise InputError(target, "is a symbolic link", "remove the link or choose another name; cryodiff does not write through links")
        kind = self.record["kind"]
        owner = self.record["files"].get(name) or kind  # in a dedicated folder, an unrecorded file is its kind's
        if target.exists() and owner != self.command and name not in self.written:
            if owner is not None and owner == kind:
                raise InputError(target, f"belongs to the cryodiff {owner} output in this folder", "write to another file name or folder")
            if not self.force:
                who = f"cryodiff {owner}" if owner else "something other than cryodiff"
                raise InputError(target, f"already exists and was written by {who}", "choose another name, or pass --force to replace it")
        self.written[name] = self.command
        return target

    def owned(self, pattern: str = "*") -> list[Path]:
        """Files in this folder matching ``pattern`` that this command recorded as its own."""
        return sorted(self.path / n for n, c in self.record["files"].items()
                      if c == self.command and Path(n).match(pattern))

    def remove(self, paths: Iterable[Path]) -> None:
        """Delete ``paths`` that this command recorded as its own (others are left alone)."""
        mine = {n for n, c in self.record["files"].items() if c == self.command}
        for path in paths:
            path = Path(path)
            if path.parent != self.path or path.name not in mine or path.is_symlink():
                continue
            path.unlink(missing_ok=True)
            self.record["files"].pop(path.name, None)
            self.written.pop(path.name, None)

    def append_text(self, name: str, text: str) -> None:
        """Append ``text`` to ``name`` (e.g. a log), refusing to follow a symbolic link."""
        target = self.file(name)
        fd = os.open(target, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_NOFOLLOW, 0o644)
        with os.fdopen(fd, "a", encoding="utf-8") as fh:
            fh.write(text)

    # ------------------------------------------------------------ closing
    def changed(self) -> bool:
        """Whether this command wrote anything here (a refused command leaves no record behind)."""
        return any((self.path / n).exists() for n in self.written) or self._recorded or {p.name for p in self.path.iterdir()} - _OWN != self._entries_at_open - _OWN

    def save(self) -> None:
        """Write the manifest: this folder's kind and every file recorded so far (in a folder that is
        this command's own output, also the files its library code wrote there directly)."""
        if not self.changed():
            return
        files = self.record["files"] | self.written
        kind = self.record["kind"] or self.kind
        if kind == self.command:
            for entry in self.path.iterdir():
                plain = entry.is_file() and not entry.is_symlink()
                new = entry.name not in self._entries_at_open  # never adopt a file that was here before
                if plain and new and entry.name not in _OWN and not _TEMPORARY.fullmatch(entry.name):
                    files.setdefault(entry.name, self.command)
        files = {n: c for n, c in files.items() if (self.path / n).exists()}
        self.record = {"kind": kind, "files": files}
        with atomic_target(self.path / MANIFEST) as tmp:
            tmp.write_text(json.dumps({"format": "cryodiff-outputs/1", **self.record}, indent=1, sort_keys=True), encoding="utf-8")

    def close(self) -> None:
        if self._lock_fd is not None:
            fcntl.flock(self._lock_fd, fcntl.LOCK_UN)
            os.close(self._lock_fd)
            self._lock_fd = None


@contextlib.contextmanager
def output_folder(path, command: str, *, kind: str | None = None, inputs: Iterable = (), force: bool = False,
                  marker: str | None = None, keep_if: str | None = None) -> Iterator[OutputFolder]:
    """Open ``path`` for ``command`` (see :class:`OutputFolder`); the manifest is saved on the way
    out, also when the command fails, so that what it did write stays recorded as its own.

    ``marker``: a file that marks a folder of this kind written before cryodiff kept records
    (e.g. a run's ``config.json``); such a folder is taken as this command's. A folder this
    call created is removed again if the command fails, so that nothing partial is left
    behind, unless ``keep_if`` (e.g. ``checkpoint.pt``) exists in it: then the run is
    resumable and stays.
    """
    new = not Path(path).exists()
    folder = OutputFolder(path, command, kind=kind, inputs=inputs, force=force, marker=marker).open()
    try:
        yield folder
    except BaseException as err:
        full = _out_of_space(err, folder.path)
        if new and not (keep_if and (folder.path / keep_if).exists()):
            folder.close()
            shutil.rmtree(folder.path, ignore_errors=True)  # created by this call, under its lock: all of it is ours
        else:
            _save_quietly(folder)
        if full:
            raise InputError(folder.path, "the disk is full (no space left on device)",
                             "free space there or write to another disk; a training run continues with --resume") from None
        raise
    else:
        _save_quietly(folder)
    finally:
        folder.close()


#: Free space below which a failed write is taken to be the disk's fault.
_NEARLY_FULL_BYTES = 8 << 20


def _out_of_space(err: BaseException, path: Path) -> bool:
    """Whether ``err`` comes from a full disk: ``ENOSPC``/``EDQUOT``, or a write error without an
    errno (h5py, torch.save: "unexpected pos", "file write failed") on a disk with (almost) no
    space left."""
    if isinstance(err, OSError) and err.errno in (errno.ENOSPC, errno.EDQUOT):
        return True
    if not isinstance(err, (OSError, RuntimeError)):
        return False
    try:
        return shutil.disk_usage(path).free < _NEARLY_FULL_BYTES
    except OSError:
        return False


def _save_quietly(folder: OutputFolder) -> None:
    """Save the manifest, unless the disk is full or read-only (the command's own error says so)."""
    try:
        folder.save()
    except OSError as err:
        if err.errno not in (errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EACCES):
            raise


@contextlib.contextmanager
def output_files(paths: Iterable, command: str, *, inputs: Iterable = (), force: bool = False) -> Iterator[list[Path]]:
    """Single output files (``-o map.mrc`` and the files beside it), each checked by the policy of
    the folder it goes into; yields their paths in the order given."""
    paths = [Path(p) for p in paths]
    inputs = list(inputs)
    with contextlib.ExitStack() as stack:
        folders: dict[Path, OutputFolder] = {}
        checked = []
        for path in paths:
            if path.is_dir():
                raise InputError(path, "is a folder", "give a file name for the output")
            parent = path.parent
            if parent not in folders:
                folders[parent] = stack.enter_context(output_folder(parent, command, inputs=inputs, force=force))
            checked.append(folders[parent].file(path.name))
        yield checked
