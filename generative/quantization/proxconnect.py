"""ProxConnect++: quantization-aware training that keeps full-precision latent weights.

:class:`ProxConnect` wraps any ``torch.optim`` optimiser. The chosen weights live twice:
the *latent* full-precision copy in the wrapper's state, which the base optimiser
updates, and the *forward-quantized* copy ``F(latent)`` in the model, which the forward
and backward passes use. One step:

1. multiply each gradient (taken at the quantized weights) by the backward quantizer's
   ``B'(latent)`` (:mod:`generative.quantization.backward`) and put the latent weights back
   into the model;
2. run the base optimiser's step on them;
3. keep the new latent weights, compute each row's grid from them
   (:mod:`generative.quantization.grids`) and write ``F(latent)`` into the model
   (:mod:`generative.quantization.forward`) at the annealing's relaxation for this step.

Steps before ``annealing.start`` are warm-up: plain optimiser steps on full-precision
weights. After ``annealing.end`` the model holds exactly quantized weights (every row on
its grid), which :mod:`generative.quantization.packing` stores in a few bits each.

:data:`METHODS` names the forward/backward pairs of the literature: BinaryConnect
(``hard``/``identity``), BNN (``hard``/``clipped``), BNN+ (``hard``/``sign_swish``), BNN++
(``sign_swish``/``sign_swish``, ProxConnect++'s new pair), PARQ (``parq``/``identity``, the
proximal map ProxConnect generalises BinaryConnect with) and BinaryRelax (``relax``/``identity``).

With the engine's :class:`~generative.trainer.Trainer`, pass
``optimizer=lambda model: ProxConnect(torch.optim.Adam(model.parameters()), quantizable(model), ...)``
and add ``QuantizationLog(optimizer)`` to its hooks; the checkpoint then holds the latent weights
and a resumed run repeats the uninterrupted one. The trainer's EMA averages quantized weights,
which are not on a grid: evaluate ``trainer.model`` (or train with ``ema_decay=0``).
"""

import torch
from torch import nn

from . import backward, forward
from .forward import Annealing
from .grids import check_scheme, levels, nearest, rows
from ..trainer import Hook

METHODS = {
    "binaryconnect": ("hard", "identity"),
    "bnn": ("hard", "clipped"),
    "bnn+": ("hard", "sign_swish"),
    "bnn++": ("sign_swish", "sign_swish"),
    "parq": ("parq", "identity"),
    "binaryrelax": ("relax", "identity"),
}

QUANTIZABLE = (nn.Linear, nn.Conv1d, nn.Conv2d, nn.Conv3d, nn.ConvTranspose1d, nn.ConvTranspose2d, nn.ConvTranspose3d)


def quantizable(model: nn.Module, keep_first_last: bool = True, exclude=()) -> dict[str, nn.Parameter]:
    """Weights of the linear and convolution layers of ``model`` by name, in module order.

    With ``keep_first_last`` the first and last of those layers (in module order) stay full
    precision, as in the binarization literature: they hold few weights and most of the damage.
    Layers named in ``exclude`` (module names, e.g. a UNet's ``"inp"`` and ``"out.2"`` where
    module order is not data-flow order) stay full precision too."""
    layers = [(name, module) for name, module in model.named_modules() if isinstance(module, QUANTIZABLE)]
    if keep_first_last:
        layers = layers[1:-1]
    unknown = set(exclude) - {name for name, _ in model.named_modules()}
    if unknown:
        raise ValueError(f"no layer named {sorted(unknown)} in the model")
    layers = [(name, module) for name, module in layers if name not in set(exclude)]
    return {f"{name}.weight" if name else "weight": module.weight for name, module in layers}


