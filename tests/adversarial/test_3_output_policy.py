"""Rule 3: nothing the user had is lost (the output policy, cryodiff/output_folder.py).

* no command writes onto one of its inputs (under any spelling: a symlinked
  folder, a hard link, a half-map or .star name derived from -o);
* a command's own output folder is refused when it holds another command's
  output or files cryodiff did not write (unless --force), and even with
  --force a file another command recorded is never replaced;
* a single output file that exists is replaced only if the same command wrote
  it, or with --force, and never when it belongs to another command's output
  folder (with or without an output record: a run written before records were
  kept, or by the Python API, is still a VAE run);
* only files a command recorded as its own are deleted, never through
  symlinks, never outside the folder; a lock stops two writers; symlinked
  files (log.jsonl, run.log) are never written through.
"""

from __future__ import annotations

import fcntl
import json
import os
import pickle
import shutil

import numpy as np
import pytest
from adversarial_helpers import (
    TINY_RUN_RESUME,
    TINY_VAE,
    assert_unchanged,
    last_line,
    load_config,
    save_config,
    snapshot,
)

MANIFEST = ".cryodiff-outputs.json"


def _record(kind, files):
    """An output record as cryodiff writes it (same layout, so that a faithful rewrite is no change)."""
    return json.dumps({"format": "cryodiff-outputs/1", "kind": kind, "files": files}, indent=1, sort_keys=True)
Z4 = ["-z", "0", "0", "0", "0"]


def _stack_list_with_poses(dataset, folder, stack_name="stack.mrc"):
    """``list.txt`` naming a copy of the data set's images as ``stack_name``, and a pose.pkl."""
    folder.mkdir(parents=True, exist_ok=True)
    shutil.copy(dataset / "particles.mrcs", folder / stack_name)
    (folder / "list.txt").write_text(stack_name + "\n")
    from recon.io import read_metadata

    meta = read_metadata(dataset / "particles.star")
    (folder / "pose.pkl").write_bytes(pickle.dumps((meta.rotations, meta.shifts_px / 16)))
    return folder / "list.txt", folder / "pose.pkl"


def _run_with_private_data(run_copy, tmp_path):
    """``run_copy`` whose config points at a private copy of its particles (safe to attack)."""
    config = load_config(run_copy)
    data = shutil.copytree(os.path.dirname(config["data"]["particles"]), tmp_path / "rundata")
    config["data"]["particles"] = str(data / "particles.star")
    save_config(run_copy, config)
    return data


# ----------------------------------------------------------------------------- never onto an input

def test_backproject_half_map_would_land_on_the_input_stack(refuses, dataset, tmp_path):
    stacks, poses = _stack_list_with_poses(dataset, tmp_path, "p_half1.mrc")
    refuses(["backproject", stacks, "--poses", poses, "--apix", "6", "-o", tmp_path / "p.mrc", "--force"], "p_half1.mrc", tree=tmp_path)


def test_backproject_output_hard_linked_to_the_input_stack(refuses, dataset, tmp_path):
    stacks, poses = _stack_list_with_poses(dataset, tmp_path)
    os.link(tmp_path / "stack.mrc", tmp_path / "out.mrc")
    refuses(["backproject", stacks, "--poses", poses, "--apix", "6", "-o", tmp_path / "out.mrc", "--force"], "out.mrc", tree=tmp_path)


def test_downsample_onto_its_own_stack_and_star(refuses, data_copy, tmp_path):
    refuses(["downsample", data_copy / "particles.star", "-D", "8", "-o", data_copy / "particles.mrcs", "--force"], "particles.",
            tree=tmp_path)


def test_downsample_onto_its_stack_through_a_symlinked_folder(refuses, data_copy, tmp_path):
    (tmp_path / "alias").symlink_to(data_copy, target_is_directory=True)
    refuses(["downsample", data_copy / "particles.star", "-D", "8", "-o", tmp_path / "alias" / "particles.mrcs", "--force"],
            "particles.", tree=tmp_path)


def test_downsample_volume_onto_itself(refuses, dataset, tmp_path):
    vol = shutil.copy(dataset / "volumes" / "state00_subunit0.mrc", tmp_path / "v.mrc")
    refuses(["downsample", vol, "--is-vol", "-D", "8", "-o", vol, "--force"], "v.mrc", tree=tmp_path)


