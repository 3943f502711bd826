"""Rule 1: bad input gets exit status 2 and one line on stderr, the last line,
``cryodiff COMMAND: error: <file or option>: <problem>. Fix: <fix>``, naming the
offending file or option; never a Python traceback. A missing or unknown
argument also prints the usage above that line. A refused command leaves the
files it was given (and the folder it would have written) as they were.
"""

from __future__ import annotations

import pickle
import shutil

import numpy as np
import pytest
import yaml
from adversarial_helpers import (
    TINY_RUN_RESUME,
    TINY_VAE,
    cryodrgn_config,
    edited_star,
    last_line,
    load_config,
    write_cryodrgn_workdir,
)

MISSING = "/nonexistent/adversarial/missing"


# ----------------------------------------------------------------------------- the top level

def test_no_command_is_a_usage_error_on_stderr(cli):
    code, _, err = cli([])
    line = last_line(err)
    assert code == 2
    assert line.startswith("cryodiff: error:") and "Fix:" in line, f"last stderr line: {line!r}"


def test_unknown_command_is_one_error_line_naming_it(cli):
    code, _, err = cli(["trian-vae", "particles.star"])
    line = last_line(err)
    assert code == 2 and "Traceback" not in err
    assert line.startswith("cryodiff: error:") and "trian-vae" in line and "Fix:" in line, line
    assert "usage:" in err


def test_unknown_option_names_it_shows_usage_and_the_closest_option(refuses, tmp_path):
    refuses(["train-vae", tmp_path / "p.star", "-o", tmp_path / "run", "--zdim", "4", "--zdmi", "3"],
            "--zdmi", "did you mean --zdim", tree=tmp_path)


def test_missing_required_option_shows_usage(refuses, capsys, tmp_path):
    line = refuses(["train-vae", tmp_path / "p.star", "--zdim", "4"], "-o/--outdir", tree=tmp_path)
    assert "required" in line


# ----------------------------------------------------------------------------- demo and simulate

def test_demo_too_few_particles_names_n_and_creates_nothing(refuses, tmp_path):
    refuses(["demo", tmp_path / "out", "-n", "50"], "-n", tree=tmp_path)


def test_demo_box_above_256_names_box(refuses, tmp_path):
    refuses(["demo", tmp_path / "out", "-D", "300"], "--box", tree=tmp_path)


def test_demo_into_a_regular_file_names_it(refuses, tmp_path):
    notes = tmp_path / "notes.txt"
    notes.write_text("my notes\n")
    refuses(["demo", notes, "-n", "100", "-D", "16"], str(notes), tree=tmp_path)


def test_simulate_into_a_regular_file_names_it(refuses, tmp_path):
    notes = tmp_path / "notes.txt"
    notes.write_text("my notes\n")
    refuses(["simulate", notes, "-n", "8", "-D", "16"], str(notes), tree=tmp_path)


def test_simulate_box_below_16_names_box(refuses, tmp_path):
    refuses(["simulate", tmp_path / "out", "-n", "8", "-D", "8"], "--box", tree=tmp_path)


def test_simulate_all_junk_names_junk_fraction(refuses, tmp_path):
    refuses(["simulate", tmp_path / "out", "-n", "8", "-D", "16", "--junk-fraction", "1"], "--junk-fraction", tree=tmp_path)


# ----------------------------------------------------------------------------- downsample

def test_downsample_missing_input(refuses, tmp_path):
    refuses(["downsample", MISSING + ".star", "-D", "8", "-o", tmp_path / "s.mrcs"], MISSING, tree=tmp_path)


def test_downsample_to_a_larger_box(refuses, dataset, tmp_path):
    star = dataset / "particles.star"
    refuses(["downsample", star, "-D", "32", "-o", tmp_path / "s.mrcs"], str(star), "32", tree=[tmp_path, dataset])


def test_downsample_particles_to_an_mrc_suffix(refuses, dataset, tmp_path):
    refuses(["downsample", dataset / "particles.star", "-D", "8", "-o", tmp_path / "s.mrc"], "s.mrc", ".mrcs",
            tree=[tmp_path, dataset])


def test_downsample_a_particle_stack_as_a_volume(refuses, dataset, tmp_path):
    stack = dataset / "particles.mrcs"
    refuses(["downsample", stack, "--is-vol", "-D", "8", "-o", tmp_path / "v.mrc"], str(stack), tree=[tmp_path, dataset])


