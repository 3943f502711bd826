"""Rule 2: physically impossible values are errors, never a plausible result.

* numeric options out of range (0 or negative counts, sizes, epochs, steps,
  batch sizes, learning rates; NaN or infinity anywhere; negative seeds; odd
  boxes; fractions outside [0, 1]) are refused at the parser, before any file
  is read (the inputs named here do not exist, so a later refusal would name
  them instead of the option);
* metadata that cannot describe a measurement (voltage <= 0, amplitude
  contrast outside [0, 1], NaN/inf pixel size, defocus, Cs, phase shift,
  poses or shifts) in a .star, .cs, pose.pkl or ctf.pkl is refused, naming
  the file and the field;
* an empty selection (an empty --ind file, a select that keeps nothing) is an
  error, and so are NaN or infinite latents, normalisations and pixel sizes.
"""

from __future__ import annotations

import pickle

import h5py
import numpy as np
import pytest
from adversarial_helpers import (
    TINY_VAE,
    cryodrgn_config,
    cs_from_dataset,
    edited_star,
    load_config,
    save_config,
    write_cryodrgn_workdir,
)

M = "/nonexistent/adversarial"  # inputs that do not exist: the option must be refused first
OUT = "/nonexistent/adversarial/out"

# (argv, the option the error line must name)
PARSER_CASES = [
    # demo
    (["demo", OUT, "-n", "0"], "-n"),
    (["demo", OUT, "-D", "33"], "--box"),
    (["demo", OUT, "--snr", "0"], "--snr"),
    (["demo", OUT, "--snr", "nan"], "--snr"),
    (["demo", OUT, "--epochs", "0"], "--epochs"),
    (["demo", OUT, "--prior-steps", "-5"], "--prior-steps"),
    (["demo", OUT, "--seed", "-1"], "--seed"),
    # simulate
    (["simulate", OUT, "-n", "-3"], "-n"),
    (["simulate", OUT, "-D", "15"], "--box"),
    (["simulate", OUT, "--apix", "inf"], "--apix"),
    (["simulate", OUT, "--apix", "0"], "--apix"),
    (["simulate", OUT, "--snr", "-1"], "--snr"),
    (["simulate", OUT, "--subunit-fraction", "1.5"], "--subunit-fraction"),
    (["simulate", OUT, "--state", "-0.1"], "--state"),
    (["simulate", OUT, "--junk-fraction", "nan"], "--junk-fraction"),
    (["simulate", OUT, "--seed", "-7"], "--seed"),
    # downsample
    (["downsample", f"{M}/p.star", "-D", "0", "-o", f"{OUT}.mrcs"], "--box"),
    (["downsample", f"{M}/p.star", "-D", "9", "-o", f"{OUT}.mrcs"], "--box"),
    (["downsample", f"{M}/p.star", "-D", "8", "-b", "0", "-o", f"{OUT}.mrcs"], "--batch-size"),
    (["downsample", f"{M}/p.star", "-D", "8", "--apix", "nan", "-o", f"{OUT}.mrcs"], "--apix"),
    # backproject
    (["backproject", f"{M}/p.star", "-o", f"{OUT}.mrc", "-b", "0"], "--batch-size"),
    (["backproject", f"{M}/p.star", "-o", f"{OUT}.mrc", "--apix", "-1"], "--apix"),
    (["backproject", f"{M}/p.star", "-o", f"{OUT}.mrc", "-w", "1.5"], "--amplitude-contrast"),
    (["backproject", f"{M}/p.star", "-o", f"{OUT}.mrc", "-w", "nan"], "--amplitude-contrast"),
    (["backproject", f"{M}/p.star", "-o", f"{OUT}.mrc", "--reg", "-1"], "--reg"),
    (["backproject", f"{M}/p.star", "-o", f"{OUT}.mrc", "--reg", "inf"], "--reg"),
    # fsc
    (["fsc", f"{M}/a.mrc", f"{M}/b.mrc", "--apix", "0"], "--apix"),
    (["fsc", f"{M}/a.mrc", f"{M}/b.mrc", "--apix", "nan"], "--apix"),
    # train-vae
    (["train-vae", f"{M}/p.star", "-o", OUT, "--zdim", "0"], "--zdim"),
    (["train-vae", f"{M}/p.star", "-o", OUT, "--zdim", "4", "-n", "0"], "--epochs"),
    (["train-vae", f"{M}/p.star", "-o", OUT, "--zdim", "4", "--lr", "0"], "--lr"),
    (["train-vae", f"{M}/p.star", "-o", OUT, "--zdim", "4", "--lr", "nan"], "--lr"),
    (["train-vae", f"{M}/p.star", "-o", OUT, "--zdim", "4", "--lr", "-1e-4"], "--lr"),
    (["train-vae", f"{M}/p.star", "-o", OUT, "--zdim", "4", "--wd", "-1"], "--wd"),
    (["train-vae", f"{M}/p.star", "-o", OUT, "--zdim", "4", "--beta", "inf"], "--beta"),
    (["train-vae", f"{M}/p.star", "-o", OUT, "--zdim", "4", "--seed", "-1"], "--seed"),
    (["train-vae", f"{M}/p.star", "-o", OUT, "--zdim", "4", "--seed", str(2**32)], "--seed"),
    (["train-vae", f"{M}/p.star", "-o", OUT, "--zdim", "4", "--enc-dim", "0"], "--enc-dim"),
    (["train-vae", f"{M}/p.star", "-o", OUT, "--zdim", "4", "--dec-layers", "0"], "--dec-layers"),
    (["train-vae", f"{M}/p.star", "-o", OUT, "--zdim", "4", "--pe-dim", "0"], "--pe-dim"),
    (["train-vae", f"{M}/p.star", "-o", OUT, "--zdim", "4", "--feat-sigma", "0"], "--feat-sigma"),
    (["train-vae", f"{M}/p.star", "-o", OUT, "--zdim", "4", "--checkpoint", "-1"], "--checkpoint"),
    (["train-vae", f"{M}/p.star", "-o", OUT, "--zdim", "4", "--threads", "0"], "--threads"),
    (["train-vae", f"{M}/p.star", "-o", OUT, "--zdim", "4", "-b", "0"], "--batch-size"),
    (["train-vae", f"{M}/p.star", "-o", OUT, "--zdim", "4", "-w", "-0.5"], "--amplitude-contrast"),
    # eval-vol
    (["eval-vol", M, "-z", "0", "nan", "-o", OUT], "-z"),
    (["eval-vol", M, "-z", "inf", "0", "-o", OUT], "-z"),
    (["eval-vol", M, "-z", "0", "0", "-o", OUT, "-D", "7"], "-D"),
    (["eval-vol", M, "-z", "0", "0", "-o", OUT, "--apix", "0"], "--apix"),
    # import-cryodrgn
    (["import-cryodrgn", M, "-o", OUT, "--epoch", "0"], "--epoch"),
    (["import-cryodrgn", M, "-o", OUT, "--apix", "-2.5"], "--apix"),
    # analyze
    (["analyze", M, "0"], "epoch"),
    (["analyze", M, "--ksample", "0"], "--ksample"),
    (["analyze", M, "--pc", "-1"], "--pc"),
    (["analyze", M, "--n-per-pc", "0"], "--n-per-pc"),
    (["analyze", M, "-D", "9"], "-D"),
    (["analyze", M, "--seed", "-1"], "--seed"),
    # traverse
    (["traverse", M, "--pc", "0"], "--pc"),
    (["traverse", M, "--graph", "-1", "3"], "--graph"),
    (["traverse", M, "--direct", "0", "1", "-n", "0"], "-n"),
    (["traverse", M, "--graph", "0", "1", "-k", "0"], "--neighbors"),
    (["traverse", M, "--pc", "1", "-D", "10.5"], "-D"),
    # select
    (["select", M, "--clusters", "-1", "-o", f"{OUT}.star"], "--clusters"),
    (["select", M, "--clusters", "0", "--ksample", "0", "-o", f"{OUT}.star"], "--ksample"),
    (["select", M, "--scores", f"{M}/s.h5", "--drop-worst", "-5", "-o", f"{OUT}.star"], "--drop-worst"),
    (["select", M, "--scores", f"{M}/s.h5", "--drop-worst", "nan", "-o", f"{OUT}.star"], "--drop-worst"),
    (["select", M, "--scores", f"{M}/s.h5", "--min-log-prob", "nan", "-o", f"{OUT}.star"], "--min-log-prob"),
    (["select", M, "--scores", f"{M}/s.h5", "--min-log-prob", "-inf", "-o", f"{OUT}.star"], "--min-log-prob"),
    # train-prior
    (["train-prior", M, "-o", OUT, "--steps", "0"], "--steps"),
    (["train-prior", M, "-o", OUT, "-b", "0"], "--batch-size"),
    (["train-prior", M, "-o", OUT, "--lr", "inf"], "--lr"),
    (["train-prior", M, "-o", OUT, "--dp-epsilon", "0"], "--dp-epsilon"),
    (["train-prior", M, "-o", OUT, "--dp-epsilon", "nan"], "--dp-epsilon"),
    (["train-prior", M, "-o", OUT, "--dp-epsilon", "1", "--dp-delta", "0"], "--dp-delta"),
    (["train-prior", M, "-o", OUT, "--seed", "-1"], "--seed"),
    # sample
    (["sample", M, "-n", "0", "-o", f"{OUT}.txt"], "-n"),
    (["sample", M, "-n", "2", "-o", f"{OUT}.txt", "--steps", "0"], "--steps"),
    (["sample", M, "-n", "2", "-o", f"{OUT}.txt", "--seed", "-1"], "--seed"),
    (["sample", M, "-n", "2", "-o", f"{OUT}.txt", "-D", "6"], "-D"),
    # interpolate
    (["interpolate", M, "--run", M, "--from", "-1", "--to", "2", "-o", OUT], "--from"),
    (["interpolate", M, "--run", M, "--from", "0", "--to", "2", "-n", "0", "-o", OUT], "-n"),
    (["interpolate", M, "--run", M, "--from", "0", "--to", "2", "-k", "0", "-o", OUT], "-k"),
    (["interpolate", M, "--run", M, "--from", "0", "--to", "2", "--steps", "0", "-o", OUT], "--steps"),
    # score-particles
    (["score-particles", M, "--run", M, "-o", f"{OUT}.h5", "--steps", "0"], "--steps"),
    (["score-particles", M, "--run", M, "-o", f"{OUT}.h5", "-b", "-4"], "--batch-size"),
]