def test_fsc_table_onto_its_first_map(refuses, dataset, tmp_path):
    a = shutil.copy(dataset / "volumes" / "state00_subunit0.mrc", tmp_path / "a.mrc")
    refuses(["fsc", a, dataset / "volumes" / "state01_subunit0.mrc", "-o", a, "--force"], "a.mrc", tree=[tmp_path, dataset])


def test_select_onto_the_particle_file_the_run_was_trained_on(refuses, run_copy, tmp_path):
    data = _run_with_private_data(run_copy, tmp_path)
    rows = tmp_path / "rows.txt"
    rows.write_text("1\n2\n3\n")
    refuses(["select", run_copy, "--ind-file", rows, "-o", data / "particles.star", "--force"], "particles.star", tree=tmp_path)


def test_import_into_its_own_workdir(refuses, cryodrgn_dir, tmp_path):
    workdir = shutil.copytree(cryodrgn_dir, tmp_path / "cd")
    refuses(["import-cryodrgn", workdir, "-o", workdir, "--force"], str(workdir), tree=tmp_path)


# ----------------------------------------------------------------------------- other commands' files

def test_score_particles_onto_the_latents_of_a_run_without_a_record(refuses, prior, run_copy, tmp_path):
    """A run made by the Python API (or before output records) is still a VAE run: its
    latents.h5 is not a scores file, --force or not."""
    z = tmp_path / "z.npy"
    np.save(z, np.random.default_rng(0).normal(size=(40, 4)).astype(np.float32))
    refuses(["score-particles", prior, "--latents", z, "-o", run_copy / "latents.h5", "--steps", "2", "--force"], "latents.h5",
            tree=[tmp_path, prior])


def test_score_particles_onto_the_latents_of_a_recorded_run(refuses, prior, recorded_run, tmp_path):
    run = shutil.copytree(recorded_run, tmp_path / "run")
    z = tmp_path / "z.npy"
    np.save(z, np.random.default_rng(0).normal(size=(40, 4)).astype(np.float32))
    refuses(["score-particles", prior, "--latents", z, "-o", run / "latents.h5", "--steps", "2", "--force"], "latents.h5",
            tree=[tmp_path, prior])


def test_fsc_table_onto_a_runs_config_without_a_record(refuses, dataset, run_copy, tmp_path):
    vols = dataset / "volumes"
    refuses(["fsc", vols / "state00_subunit0.mrc", vols / "state01_subunit0.mrc", "-o", run_copy / "config.json", "--force"],
            "config.json", tree=[tmp_path, dataset])


def test_fsc_plot_onto_a_recorded_runs_loss_plot(refuses, dataset, recorded_run, tmp_path):
    run = shutil.copytree(recorded_run, tmp_path / "run")
    vols = dataset / "volumes"
    refuses(["fsc", vols / "state00_subunit0.mrc", vols / "state01_subunit0.mrc", "--plot", run / "loss.png", "--force"],
            "loss.png", tree=[tmp_path, dataset])


def test_train_prior_forced_into_a_vae_run_without_a_record(refuses, run_copy, tmp_path):
    """--force lets a command write beside foreign files, never over a VAE run's checkpoint."""
    z = tmp_path / "z.npy"
    np.save(z, np.random.default_rng(0).normal(size=(40, 2)).astype(np.float32))
    refuses(["train-prior", z, "-o", run_copy, "--steps", "5", "-b", "8", "--force"], str(run_copy), tree=tmp_path, seconds=60)


def test_train_prior_forced_into_a_recorded_vae_run(refuses, recorded_run, tmp_path):
    run = shutil.copytree(recorded_run, tmp_path / "run")
    z = tmp_path / "z.npy"
    np.save(z, np.random.default_rng(0).normal(size=(40, 2)).astype(np.float32))
    refuses(["train-prior", z, "-o", run, "--steps", "5", "-b", "8", "--force"], str(run), tree=tmp_path, seconds=60)


def test_train_vae_forced_into_a_prior(refuses, dataset, prior_copy, tmp_path):
    refuses(["train-vae", dataset / "particles.star", "-o", prior_copy, "--zdim", "2", *TINY_VAE, "-n", "1", "--force"],
            str(prior_copy), tree=[tmp_path, dataset])


# ----------------------------------------------------------------------------- dedicated folders