def test_downsample_star_whose_stack_is_missing(refuses, dataset, tmp_path):
    star = shutil.copy(dataset / "particles.star", tmp_path / "alone.star")
    refuses(["downsample", star, "-D", "8", "-o", tmp_path / "s.mrcs"], "particles.mrcs", "--datadir", tree=tmp_path)


# ----------------------------------------------------------------------------- backproject

def test_backproject_ind_out_of_range(refuses, dataset, tmp_path):
    ind = tmp_path / "ind.txt"
    ind.write_text("0\n5\n64\n")
    refuses(["backproject", dataset / "particles.star", "--ind", ind, "-o", tmp_path / "m.mrc"], str(ind), "64",
            tree=[tmp_path, dataset])


def test_backproject_output_is_a_folder(refuses, dataset, tmp_path):
    (tmp_path / "maps.mrc").mkdir()
    refuses(["backproject", dataset / "particles.star", "-o", tmp_path / "maps.mrc"], "maps.mrc", tree=[tmp_path, dataset])


def test_backproject_pose_pickle_with_other_particle_count(refuses, dataset, tmp_path):
    poses = tmp_path / "pose.pkl"
    poses.write_bytes(pickle.dumps((np.tile(np.eye(3), (10, 1, 1)), np.zeros((10, 2)))))
    refuses(["backproject", dataset / "particles.star", "--poses", poses, "-o", tmp_path / "m.mrc"], str(poses), "10",
            tree=[tmp_path, dataset])


def test_backproject_star_without_poses(refuses, dataset, tmp_path):
    star = edited_star(dataset, tmp_path, particles=lambda t: t.drop(columns=["rlnAngleRot", "rlnAngleTilt", "rlnAnglePsi"], inplace=True))
    refuses(["backproject", star, "-o", tmp_path / "m.mrc"], str(star), "poses", tree=tmp_path)


def test_backproject_unknown_particle_file_type(refuses, tmp_path):
    table = tmp_path / "particles.csv"
    table.write_text("a,b\n1,2\n")
    refuses(["backproject", table, "-o", tmp_path / "m.mrc"], str(table), ".csv", tree=tmp_path)


def test_backproject_ctf_pickle_with_eight_columns(refuses, dataset, tmp_path):
    ctf = tmp_path / "ctf.pkl"
    ctf.write_bytes(pickle.dumps(np.ones((64, 8))))
    refuses(["backproject", dataset / "particles.star", "--ctf", ctf, "-o", tmp_path / "m.mrc"], str(ctf), tree=[tmp_path, dataset])


# ----------------------------------------------------------------------------- fsc

@pytest.fixture
def maps(dataset, tmp_path):
    """Two box-16 maps and one box-8 map (downsampled) in tmp_path."""
    from recon.io import read_volume, write_volume

    a = shutil.copy(dataset / "volumes" / "state00_subunit0.mrc", tmp_path / "a.mrc")
    shutil.copy(dataset / "volumes" / "state01_subunit1.mrc", tmp_path / "b.mrc")
    vol, apix = read_volume(a)
    write_volume(tmp_path / "small.mrc", vol[::2, ::2, ::2].copy(), apix * 2)
    return tmp_path / "a.mrc", tmp_path / "b.mrc", tmp_path / "small.mrc"


def test_fsc_maps_of_different_boxes(refuses, maps, tmp_path):
    a, _, small = maps
    refuses(["fsc", a, small], str(small), tree=tmp_path)


def test_fsc_missing_map(refuses, maps, tmp_path):
    a, _, _ = maps
    refuses(["fsc", a, MISSING + ".mrc"], MISSING, tree=tmp_path)


def test_fsc_mask_of_another_box(refuses, maps, tmp_path):
    a, b, small = maps
    refuses(["fsc", a, b, "--mask", small], str(small), tree=tmp_path)


def test_fsc_plot_must_be_png(refuses, maps, tmp_path):
    a, b, _ = maps
    refuses(["fsc", a, b, "--plot", tmp_path / "curve.pdf"], "--plot", tree=tmp_path)


# ----------------------------------------------------------------------------- train-vae

def test_train_vae_load_of_another_runs_checkpoint(refuses, dataset, tiny_vae_run, tmp_path):
    refuses(["train-vae", dataset / "particles.star", "-o", tmp_path / "run", "--zdim", "4", *TINY_VAE,
             "--load", tiny_vae_run / "checkpoint.pt"], "--load", tree=[tmp_path, tiny_vae_run])