@pytest.mark.parametrize("argv, option", PARSER_CASES, ids=[" ".join([a[0], *a[-2:]]) for a, _ in PARSER_CASES])
def test_out_of_range_option_is_refused_at_the_parser(refuses, argv, option):
    refuses(argv, option)


# Range checks that need no file: refused before the (missing) inputs are read.
BEFORE_FILES = [
    (["select", M, "--scores", f"{M}/s.h5", "--drop-worst", "150", "-o", f"{OUT}.star"], "--drop-worst"),
    (["train-prior", M, "-o", OUT, "--dp-epsilon", "1", "--dp-delta", "1.5"], "--dp-delta"),
    (["train-prior", M, "-o", OUT, "-b", str(1 << 21)], "--batch-size"),
    (["analyze", M, "--n-per-pc", "1"], "--n-per-pc"),
    (["demo", OUT, "-D", "300"], "--box"),
]


@pytest.mark.parametrize("argv, option", BEFORE_FILES, ids=[f"{a[0]} {o}" for a, o in BEFORE_FILES])
def test_impossible_option_is_refused_before_any_file_is_read(refuses, argv, option):
    refuses(argv, option)


# ----------------------------------------------------------------------------- RELION .star values

def _set(column, value, row=5):
    """Edit ``column`` of a star table at ``row`` (the only row of a one-group optics table);
    a column the table lacks is added with valid values first."""
    def edit(table):
        values = table[column].astype(float).to_numpy().copy() if column in table.columns else np.full(len(table), 300.0)
        values[min(row, len(values) - 1)] = value
        table[column] = values
    return edit


