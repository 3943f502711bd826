"""ChimeraX scripts beside every volume series: they open exactly the series' volumes, in
order, at a threshold that shows the molecule (ChimeraX itself is not available here)."""

import numpy as np

from cryodiff.chimerax import ENCLOSED_FRACTION, surface_level
from cryodiff.cli.main import main
from recon.io import read_volume


def test_eval_vol_writes_scripts_that_open_its_volumes(tiny_vae_run, tmp_path):
    np.savetxt(tmp_path / "z.txt", np.random.default_rng(0).normal(size=(3, 4)))
    assert main(["eval-vol", str(tiny_vae_run), "--zfile", str(tmp_path / "z.txt"), "-o", str(tmp_path / "vols")]) == 0
    folder = tmp_path / "vols"
    script = (folder / "chimerax.cxc").read_text()
    opening = next(line for line in script.splitlines() if line.startswith("open "))
    pattern = opening.split()[1]
    assert sorted(p.name for p in folder.glob(pattern)) == ["vol_000.mrc", "vol_001.mrc", "vol_002.mrc"]
    assert "vseries true" in opening
    level = float(next(line for line in script.splitlines() if line.startswith("volume #1")).split("level ")[1].split()[0])
    first = read_volume(folder / "vol_000.mrc")[0]
    assert abs((first > level).mean() - ENCLOSED_FRACTION) < 0.01
    movie = (folder / "chimerax_movie.cxc").read_text()
    assert movie.startswith(script) and "movie record" in movie and "movie encode movie.mp4" in movie


def test_surface_level_encloses_the_molecule_not_the_noise():
    """A ball of density 1 filling 3 % of a noisy box: the level separates ball from noise."""
    rng = np.random.default_rng(1)
    grid = np.indices((40, 40, 40)) - 20
    ball = ((grid**2).sum(0) <= 7.7**2).astype(float)  # 4/3 pi 7.7^3 / 40^3 = 3 %
    level = surface_level(ball + rng.normal(0, 0.1, ball.shape))
    assert 0.3 < level < 0.9
