"""The README's first command, `cryodiff demo`, runs end to end (small settings)."""

from cryodiff.cli.main import main


def test_demo_writes_what_it_promises(tmp_path):
    out = tmp_path / "demo"
    assert main(["demo", str(out), "-n", "400", "--epochs", "1", "--prior-steps", "100"]) == 0
    for name in ("particles.png", "sections.png", "fsc.png", "consensus.mrc", "class.mrc",
                 "data/particles.star", "vae/latents.h5", "vae/analyze/summary.html",
                 "prior/prior.pt", "prior/volumes/vol_000.mrc", "prior_vs_gaussian.png"):
        assert (out / name).stat().st_size > 0, name