STAR_CASES = [
    # (table, column, value)
    ("optics", "rlnVoltage", 0.0),
    ("optics", "rlnVoltage", -300.0),
    ("optics", "rlnAmplitudeContrast", 1.5),
    ("optics", "rlnAmplitudeContrast", -0.1),
    ("optics", "rlnImagePixelSize", float("nan")),
    ("optics", "rlnImagePixelSize", float("inf")),
    ("optics", "rlnSphericalAberration", float("nan")),
    ("particles", "rlnDefocusU", float("nan")),
    ("particles", "rlnDefocusV", float("inf")),
    ("particles", "rlnDefocusAngle", float("nan")),
    ("particles", "rlnPhaseShift", float("inf")),
    ("particles", "rlnAngleTilt", float("nan")),
    ("particles", "rlnAngleRot", float("inf")),
    ("particles", "rlnOriginXAngst", float("inf")),
    ("particles", "rlnOriginYAngst", float("nan")),
    ("particles", "rlnVoltage", 0.0),  # a per-particle voltage column overrides the optics table
    ("optics", "rlnImageSize", 0.0),
]


@pytest.mark.parametrize("table, column, value", STAR_CASES, ids=[f"{c}={v}" for _, c, v in STAR_CASES])
def test_backproject_refuses_impossible_star_values(refuses, dataset, tmp_path, table, column, value):
    star = edited_star(dataset, tmp_path, **{table: _set(column, value)})
    phrases = [str(star)] if column.startswith(("rlnAngle", "rlnOrigin", "rlnImageSize")) or "PixelSize" in column else [str(star), column]
    refuses(["backproject", star, "-o", tmp_path / "out" / "map.mrc"], *phrases, tree=tmp_path, exclude=tmp_path / "out")


