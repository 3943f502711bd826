"""Aspect-ratio buckets: per-step sizes by weight, reproducible by (seed, step), exact Trainer resume."""

import pytest
import torch

from generative.blocks.unet import UNet
from generative.buckets import BucketSampler, nearest_bucket
from generative.formulations import EDM
from generative.trainer import Trainer

BUCKETS = [(32, 32), (24, 40), (40, 24)]


def test_sizes_follow_the_weights_and_depend_only_on_seed_and_step():
    sampler = BucketSampler(BUCKETS, weights=[2, 1, 1], seed=5)
    sizes = [sampler(step) for step in range(4000)]
    freq = torch.tensor([sizes.count(b) for b in BUCKETS], dtype=torch.float64) / len(sizes)
    assert (freq - torch.tensor([0.5, 0.25, 0.25], dtype=torch.float64)).abs().max() < 0.03
    assert [sampler(step) for step in (7, 3, 3999)] == [sizes[7], sizes[3], sizes[3999]]  # any order
    assert [BucketSampler(BUCKETS, [2, 1, 1], seed=6)(s) for s in range(50)] != sizes[:50]
    assert {BucketSampler(BUCKETS, [0, 1, 0])(s) for s in range(20)} == {(24, 40)}
    for weights in ([1, 1], [1, -1, 1], [0, 0, 0]):
        with pytest.raises(ValueError):
            BucketSampler(BUCKETS, weights)


def test_nearest_bucket_by_aspect_ratio():
    assert nearest_bucket(100, 170, BUCKETS) == (24, 40)
    assert nearest_bucket(1000, 590, BUCKETS) == (40, 24)
    assert nearest_bucket(50, 52, BUCKETS) == (32, 32)
    assert nearest_bucket(8, 8, [(16, 16), (32, 32)]) == (16, 16)  # equal ratios: the earlier bucket


def test_bucketed_training_resumes_exactly(tmp_path):
    """Six steps straight equal three, a checkpoint, a fresh trainer and three more; each batch has its
    step's bucket size."""
    form, sampler = EDM(sigma_data=1.0), BucketSampler([(8, 8), (8, 16), (16, 8)], seed=1)
    seen = []

    def batch_fn(step, g):
        height, width = sampler(step)
        return torch.randn(4, 1, height, width, generator=g)

    def loss(model, x0, g):
        seen.append(tuple(x0.shape[2:]))
        return form.loss(model, x0, generator=g)

    def trainer(path=None):
        torch.manual_seed(0)
        model = form.wrap(UNet(1, 1, base=8, mults=(1, 2), time_embed_dim=16))
        return Trainer(model, loss, batch_fn, lr=1e-3, ema_decay=0.9, checkpoint_path=path, checkpoint_every=3)

    straight = trainer()
    straight.fit(6)
    assert seen == [sampler(step) for step in range(6)] and len(set(seen)) > 1
    path = str(tmp_path / "ckpt.pt")
    trainer(path).fit(3)
    resumed = trainer(path)
    resumed.load(path)
    resumed.fit(6)
    assert seen[6:] == seen[:6]
    for a, b in zip(straight.model.state_dict().values(), resumed.model.state_dict().values()):
        assert torch.equal(a, b)