def test_train_vae_existing_run_without_resume(refuses, run_copy, tmp_path):
    star = load_config(run_copy)["data"]["particles"]
    refuses(["train-vae", star, "-o", run_copy, *TINY_RUN_RESUME, "-n", "2"], str(run_copy), "--resume", tree=tmp_path)


def test_train_vae_resume_with_another_architecture(refuses, run_copy, tmp_path):
    star = load_config(run_copy)["data"]["particles"]
    argv = ["train-vae", star, "-o", run_copy, "--resume", "-n", "2", *TINY_RUN_RESUME]
    argv[argv.index("--zdim") + 1] = "6"
    # run.log and the output record may be written; what the run holds may not change
    refuses(argv, "architecture", tree=run_copy, exclude=[run_copy / "run.log", run_copy / ".cryodiff-outputs.json"])


def test_train_vae_resume_of_nothing(refuses, dataset, tmp_path):
    refuses(["train-vae", dataset / "particles.star", "-o", tmp_path / "new", "--resume", "--zdim", "4", *TINY_VAE],
            "resume", tree=[dataset])


# ----------------------------------------------------------------------------- eval-vol

def test_eval_vol_z_count_not_a_multiple_of_zdim(refuses, tiny_vae_run, tmp_path):
    refuses(["eval-vol", tiny_vae_run, "-z", "0", "0", "0", "0", "0", "-o", tmp_path / "v"], "-z", tree=[tmp_path, tiny_vae_run])


def test_eval_vol_zfile_with_wrong_columns(refuses, tiny_vae_run, tmp_path):
    zfile = tmp_path / "z.txt"
    np.savetxt(zfile, np.zeros((2, 3)))
    refuses(["eval-vol", tiny_vae_run, "--zfile", zfile, "-o", tmp_path / "v"], str(zfile), tree=[tmp_path, tiny_vae_run])


def test_eval_vol_prefix_with_a_path(refuses, tiny_vae_run, tmp_path):
    refuses(["eval-vol", tiny_vae_run, "-z", "0", "0", "0", "0", "-o", tmp_path / "v", "--prefix", "../evil_"], "--prefix",
            tree=[tmp_path, tiny_vae_run])


def test_eval_vol_on_a_folder_that_is_not_a_run(refuses, dataset, tmp_path):
    refuses(["eval-vol", dataset, "-z", "0", "0", "0", "0", "-o", tmp_path / "v"], str(dataset), tree=[tmp_path, dataset])


def test_eval_vol_box_above_the_runs(refuses, tiny_vae_run, tmp_path):
    refuses(["eval-vol", tiny_vae_run, "-z", "0", "0", "0", "0", "-o", tmp_path / "v", "-D", "32"], "-D", tree=[tmp_path, tiny_vae_run])


def test_eval_vol_missing_zfile(refuses, tiny_vae_run, tmp_path):
    refuses(["eval-vol", tiny_vae_run, "--zfile", MISSING + ".txt", "-o", tmp_path / "v"], MISSING, tree=[tmp_path, tiny_vae_run])


# ----------------------------------------------------------------------------- import-cryodrgn

def test_import_workdir_is_a_file(refuses, tmp_path):
    notes = tmp_path / "notes.txt"
    notes.write_text("x")
    refuses(["import-cryodrgn", notes, "-o", tmp_path / "run"], str(notes), tree=tmp_path, exclude=tmp_path / "run")


def test_import_epoch_not_present(refuses, cryodrgn_dir, tmp_path):
    refuses(["import-cryodrgn", cryodrgn_dir, "-o", tmp_path / "run", "--epoch", "7"], "epoch 7",
            tree=[tmp_path, cryodrgn_dir], exclude=tmp_path / "run")


def test_import_unsupported_encoder(refuses, tmp_path):
    workdir = tmp_path / "cd"
    write_cryodrgn_workdir(workdir, config=cryodrgn_config(workdir, model_args={"encode_mode": "conv"}))
    refuses(["import-cryodrgn", workdir, "-o", tmp_path / "run"], "encode_mode", tree=tmp_path, exclude=tmp_path / "run")


def test_import_folder_without_config(refuses, tmp_path):
    (tmp_path / "cd").mkdir()
    refuses(["import-cryodrgn", tmp_path / "cd", "-o", tmp_path / "run"], str(tmp_path / "cd"), tree=tmp_path, exclude=tmp_path / "run")


# ----------------------------------------------------------------------------- analyze

