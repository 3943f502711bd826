"""The README's first command, `cryodiff demo`: it runs end to end (small settings), and a
re-run skips finished stages, continues an interrupted one and never mixes settings."""

import json

import pytest

from cryodiff.cli.main import main
from cryodiff.commands import demo

TINY = ["-n", "300", "--epochs", "2", "--prior-steps", "60"]


def test_interrupted_demo_continues_after_the_vae(tmp_path, monkeypatch, capsys, caplog):
    out = tmp_path / "demo"

    def interrupt(self):
        raise KeyboardInterrupt

    monkeypatch.setattr(demo.Demo, "analyze", interrupt)
    assert main(["demo", str(out), *TINY]) == 130
    record = json.loads((out / "demo.json").read_text())
    assert list(record["done"]) == ["simulate", "backproject", "train-vae"]
    monkeypatch.undo()

    def must_not_run(self):
        raise AssertionError("a finished stage ran again")

    for stage in ("simulate", "backproject", "train_vae"):
        monkeypatch.setattr(demo.Demo, stage, must_not_run)
    assert main(["demo", str(out), *TINY]) == 0
    for name in ("particles.png", "sections.png", "fsc.png", "landscape.png", "results.json", "maps/consensus.mrc",
                 "maps/class_A.mrc", "maps/vae_C.mrc", "data/particles.star", "vae/latents.h5", "vae/loss.png",
                 "vae/analyze/summary.html", "prior/prior.pt", "prior/volumes/vol_000.mrc", "prior_vs_gaussian.png"):
        assert (out / name).stat().st_size > 0, name
    assert set(json.loads((out / "demo.json").read_text())["done"]) == {
        "simulate", "backproject", "train-vae", "analyze", "compare", "train-prior", "sample"}
    results = json.loads((out / "results.json").read_text())
    assert set(results["states"]) == {"A", "B", "C"} and 0 <= results["subunit_accuracy"] <= 1

    caplog.clear()
    assert main(["demo", str(out), *TINY]) == 0  # everything done: nothing runs
    assert "7 stages, 7 done" in caplog.text
    capsys.readouterr()
    monkeypatch.undo()
    assert main(["demo", str(out), "-n", "400", "--epochs", "2", "--prior-steps", "60"]) == 2  # other settings: refused
    assert "other settings (n)" in capsys.readouterr().err


def test_demo_refuses_a_folder_it_did_not_make_and_force_starts_over(tmp_path, monkeypatch, capsys):
    foreign = tmp_path / "mine"
    foreign.mkdir()
    (foreign / "particles.star").write_text("a user's file")
    assert main(["demo", str(foreign), *TINY]) == 2
    assert "did not write" in capsys.readouterr().err
    assert (foreign / "particles.star").read_text() == "a user's file"

    out = tmp_path / "demo"
    ran = []
    for stage in ("simulate", "backproject", "train_vae", "analyze", "compare", "train_prior", "sample"):
        monkeypatch.setattr(demo.Demo, stage, lambda self, stage=stage: ran.append(stage))
    (out / "data").mkdir(parents=True)
    written = {"seconds": 1.0, "files": ["data/old.txt", "particles.png"]}
    (out / "demo.json").write_text(json.dumps({"settings": demo.settings_of(demo_args(TINY)), "done": {"simulate": written}}))
    (out / "data" / "old.txt").write_text("from an earlier demo")
    (out / "particles.png").write_text("x")
    (out / "notes.txt").write_text("the user's notes")
    assert main(["demo", str(out), *TINY, "--force"]) == 0
    assert ran[0] == "simulate" and len(ran) == 7
    assert not (out / "data").exists() and not (out / "particles.png").exists()  # what the demo's record says it wrote
    assert (out / "notes.txt").read_text() == "the user's notes"

    (out / "data").mkdir()
    (out / "data" / "mine.txt").write_text("put here by the user")  # not in the record: --force keeps it
    (out / "demo.json").write_text(json.dumps({"settings": demo.settings_of(demo_args(TINY)), "done": {"simulate": written}}))
    assert main(["demo", str(out), *TINY, "--force"]) == 0
    assert (out / "data" / "mine.txt").read_text() == "put here by the user"


def demo_args(argv):
    import argparse

    parser = argparse.ArgumentParser()
    demo.add_args(parser)
    return parser.parse_args(["x", *argv])


def test_stage_estimates_add_up_to_about_five_minutes_at_the_default_size():
    total = sum(demo.estimates(demo.settings_of(demo_args([]))).values())
    assert 200 < total < 400
    assert sum(demo.estimates(demo.settings_of(demo_args(["--full"]))).values()) > 10 * 60


@pytest.mark.parametrize("argv, phrase", [(["-n", "10"], "too few"), (["-D", "33"], "--box"), (["--snr", "0"], "--snr")])
def test_bad_demo_options(tmp_path, argv, phrase, fails_with_one_line):
    fails_with_one_line(["demo", str(tmp_path / "d"), *argv], phrase)
    assert not (tmp_path / "d").exists()
