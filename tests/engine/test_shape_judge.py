"""The shapes judge (generative.judges) and the Frechet distance (generative.metrics):
a briefly trained classifier reads real renders, prompt adherence follows its definition,
and the distance matches closed forms."""

import pytest
import torch

from generative.data import COLOURS, ShapeObject, render_scenes, sample_shapes
from generative.judges import ShapeClassifier, prompt_adherence, train_shape_classifier
from generative.metrics import frechet_distance


@pytest.fixture(scope="module")
def classifier():
    """Trained for a few seconds on 16x16 renders."""
    return train_shape_classifier(steps=400, sizes=((16, 16),), seed=0)


def _recoloured(batch):
    """The scenes of ``batch`` rendered with every object's colour moved to the next one."""
    scenes = []
    for text in batch["caption"]:
        objects = []
        for part in text.split(" and "):
            words = part.split()
            colour = COLOURS[(COLOURS.index(words[2]) + 1) % len(COLOURS)]
            objects.append(ShapeObject(words[3], colour, words[1], " ".join(words[-2:])))
        scenes.append(objects)
    h, w = batch["image"].shape[-2:]
    return render_scenes(scenes, h, w)


def test_outputs_on_any_multiple_of_8():
    model = ShapeClassifier(width=8, hidden=16).eval()
    for h, w in [(16, 16), (24, 40), (40, 24)]:
        images = torch.zeros(3, 3, h, w)
        assert model.features(images).shape == (3, 4 * 16)
        predicted = model.predict(images)
        assert {key: value.shape for key, value in predicted.items()} == {key: (3, 4) for key in ("shape", "colour", "size")}


def test_brief_training_reads_fresh_renders(classifier):
    batch = sample_shapes(500, 16, 16, split="all", generator=11)
    predicted = classifier.predict(batch["image"])
    for key in ("shape", "colour", "size"):
        assert (predicted[key] == batch[f"quadrant_{key}"]).float().mean() > 0.98, key


def test_prompt_adherence_of_true_and_recoloured_renders(classifier):
    batch = sample_shapes(64, 16, 16, split="heldout", colour_jitter=0.0, generator=12)
    assert prompt_adherence(classifier, batch["image"], batch) == {
        "shape": 1.0, "colour": 1.0, "size": 1.0, "position": 1.0, "all": 1.0}
    wrong = prompt_adherence(classifier, _recoloured(batch)["image"], batch)
    assert wrong["colour"] < 0.05 and wrong["all"] < 0.05
    assert min(wrong["shape"], wrong["size"], wrong["position"]) > 0.95


class _Fixed:
    """A stand-in judge that predicts given labels whatever the images."""

    def __init__(self, shape, colour, size):
        self.labels = {"shape": torch.tensor(shape), "colour": torch.tensor(colour), "size": torch.tensor(size)}

    def predict(self, images):
        return self.labels


def test_prompt_adherence_definitions():
    batch = {"quadrant_shape": torch.tensor([[1, 0, 0, 2], [0, 3, 0, 0], [2, 0, 0, 0]]),
             "quadrant_colour": torch.tensor([[1, 0, 0, 2], [0, 4, 0, 0], [3, 0, 0, 0]]),
             "quadrant_size": torch.tensor([[1, 0, 0, 2], [0, 1, 0, 0], [2, 0, 0, 0]])}
    # image 0: second object has the wrong colour; image 1: its object is missing and an
    # unrequested one shows up; image 2: right, plus an extra object in an empty quadrant
    judge = _Fixed(shape=[[1, 0, 0, 2], [3, 0, 0, 0], [2, 0, 1, 0]],
                   colour=[[1, 0, 0, 3], [4, 0, 0, 0], [3, 0, 2, 0]],
                   size=[[1, 0, 0, 2], [1, 0, 0, 0], [2, 0, 1, 0]])
    scores = prompt_adherence(judge, None, batch)
    assert scores == pytest.approx({"shape": 3 / 4, "colour": 2 / 4, "size": 3 / 4, "position": 3 / 4, "all": 0.0})
    exact = _Fixed(batch["quadrant_shape"], batch["quadrant_colour"], batch["quadrant_size"])
    assert prompt_adherence(exact, None, batch) == pytest.approx(dict.fromkeys(scores, 1.0))


def test_feature_frechet_distance_separates_recoloured_renders(classifier):
    real = sample_shapes(300, 16, 16, split="all", generator=13)
    other = sample_shapes(300, 16, 16, split="all", generator=14)
    floor = frechet_distance(classifier.features(real["image"]), classifier.features(other["image"]))
    shifted = frechet_distance(classifier.features(real["image"]), classifier.features(_recoloured(other)["image"]))
    assert shifted > 2 * floor > 0


def _whitened(n, d, generator):
    """``[n, d]`` samples with empirical mean exactly 0 and unbiased covariance exactly I."""
    z = torch.randn(n, d, generator=generator, dtype=torch.float64)
    z = z - z.mean(0)
    return z @ torch.linalg.inv(torch.linalg.cholesky(torch.cov(z.T))).T


def test_frechet_distance_closed_forms():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(4000, 4, generator=g, dtype=torch.float64)
    assert abs(frechet_distance(x, x)) < 1e-9
    assert 0 < frechet_distance(x, torch.randn(4000, 4, generator=g, dtype=torch.float64)) < 0.02
    shift = torch.tensor([1.0, -2.0, 0.5, 0.0], dtype=torch.float64)
    assert frechet_distance(x, x + shift) == pytest.approx(5.25, abs=1e-6)
    # diagonal covariances: |mu_x - mu_y|^2 + sum (s_x - s_y)^2
    sx, sy = torch.tensor([1.0, 2.0, 0.5]), torch.tensor([3.0, 1.0, 0.5])
    a = _whitened(500, 3, g) * sx + torch.tensor([0.0, 1.0, 0.0])
    b = _whitened(700, 3, g).float() * sy + torch.tensor([2.0, 1.0, -1.0])
    assert frechet_distance(a, b) == pytest.approx(5.0 + 4.0 + 1.0, abs=1e-5)
