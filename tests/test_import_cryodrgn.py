"""cryodiff import-cryodrgn against cryoDRGN's own equations.

The cryoDRGN-format folders here are written the way cryoDRGN 4.3.1's
train_vae writes them (checked on a real run: config.yaml sections and keys,
weights.N.pkl = torch.save of {"epoch", "model_state_dict",
"optimizer_state_dict"}, z.N.pkl = two pickles back to back). The imported
model's volumes are compared with a direct numpy evaluation of cryoDRGN's
decoder (positional encoding, residual MLP, half-space Hermitian evaluation,
inverse Hartley transform of the (D+1)³ lattice), written here without
recon.vae. When cryoDRGN 4.3.1 is available (the ``cryodrgn`` fixture:
$CRYODRGN, the repository's .venv-cryodrgn, or PATH), one more test compares
with the output of `cryodrgn eval_vol` itself.
"""

import os
import pickle
import shutil
import subprocess
import sys

import numpy as np
import pytest
import torch
import yaml

from cryodiff.cli.main import main
from recon.io import read_volume
from recon.io.cryodrgn_run import load_pickles_safely
from recon.run import load_run

BOX, ZDIM, QDIM, PDIM, LAYERS, N = 16, 3, 24, 20, 2, 40


# ---------------------------------------------------------------- reference maths

def lattice_1d(box):
    return np.linspace(-0.5, 0.5, box + 1)


