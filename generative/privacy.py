"""Privacy accounting for DP-SGD with Poisson sampling (wrappers around opacus's accountants).

The mechanism accounted for is the Poisson-subsampled Gaussian mechanism: every
step includes each of the ``N`` training examples independently with probability
``sample_rate`` (``q``), clips each included example's gradient to norm ``C`` and
adds Gaussian noise of standard deviation ``noise_multiplier * C`` to their sum.
``steps`` such steps compose to an ``(epsilon, delta)``-DP guarantee (example-level,
add/remove-one adjacency), computed here by opacus:

* ``"rdp"``: Renyi DP of the sampled Gaussian mechanism (Mironov et al. 2019)
  converted to ``(epsilon, delta)`` (Balle et al. 2020);
* ``"prv"``: numerical composition of privacy loss random variables (Gopi et
  al. 2021), tighter; the upper bound of its error interval is reported.

Nothing is computed here that opacus does not compute: :func:`epsilon` and
:func:`noise_multiplier` only validate their inputs and turn opacus's failures
into messages that say what to change.
"""

import math

ACCOUNTANTS = ("rdp", "prv")

# opacus is imported inside the functions: importing it costs seconds, and
# ``import generative`` must stay fast for code that never trains privately.


def check_settings(sample_rate, steps, delta, accountant="rdp"):
    """Raise ``ValueError`` unless ``0 < sample_rate <= 1``, ``steps >= 1``, ``0 < delta < 1`` and the accountant is known."""
    if accountant not in ACCOUNTANTS:
        raise ValueError(f"unknown accountant {accountant!r}: use one of {ACCOUNTANTS}")
    if not 0 < sample_rate <= 1:
        raise ValueError(f"sample rate must lie in (0, 1], got {sample_rate}: it is the expected "
                         "batch size divided by the number of training examples")
    if int(steps) != steps or steps < 1:
        raise ValueError(f"steps must be a positive integer, got {steps}")
    if not 0 < delta < 1:
        raise ValueError(f"delta must lie in (0, 1), got {delta}; it is usually chosen "
                         "below 1 / (number of training examples)")


def steps_for_epochs(epochs, sample_rate):
    """Number of Poisson-sampled steps in ``epochs`` passes over the data: ``ceil(epochs / sample_rate)``."""
    if epochs <= 0:
        raise ValueError(f"epochs must be positive, got {epochs}")
    return math.ceil(epochs / sample_rate - 1e-9)


def make_accountant(accountant="rdp", history=()):
    """An opacus accountant (``"rdp"`` or ``"prv"``) with ``history``, a list of ``(noise_multiplier, sample_rate, steps)``."""
    from opacus.accountants import create_accountant

    if accountant not in ACCOUNTANTS:
        raise ValueError(f"unknown accountant {accountant!r}: use one of {ACCOUNTANTS}")
    acc = create_accountant(mechanism=accountant)
    acc.history = [(float(s), float(q), int(n)) for s, q, n in history]
    return acc


def epsilon(noise_multiplier, sample_rate, steps, delta, accountant="rdp"):
    """Epsilon spent by ``steps`` DP-SGD steps with Poisson sampling at ``(delta)``.

    Args:
        noise_multiplier: noise standard deviation divided by the clipping norm (> 0).
        sample_rate: probability that an example is in a step's batch, in (0, 1].
        steps: number of steps (>= 1).
        delta: target delta, in (0, 1).
        accountant: ``"rdp"`` or ``"prv"`` (see the module docstring).
    """
    check_settings(sample_rate, steps, delta, accountant)
    if noise_multiplier <= 0:
        raise ValueError(f"noise multiplier must be positive, got {noise_multiplier}: "
                         "without noise no finite epsilon holds")
    acc = make_accountant(accountant, [(noise_multiplier, sample_rate, steps)])
    return float(acc.get_epsilon(delta=delta))


def noise_multiplier(target_epsilon, sample_rate, steps, delta, accountant="rdp",
                     max_noise_multiplier=1000.0, tolerance=0.01):
    """Smallest noise multiplier (to ``tolerance`` in epsilon) whose epsilon is at most ``target_epsilon``.

    Calibrated by opacus's bisection (``get_noise_multiplier``); the result's epsilon
    lies in ``(target_epsilon - tolerance, target_epsilon]``. Raises ``ValueError`` when
    even ``max_noise_multiplier`` spends more than ``target_epsilon``.
    """
    from opacus.accountants.utils import get_noise_multiplier

    check_settings(sample_rate, steps, delta, accountant)
    if target_epsilon <= 0:
        raise ValueError(f"target epsilon must be positive, got {target_epsilon}")
    worst = epsilon(max_noise_multiplier, sample_rate, steps, delta, accountant)
    if worst > target_epsilon:
        raise ValueError(
            f"epsilon {target_epsilon} cannot be met with {steps} steps ({steps * sample_rate:g} "
            f"epochs) at sample rate {sample_rate} within noise multiplier <= {max_noise_multiplier} "
            f"(that spends epsilon {worst:.3g}): lower the steps or the sample rate, or raise epsilon")
    return float(get_noise_multiplier(target_epsilon=target_epsilon, target_delta=delta,
                                      sample_rate=sample_rate, steps=int(steps),
                                      accountant=accountant, epsilon_tolerance=tolerance))