def test_train_vae_refuses_a_zero_voltage(refuses, dataset, tmp_path):
    star = edited_star(dataset, tmp_path, optics=_set("rlnVoltage", 0.0))
    refuses(["train-vae", star, "-o", tmp_path / "run", "--zdim", "2", *TINY_VAE, "-n", "1"], str(star), "rlnVoltage", tree=tmp_path)


def test_train_vae_refuses_a_nan_defocus_in_a_particle_it_uses(refuses, dataset, tmp_path):
    star = edited_star(dataset, tmp_path, particles=_set("rlnDefocusU", float("nan"), row=3))
    ind = tmp_path / "ind.txt"
    ind.write_text("1\n3\n5\n")
    refuses(["train-vae", star, "--ind", ind, "-o", tmp_path / "run", "--zdim", "2", *TINY_VAE, "-n", "1"], "rlnDefocusU", tree=tmp_path)


def test_downsample_refuses_a_star_with_an_impossible_amplitude_contrast(refuses, dataset, tmp_path):
    star = edited_star(dataset, tmp_path, optics=_set("rlnAmplitudeContrast", 2.0))
    refuses(["downsample", star, "-D", "8", "-o", tmp_path / "out" / "s.mrcs"], "rlnAmplitudeContrast", tree=tmp_path,
            exclude=tmp_path / "out")


def test_valid_cs_baseline_backprojects(cli, dataset, tmp_path):
    """The .cs files below differ from this one only in the field they break."""
    cs = cs_from_dataset(dataset, tmp_path)
    code, _, err = cli(["backproject", cs, "-o", tmp_path / "map.mrc"])
    assert code == 0, err[-500:]


def _cs_set(field, value, row=4):
    def edit(array):
        values = array[field]
        if values.ndim > 1:
            values[row, 0] = value
        else:
            values[row] = value
    return edit


CS_CASES = [
    ("ctf/accel_kv", 0.0),
    ("ctf/amp_contrast", 2.0),
    ("ctf/df1_A", float("inf")),
    ("ctf/cs_mm", float("nan")),
    ("ctf/phase_shift_rad", float("nan")),
    ("blob/psize_A", float("nan")),
    ("alignments3D/pose", float("nan")),
    ("alignments3D/shift", float("inf")),
]