def _argv(command, fx, out):
    """Each command with its own output folder, writing to ``out``."""
    run, prior, data, cd = fx["run"], fx["prior"], fx["data"], fx["cd"]
    return {
        "demo": ["demo", out, "-n", "100", "-D", "16", "--epochs", "1", "--prior-steps", "1"],
        "simulate": ["simulate", out, "-n", "8", "-D", "16"],
        "train-vae": ["train-vae", data / "particles.star", "-o", out, "--zdim", "2", *TINY_VAE, "-n", "1"],
        "eval-vol": ["eval-vol", run, *Z4, "-o", out],
        "import-cryodrgn": ["import-cryodrgn", cd, "-o", out],
        "analyze": ["analyze", run, "-o", out, "--skip-umap", "--skip-vol", "--ksample", "2"],
        "traverse": ["traverse", run, "--direct", "0", "1", "-n", "2", "--skip-vol", "-o", out],
        "train-prior": ["train-prior", run, "-o", out, "--steps", "5", "-b", "8"],
        "sample": ["sample", prior, "-n", "2", "-o", out.parent / "z.txt", "--volumes", out, "--run", run, "-D", "8"],
        "interpolate": ["interpolate", prior, "--run", run, "--from", "0", "--to", "1", "-n", "2", "--steps", "2", "-o", out],
    }[command]


DEDICATED = ["demo", "simulate", "train-vae", "eval-vol", "import-cryodrgn", "analyze", "traverse", "train-prior", "sample", "interpolate"]


@pytest.fixture
def fx(tiny_vae_run, prior, dataset, cryodrgn_dir):
    return {"run": tiny_vae_run, "prior": prior, "data": dataset, "cd": cryodrgn_dir}


@pytest.mark.parametrize("command", DEDICATED)
def test_dedicated_folder_with_a_users_file_is_refused(refuses, fx, tmp_path, command):
    out = tmp_path / "out"
    out.mkdir()
    (out / "notes.txt").write_text("three weeks of notes\n")
    refuses(_argv(command, fx, out), str(out), "notes.txt", "--force", tree=[tmp_path, *fx.values()], seconds=120)


@pytest.mark.parametrize("command", DEDICATED)
def test_dedicated_folder_holding_another_commands_output_is_refused(refuses, fx, tmp_path, command):
    out = tmp_path / "out"
    out.mkdir()
    other = "traverse" if command != "traverse" else "eval-vol"
    (out / "z.txt").write_text("0 0 0 0\n")
    (out / MANIFEST).write_text(_record(other, {"z.txt": other}))
    refuses(_argv(command, fx, out), str(out), other, tree=[tmp_path, *fx.values()], seconds=120)


def test_sample_volumes_forced_into_a_traverse_never_replaces_its_files(refuses, tiny_vae_run, prior, tmp_path):
    out = tmp_path / "trav"
    out.mkdir()
    (out / "z.txt").write_text("1 2 3 4\n")
    (out / MANIFEST).write_text(_record("traverse", {"z.txt": "traverse"}))
    refuses(["sample", prior, "-n", "2", "-o", tmp_path / "elsewhere" / "z.txt", "--volumes", out, "--run", tiny_vae_run, "-D", "8",
             "--force"], "z.txt", tree=[out, prior, tiny_vae_run])


def test_sample_refused_volume_folder_leaves_no_latent_file(refuses, tiny_vae_run, prior, tmp_path):
    """A refusal comes before anything is written: not the latents, then the refusal."""
    (tmp_path / "vols").mkdir()
    (tmp_path / "vols" / "mine.mrc").write_bytes(b"user data")
    refuses(["sample", prior, "-n", "2", "-o", tmp_path / "z.txt", "--volumes", tmp_path / "vols", "--run", tiny_vae_run, "-D", "8"],
            "vols", tree=[tmp_path, prior, tiny_vae_run])


def test_traverse_into_an_analysis_folder(refuses, analyzed_run, tmp_path):
    run = shutil.copytree(analyzed_run, tmp_path / "run")
    refuses(["traverse", run, "--direct", "0", "1", "-n", "2", "--skip-vol", "-o", run / "analyze"], "analyze", tree=tmp_path)


def test_train_vae_into_the_data_folder(refuses, data_copy, tmp_path):
    refuses(["train-vae", data_copy / "particles.star", "-o", data_copy, "--zdim", "2", *TINY_VAE, "-n", "1"], str(data_copy),
            tree=tmp_path)


