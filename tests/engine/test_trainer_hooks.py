"""Trainer hooks and optimiser choice: a second player with its own optimiser, log fields, and a resume
that repeats the uninterrupted run bit for bit with the hook's state restored."""

import json

import pytest
import torch

from generative.trainer import Hook, Trainer


class SecondPlayer(Hook):
    """A toy second player: after each step of the model, one Adam step of its own parameter towards the
    model's mean weight plus noise from the step's generator."""

    name = "second_player"

    def __init__(self):
        self.param = torch.nn.Parameter(torch.zeros(()))
        self.optimizer = torch.optim.Adam([self.param], lr=0.05)
        self.calls = 0

    def after_step(self, trainer, generator):
        target = trainer.model.weight.detach().mean() + 0.01 * torch.randn((), generator=generator)
        loss = (self.param - target) ** 2
        self.optimizer.zero_grad()
        loss.backward()
        self.optimizer.step()
        self.calls += 1

    def log_fields(self, trainer):
        return {"player": float(self.param)}

    def state_dict(self):
        return {"param": self.param.detach().clone(), "optimizer": self.optimizer.state_dict(), "calls": self.calls}

    def load_state_dict(self, state, path):
        with torch.no_grad():
            self.param.copy_(state["param"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.calls = state["calls"]


def _trainer(tmp_path, hooks=(), **options):
    torch.manual_seed(0)
    model = torch.nn.Linear(3, 1)
    target = torch.tensor([[1.0, -2.0, 0.5]])

    def batch_fn(step, g):
        x = torch.randn(16, 3, generator=g)
        return x, x @ target.T

    def loss_fn(m, batch, g):
        x, y = batch
        return ((m(x) - y) ** 2).mean(1)

    return Trainer(model, loss_fn, batch_fn, lr=0.05, checkpoint_path=str(tmp_path / "ckpt.pt"), checkpoint_every=5,
                   log_path=str(tmp_path / "log.jsonl"), log_every=5, hooks=hooks, **options)


def test_a_hook_runs_logs_and_resumes_identically(tmp_path):
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    whole = _trainer(tmp_path / "a", hooks=[SecondPlayer()])
    whole.fit(20)
    assert whole.hooks[0].calls == 20
    records = [json.loads(line) for line in (tmp_path / "a" / "log.jsonl").read_text().splitlines()]
    assert [r["step"] for r in records] == [5, 10, 15, 20] and all("player" in r for r in records)
    assert list(records[0]) == ["step", "loss", "grad_norm", "player", "lr", "seconds"]

    first = _trainer(tmp_path / "b", hooks=[SecondPlayer()])
    first.fit(10)
    resumed = _trainer(tmp_path / "b", hooks=[SecondPlayer()])
    resumed.load(tmp_path / "b" / "ckpt.pt")
    assert resumed.step == 10 and resumed.hooks[0].calls == 10
    resumed.fit(20)
    for a, b in zip(whole.model.state_dict().values(), resumed.model.state_dict().values()):
        assert torch.equal(a, b)
    for a, b in zip(whole.ema.state_dict().values(), resumed.ema.state_dict().values()):
        assert torch.equal(a, b)
    assert torch.equal(whole.hooks[0].param, resumed.hooks[0].param)


def test_a_checkpoint_without_the_hooks_state_is_refused(tmp_path):
    plain = _trainer(tmp_path)
    plain.fit(5)
    with pytest.raises(ValueError, match="no state of the 'second_player' hook"):
        _trainer(tmp_path, hooks=[SecondPlayer()]).load(tmp_path / "ckpt.pt")
    with pytest.raises(ValueError, match="names must differ"):
        _trainer(tmp_path, hooks=[SecondPlayer(), SecondPlayer()])


def test_optimizer_with_parameter_groups(tmp_path):
    def frozen_bias(model):
        return torch.optim.SGD([{"params": [model.weight], "lr": 0.1}, {"params": [model.bias], "lr": 0.0}])

    trainer = _trainer(tmp_path, optimizer=frozen_bias)
    bias = trainer.model.bias.detach().clone()
    trainer.fit(10)
    assert torch.equal(trainer.model.bias, bias)  # lr 0: untouched
    assert isinstance(trainer.optimizer, torch.optim.SGD)
    assert json.loads((tmp_path / "log.jsonl").read_text().splitlines()[0])["lr"] == 0.1  # the first group's