def test_analyze_more_clusters_than_particles(refuses, tiny_vae_run, tmp_path):
    refuses(["analyze", tiny_vae_run, "-o", tmp_path / "a", "--ksample", "1000", "--skip-umap", "--skip-vol"], "--ksample",
            tree=[tmp_path, tiny_vae_run])


def test_analyze_epoch_that_was_not_kept(refuses, tiny_vae_run, tmp_path):
    refuses(["analyze", tiny_vae_run, "3", "-o", tmp_path / "a", "--skip-umap", "--skip-vol"], "epoch 3", tree=[tmp_path, tiny_vae_run])


def test_analyze_one_point_per_pc(refuses, tiny_vae_run, tmp_path):
    refuses(["analyze", tiny_vae_run, "-o", tmp_path / "a", "--n-per-pc", "1", "--skip-umap"], "--n-per-pc", tree=[tmp_path, tiny_vae_run])


def test_analyze_missing_run(refuses, tmp_path):
    refuses(["analyze", MISSING], MISSING, tree=tmp_path)


# ----------------------------------------------------------------------------- traverse

def test_traverse_graph_particle_out_of_range(refuses, tiny_vae_run, tmp_path):
    refuses(["traverse", tiny_vae_run, "--graph", "0", "999", "-o", tmp_path / "t", "--skip-vol"], "--graph", tree=[tmp_path, tiny_vae_run])


def test_traverse_one_point(refuses, tiny_vae_run, tmp_path):
    refuses(["traverse", tiny_vae_run, "--direct", "0", "1", "-n", "1", "-o", tmp_path / "t"], "-n", tree=[tmp_path, tiny_vae_run])


def test_traverse_pc_beyond_zdim(refuses, tiny_vae_run, tmp_path):
    refuses(["traverse", tiny_vae_run, "--pc", "9", "-o", tmp_path / "t", "--skip-vol"], "--pc", tree=[tmp_path, tiny_vae_run])


def test_traverse_more_neighbours_than_particles_is_no_traceback(cli, tiny_vae_run, tmp_path):
    code, _, err = cli(["traverse", tiny_vae_run, "--graph", "0", "5", "-k", "1000", "-o", tmp_path / "t", "--skip-vol"])
    assert "Traceback" not in err
    assert code == 0 or (code == 2 and "-k" in last_line(err) and "Fix:" in last_line(err)), f"exit {code}: {last_line(err)!r}"


# ----------------------------------------------------------------------------- select

def test_select_nothing_chosen(refuses, tiny_vae_run, tmp_path):
    refuses(["select", tiny_vae_run, "-o", tmp_path / "s.star"], "--clusters", tree=[tmp_path, tiny_vae_run])


def test_select_clusters_without_an_analysis(refuses, tiny_vae_run, tmp_path):
    refuses(["select", tiny_vae_run, "--clusters", "0", "-o", tmp_path / "s.star"], "analyze", tree=[tmp_path, tiny_vae_run])


def test_select_cluster_that_does_not_exist(refuses, analyzed_run, tmp_path):
    refuses(["select", analyzed_run, "--clusters", "99", "-o", tmp_path / "s.star"], "--clusters", tree=[tmp_path, analyzed_run])


def test_select_output_must_be_star(refuses, analyzed_run, tmp_path):
    refuses(["select", analyzed_run, "--clusters", "0", "-o", tmp_path / "s.txt"], "s.txt", ".star", tree=[tmp_path, analyzed_run])


def test_select_scores_without_a_cut(refuses, tiny_vae_run, scores, tmp_path):
    refuses(["select", tiny_vae_run, "--scores", scores, "-o", tmp_path / "s.star"], "--drop-worst", tree=[tmp_path, tiny_vae_run])


def test_select_particle_file_with_fewer_particles(refuses, tiny_vae_run, dataset, tmp_path):
    ind = tmp_path / "rows.txt"
    ind.write_text("90\n95\n")
    star = dataset / "particles.star"  # 64 particles; the run was trained on 96
    refuses(["select", tiny_vae_run, "--ind-file", ind, "--particles", star, "-o", tmp_path / "s.star"], str(star),
            tree=[tmp_path, tiny_vae_run, dataset])


def test_select_missing_index_file(refuses, tiny_vae_run, tmp_path):
    refuses(["select", tiny_vae_run, "--ind-file", MISSING + ".txt", "-o", tmp_path / "s.star"], MISSING, tree=[tmp_path, tiny_vae_run])


# ----------------------------------------------------------------------------- train-prior

def test_train_prior_missing_source(refuses, tmp_path):
    refuses(["train-prior", MISSING + ".npy", "-o", tmp_path / "p", "--steps", "5"], MISSING, tree=tmp_path)