def encoder_pixels(box):
    """cryoDRGN's default encoder input: the Nyquist disc without DC, row-major [y, x]."""
    ky, kx = np.meshgrid(lattice_1d(box), lattice_1d(box), indexing="ij")
    mask = (kx**2 + ky**2 <= 0.25).ravel()
    mask[(box + 1) ** 2 // 2] = False
    return mask


def mlp(sd, prefix, x, layers):
    """cryoDRGN's ResidLinearMLP: Linear, ReLU, (ResidLinear, ReLU) x layers, Linear."""
    w = lambda name: sd[f"{prefix}{name}"].double().numpy()  # noqa: E731
    h = np.maximum(x @ w("0.weight").T + w("0.bias"), 0)
    for i in range(layers):
        j = 2 + 2 * i
        h = np.maximum(h @ w(f"{j}.linear.weight").T + w(f"{j}.linear.bias") + h, 0)
    last = 2 + 2 * layers
    return h @ w(f"{last}.weight").T + w(f"{last}.bias")


def features(coords, sd, pe_type, box, pe_dim):
    """cryoDRGN's positional encodings of [..., 3] coordinates (cycles/px)."""
    if pe_type == "gaussian":
        k = coords @ (sd["decoder.rand_freqs"].double().numpy().T * (box // 2))
        return np.concatenate([np.sin(k), np.cos(k)], -1)
    assert pe_type == "geom_lowf"
    freqs = (box // 2) * (1.0 / (box // 2)) ** (np.arange(pe_dim) / (pe_dim - 1))
    k = coords[..., None] * freqs  # [..., 3, pe_dim]
    return np.concatenate([np.sin(k), np.cos(k)], -1).reshape(*coords.shape[:-1], -1)


def reference_volume(sd, z, std, pe_type, box=BOX, pe_dim=BOX // 2, layers=LAYERS):
    """Density [z, y, x] by cryoDRGN's equations, in float64."""
    k = lattice_1d(box)
    kz, ky, kx = np.meshgrid(k, k, k, indexing="ij")
    coords = np.stack([kx, ky, kz], -1)
    # Only the half space (kz, ky, kx) <= 0 (lexicographically) is evaluated;
    # F(-k) = conj F(k) gives the rest.
    flip = (kz > 0) | ((kz == 0) & ((ky > 0) | ((ky == 0) & (kx > 0))))
    coords = np.where(flip[..., None], -coords, coords)
    x = np.concatenate([features(coords, sd, pe_type, box, pe_dim), np.broadcast_to(z, (*coords.shape[:-1], len(z)))], -1)
    out = mlp(sd, "decoder.decoder.main.", x, layers)
    real, imag = out[..., 0], np.where(flip, -out[..., 1], out[..., 1])
    hartley = np.where(kx**2 + ky**2 + kz**2 <= 0.25, real - imag, 0.0) * std
    f = np.fft.fftshift(np.fft.fftn(np.fft.ifftshift(hartley[:-1, :-1, :-1])))
    return (f.real - f.imag) / box**3


# ---------------------------------------------------------------- cryoDRGN-format folders

def random_state_dict(rng, pe_type, box=BOX):
    """Weights with cryoDRGN 4.3.1's key names and shapes."""
    def linear(prefix, n_out, n_in):
        return {f"{prefix}.weight": torch.tensor(rng.normal(0, 1.5 / np.sqrt(n_in), (n_out, n_in)), dtype=torch.float32),
                f"{prefix}.bias": torch.tensor(rng.normal(0, 0.3, n_out), dtype=torch.float32)}

    def resid_mlp(prefix, n_in, hidden, n_out):
        sd = linear(f"{prefix}.0", hidden, n_in)
        for i in range(LAYERS):
            sd |= linear(f"{prefix}.{2 + 2 * i}.linear", hidden, hidden)
        return sd | linear(f"{prefix}.{2 + 2 * LAYERS}", n_out, hidden)

    pe_dim = box // 2
    sd = resid_mlp("encoder.main", int(encoder_pixels(box).sum()), QDIM, 2 * ZDIM)
    if pe_type == "gaussian":
        sd["decoder.rand_freqs"] = torch.tensor(rng.normal(0, 0.5, (3 * pe_dim, 3)), dtype=torch.float32)
    return sd | resid_mlp("decoder.decoder.main", 6 * pe_dim + ZDIM, PDIM, 2)


def cryodrgn_config(workdir, pe_type="gaussian", box=BOX, **model_changes):
    model_args = dict(activation="relu", domain="fourier", enc_mask=box // 2, encode_mode="resid",
                      feat_sigma=0.5 if pe_type == "gaussian" else None, pdim=PDIM, pe_dim=None, pe_type=pe_type,
                      players=LAYERS, qdim=QDIM, qlayers=LAYERS,
                      tilt_params=dict(ntilts=10, t_emb_dim=64, tdim=1024, tlayers=3), zdim=ZDIM)
    return dict(
        cmd=["cryodrgn", "train_vae", "particles.star", "--zdim", str(ZDIM)],
        dataset_args=dict(ctf=str(workdir / "ctf.pkl"), datadir=None, do_pose_sgd=False, ind=None, invert_data=True,
                          keepreal=False, norm=[0.0, 123.5], particles=str(workdir / "particles.star"),
                          poses=str(workdir / "pose.pkl"), window=True, window_r=0.85),
        lattice_args=dict(D=box + 1, extent=0.5, ignore_DC=True),
        model_args=model_args | model_changes,
        seed=4242,
        version="4.3.1",
    )


def write_cryodrgn_run(workdir, pe_type="gaussian", epochs=(1, 2), final=2, config=None, seed=0):
    """A train_vae output folder; returns {epoch: (state_dict, z_mu, z_logvar)}."""
    workdir.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    config = config or cryodrgn_config(workdir, pe_type)
    (workdir / "config.yaml").write_text(yaml.dump(config))
    ctf = np.zeros((N, 9))
    ctf[:, 0], ctf[:, 1] = 2 * BOX, 1.25  # particles extracted at 2x the box, 1.25 Å/px
    (workdir / "ctf.pkl").write_bytes(pickle.dumps(ctf))
    saved = {}
    for epoch in sorted(set(epochs) | {final}):
        sd = random_state_dict(rng, pe_type)
        z_mu, z_logvar = rng.normal(size=(N, ZDIM)).astype(np.float32), rng.normal(size=(N, ZDIM)).astype(np.float32)
        names = ([f"weights.{epoch}.pkl"] if epoch in epochs else []) + (["weights.pkl"] if epoch == final else [])
        znames = ([f"z.{epoch}.pkl"] if epoch in epochs else []) + (["z.pkl"] if epoch == final else [])
        for name in names:
            torch.save({"epoch": epoch, "model_state_dict": sd, "optimizer_state_dict": {"state": {}, "param_groups": []}},
                       workdir / name)
        for name in znames:
            (workdir / name).write_bytes(pickle.dumps(z_mu) + pickle.dumps(z_logvar))
        saved[epoch] = (sd, z_mu, z_logvar)
    return saved


def run_cli(*args):
    return main(["import-cryodrgn", *map(str, args)])


# ---------------------------------------------------------------- tests

@pytest.mark.parametrize("pe_type", ["gaussian", "geom_lowf"])
def test_imported_volumes_equal_cryodrgn_equations(tmp_path, pe_type):
    saved = write_cryodrgn_run(tmp_path / "cd", pe_type)
    assert run_cli(tmp_path / "cd", "-o", tmp_path / "run") == 0
    run = load_run(tmp_path / "run")
    sd, z_mu, _ = saved[2]
    assert run.config["training"]["epochs"] == 2 and run.apix == pytest.approx(2.5)  # 2 * 16 * 1.25 / 16
    for z in (z_mu[0], z_mu[7], np.array([1.5, -2.0, 0.3], np.float32)):
        ours = run.volume(z).astype(np.float64)
        ref = reference_volume(sd, z.astype(np.float64), 123.5, pe_type)
        assert np.abs(ours - ref).max() <= 1e-5 * np.abs(ref).max()
        assert np.abs(ref).max() > 1e-3  # a real signal, not two zero maps


def test_imported_encoder_and_latents_equal_cryodrgn(tmp_path):
    saved = write_cryodrgn_run(tmp_path / "cd")
    assert run_cli(tmp_path / "cd", "-o", tmp_path / "run", "--epoch", "1") == 0
    run = load_run(tmp_path / "run")
    sd, z_mu, z_logvar = saved[1]
    np.testing.assert_array_equal(run.z_mu, z_mu)
    np.testing.assert_array_equal(run.z_logvar, z_logvar)
    np.testing.assert_array_equal(run.indices, np.arange(N))
    # Lattice images: cryoDRGN's encoder reads the disc without DC, ours the disc with it.
    lattice = np.random.default_rng(5).normal(size=(4, (BOX + 1) ** 2))
    lattice[:, (BOX + 1) ** 2 // 2] = 1e3  # a DC value that must not matter
    ref = mlp(sd, "encoder.main.", lattice[:, encoder_pixels(BOX)], LAYERS)
    ours_mask = run.model.mask.numpy()
    mu, logvar = run.model.encode(torch.tensor(lattice[:, ours_mask], dtype=torch.float32))
    np.testing.assert_allclose(torch.cat([mu, logvar], 1).detach().numpy(), ref, rtol=1e-4, atol=1e-4)


def test_default_epoch_is_the_last_one_present(tmp_path):
    """--checkpoint 2 with 3 epochs writes weights.2.pkl and, at the end, weights.pkl (epoch 3)."""
    saved = write_cryodrgn_run(tmp_path / "cd", epochs=(2,), final=3)
    assert run_cli(tmp_path / "cd", "-o", tmp_path / "run") == 0
    run = load_run(tmp_path / "run")
    assert run.config["training"]["epochs"] == 3
    np.testing.assert_array_equal(run.z_mu, saved[3][1])
    assert run_cli(tmp_path / "cd", "-o", tmp_path / "run2", "--epoch", "2") == 0
    np.testing.assert_array_equal(load_run(tmp_path / "run2").z_mu, saved[2][1])


def test_older_runs_with_config_pkl(tmp_path):
    workdir = tmp_path / "cd"
    saved = write_cryodrgn_run(workdir)
    config = yaml.safe_load((workdir / "config.yaml").read_text())
    del config["model_args"]["activation"], config["model_args"]["domain"]  # absent before cryoDRGN 1.0
    (workdir / "config.pkl").write_bytes(pickle.dumps(config))
    (workdir / "config.yaml").unlink()
    assert run_cli(workdir, "-o", tmp_path / "run") == 0
    run = load_run(tmp_path / "run")
    z = saved[2][1][3]
    np.testing.assert_allclose(run.volume(z), reference_volume(saved[2][0], z.astype(np.float64), 123.5, "gaussian"),
                               atol=1e-5 * np.abs(run.volume(z)).max(), rtol=0)


def test_indices_and_pixel_size_options(tmp_path):
    workdir = tmp_path / "cd"
    config = cryodrgn_config(workdir)
    config["dataset_args"]["ind"] = str(workdir / "ind.pkl")
    write_cryodrgn_run(workdir, config=config)
    ind = np.arange(3, 3 + N)[::-1].copy()
    (workdir / "ind.pkl").write_bytes(pickle.dumps(ind))
    (workdir / "ctf.pkl").unlink()
    assert run_cli(workdir, "-o", tmp_path / "no_apix") == 2
    assert run_cli(workdir, "-o", tmp_path / "run", "--apix", "1.7") == 0
    run = load_run(tmp_path / "run")
    np.testing.assert_array_equal(run.indices, ind)
    assert run.apix == pytest.approx(1.7)


def _drop_weights(workdir):
    for p in workdir.glob("weights*.pkl"):
        p.unlink()


def _malicious_z(workdir):
    marker = workdir / "pwned"

    class Payload:
        def __reduce__(self):
            return (os.system, (f"touch {marker}",))

    z = np.zeros((N, ZDIM), np.float32)
    for name in ("z.1.pkl", "z.2.pkl", "z.pkl"):
        (workdir / name).write_bytes(pickle.dumps(z) + pickle.dumps(Payload()))


def _malicious_weights(workdir):
    torch.save({"epoch": 2, "model_state_dict": {}, "hook": shutil.rmtree}, workdir / "weights.pkl")


def _edit_config(**changes):
    def edit(workdir):
        config = yaml.safe_load((workdir / "config.yaml").read_text())
        for key, value in changes.items():
            section, name = key.split("__")
            config[section][name] = value
        (workdir / "config.yaml").write_text(yaml.dump(config))
    return edit


@pytest.mark.parametrize(
    "damage, message",
    [
        (_drop_weights, "no weights.N.pkl or weights.pkl found"),
        (lambda w: (w / "config.yaml").unlink(), "no config.yaml"),
        (lambda w: (w / "z.pkl").unlink(), "z.pkl: file not found"),
        (_malicious_z, "refusing to unpickle"),
        (_malicious_weights, "cannot load as a weights-only torch checkpoint"),
        (_edit_config(model_args__encode_mode="conv"), "encode_mode is 'conv'"),
        (_edit_config(model_args__domain="real"), "domain is 'real'"),
        (_edit_config(model_args__activation="leaky_relu"), "activation is 'leaky_relu'"),
        (_edit_config(model_args__pe_type="none"), "pe_type is 'none'"),
        (_edit_config(model_args__enc_mask=5), "enc_mask is 5"),
        (_edit_config(dataset_args__norm=[0.5, 2.0]), "norm has mean 0.5"),
        (_edit_config(model_args__qdim=99), "do not fit the model described by the config"),
    ],
)
def test_bad_inputs_exit_2_with_one_line(tmp_path, capsys, damage, message):
    workdir = tmp_path / "cd"
    write_cryodrgn_run(workdir)
    damage(workdir)
    assert run_cli(workdir, "-o", tmp_path / "run") == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and message in err and "Fix: " in err
    assert not (tmp_path / "run" / "checkpoint.pt").exists()
    assert not (workdir / "pwned").exists()


def test_bad_input_through_the_real_command_line(tmp_path):
    write_cryodrgn_run(tmp_path / "cd")
    args = [sys.executable, "-m", "cryodiff.cli.main", "import-cryodrgn", tmp_path / "cd", "-o", tmp_path / "run", "--epoch", "7"]
    result = subprocess.run(list(map(str, args)), capture_output=True, text=True)
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [result.stderr.strip()]
    assert "no weights for epoch 7" in result.stderr and "choose --epoch from [1, 2]" in result.stderr


def test_refuses_to_overwrite_a_run(tmp_path, capsys):
    write_cryodrgn_run(tmp_path / "cd")
    assert run_cli(tmp_path / "cd", "-o", tmp_path / "run") == 0
    assert run_cli(tmp_path / "cd", "-o", tmp_path / "run") == 2
    assert "already holds a run" in capsys.readouterr().err


# ---------------------------------------------------------------- real cryoDRGN

def run_cryodrgn(exe, *args, cwd):
    env = os.environ | {"OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    result = subprocess.run([str(exe), *map(str, args)], cwd=cwd, capture_output=True, text=True, env=env)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]


@pytest.mark.slow
def test_imported_volumes_equal_real_cryodrgn_eval_vol(cryodrgn, tmp_path):
    from functools import partial

    from recon.synthetic import write_synthetic_dataset

    cryodrgn = partial(run_cryodrgn, cryodrgn)
    write_synthetic_dataset(tmp_path, n=120, box=16, apix=4.0, snr=0.5, seed=3, grid=1)
    cryodrgn("parse_pose_star", "particles.star", "-o", "pose.pkl", cwd=tmp_path)
    cryodrgn("parse_ctf_star", "particles.star", "-o", "ctf.pkl", cwd=tmp_path)
    cryodrgn("train_vae", "particles.star", "--poses", "pose.pkl", "--ctf", "ctf.pkl", "--zdim", 2, "-n", 2,
             "--enc-dim", 16, "--dec-dim", 16, "-o", "cd", "--no-analysis", cwd=tmp_path)
    z = np.array([[0.0, 0.0], [0.8, -1.1], [-1.5, 0.4]], np.float32)
    np.savetxt(tmp_path / "z.txt", z)
    cryodrgn("eval_vol", "cd/weights.pkl", "-c", "cd/config.yaml", "--zfile", "z.txt", "-o", "vols", "--Apix", 4, cwd=tmp_path)

    assert run_cli(tmp_path / "cd", "-o", tmp_path / "run") == 0
    run = load_run(tmp_path / "run")
    assert run.apix == pytest.approx(4.0) and run.config["training"]["epochs"] == 2
    for i, zi in enumerate(z):
        theirs, _ = read_volume(tmp_path / "vols" / f"vol_{i + 1:03d}.mrc")
        ours = run.volume(zi)
        assert np.abs(ours - theirs).max() <= 1e-5 * np.abs(theirs).max()
    z_mu, z_logvar = load_pickles_safely(tmp_path / "cd" / "z.pkl")
    np.testing.assert_array_equal(run.z_mu, z_mu)
    np.testing.assert_array_equal(run.z_logvar, z_logvar)
