"""A resumable sequence of stages with an overall stage list and time estimate.

Used by ``cryodiff demo``: each :class:`Stage` names the outputs it leaves
(paths relative to the output folder) and an estimate of its duration on an
idle 2-core CPU. :func:`run_stages` records finished stages in
``OUTDIR/<record>`` (JSON, written atomically) together with the settings
they were made with; a re-run skips every stage that is recorded and whose
outputs still exist, continues from the first one that is not, and refuses a
folder made with other settings (or, through the output policy of
:mod:`cryodiff.output_folder`, holding files it did not write) unless
``force`` is given. ``force`` removes only the files the record says the stages wrote.
"""

from __future__ import annotations

import contextlib
import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from recon.errors import InputError
from cryodiff.output_folder import LOCK, MANIFEST, output_folder
from recon.files import atomic_target

log = logging.getLogger("cryodiff.pipeline")
_DAMPING_S = 60.0


@dataclass(frozen=True)
class Stage:
    """One step: ``run()`` does the work; ``outputs`` (relative paths) exist when it is done."""

    name: str
    describe: str
    estimate_s: float
    outputs: tuple[str, ...]
    run: Callable[[], None]


def duration(seconds: float) -> str:
    """``"45 s"``, ``"3 min 20 s"`` or ``"1 h 05 min"``."""
    seconds = max(0.0, float(seconds))
    if seconds < 60:
        return f"{seconds:.0f} s"
    if seconds < 3600:
        return f"{int(seconds // 60)} min {int(seconds % 60):02d} s"
    return f"{int(seconds // 3600)} h {int(seconds % 3600 // 60):02d} min"


def _read_record(path: Path) -> dict | None:
    try:
        record = json.loads(path.read_text())
    except FileNotFoundError:
        return None
    except (OSError, ValueError):
        raise InputError(path, "the stage record is unreadable", "pass --force to start over") from None
    if not isinstance(record, dict) or not isinstance(record.get("done"), dict):
        raise InputError(path, "the stage record is not one this command wrote", "pass --force to start over, or choose a new folder")
    return record


def _write_record(path: Path, record: dict) -> None:
    with atomic_target(path) as tmp:
        tmp.write_text(json.dumps(record, indent=2))


def _files_of(outdir: Path, outputs: tuple[str, ...]) -> list[str]:
    """Plain files (relative paths) that ``outputs`` hold now, not following symbolic links."""
    found = []
    for name in outputs:
        target = outdir / name
        if target.is_symlink():
            continue
        if target.is_file():
            found.append(name)
        elif target.is_dir():
            # rglob does not descend into symbolically linked folders
            found += [str(p.relative_to(outdir)) for p in sorted(target.rglob("*")) if p.is_file() and not p.is_symlink()]
    return found


def _remove_outputs(outdir: Path, stages: list[Stage], record: dict, record_path: Path) -> None:
    """Delete the files the record says the stages wrote (never through a symbolic link, never a
    file put there since), then the folders they leave empty, then the record."""
    root = outdir.resolve()
    for entry in record["done"].values():
        for name in entry.get("files", []) if isinstance(entry, dict) else []:
            target = outdir / str(name)
            try:
                inside = target.parent.resolve().is_relative_to(root)
            except OSError:
                inside = False
            if inside and target.is_file() and not target.is_symlink():
                target.unlink()
    for stage in stages:
        for name in stage.outputs:
            folder = outdir / name
            if folder.is_dir() and not folder.is_symlink():
                for sub in sorted((p for p in folder.rglob("*") if p.is_dir() and not p.is_symlink()), reverse=True) + [folder]:
                    for own in (MANIFEST, LOCK):
                        if (sub / own).is_file() and {p.name for p in sub.iterdir()} <= {MANIFEST, LOCK}:
                            (sub / own).unlink()
                    with contextlib.suppress(OSError):
                        sub.rmdir()  # only when empty
    record_path.unlink(missing_ok=True)


def run_stages(outdir: Path, stages: list[Stage], settings: dict, *, command: str, force: bool = False,
               record: str = "stages.json") -> None:
    """Run ``stages`` in order in ``outdir``, skipping those already done with these ``settings``.

    ``outdir`` is ``command``'s own output folder (:mod:`cryodiff.output_folder`): a folder
    holding files it did not write is refused unless ``force``."""
    with output_folder(outdir, command, kind=command, force=force, marker=record, keep_if=record) as folder:
        _run(folder, stages, settings, force, record)


def _run(folder, stages: list[Stage], settings: dict, force: bool, record: str) -> None:
    outdir, record_path = folder.path, folder.file(record)
    if force:
        try:
            old = _read_record(record_path)
            if old is not None:  # only what this command made is removed
                _remove_outputs(outdir, stages, old, record_path)
        except InputError:
            pass  # an unreadable record: start over, writing over the stages' outputs
        old = None
    else:
        old = _read_record(record_path)
    if old is not None and old.get("settings") != settings:
        changed = sorted(k for k in settings.keys() | old.get("settings", {}).keys() if settings.get(k) != old.get("settings", {}).get(k))
        raise InputError(
            outdir, f"was made with other settings ({', '.join(changed)})",
            "re-run with the same options to continue, pass --force to start over, or choose a new folder",
        )
    done = {} if old is None else dict(old["done"])
    state = {"settings": settings, "done": done}
    _write_record(record_path, state)  # marks the folder as this command's before anything else is written

    def complete(stage: Stage) -> bool:
        return stage.name in done and all((outdir / name).exists() for name in stage.outputs)

    first_todo = next((i for i, stage in enumerate(stages) if not complete(stage)), len(stages))
    for stage in stages[first_todo:]:
        done.pop(stage.name, None)  # a stage after a redone one is redone too
    todo = stages[first_todo:]
    log.info("%d stages, %s done; about %s to go on an idle 2-core CPU:", len(stages), first_todo, duration(sum(s.estimate_s for s in todo)))
    for i, stage in enumerate(stages, 1):
        status = "done" if i <= first_todo else f"~{duration(stage.estimate_s)}"
        log.info("  %d. %-48s %s", i, stage.describe, status)

    speed = 1.0  # measured / estimated time so far: rescales what is left
    spent = estimated = 0.0
    for i, stage in enumerate(todo, first_todo + 1):
        left = speed * sum(s.estimate_s for s in stages[i - 1 :])
        log.info("[%d/%d] %s (about %s left in all)", i, len(stages), stage.describe, duration(left))
        tic = time.perf_counter()
        stage.run()
        seconds = time.perf_counter() - tic
        done[stage.name] = {"seconds": round(seconds, 1), "files": _files_of(outdir, stage.outputs)}
        _write_record(record_path, state)
        spent, estimated = spent + seconds, estimated + stage.estimate_s
        # measured / estimated so far, damped by a minute of each so that a few short stages do not swing it
        speed = (spent + _DAMPING_S) / (estimated + _DAMPING_S)
        log.info("[%d/%d] %s: done in %s", i, len(stages), stage.name, duration(seconds))