class ProxConnect:
    """Quantization-aware optimiser wrapper (see the module docstring).

    Args:
        base: the optimiser of all the model's parameters (quantized or not).
        weights: the parameters to quantize (a dict from :func:`quantizable` or any iterable);
            each must be one of ``base``'s parameters.
        grid: ``"binary"``, ``"ternary"`` or ``"uniform<k>"`` (:mod:`generative.quantization.grids`).
        method: a name in :data:`METHODS`, or a ``(forward, backward)`` pair.
        annealing: :class:`~generative.quantization.forward.Annealing` (default: from step 0 to 1000).
        per_channel: one grid per output channel (row of dim 0), else one per tensor.
        beta0, beta_max: SignSwish sharpness of the ``sign_swish`` forward map, ``min(beta0/rho, beta_max)``.
        backward_beta: SignSwish sharpness of the ``sign_swish`` backward map when the forward map is
            another one (BNN+); with the ``sign_swish`` forward map (BNN++) both use the same ``beta``.
    """

    def __init__(self, base: torch.optim.Optimizer, weights, *, grid: str = "binary", method="bnn++",
                 annealing: Annealing | None = None, per_channel: bool = True, beta0: float = 2.0,
                 beta_max: float = 50.0, backward_beta: float = 5.0):
        self.base = base
        self.weights = list(weights.values() if isinstance(weights, dict) else weights)
        if not self.weights:
            raise ValueError("nothing to quantize: the list of weights is empty")
        owned = {id(p) for group in base.param_groups for p in group["params"]}
        if any(id(p) not in owned for p in self.weights):
            raise ValueError("every weight to quantize must be a parameter of the base optimiser")
        self.grid = check_scheme(grid)
        pair = METHODS.get(method) if isinstance(method, str) else tuple(method)
        if pair is None or len(pair) != 2 or pair[0] not in forward.FORWARD or pair[1] not in backward.BACKWARD:
            raise ValueError(f"unknown quantization method {method!r}; choose one of {', '.join(METHODS)} "
                             f"or a pair of a forward map in {forward.FORWARD} and a backward map in {backward.BACKWARD}")
        self.forward, self.backward = pair
        self.annealing = annealing or Annealing()
        self.per_channel = per_channel
        self.beta0, self.beta_max, self.backward_beta = beta0, beta_max, backward_beta
        self.steps = 0
        self.latent: list[torch.Tensor | None] = [None] * len(self.weights)
        self.grids: list[torch.Tensor | None] = [None] * len(self.weights)

    @property
    def param_groups(self):
        return self.base.param_groups

    def zero_grad(self, set_to_none: bool = True) -> None:
        self.base.zero_grad(set_to_none=set_to_none)

    def _beta(self, rho: float) -> float:
        if self.forward == "sign_swish":
            return forward.sign_swish_beta(rho, self.beta0, self.beta_max)
        return self.backward_beta

    @torch.no_grad()
    def step(self, closure=None):
        """One ProxConnect++ step (see the module docstring); returns the base step's value."""
        rho = self.annealing.relaxation(self.steps)
        if rho is None:  # warm-up: full precision
            self.steps += 1
            return self.base.step(closure)
        previous = self.annealing.relaxation(self.steps - 1) if self.steps > 0 else None
        for p, latent, grid in zip(self.weights, self.latent, self.grids):
            if latent is None:
                continue
            if p.grad is not None and previous is not None:
                slope = backward.derivative(self.backward, rows(latent, self.per_channel), grid, self._beta(previous))
                if slope is not None:
                    p.grad.mul_(slope.reshape(p.shape))
            p.copy_(latent)
        result = self.base.step(closure)
        for i, p in enumerate(self.weights):
            latent = p.detach().clone()
            w = rows(latent, self.per_channel)
            grid = levels(w, self.grid)
            p.copy_(forward.apply(self.forward, w, grid, rho, beta0=self.beta0, beta_max=self.beta_max).reshape(p.shape))
            self.latent[i], self.grids[i] = latent, grid
        self.steps += 1
        return result

    def codes(self, index: int) -> torch.Tensor:
        """Codes ``[rows, n]`` (uint8) of quantized weight ``index`` on its grid; a ``ValueError`` if the
        model's weights are not exactly on the grid yet (annealing not finished)."""
        grid = self.grids[index]
        if grid is None:
            raise ValueError("no quantized weights yet: train past the annealing's start first")
        w = rows(self.weights[index].detach(), self.per_channel)
        codes = nearest(w, grid)
        if not torch.equal(grid.gather(1, codes), w):
            raise ValueError(f"weights are not on their grid yet: train to the end of annealing (step "
                             f"{self.annealing.end}; now {self.steps})")
        return codes.to(torch.uint8)

    def relaxation(self) -> float | None:
        """Relaxation of the weights the model holds now (``None``: still full precision)."""
        return self.annealing.relaxation(self.steps - 1) if self.steps > 0 else None

    def state_dict(self) -> dict:
        return {"base": self.base.state_dict(), "steps": self.steps,
                "latent": [t for t in self.latent if t is not None],
                "grids": [t for t in self.grids if t is not None]}

    def load_state_dict(self, state: dict) -> None:
        self.base.load_state_dict(state["base"])
        self.steps = state["steps"]
        latent, grids = list(state["latent"]), list(state["grids"])
        if latent and len(latent) != len(self.weights):
            raise ValueError(f"the checkpoint quantizes {len(latent)} weights, this optimiser {len(self.weights)}")
        self.latent = [t.clone() for t in latent] if latent else [None] * len(self.weights)
        self.grids = [t.clone() for t in grids] if grids else [None] * len(self.weights)


class QuantizationLog(Hook):
    """Trainer hook adding the relaxation and the fraction of quantized weights on their grid to
    each log record (its state lives in the optimiser's checkpoint entry)."""

    name = "quantization"

    def __init__(self, optimizer: ProxConnect):
        self.optimizer = optimizer

    @torch.no_grad()
    def log_fields(self, trainer) -> dict:
        opt = self.optimizer
        on_grid = total = 0
        for p, grid in zip(opt.weights, opt.grids):
            if grid is None:
                continue
            w = rows(p.detach(), opt.per_channel)
            on_grid += int((grid.gather(1, nearest(w, grid)) == w).sum())
            total += w.numel()
        return {"relaxation": opt.relaxation(), "on_grid": on_grid / total if total else 0.0}
