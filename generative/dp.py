"""DP-SGD mechanics: Poisson sampling, per-example gradients, clipping and Gaussian noise.

One DP-SGD step on ``N`` training examples (Abadi et al. 2016; DPDM, Dockhorn et al. 2023):

1. :func:`poisson_indices`: each example joins the batch independently with
   probability ``q`` (the batch size varies; it may be empty);
2. :func:`per_example_gradients`: the gradient of each example's loss, with
   ``torch.func`` (``vmap`` over ``grad`` of a ``functional_call``). With noise
   multiplicity ``K`` the example's loss is the mean of ``K`` independent loss
   draws (``K`` diffusion noise levels and noise vectors), so the clipped quantity
   is the gradient of that mean: the privacy cost does not depend on ``K``;
3. :func:`clip_and_sum`: scale each example's gradient (all parameters together,
   one L2 norm) to norm at most ``C`` and sum over the batch;
4. :func:`add_noise`: add ``N(0, (noise_multiplier C)^2)`` to every coordinate of
   the sum and divide by the expected batch size ``q N``.

Loss contract (as for :class:`generative.Trainer`): ``loss_fn(model, batch, generator)
-> [B]`` per-example losses, where ``batch`` is a tensor or a tuple/list/dict of
tensors with leading dimension ``B``. For per-example gradients it is called inside
``vmap`` once per example on a batch of ``K`` copies of that example, so it must treat
the rows of ``batch`` independently (no batch statistics: GroupNorm and LayerNorm are
fine, BatchNorm is not) and must draw its randomness from ``generator`` with
torch's random functions (``torch.randn(..., generator=generator)``); under
``vmap(randomness="different")`` each example then gets its own draws, equal to
drawing ``[B, K, ...]`` at once, so a run is reproducible from the generator's seed.
A loss that needs other modules around ``model`` (e.g. a class-label wrapper) should
build them inside ``loss_fn`` around ``model``'s submodules rather than set state on them.
"""

import torch
from torch import nn
from torch.func import functional_call, grad, vmap
from torch.utils._pytree import tree_map


def poisson_indices(num_examples, sample_rate, generator=None, device=None):
    """Indices ``[b]`` (increasing) of a Poisson-sampled batch: each example kept with probability ``sample_rate``."""
    keep = torch.rand(num_examples, generator=generator, device=device) < sample_rate
    return keep.nonzero().flatten()


class _MeanLoss(nn.Module):
    """``model``'s loss on one example (a batch of its ``K`` copies), averaged over the copies."""

    def __init__(self, model, loss_fn):
        super().__init__()
        self.model = model
        self.loss_fn = loss_fn

    def forward(self, copies, generator):
        return self.loss_fn(self.model, copies, generator).float().mean()


def per_example_gradients(model, loss_fn, batch, generator=None, noise_draws=1):
    """Gradients of each example's loss (mean over ``noise_draws`` draws) w.r.t. ``model``'s trainable parameters.

    Args:
        model: ``nn.Module``; parameters with ``requires_grad=False`` are held fixed.
        loss_fn: ``loss_fn(model, batch, generator) -> [B]`` (see the module docstring).
        batch: tensor or tuple/list/dict of tensors, leading dimension ``B``.
        generator: source of the loss's randomness.
        noise_draws: ``K``, the number of loss draws averaged per example.

    Returns:
        ``(grads, losses)``: a dict parameter name -> ``[B, *param.shape]`` and the
        per-example losses ``[B]`` (each a mean over the ``K`` draws).
    """
    if noise_draws < 1:
        raise ValueError(f"noise_draws must be >= 1, got {noise_draws}")
    wrapped = _MeanLoss(model, loss_fn)
    params = {k: p.detach() for k, p in wrapped.named_parameters() if p.requires_grad}
    frozen = {k: p.detach() for k, p in wrapped.named_parameters() if not p.requires_grad}
    frozen.update(dict(wrapped.named_buffers()))

    def example_loss(trainable, copies):
        loss = functional_call(wrapped, ({**trainable, **frozen}), (copies, generator))
        return loss, loss

    copies = tree_map(lambda t: t.unsqueeze(1).expand(t.shape[0], noise_draws, *t.shape[1:]), batch)
    grads, losses = vmap(grad(example_loss, has_aux=True), in_dims=(None, 0),
                         randomness="different")(params, copies)
    prefix = len("model.")
    return {k[prefix:]: g for k, g in grads.items()}, losses


def clip_and_sum(grads, max_norm):
    """Sum over examples of the gradients scaled to L2 norm at most ``max_norm``.

    Args:
        grads: dict name -> ``[B, ...]`` per-example gradients; an example's norm is
            taken over all its entries in every parameter.
        max_norm: clipping norm ``C`` (> 0).

    Returns:
        ``(summed, norms)``: dict name -> ``[...]`` and the unclipped norms ``[B]``.
        Each example is multiplied by ``min(1, C (1 - 1e-6) / norm)``: the margin
        keeps a clipped norm below ``C`` despite float32 rounding.
    """
    norms = torch.stack([g.flatten(1).double().pow(2).sum(1) for g in grads.values()]).sum(0).sqrt()
    factor = (max_norm * (1 - 1e-6) / norms).clamp(max=1.0)
    summed = {k: torch.einsum("b,b...->...", factor.to(g.dtype), g) for k, g in grads.items()}
    return summed, norms.float()


def add_noise(summed, noise_multiplier, max_norm, expected_batch_size, generator=None):
    """Noisy mean gradient ``(summed + N(0, (noise_multiplier max_norm)^2 I)) / expected_batch_size``.

    ``summed`` is a dict name -> tensor; the result has the same keys and shapes.
    Dividing by the expected batch size ``q N`` (not the realised one) keeps the
    released quantity a function of the noisy sum only.
    """
    std = noise_multiplier * max_norm
    return {k: (s + std * torch.randn(s.shape, generator=generator, device=s.device, dtype=s.dtype))
            / expected_batch_size for k, s in summed.items()}