def test_train_prior_unknown_latents_format(refuses, tmp_path):
    z = tmp_path / "z.txt"
    np.savetxt(z, np.random.default_rng(0).normal(size=(50, 2)))
    refuses(["train-prior", z, "-o", tmp_path / "p", "--steps", "5"], str(z), tree=tmp_path)


def test_train_prior_batch_larger_than_memory(refuses, tiny_vae_run, tmp_path):
    refuses(["train-prior", tiny_vae_run, "-o", tmp_path / "p", "--steps", "5", "-b", str(1 << 21)], "--batch-size",
            tree=[tmp_path, tiny_vae_run])


def test_train_prior_resume_of_nothing(refuses, tiny_vae_run, tmp_path):
    refuses(["train-prior", tiny_vae_run, "-o", tmp_path / "p", "--steps", "5", "--resume"], "resume", tree=[tiny_vae_run],
            exclude=tmp_path / "p")


def test_train_prior_resume_with_another_learning_rate(refuses, tiny_vae_run, prior_copy, tmp_path):
    refuses(["train-prior", tiny_vae_run, "-o", prior_copy, "--steps", "100", "-b", "64", "--lr", "0.5", "--resume"], "lr",
            tree=[tiny_vae_run, prior_copy], exclude=[prior_copy / "run.log", prior_copy / ".cryodiff-outputs.json"])


def test_train_prior_unreachable_privacy(refuses, tiny_vae_run, tmp_path):
    refuses(["train-prior", tiny_vae_run, "-o", tmp_path / "p", "--steps", "5", "--dp-epsilon", "1e-9"], "--dp-epsilon",
            tree=[tiny_vae_run], exclude=tmp_path / "p", seconds=60)


def test_train_prior_too_few_latents(refuses, tmp_path):
    z = tmp_path / "z.npy"
    np.save(z, np.random.default_rng(0).normal(size=(5, 2)).astype(np.float32))
    refuses(["train-prior", z, "-o", tmp_path / "p", "--steps", "5"], str(z), tree=tmp_path)


# ----------------------------------------------------------------------------- sample

def test_sample_volumes_without_run(refuses, prior, tmp_path):
    refuses(["sample", prior, "-n", "2", "-o", tmp_path / "z.txt", "--volumes", tmp_path / "v"], "--volumes", tree=[tmp_path, prior])


def test_sample_run_without_volumes(refuses, prior, tiny_vae_run, tmp_path):
    refuses(["sample", prior, "-n", "2", "-o", tmp_path / "z.txt", "--run", tiny_vae_run], "--run", tree=[tmp_path, prior])


def test_sample_unknown_solver(refuses, prior, tmp_path):
    refuses(["sample", prior, "-n", "2", "-o", tmp_path / "z.txt", "--solver", "rk99"], "--solver", tree=[tmp_path, prior])


def test_sample_output_suffix(refuses, prior, tmp_path):
    refuses(["sample", prior, "-n", "2", "-o", tmp_path / "z.csv"], "z.csv", tree=[tmp_path, prior])


def test_sample_run_of_another_zdim(refuses, prior, imported_run, tmp_path):
    refuses(["sample", prior, "-n", "2", "-o", tmp_path / "z.txt", "--volumes", tmp_path / "v", "--run", imported_run],
            str(imported_run), "zdim", tree=[tmp_path, prior, imported_run])


def test_sample_from_a_vae_run_instead_of_a_prior(refuses, tiny_vae_run, tmp_path):
    refuses(["sample", tiny_vae_run, "-n", "2", "-o", tmp_path / "z.txt"], str(tiny_vae_run), tree=[tmp_path, tiny_vae_run])


# ----------------------------------------------------------------------------- interpolate

def test_interpolate_from_a_particle_to_itself(refuses, prior, tiny_vae_run, tmp_path):
    refuses(["interpolate", prior, "--run", tiny_vae_run, "--from", "3", "--to", "3", "-o", tmp_path / "i"], "--to",
            tree=[tmp_path, prior, tiny_vae_run])


def test_interpolate_row_out_of_range(refuses, prior, tiny_vae_run, tmp_path):
    refuses(["interpolate", prior, "--run", tiny_vae_run, "--from", "0", "--to", "1000", "-o", tmp_path / "i"], "--to",
            tree=[tmp_path, prior, tiny_vae_run])