@pytest.mark.parametrize("field, value", CS_CASES, ids=[f"{f}={v}" for f, v in CS_CASES])
def test_backproject_refuses_impossible_cs_values(refuses, dataset, tmp_path, field, value):
    cs = cs_from_dataset(dataset, tmp_path, _cs_set(field, value))
    phrases = [str(cs)] + ([field] if field.startswith("ctf/") else [])
    refuses(["backproject", cs, "-o", tmp_path / "out" / "map.mrc"], *phrases, tree=tmp_path, exclude=tmp_path / "out")


# ----------------------------------------------------------------------------- cryoDRGN pickles

def _poses(n=64):
    rng = np.random.default_rng(1)
    q, _ = np.linalg.qr(rng.normal(size=(n, 3, 3)))
    q *= np.sign(np.linalg.det(q))[:, None, None]
    return q, rng.normal(0, 0.01, (n, 2))


POSE_CASES = {
    "nan_rotation": lambda rot, trans: rot.__setitem__((7, 0, 0), np.nan),
    "inf_translation": lambda rot, trans: trans.__setitem__((7, 1), np.inf),
    "scaled_rotation": lambda rot, trans: rot.__setitem__(7, 2 * rot[7]),
    "reflection": lambda rot, trans: rot.__setitem__(7, -rot[7]),
}


@pytest.mark.parametrize("case", POSE_CASES)
def test_backproject_refuses_impossible_pose_pickles(refuses, dataset, tmp_path, case):
    rot, trans = _poses()
    POSE_CASES[case](rot, trans)
    poses = tmp_path / "pose.pkl"
    poses.write_bytes(pickle.dumps((rot, trans)))
    refuses(["backproject", dataset / "particles.star", "--poses", poses, "-o", tmp_path / "out" / "m.mrc"], str(poses), "particle 7",
            tree=[tmp_path, dataset], exclude=tmp_path / "out")


CTF_CASES = [(5, 0.0, "voltage"), (7, 1.01, "amplitude contrast"), (1, float("nan"), "pixel size"),
             (2, float("inf"), "defocus"), (6, float("nan"), "Cs"), (8, float("inf"), "phase shift")]


@pytest.mark.parametrize("column, value, name", CTF_CASES, ids=[n for *_, n in CTF_CASES])
def test_backproject_refuses_impossible_ctf_pickles(refuses, dataset, tmp_path, column, value, name):
    from recon.io import read_metadata

    ctf = read_metadata(dataset / "particles.star").ctf.copy()
    ctf[:, 0] = 16
    ctf[9, column] = value
    path = tmp_path / "ctf.pkl"
    path.write_bytes(pickle.dumps(ctf))
    refuses(["backproject", dataset / "particles.star", "--ctf", path, "-o", tmp_path / "out" / "m.mrc"], str(path), name,
            tree=[tmp_path, dataset], exclude=tmp_path / "out")


# ----------------------------------------------------------------------------- empty selections

def test_backproject_with_an_empty_index_file(refuses, dataset, tmp_path):
    ind = tmp_path / "ind.txt"
    ind.write_text("")
    refuses(["backproject", dataset / "particles.star", "--ind", ind, "-o", tmp_path / "out" / "m.mrc"], str(ind),
            tree=[tmp_path, dataset], exclude=tmp_path / "out")


def test_train_vae_with_an_empty_index_array(refuses, dataset, tmp_path):
    ind = tmp_path / "ind.npy"
    np.save(ind, np.zeros(0, dtype=np.int64))
    refuses(["train-vae", dataset / "particles.star", "--ind", ind, "-o", tmp_path / "run", "--zdim", "2", *TINY_VAE],
            str(ind), tree=[tmp_path, dataset])


def test_backproject_with_an_all_false_mask(refuses, dataset, tmp_path):
    ind = tmp_path / "mask.npy"
    np.save(ind, np.zeros(64, dtype=bool))
    refuses(["backproject", dataset / "particles.star", "--ind", ind, "-o", tmp_path / "out" / "m.mrc"], str(ind),
            tree=[tmp_path, dataset], exclude=tmp_path / "out")


def test_select_inverting_everything_is_empty(refuses, tiny_vae_run, tmp_path):
    ind = tmp_path / "all.txt"
    ind.write_text("\n".join(map(str, range(96))))
    refuses(["select", tiny_vae_run, "--ind-file", ind, "--invert-selection", "-o", tmp_path / "s.star"], "empty",
            tree=[tmp_path, tiny_vae_run])


