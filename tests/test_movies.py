"""Movies: GIF and MP4 (H.264 through imageio-ffmpeg) hold one frame per step; `cryodiff movie` renders a volume series."""

import numpy as np
import pytest

from cryodiff.movies import write_movie
from recon.errors import InputError


def _frames(n=5, height=61, width=80):
    """Frames of odd height whose brightness grows step by step."""
    return [np.full((height, width, 4), 40 * i + 20, np.uint8) for i in range(n)]


@pytest.mark.parametrize("suffix", [".gif", ".mp4"])
def test_movie_has_one_frame_per_step(tmp_path, suffix):
    import imageio.v3 as iio

    if suffix == ".mp4":
        pytest.importorskip("imageio_ffmpeg")
    path = write_movie(tmp_path / f"path{suffix}", _frames(), fps=4)
    read = iio.imread(path, index=None) if suffix == ".gif" else _read_mp4(path)
    assert len(read) == 5
    means = [float(np.asarray(f)[..., :3].mean()) for f in read]
    assert all(b > a + 20 for a, b in zip(means, means[1:])), means  # the steps in order


def _read_mp4(path):
    import imageio.v2 as imageio

    with imageio.get_reader(path, format="FFMPEG") as reader:
        return [frame for frame in reader.iter_data()]


def test_other_suffix_is_refused(tmp_path):
    with pytest.raises(InputError, match=r"\.gif or \.mp4"):
        write_movie(tmp_path / "path.avi", _frames(2))


def _blob_series(folder, n=5, box=24):
    """``n`` maps of a Gaussian blob moving along +x by 3 voxels per map."""
    from recon.io import write_volume

    folder.mkdir()
    z, y, x = np.mgrid[:box, :box, :box]
    for i in range(n):
        centre = (box / 2, box / 2, 5 + 3 * i)
        blob = np.exp(-((z - centre[0]) ** 2 + (y - centre[1]) ** 2 + (x - centre[2]) ** 2) / 4.0)
        write_volume(folder / f"vol_{i:03d}.mrc", blob.astype(np.float32), 2.0)
    return folder


@pytest.mark.parametrize("suffix", [".gif", ".mp4"])
def test_cli_movie_follows_the_maps(tmp_path, suffix):
    """``cryodiff movie`` plays a series in order: in the projection down z (left third of each
    frame) the blob's brightness centre moves right frame by frame, as it does in the maps."""
    import imageio.v3 as iio

    from cryodiff.cli.main import main

    if suffix == ".mp4":
        pytest.importorskip("imageio_ffmpeg")
    series = _blob_series(tmp_path / "series")
    out = tmp_path / f"blob{suffix}"
    assert main(["movie", str(series), "-o", str(out), "--size", "120"]) == 0
    frames = [np.asarray(f)[..., :3].astype(float) for f in (iio.imread(out, index=None) if suffix == ".gif" else _read_mp4(out))]
    assert len(frames) == 5
    centres = []
    for frame in frames:
        left = frame[40:, : frame.shape[1] // 3].mean(-1)  # below the title, the projection down z
        weights = np.clip(left - np.percentile(left, 90), 0, None)
        centres.append((weights * np.arange(left.shape[1])).sum() / weights.sum())
    steps = np.diff(centres)
    assert np.all(steps > 0), centres
    assert np.allclose(steps, steps.mean(), rtol=0.25), centres  # 3 voxels per map: even steps


def test_cli_movie_refuses_bad_input(tmp_path, capsys):
    from cryodiff.cli.main import main
    from recon.io import write_volume

    (tmp_path / "empty").mkdir()
    assert main(["movie", str(tmp_path / "empty"), "-o", str(tmp_path / "m.gif")]) == 2
    assert "holds no vol_*.mrc maps" in capsys.readouterr().err
    series = _blob_series(tmp_path / "series", n=2)
    write_volume(tmp_path / "other.mrc", np.zeros((16, 16, 16), np.float32), 2.0)
    assert main(["movie", str(series / "vol_000.mrc"), str(tmp_path / "other.mrc"), "-o", str(tmp_path / "m.gif")]) == 2
    assert "differs from vol_000.mrc" in capsys.readouterr().err
    assert main(["movie", str(series), "-o", str(tmp_path / "m.avi")]) == 2
    assert not (tmp_path / "m.gif").exists() and not (tmp_path / "m.avi").exists()