def test_eval_vol_into_a_symlinked_folder(refuses, tiny_vae_run, tmp_path):
    (tmp_path / "real").mkdir()
    (tmp_path / "link").symlink_to(tmp_path / "real", target_is_directory=True)
    refuses(["eval-vol", tiny_vae_run, *Z4, "-o", tmp_path / "link"], "link", tree=[tmp_path, tiny_vae_run])


def test_analyze_default_folder_that_is_a_symlink_elsewhere(refuses, run_copy, tmp_path):
    (tmp_path / "elsewhere").mkdir()
    (tmp_path / "elsewhere" / "precious.txt").write_text("keep me")
    (run_copy / "analyze").symlink_to(tmp_path / "elsewhere", target_is_directory=True)
    refuses(["analyze", run_copy, "--skip-umap", "--skip-vol", "--ksample", "2"], "analyze", tree=tmp_path)


def test_analyze_default_folder_holding_the_users_own_analysis(refuses, run_copy, tmp_path):
    (run_copy / "analyze").mkdir()
    (run_copy / "analyze" / "my_figures.pdf").write_bytes(b"%PDF hand-made")
    refuses(["analyze", run_copy, "--skip-umap", "--skip-vol", "--ksample", "2"], "my_figures.pdf", "--force", tree=tmp_path)


def test_output_record_that_is_a_symlink_is_refused(refuses, tiny_vae_run, tmp_path):
    (tmp_path / "v").mkdir()
    (tmp_path / "victim.json").write_text(_record("eval-vol", {}))
    (tmp_path / "v" / MANIFEST).symlink_to(tmp_path / "victim.json")
    refuses(["eval-vol", tiny_vae_run, *Z4, "-o", tmp_path / "v"], MANIFEST, tree=[tmp_path, tiny_vae_run])


def test_unreadable_output_record_is_one_line(refuses, tiny_vae_run, tmp_path):
    (tmp_path / "v").mkdir()
    (tmp_path / "v" / MANIFEST).write_bytes(b"\xff\xfe{not json")
    refuses(["eval-vol", tiny_vae_run, *Z4, "-o", tmp_path / "v"], MANIFEST, tree=[tmp_path, tiny_vae_run])


def test_demo_force_keeps_a_users_file_inside_a_stage_folder(cli, tmp_path, monkeypatch):
    """--force removes "only the outputs the stages declare": not a file the user put in maps/."""
    from cryodiff.commands import demo
    from recon.errors import InputError

    out = tmp_path / "demo"
    (out / "maps").mkdir(parents=True)
    (out / "maps" / "my_refinement.mrc").write_bytes(b"weeks of work")
    (out / "demo.json").write_text(json.dumps({"settings": {}, "done": {}}))

    def stop(self):
        raise InputError("simulate", "stopped by the test", "nothing")

    monkeypatch.setattr(demo.Demo, "simulate", stop)
    code, _, err = cli(["demo", out, "-n", "100", "-D", "16", "--force"])
    assert "Traceback" not in err
    assert (out / "maps" / "my_refinement.mrc").is_file(), f"demo --force deleted the user's maps/my_refinement.mrc (exit {code})"


# ----------------------------------------------------------------------------- single output files

def test_backproject_half_map_that_exists_is_checked_before_anything_is_written(refuses, dataset, tmp_path):
    (tmp_path / "map_half2.mrc").write_bytes(b"someone's half map")
    refuses(["backproject", dataset / "particles.star", "-o", tmp_path / "map.mrc"], "map_half2.mrc", "--force", tree=[tmp_path, dataset])


def test_downsample_star_beside_the_output_that_exists(refuses, dataset, tmp_path):
    (tmp_path / "small.star").write_text("data_\nloop_\n_rlnImageName\n1@mine.mrcs\n")
    refuses(["downsample", dataset / "particles.star", "-D", "8", "-o", tmp_path / "small.mrcs"], "small.star", tree=[tmp_path, dataset])


def test_select_index_list_beside_the_output_that_exists(refuses, tiny_vae_run, tmp_path):
    rows = tmp_path / "rows.txt"
    rows.write_text("1\n2\n")
    (tmp_path / "sel.ind.txt").write_text("my own index list\n")
    refuses(["select", tiny_vae_run, "--ind-file", rows, "-o", tmp_path / "sel.star"], "sel.ind.txt", tree=[tmp_path, tiny_vae_run])