def test_select_cut_above_every_score_is_empty(refuses, tiny_vae_run, scores, tmp_path):
    refuses(["select", tiny_vae_run, "--scores", scores, "--min-log-prob", "1e30", "-o", tmp_path / "s.star"], "empty",
            tree=[tmp_path, tiny_vae_run, scores.parent])


def test_select_empty_index_file(refuses, tiny_vae_run, tmp_path):
    ind = tmp_path / "none.txt"
    ind.write_text("")
    refuses(["select", tiny_vae_run, "--ind-file", ind, "-o", tmp_path / "s.star"], tree=[tmp_path, tiny_vae_run])


def test_eval_vol_empty_latent_file(refuses, tiny_vae_run, tmp_path):
    zfile = tmp_path / "z.txt"
    zfile.write_text("")
    refuses(["eval-vol", tiny_vae_run, "--zfile", zfile, "-o", tmp_path / "v"], str(zfile), tree=[tmp_path, tiny_vae_run],
            exclude=tmp_path / "v")


# ----------------------------------------------------------------------------- NaN and infinite latents

def test_train_prior_refuses_nan_latents(refuses, tmp_path):
    z = np.random.default_rng(0).normal(size=(50, 2)).astype(np.float32)
    z[17, 1] = np.nan
    path = tmp_path / "z.npy"
    np.save(path, z)
    refuses(["train-prior", path, "-o", tmp_path / "p", "--steps", "5"], str(path), tree=tmp_path)


def test_score_particles_refuses_infinite_latents(refuses, prior, tmp_path):
    z = np.random.default_rng(0).normal(size=(50, 4)).astype(np.float32)
    z[3, 2] = np.inf
    path = tmp_path / "z.npy"
    np.save(path, z)
    refuses(["score-particles", prior, "--latents", path, "-o", tmp_path / "s.h5", "--steps", "2"], str(path), tree=[tmp_path, prior])


def test_eval_vol_refuses_nan_in_a_latent_file(refuses, tiny_vae_run, tmp_path):
    zfile = tmp_path / "z.txt"
    zfile.write_text("0 0 0 0\n0 nan 0 0\n")
    refuses(["eval-vol", tiny_vae_run, "--zfile", zfile, "-o", tmp_path / "v"], str(zfile), tree=[tmp_path, tiny_vae_run],
            exclude=tmp_path / "v")


def test_eval_vol_refuses_inf_in_a_latent_array(refuses, tiny_vae_run, tmp_path):
    zfile = tmp_path / "z.npy"
    np.save(zfile, np.array([[0, 0, np.inf, 0]], dtype=np.float32))
    refuses(["eval-vol", tiny_vae_run, "--zfile", zfile, "-o", tmp_path / "v"], str(zfile), tree=[tmp_path, tiny_vae_run],
            exclude=tmp_path / "v")


def test_analyze_refuses_nan_latents_in_a_run(refuses, run_copy, tmp_path):
    with h5py.File(run_copy / "latents.h5", "r+") as h5:
        z = h5["z_mu"][()]
        z[11, 0] = np.nan
        h5["z_mu"][...] = z
    refuses(["analyze", run_copy, "-o", tmp_path / "a", "--skip-umap", "--skip-vol"], "latents.h5", tree=tmp_path, exclude=tmp_path / "a")


def test_import_refuses_nan_latents(refuses, tmp_path):
    z = np.random.default_rng(0).normal(size=(24, 3)).astype(np.float32)
    z[5, 1] = np.nan
    workdir = write_cryodrgn_workdir(tmp_path / "cd", z_mu=z)
    refuses(["import-cryodrgn", workdir, "-o", tmp_path / "run"], "z.1.pkl", tree=tmp_path, exclude=tmp_path / "run")


# ----------------------------------------------------------------------------- normalisations, pixel sizes, maps

