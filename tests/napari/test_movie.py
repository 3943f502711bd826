"""Movies of a path: GIF and MP4 (H.264 through imageio-ffmpeg) hold one frame per step."""

import numpy as np
import pytest

from cryodiff.napari._export import write_movie
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