def test_score_particles_histogram_beside_the_output_that_exists(refuses, prior, tiny_vae_run, tmp_path):
    (tmp_path / "s.png").write_bytes(b"my figure")
    refuses(["score-particles", prior, "--run", tiny_vae_run, "-o", tmp_path / "s.h5", "--steps", "2"], "s.png", tree=[tmp_path, prior])


def test_sample_gaussian_file_that_exists(refuses, prior, tmp_path):
    (tmp_path / "z.gaussian.txt").write_text("mine\n")
    refuses(["sample", prior, "-n", "2", "-o", tmp_path / "z.txt", "--compare-gaussian", "--steps", "2"], "z.gaussian.txt",
            tree=[tmp_path, prior])


def test_fsc_table_over_a_users_file_needs_force_and_then_replaces_it(cli, refuses, dataset, tmp_path):
    vols = dataset / "volumes"
    table = tmp_path / "curve.txt"
    table.write_text("mine\n")
    argv = ["fsc", vols / "state00_subunit0.mrc", vols / "state01_subunit0.mrc", "-o", table]
    refuses(argv, "curve.txt", "--force", tree=[tmp_path, dataset])
    code, _, err = cli([*argv, "--force"])
    assert code == 0, last_line(err)
    assert table.read_text() != "mine\n"


def test_fsc_table_over_a_backprojected_map_needs_force(cli, refuses, dataset, tmp_path):
    code, _, err = cli(["backproject", dataset / "particles.star", "-o", tmp_path / "map.mrc"])
    assert code == 0, last_line(err)
    code, _, err = cli(["backproject", dataset / "particles.star", "-o", tmp_path / "map.mrc"])
    assert code == 0, f"backproject may replace its own map: {last_line(err)}"
    refuses(["fsc", tmp_path / "map_half1.mrc", tmp_path / "map_half2.mrc", "-o", tmp_path / "map.mrc"], "map.mrc",
            tree=[tmp_path, dataset])


def test_output_file_that_is_a_symlink_is_never_written_through(refuses, dataset, tmp_path):
    (tmp_path / "victim.mrc").write_bytes(b"precious")
    (tmp_path / "map.mrc").symlink_to(tmp_path / "victim.mrc")
    refuses(["backproject", dataset / "particles.star", "-o", tmp_path / "map.mrc", "--force"], "map.mrc", tree=[tmp_path, dataset])


# ----------------------------------------------------------------------------- locks

def _hold_lock(folder):
    folder.mkdir(parents=True, exist_ok=True)
    fd = os.open(folder / ".cryodiff.lock", os.O_RDWR | os.O_CREAT, 0o644)
    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    return fd


def test_a_locked_folder_is_refused(refuses, tiny_vae_run, tmp_path):
    fd = _hold_lock(tmp_path / "v")
    try:
        refuses(["eval-vol", tiny_vae_run, *Z4, "-o", tmp_path / "v"], "another cryodiff process", tree=[tmp_path, tiny_vae_run])
    finally:
        os.close(fd)


def test_a_locked_folder_is_refused_for_a_single_output_file(refuses, dataset, tmp_path):
    fd = _hold_lock(tmp_path / "maps")
    try:
        refuses(["backproject", dataset / "particles.star", "-o", tmp_path / "maps" / "m.mrc"], "another cryodiff process",
                tree=[tmp_path, dataset])
    finally:
        os.close(fd)


def test_a_refused_folder_is_not_left_locked_in_this_process(cli, refuses, tiny_vae_run, tmp_path):
    """After a refusal the same process (a notebook, napari) can use the folder with --force."""
    out = tmp_path / "v"
    out.mkdir()
    (out / "notes.txt").write_text("mine\n")
    refuses(["eval-vol", tiny_vae_run, *Z4, "-o", out], "notes.txt", tree=[tmp_path, tiny_vae_run])
    code, _, err = cli(["eval-vol", tiny_vae_run, *Z4, "-o", out, "--force"])
    assert code == 0, last_line(err)
    assert (out / "vol_000.mrc").is_file() and (out / "notes.txt").read_text() == "mine\n"


# ----------------------------------------------------------------------------- deleting only what is one's own