@pytest.mark.parametrize("std", [float("nan"), -1.0, 0.0, "abc"])
def test_eval_vol_refuses_an_impossible_normalisation(refuses, run_copy, tmp_path, std):
    config = load_config(run_copy)
    config["normalization"]["std"] = std
    save_config(run_copy, config)
    refuses(["eval-vol", run_copy, "-z", "0", "0", "0", "0", "-o", tmp_path / "v"], "config.json", tree=tmp_path, exclude=tmp_path / "v")


@pytest.mark.parametrize("apix", [float("nan"), 0.0, -6.0])
def test_eval_vol_refuses_an_impossible_pixel_size_in_the_run(refuses, run_copy, tmp_path, apix):
    config = load_config(run_copy)
    config["data"]["apix"] = apix
    save_config(run_copy, config)
    refuses(["eval-vol", run_copy, "-z", "0", "0", "0", "0", "-o", tmp_path / "v"], "config.json", tree=tmp_path, exclude=tmp_path / "v")


def test_import_refuses_a_nan_pixel_size_in_ctf_pkl(refuses, tmp_path):
    ctf = np.zeros((24, 9))
    ctf[:, 0], ctf[:, 1], ctf[:, 2:4], ctf[:, 5], ctf[:, 6], ctf[:, 7] = 16, np.nan, 15000.0, 300.0, 2.7, 0.1
    workdir = write_cryodrgn_workdir(tmp_path / "cd", ctf=ctf)
    refuses(["import-cryodrgn", workdir, "-o", tmp_path / "run"], "ctf.pkl", tree=tmp_path, exclude=tmp_path / "run")


def test_import_refuses_an_infinite_normalisation(refuses, tmp_path):
    workdir = tmp_path / "cd"
    write_cryodrgn_workdir(workdir, config=cryodrgn_config(workdir, dataset_args={"norm": [0.0, float("inf")]}))
    refuses(["import-cryodrgn", workdir, "-o", tmp_path / "run"], "norm", tree=tmp_path, exclude=tmp_path / "run")


def test_fsc_refuses_a_map_with_nan_voxels(refuses, dataset, tmp_path):
    from recon.io import read_volume, write_volume

    vol, apix = read_volume(dataset / "volumes" / "state00_subunit0.mrc")
    vol[3, 4, 5] = np.nan
    write_volume(tmp_path / "nan.mrc", vol, apix)
    refuses(["fsc", tmp_path / "nan.mrc", dataset / "volumes" / "state01_subunit0.mrc"], "nan.mrc", tree=[tmp_path, dataset])


@pytest.mark.parametrize("voxel", [-2.0, float("nan")])
def test_fsc_refuses_an_impossible_voxel_size_in_the_header(refuses, dataset, tmp_path, voxel):
    import mrcfile

    path = tmp_path / "a.mrc"
    path.write_bytes((dataset / "volumes" / "state00_subunit0.mrc").read_bytes())
    with mrcfile.open(path, "r+", permissive=True) as mrc:
        mrc.header.cella.x = voxel * 16
    refuses(["fsc", path, dataset / "volumes" / "state01_subunit0.mrc"], "a.mrc", tree=[tmp_path, dataset])


def test_sample_refuses_a_prior_with_nan_weights(refuses, prior_copy, tmp_path):
    import torch

    state = torch.load(prior_copy / "prior.pt", weights_only=True)
    first = next(iter(state["ema"]))
    state["ema"][first] = torch.full_like(state["ema"][first], float("nan"))
    torch.save(state, prior_copy / "prior.pt")
    refuses(["sample", prior_copy, "-n", "4", "-o", tmp_path / "z.txt", "--steps", "4"], "prior", tree=tmp_path)


def test_eval_vol_refuses_a_run_with_nan_weights(refuses, run_copy, tmp_path):
    import torch

    state = torch.load(run_copy / "checkpoint.pt", weights_only=True)
    key = next(k for k in state["model"] if "decoder" in k and k.endswith("weight"))
    state["model"][key] = torch.full_like(state["model"][key], float("nan"))
    torch.save(state, run_copy / "checkpoint.pt")
    refuses(["eval-vol", run_copy, "-z", "0", "0", "0", "0", "-o", tmp_path / "v"], "checkpoint.pt", tree=tmp_path, exclude=tmp_path / "v")
