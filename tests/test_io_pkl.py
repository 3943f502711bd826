"""The safe unpickler admits numpy arrays and plain containers, nothing else."""

import os
import pickle
import subprocess

import numpy as np
import pytest

from recon.errors import InputError
from recon.io import (
    load_pickle_safely,
    read_cryodrgn_ctf,
    read_cryodrgn_poses,
    read_metadata,
    write_stack,
)


class _RunsShell:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


class _Evals:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (eval, (f"open({str(self.marker)!r}, 'w').close()",))


class _Popen:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (subprocess.Popen, (["touch", str(self.marker)],))


@pytest.mark.parametrize("attack", [_RunsShell, _Evals, _Popen])
@pytest.mark.parametrize("protocol", [2, 5])
def test_malicious_pickle_is_refused_without_running(tmp_path, attack, protocol):
    marker = tmp_path / "pwned"
    path = tmp_path / "pose.pkl"
    # Hidden inside an otherwise genuine cryoDRGN-looking tuple.
    payload = (np.eye(3)[None], attack(marker))
    path.write_bytes(pickle.dumps(payload, protocol=protocol))
    with pytest.raises(InputError, match="refusing to unpickle") as info:
        load_pickle_safely(path)
    assert "pose.pkl" in str(info.value) and "Fix: " in str(info.value)
    with pytest.raises(InputError, match="refusing to unpickle"):
        read_cryodrgn_poses(path, box=64)
    assert not marker.exists()


@pytest.mark.parametrize("protocol", [2, 3, 4, 5])
def test_genuine_pose_pickle_loads(tmp_path, protocol):
    rng = np.random.default_rng(0)
    rot = np.linalg.qr(rng.normal(size=(5, 3, 3)))[0].astype(np.float32)
    trans = rng.uniform(-0.05, 0.05, (5, 2)).astype(np.float32)
    with open(tmp_path / "pose.pkl", "wb") as f:
        pickle.dump((rot, trans), f, protocol=protocol)
    rotations, shifts = read_cryodrgn_poses(tmp_path / "pose.pkl", box=128)
    np.testing.assert_array_equal(rotations, rot)
    np.testing.assert_allclose(shifts, trans.astype(np.float64) * 128)  # same sign, pixels


def test_numpy1_module_paths_are_accepted(tmp_path):
    # numpy 1.x writes numpy.core.multiarray where numpy 2 writes numpy._core.multiarray.
    data = pickle.dumps(np.arange(6.0).reshape(2, 3), protocol=2)
    assert b"numpy._core.multiarray" in data
    (tmp_path / "z.pkl").write_bytes(data.replace(b"numpy._core.multiarray", b"numpy.core.multiarray"))
    np.testing.assert_array_equal(load_pickle_safely(tmp_path / "z.pkl"), np.arange(6.0).reshape(2, 3))


def test_containers_numbers_and_numpy_scalars(tmp_path):
    value = {"z": np.zeros((3, 8), np.float32), "epoch": np.int64(19), "names": ["a", "b"], "beta": 0.125}
    (tmp_path / "z.pkl").write_bytes(pickle.dumps(value, protocol=4))
    back = load_pickle_safely(tmp_path / "z.pkl")
    assert back["epoch"] == 19 and back["names"] == ["a", "b"] and back["beta"] == 0.125
    np.testing.assert_array_equal(back["z"], value["z"])


def test_ctf_pickle(tmp_path):
    ctf = np.tile(np.array([64, 1.5, 1e4, 1.1e4, 30, 300, 2.7, 0.1, 0], np.float32), (4, 1))
    (tmp_path / "ctf.pkl").write_bytes(pickle.dumps(ctf))
    np.testing.assert_array_equal(read_cryodrgn_ctf(tmp_path / "ctf.pkl"), ctf)
    (tmp_path / "bad.pkl").write_bytes(pickle.dumps(ctf[:, :8]))
    with pytest.raises(InputError, match=r"bad.pkl.*\[N, 9\].*Fix"):
        read_cryodrgn_ctf(tmp_path / "bad.pkl")


def test_corrupt_and_wrong_shape_pickles(tmp_path):
    (tmp_path / "cut.pkl").write_bytes(pickle.dumps(np.zeros((4, 3, 3)))[:40])
    with pytest.raises(InputError, match="cut.pkl: cannot unpickle"):
        load_pickle_safely(tmp_path / "cut.pkl")
    (tmp_path / "pose.pkl").write_bytes(pickle.dumps((np.zeros((4, 3)), np.zeros((4, 2)))))
    with pytest.raises(InputError, match=r"pose.pkl.*\[N, 3, 3\]"):
        read_cryodrgn_poses(tmp_path / "pose.pkl", box=64)


def test_poses_and_ctf_override_the_file(tmp_path):
    write_stack(tmp_path / "s.mrcs", np.zeros((3, 16, 16), np.float32), 2.0)
    rot = np.tile(np.eye(3), (3, 1, 1))
    trans = np.array([[0.125, -0.25], [0, 0], [0.5, 0.5]])
    (tmp_path / "pose.pkl").write_bytes(pickle.dumps((rot, trans)))
    ctf = np.tile([16, 2.0, 1e4, 1e4, 0, 300, 2.7, 0.07, 0], (3, 1))
    (tmp_path / "ctf.pkl").write_bytes(pickle.dumps(ctf))
    meta = read_metadata(tmp_path / "s.mrcs", poses=tmp_path / "pose.pkl", ctf=tmp_path / "ctf.pkl")
    np.testing.assert_array_equal(meta.rotations, rot)
    np.testing.assert_array_equal(meta.shifts_px, trans * 16)
    np.testing.assert_array_equal(meta.ctf, ctf)
    assert meta.apix == 2.0 and meta.box == 16
