"""Rule 4: corrupt or foreign run, prior and data files (truncated JSON, garbage
HDF5 or checkpoints, unknown keys, NaN latents, a 200-byte .npy/.cs declaring
10^10 rows, an HDF5 dataset declared with 10^10 rows but never written, YAML
alias bombs, non-numeric values, weights that are not tensors, pickles that
would run code, non-UTF-8 bytes) give one line and exit status 2, quickly and
without allocating gigabytes (each hostile case runs under a time limit and an
address-space cap, and its peak memory growth is checked).
"""

from __future__ import annotations

import json
import os
import pickle
import shutil
import struct

import h5py
import numpy as np
import pytest
import torch
from adversarial_helpers import (
    TINY_RUN_RESUME,
    cryodrgn_config,
    cs_from_dataset,
    edited_star,
    hostile_pickle,
    load_config,
    npy_declaring,
    save_config,
    write_cryodrgn_workdir,
)

Z4 = ["-z", "0", "0", "0", "0"]
RUN_FILES_EXCLUDED = ("run.log", ".cryodiff-outputs.json")  # a refused resume may log and record; nothing else may change


class Evil:
    """Unpickled by pickle.load, it would create the file it names."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def _run_readers(run, prior, tmp_path):
    """Every command that reads a VAE run (what it needs of the run differs)."""
    try:
        star = load_config(run)["data"]["particles"]
    except (OSError, ValueError, KeyError):
        star = str(run.parent / "particles.star")
    rows = tmp_path / "rows.txt"
    rows.write_text("1\n2\n")
    return {
        "eval-vol": ["eval-vol", run, *Z4, "-o", tmp_path / "v"],
        "analyze": ["analyze", run, "-o", tmp_path / "a", "--skip-umap", "--skip-vol", "--ksample", "2"],
        "traverse": ["traverse", run, "--direct", "0", "1", "-n", "2", "--skip-vol", "-o", tmp_path / "t"],
        "select": ["select", run, "--ind-file", rows, "-o", tmp_path / "s.star"],
        "sample": ["sample", prior, "-n", "2", "-o", tmp_path / "z.txt", "--volumes", tmp_path / "sv", "--run", run, "-D", "8"],
        "interpolate": ["interpolate", prior, "--run", run, "--from", "0", "--to", "1", "-n", "2", "--steps", "2", "-o", tmp_path / "i"],
        "score-particles": ["score-particles", prior, "--run", run, "-o", tmp_path / "s.h5", "--steps", "2"],
        "train-prior": ["train-prior", run, "-o", tmp_path / "p", "--steps", "5"],
        "train-vae": ["train-vae", star, "-o", run, "--resume", "-n", "2", *TINY_RUN_RESUME],
    }


def _outputs(tmp_path):
    return [tmp_path / n for n in ("v", "a", "t", "sv", "i", "p")]


def _refuse_run(refuses, run, prior, tmp_path, command, *phrases, seconds=30):
    argv = _run_readers(run, prior, tmp_path)[command]
    excluded = _outputs(tmp_path) + ([run / n for n in RUN_FILES_EXCLUDED] if command == "train-vae" else [])
    refuses(argv, *phrases, tree=[tmp_path, prior], exclude=excluded, seconds=seconds)


# ----------------------------------------------------------------------------- config.json

@pytest.mark.parametrize("command", ["eval-vol", "analyze", "traverse", "select", "sample", "interpolate", "train-vae"])
def test_truncated_config(refuses, run_copy, prior, tmp_path, command):
    argv = _run_readers(run_copy, prior, tmp_path)[command]
    text = (run_copy / "config.json").read_text()
    (run_copy / "config.json").write_text(text[: len(text) // 2])
    excluded = _outputs(tmp_path) + ([run_copy / n for n in RUN_FILES_EXCLUDED] if command == "train-vae" else [])
    refuses(argv, "config.json", tree=[tmp_path, prior], exclude=excluded)


def test_resume_with_a_config_of_another_program(refuses, run_copy, prior, tmp_path):
    star = load_config(run_copy)["data"]["particles"]
    (run_copy / "config.json").write_text(json.dumps({"name": "someone else's settings"}))
    refuses(["train-vae", star, "-o", run_copy, "--resume", "-n", "2", *TINY_RUN_RESUME], "config.json",
            tree=tmp_path, exclude=[run_copy / n for n in RUN_FILES_EXCLUDED])


@pytest.mark.parametrize("field, value", [("zdim", -1), ("box", 100_000), ("enc_dim", 10**9), ("zdim", "four")])
def test_config_architecture_that_cannot_be_built(refuses, run_copy, tmp_path, field, value):
    config = load_config(run_copy)
    config["architecture"][field] = value
    save_config(run_copy, config)
    refuses(["eval-vol", run_copy, *Z4, "-o", tmp_path / "v"], "config.json", tree=tmp_path, exclude=tmp_path / "v", seconds=30)


# ----------------------------------------------------------------------------- latents.h5

@pytest.mark.parametrize("command", ["analyze", "traverse", "select", "score-particles", "train-prior"])
def test_garbage_latents(refuses, run_copy, prior, tmp_path, command):
    (run_copy / "latents.h5").write_bytes(os.urandom(3000))
    _refuse_run(refuses, run_copy, prior, tmp_path, command, "latents.h5")


@pytest.mark.parametrize("command", ["analyze", "train-prior", "score-particles"])
def test_latents_declared_with_ten_billion_rows_never_written(refuses, run_copy, prior, tmp_path, command):
    (run_copy / "latents.h5").unlink()
    with h5py.File(run_copy / "latents.h5", "w") as h5:
        h5.create_dataset("z_mu", shape=(10**10, 4), dtype="f4")
        h5.create_dataset("z_logvar", shape=(10**10, 4), dtype="f4")
        h5.create_dataset("indices", shape=(10**10,), dtype="i8")
    assert (run_copy / "latents.h5").stat().st_size < 100_000
    _refuse_run(refuses, run_copy, prior, tmp_path, command, "latents.h5")


def test_latents_with_one_chunk_of_a_billion_rows_written(refuses, run_copy, prior, tmp_path):
    (run_copy / "latents.h5").unlink()
    with h5py.File(run_copy / "latents.h5", "w") as h5:
        ds = h5.create_dataset("z_mu", shape=(10**9, 4), chunks=(1000, 4), dtype="f4")
        ds[:1000] = np.random.default_rng(0).normal(size=(1000, 4))
    _refuse_run(refuses, run_copy, prior, tmp_path, "train-prior", "latents.h5")


def test_latents_stored_as_text(refuses, run_copy, prior, tmp_path):
    with h5py.File(run_copy / "latents.h5", "r+") as h5:
        n = len(h5["indices"])
        del h5["z_mu"]
        h5["z_mu"] = np.array([["a"] * 4] * n, dtype=h5py.string_dtype())
    _refuse_run(refuses, run_copy, prior, tmp_path, "analyze", "latents.h5")


def test_latents_z_mu_is_a_group(refuses, run_copy, prior, tmp_path):
    with h5py.File(run_copy / "latents.h5", "r+") as h5:
        del h5["z_mu"]
        h5.create_group("z_mu")
    _refuse_run(refuses, run_copy, prior, tmp_path, "train-prior", "latents.h5")


def test_latents_with_repeated_particle_indices(refuses, run_copy, prior, tmp_path):
    with h5py.File(run_copy / "latents.h5", "r+") as h5:
        h5["indices"][...] = np.zeros(len(h5["indices"]), dtype=np.int64)
    _refuse_run(refuses, run_copy, prior, tmp_path, "select", "latents.h5")


# ----------------------------------------------------------------------------- checkpoint.pt

def test_garbage_checkpoint(refuses, run_copy, prior, tmp_path):
    (run_copy / "checkpoint.pt").write_bytes(os.urandom(5000))
    _refuse_run(refuses, run_copy, prior, tmp_path, "eval-vol", "checkpoint.pt")


def test_checkpoint_that_would_run_code(refuses, run_copy, prior, tmp_path):
    marker = tmp_path / "PWNED"
    torch.save({"model": Evil(marker)}, run_copy / "checkpoint.pt")
    _refuse_run(refuses, run_copy, prior, tmp_path, "eval-vol", "checkpoint.pt")
    assert not marker.exists(), "loading the checkpoint ran code"


def test_checkpoint_holding_a_list(refuses, run_copy, prior, tmp_path):
    torch.save([1, 2, 3], run_copy / "checkpoint.pt")
    _refuse_run(refuses, run_copy, prior, tmp_path, "eval-vol", "checkpoint.pt")


def test_checkpoint_whose_weights_are_not_tensors(refuses, run_copy, prior, tmp_path):
    state = torch.load(run_copy / "checkpoint.pt", weights_only=True)
    state["model"] = {key: "not a tensor" for key in state["model"]}
    torch.save(state, run_copy / "checkpoint.pt")
    _refuse_run(refuses, run_copy, prior, tmp_path, "eval-vol", str(run_copy))


def test_checkpoint_of_another_architecture(refuses, run_copy, prior, imported_run, tmp_path):
    shutil.copy(imported_run / "checkpoint.pt", run_copy / "checkpoint.pt")
    _refuse_run(refuses, run_copy, prior, tmp_path, "eval-vol", str(run_copy))


@pytest.mark.parametrize("damage", ["no_optimizer", "epoch_text", "generator_text"])
def test_resume_from_a_damaged_checkpoint(refuses, run_copy, tmp_path, damage):
    state = torch.load(run_copy / "checkpoint.pt", weights_only=True)
    if damage == "no_optimizer":
        del state["optimizer"]
    elif damage == "epoch_text":
        state["epoch"] = "one"
    else:
        state["generator"] = "not a generator state"
    torch.save(state, run_copy / "checkpoint.pt")
    star = load_config(run_copy)["data"]["particles"]
    refuses(["train-vae", star, "-o", run_copy, "--resume", "-n", "2", *TINY_RUN_RESUME], "checkpoint.pt",
            tree=tmp_path, exclude=[run_copy / n for n in RUN_FILES_EXCLUDED])


def test_resume_with_a_log_of_non_utf8_bytes(refuses, run_copy, tmp_path):
    (run_copy / "log.jsonl").write_bytes(b'{"epoch": 1, "loss": 1.0}\n\xff\xfe\x00garbage\n')
    star = load_config(run_copy)["data"]["particles"]
    refuses(["train-vae", star, "-o", run_copy, "--resume", "-n", "2", *TINY_RUN_RESUME], "log.jsonl",
            tree=tmp_path, exclude=[run_copy / n for n in RUN_FILES_EXCLUDED])


# ----------------------------------------------------------------------------- prior files

def _edit_prior_json(prior, edit):
    record = json.loads((prior / "prior.json").read_text())
    edit(record)
    (prior / "prior.json").write_text(json.dumps(record))


PRIOR_JSON_CASES = {
    "truncated": None,
    "unknown_setting": lambda r: r["settings"].__setitem__("warp_drive", True),
    "unknown_top_level_key": lambda r: r.__setitem__("payload", {"run": "rm -rf /"}),
    "no_format": lambda r: r.pop("format"),
    "zdim_text": lambda r: r.__setitem__("zdim", "four"),
    "huge_network": lambda r: r["settings"].__setitem__("hidden", 10**6),
    "unknown_formulation": lambda r: r["settings"].__setitem__("formulation", "warp"),
    "std_negative": lambda r: r.__setitem__("std", [-1.0] * len(r["std"])),
    "mean_text": lambda r: r.__setitem__("mean", "zero"),
}


@pytest.mark.parametrize("case", PRIOR_JSON_CASES)
def test_corrupt_prior_json(refuses, prior_copy, tmp_path, case):
    if case == "truncated":
        text = (prior_copy / "prior.json").read_text()
        (prior_copy / "prior.json").write_text(text[: len(text) // 3])
    else:
        _edit_prior_json(prior_copy, PRIOR_JSON_CASES[case])
    refuses(["sample", prior_copy, "-n", "2", "-o", tmp_path / "z.txt", "--steps", "2"], "prior.json", tree=tmp_path, seconds=30)


PRIOR_PT_CASES = {
    "garbage": lambda p, m: p.write_bytes(os.urandom(4000)),
    "runs_code": lambda p, m: torch.save({"ema": Evil(m)}, p),
    "ema_text": lambda p, m: torch.save({"ema": "weights"}, p),
    "empty_dict": lambda p, m: torch.save({}, p),
    "truncated": lambda p, m: p.write_bytes(p.read_bytes()[:1000]),
}


@pytest.mark.parametrize("case", PRIOR_PT_CASES)
def test_corrupt_prior_weights(refuses, prior_copy, tmp_path, case):
    marker = tmp_path / "PWNED"
    PRIOR_PT_CASES[case](prior_copy / "prior.pt", marker)
    refuses(["sample", prior_copy, "-n", "2", "-o", tmp_path / "z.txt", "--steps", "2"], "prior.pt", tree=tmp_path)
    assert not marker.exists(), "loading prior.pt ran code"


@pytest.mark.parametrize("case", ["garbage", "no_step", "runs_code"])
def test_resume_prior_from_a_damaged_checkpoint(refuses, tiny_vae_run, prior_copy, tmp_path, case):
    marker = tmp_path / "PWNED"
    path = prior_copy / "checkpoint.pt"
    if case == "garbage":
        path.write_bytes(os.urandom(4000))
    elif case == "no_step":
        state = torch.load(path, weights_only=True)
        state.pop("step", None)
        state.pop("optimizer", None)
        torch.save(state, path)
    else:
        torch.save({"model": Evil(marker)}, path)
    refuses(["train-prior", tiny_vae_run, "-o", prior_copy, "--steps", "200", "-b", "64", "--resume"], "checkpoint.pt",
            tree=[tmp_path, tiny_vae_run], exclude=[prior_copy / "run.log", prior_copy / ".cryodiff-outputs.json"])
    assert not marker.exists()


def test_resume_prior_with_a_log_of_non_utf8_bytes(refuses, tiny_vae_run, prior_copy, tmp_path):
    (prior_copy / "log.jsonl").write_bytes(b'{"step": 50, "loss": 1.0}\n\xff\xfe\x00garbage\n')
    refuses(["train-prior", tiny_vae_run, "-o", prior_copy, "--steps", "200", "-b", "64", "--resume"], "log.jsonl",
            tree=[tmp_path, tiny_vae_run], exclude=[prior_copy / "run.log", prior_copy / ".cryodiff-outputs.json"])


# ----------------------------------------------------------------------------- arrays that declare more than they hold

def test_train_prior_npy_declaring_ten_billion_rows(refuses, tmp_path):
    path = npy_declaring(tmp_path / "z.npy", (10**10, 8))
    assert path.stat().st_size < 300
    refuses(["train-prior", path, "-o", tmp_path / "p", "--steps", "5"], str(path), tree=tmp_path, seconds=20)


def test_score_latents_npy_declaring_ten_billion_rows(refuses, prior, tmp_path):
    path = npy_declaring(tmp_path / "z.npy", (10**10, 4))
    refuses(["score-particles", prior, "--latents", path, "-o", tmp_path / "s.h5"], str(path), tree=[tmp_path, prior], seconds=20)


def test_index_npy_declaring_ten_billion_rows(refuses, dataset, tmp_path):
    path = npy_declaring(tmp_path / "ind.npy", (10**10,), "<i8")
    refuses(["backproject", dataset / "particles.star", "--ind", path, "-o", tmp_path / "m.mrc"], str(path), tree=[tmp_path, dataset],
            seconds=20)


def test_zfile_npy_declaring_ten_billion_rows(refuses, tiny_vae_run, tmp_path):
    path = npy_declaring(tmp_path / "z.npy", (10**10, 4))
    refuses(["eval-vol", tiny_vae_run, "--zfile", path, "-o", tmp_path / "v"], str(path), tree=[tmp_path, tiny_vae_run], seconds=20)


def test_cs_declaring_ten_billion_particles(refuses, tmp_path):
    dtype = "[('uid', '<u8'), ('blob/path', 'S32'), ('blob/idx', '<u4')]"
    path = tmp_path / "particles.cs"
    with open(path, "wb") as fh:
        fh.write(b"\x93NUMPY\x01\x00")
        header = f"{{'descr': {dtype}, 'fortran_order': False, 'shape': (10000000000,), }}"
        header = header + " " * (-(len(header) + 11) % 64) + "\n"
        fh.write(struct.pack("<H", len(header)) + header.encode("latin1"))
        fh.write(b"\0" * 96)
    refuses(["backproject", path, "-o", tmp_path / "m.mrc"], str(path), tree=tmp_path, seconds=20)


def test_cs_of_python_objects(refuses, tmp_path):
    path = tmp_path / "particles.cs"
    with open(path, "wb") as fh:
        np.save(fh, np.array([{"blob/path": "x"}], dtype=object), allow_pickle=True)
    refuses(["backproject", path, "-o", tmp_path / "m.mrc"], str(path), tree=tmp_path)


def test_select_scores_declared_but_never_written(refuses, tiny_vae_run, tmp_path):
    path = tmp_path / "scores.h5"
    with h5py.File(path, "w") as h5:
        h5.create_dataset("log_prob", shape=(10**10,), dtype="f8")
        h5.create_dataset("indices", shape=(10**10,), dtype="i8")
    refuses(["select", tiny_vae_run, "--scores", path, "--drop-worst", "5", "-o", tmp_path / "s.star"], str(path),
            tree=[tmp_path, tiny_vae_run], seconds=20)


def test_select_scores_that_are_not_hdf5(refuses, tiny_vae_run, tmp_path):
    path = tmp_path / "scores.h5"
    path.write_text("log_prob\n1.0\n")
    refuses(["select", tiny_vae_run, "--scores", path, "--drop-worst", "5", "-o", tmp_path / "s.star"], str(path),
            tree=[tmp_path, tiny_vae_run])


# ----------------------------------------------------------------------------- particle files and stacks

def test_cs_path_of_non_utf8_bytes(refuses, dataset, tmp_path):
    def edit(array):
        array["blob/path"][3] = b"\xff\xfeparticles.mrcs"
    cs = cs_from_dataset(dataset, tmp_path, edit)
    refuses(["backproject", cs, "-o", tmp_path / "m.mrc"], str(cs), "blob/path", tree=tmp_path)


def test_stack_list_of_non_utf8_bytes(refuses, dataset, tmp_path):
    shutil.copy(dataset / "particles.mrcs", tmp_path / "particles.mrcs")
    listing = tmp_path / "stacks.txt"
    listing.write_bytes(b"particles.mrcs\n\xff\xfe\xfd.mrcs\n")
    refuses(["downsample", listing, "-D", "8", "-o", tmp_path / "s.mrcs"], str(listing), tree=tmp_path)


@pytest.mark.parametrize("content", [b"", os.urandom(2000), b"data_\nloop_\n_rlnImageName #1\n"])
def test_star_that_is_not_a_particle_file(refuses, tmp_path, content):
    star = tmp_path / "particles.star"
    star.write_bytes(content)
    refuses(["backproject", star, "-o", tmp_path / "m.mrc"], str(star), tree=tmp_path)


def test_truncated_stack(refuses, dataset, tmp_path):
    star = edited_star(dataset, tmp_path)
    data = (tmp_path / "particles.mrcs").read_bytes()
    (tmp_path / "particles.mrcs").write_bytes(data[: len(data) // 2])
    refuses(["backproject", star, "-o", tmp_path / "out" / "m.mrc"], "particles.mrcs", tree=tmp_path, exclude=tmp_path / "out")


def test_stack_header_declaring_a_billion_images(refuses, dataset, tmp_path):
    star = edited_star(dataset, tmp_path)
    data = bytearray((tmp_path / "particles.mrcs").read_bytes())
    data[8:12] = struct.pack("<i", 10**9)  # nz
    (tmp_path / "particles.mrcs").write_bytes(bytes(data))
    refuses(["backproject", star, "-o", tmp_path / "out" / "m.mrc"], "particles.mrcs", tree=tmp_path, exclude=tmp_path / "out",
            seconds=20)


def test_stack_with_nan_pixels(refuses, dataset, tmp_path):
    import mrcfile

    star = edited_star(dataset, tmp_path)
    with mrcfile.open(tmp_path / "particles.mrcs", "r+") as mrc:
        mrc.data[10, 3, 3] = np.nan
    refuses(["backproject", star, "-o", tmp_path / "out" / "m.mrc"], "particles.mrcs", tree=tmp_path, exclude=tmp_path / "out")


def test_star_naming_an_image_past_the_end_of_its_stack(refuses, dataset, tmp_path):
    def edit(table):
        names = table["rlnImageName"].astype(str).tolist()
        names[7] = "999@particles.mrcs"
        table["rlnImageName"] = names
    star = edited_star(dataset, tmp_path, particles=edit)
    refuses(["backproject", star, "-o", tmp_path / "out" / "m.mrc"], "999", tree=tmp_path, exclude=tmp_path / "out")


@pytest.mark.parametrize("option", ["--ind", "--poses", "--ctf"])
def test_particle_pickles_that_would_run_code(refuses, dataset, tmp_path, option):
    marker = tmp_path / "PWNED"
    path = tmp_path / "evil.pkl"
    path.write_bytes(hostile_pickle(marker))
    refuses(["backproject", dataset / "particles.star", option, path, "-o", tmp_path / "m.mrc"], str(path), tree=[dataset])
    assert not marker.exists(), f"{option} ran code from a pickle"


def test_latent_pickle_that_would_run_code(refuses, tmp_path):
    marker = tmp_path / "PWNED"
    path = tmp_path / "z.10.pkl"
    path.write_bytes(hostile_pickle(marker))
    refuses(["train-prior", path, "-o", tmp_path / "p", "--steps", "5"], str(path), tree=[], exclude=tmp_path / "p")
    assert not marker.exists()


def test_zfile_of_non_utf8_bytes(refuses, tiny_vae_run, tmp_path):
    zfile = tmp_path / "z.txt"
    zfile.write_bytes(b"0 0 0 0\n\xff\xfe 1 2 3\n")
    refuses(["eval-vol", tiny_vae_run, "--zfile", zfile, "-o", tmp_path / "v"], str(zfile), tree=[tmp_path, tiny_vae_run])


def test_fsc_map_that_is_not_an_mrc(refuses, dataset, tmp_path):
    bad = tmp_path / "a.mrc"
    bad.write_bytes(os.urandom(2048))
    refuses(["fsc", bad, dataset / "volumes" / "state01_subunit0.mrc"], str(bad), tree=[tmp_path, dataset])


def test_fsc_map_declaring_a_5000_cubed_box(refuses, dataset, tmp_path):
    bad = tmp_path / "a.mrc"
    data = bytearray((dataset / "volumes" / "state00_subunit0.mrc").read_bytes())
    data[0:12] = struct.pack("<iii", 5000, 5000, 5000)
    bad.write_bytes(bytes(data))
    refuses(["fsc", bad, dataset / "volumes" / "state01_subunit0.mrc"], str(bad), tree=[tmp_path, dataset], seconds=20)


# ----------------------------------------------------------------------------- foreign cryoDRGN folders

BOMB = """a: &a ["x", "x", "x", "x", "x", "x", "x", "x", "x", "x"]
b: &b [*a, *a, *a, *a, *a, *a, *a, *a, *a, *a]
c: &c [*b, *b, *b, *b, *b, *b, *b, *b, *b, *b]
d: &d [*c, *c, *c, *c, *c, *c, *c, *c, *c, *c]
e: &e [*d, *d, *d, *d, *d, *d, *d, *d, *d, *d]
f: &f [*e, *e, *e, *e, *e, *e, *e, *e, *e, *e]
g: &g [*f, *f, *f, *f, *f, *f, *f, *f, *f, *f]
h: &h [*g, *g, *g, *g, *g, *g, *g, *g, *g, *g]
i: &i [*h, *h, *h, *h, *h, *h, *h, *h, *h, *h]
dataset_args: {norm: [0.0, 1.0], extra: *i}
lattice_args: {D: 17}
model_args: {zdim: 3}
"""


def _import(refuses, workdir, tmp_path, *phrases, seconds=30):
    refuses(["import-cryodrgn", workdir, "-o", tmp_path / "run"], *phrases, tree=[workdir], exclude=tmp_path / "run", seconds=seconds)


def test_import_yaml_alias_bomb(refuses, tmp_path):
    workdir = write_cryodrgn_workdir(tmp_path / "cd")
    (workdir / "config.yaml").write_text(BOMB)
    _import(refuses, workdir, tmp_path, "config.yaml", seconds=20)


def test_import_yaml_of_non_utf8_bytes(refuses, tmp_path):
    workdir = write_cryodrgn_workdir(tmp_path / "cd")
    (workdir / "config.yaml").write_bytes(b"dataset_args: {norm: [0, \xff\xfe]}\n")
    _import(refuses, workdir, tmp_path, "config.yaml")


@pytest.mark.parametrize("norm", [[0.0, "abc"], "abc", [0.0, None], [0.0]])
def test_import_non_numeric_norm(refuses, tmp_path, norm):
    workdir = tmp_path / "cd"
    write_cryodrgn_workdir(workdir, config=cryodrgn_config(workdir, dataset_args={"norm": norm}))
    _import(refuses, workdir, tmp_path, "norm")


def test_import_weights_that_are_not_tensors(refuses, tmp_path):
    from adversarial_helpers import cryodrgn_state_dict

    sd = cryodrgn_state_dict(np.random.default_rng(0))
    sd = {key: value.tolist() for key, value in sd.items()}
    workdir = write_cryodrgn_workdir(tmp_path / "cd", state_dict=sd)
    _import(refuses, workdir, tmp_path, "weights.1.pkl")


def test_import_weights_that_would_run_code(refuses, tmp_path):
    marker = tmp_path / "PWNED"
    workdir = write_cryodrgn_workdir(tmp_path / "cd")
    torch.save({"epoch": 1, "model_state_dict": Evil(marker)}, workdir / "weights.1.pkl")
    _import(refuses, workdir, tmp_path, "weights.1.pkl")
    assert not marker.exists()


def test_import_latents_that_would_run_code(refuses, tmp_path):
    marker = tmp_path / "PWNED"
    workdir = write_cryodrgn_workdir(tmp_path / "cd")
    (workdir / "z.1.pkl").write_bytes(hostile_pickle(marker))
    _import(refuses, workdir, tmp_path, "z.1.pkl")
    assert not marker.exists()


def test_import_old_config_pkl_that_would_run_code(refuses, tmp_path):
    marker = tmp_path / "PWNED"
    workdir = write_cryodrgn_workdir(tmp_path / "cd")
    (workdir / "config.yaml").unlink()
    (workdir / "config.pkl").write_bytes(hostile_pickle(marker))
    _import(refuses, workdir, tmp_path, "config.pkl")
    assert not marker.exists()


def test_import_latents_with_one_array(refuses, tmp_path):
    workdir = write_cryodrgn_workdir(tmp_path / "cd")
    (workdir / "z.1.pkl").write_bytes(pickle.dumps(np.zeros((24, 3), np.float32)))
    _import(refuses, workdir, tmp_path, "z.1.pkl")


@pytest.mark.parametrize("changes", [{"lattice_args": {"D": 2**20 + 1}}, {"model_args": {"qdim": -5}},
                                     {"model_args": {"zdim": 10**9}}, {"model_args": {"players": "three"}}],
                         ids=["lattice_of_a_million", "negative_width", "zdim_of_a_billion", "layers_text"])
def test_import_model_that_cannot_be_built(refuses, tmp_path, changes):
    workdir = tmp_path / "cd"
    write_cryodrgn_workdir(workdir, config=cryodrgn_config(workdir, **changes))
    _import(refuses, workdir, tmp_path, "config.yaml", seconds=30)


# ----------------------------------------------------------------------------- analysis folders and kept epochs

def _analysis_copy(analyzed_run, tmp_path):
    run = shutil.copytree(analyzed_run, tmp_path / "run")
    return run, run / "analyze"


def test_select_with_kmeans_labels_declaring_ten_billion_rows(refuses, analyzed_run, tmp_path):
    run, analysis = _analysis_copy(analyzed_run, tmp_path)
    npy_declaring(analysis / "kmeans3" / "labels.npy", (10**10,), "<i8")
    refuses(["select", run, "--clusters", "0", "-o", tmp_path / "s.star"], "analyze", tree=[tmp_path], seconds=20)


@pytest.mark.parametrize("field, value", [("ksample", "three"), ("kmeans", 3)])
def test_select_with_a_hand_edited_analysis_record(refuses, analyzed_run, tmp_path, field, value):
    run, analysis = _analysis_copy(analyzed_run, tmp_path)
    record = json.loads((analysis / "analysis.json").read_text())
    record[field] = value
    (analysis / "analysis.json").write_text(json.dumps(record))
    refuses(["select", run, "--clusters", "0", "-o", tmp_path / "s.star"], "analysis.json", tree=[tmp_path])


def test_analyze_kept_epoch_weights_that_would_run_code(refuses, run_copy, tmp_path):
    marker = tmp_path / "PWNED"
    (run_copy / "epochs").mkdir()
    torch.save({"model": Evil(marker)}, run_copy / "epochs" / "weights.1.pt")
    shutil.copy(run_copy / "latents.h5", run_copy / "epochs" / "z.1.h5")
    refuses(["analyze", run_copy, "1", "-o", tmp_path / "a", "--skip-umap", "--skip-vol", "--ksample", "2"], "weights.1.pt",
            tree=[tmp_path], exclude=tmp_path / "a")
    assert not marker.exists()


# ----------------------------------------------------------------------------- the demo's stage record

@pytest.mark.parametrize("content", [b"\xff\xfe{garbage", b'{"done": ["simulate"], "settings": 3}'], ids=["garbage", "foreign"])
def test_demo_with_a_corrupt_stage_record(refuses, tmp_path, content):
    out = tmp_path / "demo"
    out.mkdir()
    (out / "demo.json").write_bytes(content)
    refuses(["demo", out, "-n", "100", "-D", "16", "--epochs", "1", "--prior-steps", "1"], "demo.json", tree=tmp_path,
            exclude=out / ".cryodiff-outputs.json")  # the demo's own folder may record itself; demo.json may not change