def test_interpolate_one_point(refuses, prior, tiny_vae_run, tmp_path):
    refuses(["interpolate", prior, "--run", tiny_vae_run, "--from", "0", "--to", "1", "-n", "1", "-o", tmp_path / "i"], "-n",
            tree=[tmp_path, prior, tiny_vae_run])


def test_interpolate_run_of_another_zdim(refuses, prior, imported_run, tmp_path):
    refuses(["interpolate", prior, "--run", imported_run, "--from", "0", "--to", "1", "-o", tmp_path / "i"], "zdim",
            tree=[tmp_path, prior, imported_run])


# ----------------------------------------------------------------------------- score-particles

def test_score_latents_of_another_zdim(refuses, prior, imported_run, tmp_path):
    latents = imported_run / "latents.h5"
    refuses(["score-particles", prior, "--latents", latents, "-o", tmp_path / "s.h5"], str(latents), "zdim",
            tree=[tmp_path, prior, imported_run])


def test_score_output_must_be_h5(refuses, prior, tiny_vae_run, tmp_path):
    refuses(["score-particles", prior, "--run", tiny_vae_run, "-o", tmp_path / "s.txt"], "s.txt", ".h5", tree=[tmp_path, prior])


def test_score_run_and_latents_together(refuses, prior, tiny_vae_run, tmp_path):
    refuses(["score-particles", prior, "--run", tiny_vae_run, "--latents", tiny_vae_run / "latents.h5", "-o", tmp_path / "s.h5"],
            "--latents", tree=[tmp_path, prior])


def test_score_without_latents(refuses, prior, tmp_path):
    refuses(["score-particles", prior, "-o", tmp_path / "s.h5"], "--run", tree=[tmp_path, prior])


# ----------------------------------------------------------------------------- absurd sizes: one line, not a traceback

def test_sample_ten_trillion_latents(refuses, prior, tmp_path):
    refuses(["sample", prior, "-n", str(10**13), "-o", tmp_path / "z.npy"], "-n", tree=[tmp_path, prior], seconds=60)


def test_simulate_ten_trillion_particles(refuses, tmp_path):
    refuses(["simulate", tmp_path / "sim", "-n", str(10**13), "-D", "16"], "-n", tree=tmp_path, exclude=tmp_path / "sim", seconds=60)


def test_traverse_ten_trillion_points(refuses, tiny_vae_run, tmp_path):
    refuses(["traverse", tiny_vae_run, "--direct", "0", "1", "-n", str(10**13), "--skip-vol", "-o", tmp_path / "t"], "-n",
            tree=[tmp_path, tiny_vae_run], exclude=tmp_path / "t", seconds=60)


def test_train_vae_latent_dimension_of_a_billion(refuses, dataset, tmp_path):
    refuses(["train-vae", dataset / "particles.star", "-o", tmp_path / "run", "--zdim", str(10**9), *TINY_VAE, "-n", "1"],
            "--zdim", tree=[dataset], exclude=tmp_path / "run", seconds=60)


def test_import_config_yaml_that_is_not_a_mapping(refuses, tmp_path):
    workdir = write_cryodrgn_workdir(tmp_path / "cd")
    (workdir / "config.yaml").write_text(yaml.safe_dump(["a", "list"]))
    refuses(["import-cryodrgn", workdir, "-o", tmp_path / "run"], "config.yaml", tree=tmp_path, exclude=tmp_path / "run")


# ----------------------------------------------------------------------------- what a critically damped Langevin prior cannot do

@pytest.fixture(scope="module")
def cld_prior(tiny_vae_run, tmp_path_factory):
    from adversarial_helpers import run_main

    out = tmp_path_factory.mktemp("adv_cld") / "prior"
    assert run_main(["train-prior", tiny_vae_run, "-o", out, "--steps", "20", "-b", "32", "--formulation", "cld", "--threads", "1"]) == 0
    return out


def test_interpolate_through_a_cld_prior(refuses, cld_prior, tiny_vae_run, tmp_path):
    refuses(["interpolate", cld_prior, "--run", tiny_vae_run, "--from", "0", "--to", "1", "-n", "2", "-o", tmp_path / "i"], "cld",
            tree=[tmp_path, cld_prior, tiny_vae_run], exclude=tmp_path / "i")


def test_score_particles_with_a_cld_prior(refuses, cld_prior, tiny_vae_run, tmp_path):
    refuses(["score-particles", cld_prior, "--run", tiny_vae_run, "-o", tmp_path / "s.h5"], "cld", tree=[tmp_path, cld_prior, tiny_vae_run])