def test_eval_vol_rerun_removes_its_stale_volumes_and_nothing_else(cli, tiny_vae_run, tmp_path):
    out = tmp_path / "v"
    code, _, err = cli(["eval-vol", tiny_vae_run, *Z4, "0", "0", "0", "1", "0", "0", "0", "2", "-o", out])
    assert code == 0, last_line(err)
    shutil.copy(out / "vol_000.mrc", out / "vol_007.mrc")  # the user's own copy, with a name like ours
    code, _, err = cli(["eval-vol", tiny_vae_run, "-z", "1", "1", "1", "1", "-o", out, "--force"])
    assert code == 0, last_line(err)
    assert (out / "vol_007.mrc").is_file(), "deleted a file the user put there"
    assert not (out / "vol_001.mrc").exists() and not (out / "vol_002.mrc").exists(), "stale volumes of other latents were kept"


def test_a_tampered_record_cannot_delete_outside_the_folder(cli, tiny_vae_run, tmp_path):
    out = tmp_path / "v"
    code, _, err = cli(["eval-vol", tiny_vae_run, *Z4, "-o", out])
    assert code == 0, last_line(err)
    (tmp_path / "victim").mkdir()
    for name in ("vol_000.mrc", "vol_001.mrc"):
        (tmp_path / "victim" / name).write_bytes(b"precious")
    record = json.loads((out / MANIFEST).read_text())
    record["files"]["../victim/vol_000.mrc"] = "eval-vol"
    record["files"][str(tmp_path / "victim" / "vol_001.mrc")] = "eval-vol"
    (out / MANIFEST).write_text(json.dumps(record))
    before = snapshot(tmp_path / "victim")
    code, _, err = cli(["eval-vol", tiny_vae_run, "-z", "1", "2", "3", "4", "-o", out])
    assert "Traceback" not in err and code in (0, 2), last_line(err)
    assert_unchanged(before, tmp_path / "victim")


def test_an_own_volume_replaced_by_a_symlink_is_not_followed(cli, tiny_vae_run, tmp_path):
    out = tmp_path / "v"
    code, _, err = cli(["eval-vol", tiny_vae_run, *Z4, "0", "0", "0", "1", "-o", out])
    assert code == 0, last_line(err)
    (tmp_path / "victim.mrc").write_bytes(b"precious")
    (out / "vol_001.mrc").unlink()
    (out / "vol_001.mrc").symlink_to(tmp_path / "victim.mrc")
    code, _, err = cli(["eval-vol", tiny_vae_run, "-z", "5", "5", "5", "5", "1", "1", "1", "1", "-o", out])
    assert "Traceback" not in err and code in (0, 2), last_line(err)
    assert (tmp_path / "victim.mrc").read_bytes() == b"precious"


@pytest.mark.parametrize("name", ["log.jsonl", "run.log"])
def test_train_vae_resume_never_writes_through_a_symlinked_log(cli, run_copy, tmp_path, name):
    victim = tmp_path / "victim.txt"
    victim.write_text("not a log\n")
    target = run_copy / name
    if target.exists():
        target.unlink()
    target.symlink_to(victim)
    star = load_config(run_copy)["data"]["particles"]
    code, _, err = cli(["train-vae", star, "-o", run_copy, "--resume", "-n", "2", *TINY_RUN_RESUME])
    assert "Traceback" not in err
    assert victim.read_text() == "not a log\n", f"wrote through the symlinked {name}"
    assert code == 0 or (code == 2 and name in last_line(err) and "Fix:" in last_line(err)), f"exit {code}: {last_line(err)!r}"


def test_train_prior_resume_never_writes_through_a_symlinked_log(cli, tiny_vae_run, prior_copy, tmp_path):
    victim = tmp_path / "victim.txt"
    victim.write_text("not a log\n")
    (prior_copy / "log.jsonl").unlink(missing_ok=True)
    (prior_copy / "log.jsonl").symlink_to(victim)
    code, _, err = cli(["train-prior", tiny_vae_run, "-o", prior_copy, "--steps", "200", "-b", "64", "--resume", "--threads", "1"])
    assert "Traceback" not in err
    assert victim.read_text() == "not a log\n", "wrote through the symlinked log.jsonl"
    assert code == 0 or (code == 2 and "log.jsonl" in last_line(err) and "Fix:" in last_line(err)), f"exit {code}: {last_line(err)!r}"
