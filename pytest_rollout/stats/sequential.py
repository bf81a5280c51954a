"""Critical values for fixed-horizon intervals and always-valid confidence sequences.

A gate that is re-run during a hold looks at the data again and again. A fixed-horizon interval
at level alpha excludes the truth with probability alpha *at each look*, so over many looks some
look eventually "proves" something false. A confidence sequence holds at every n at once.

We use the asymptotic confidence sequence of Waudby-Smith, Arbour, Sinha, Kennedy and Ramdas
("Time-uniform central limit theory and asymptotic confidence sequences", 2021), built on Robbins'
normal mixture: for any estimator that is asymptotically a mean of n i.i.d. terms, replace the
normal quantile z by the multiplier ``m(n)`` below. ``rho`` tunes where the sequence is tightest;
it must be fixed before looking at the data, so we derive it from a planned sample size.
"""

from __future__ import annotations

import math


def mixture_rho2(tuning_n: float, alpha_two_sided: float) -> float:
    """Mixture variance that makes the sequence tightest near ``tuning_n`` observations.

    The closed form is from Howard, Ramdas, McAuliffe and Sekhon (2021), eq. (3.12).
    """
    if tuning_n <= 0:
        raise ValueError(f"tuning_n must be positive, got {tuning_n}")
    log_term = -2.0 * math.log(alpha_two_sided)
    return (log_term + math.log(log_term + 1.0)) / tuning_n


def mixture_multiplier(n: float, alpha_two_sided: float, rho2: float) -> float:
    """Half-width of the normal-mixture confidence sequence in standard-error units at ``n``.

    The event ``|S_n| >= m(n) * sqrt(n)`` for some n has probability <= alpha (Ville's
    inequality on the mixture martingale), so the bound holds uniformly over all looks.
    """
    if n <= 0:
        return math.inf
    a = n * rho2 + 1.0
    return math.sqrt(2.0 * a / (n * rho2) * math.log(math.sqrt(a) / alpha_two_sided))


def critical_value(
    alpha: float, n: float, *, sequential: bool = False, tuning_n: float = 1000.0
) -> float:
    """Multiplier for a one-sided bound at level ``alpha`` per side.

    Fixed horizon: the normal quantile. Sequential: the confidence-sequence multiplier for a
    two-sided sequence at ``2 * alpha``; by the symmetry of the mixture each side then errs with
    probability about ``alpha`` (checked by simulation in tests/stats).
    """
    if not 0.0 < alpha < 0.5:
        raise ValueError(f"alpha per side must be in (0, 0.5), got {alpha}")
    if not sequential:
        from scipy.stats import norm

        return float(norm.isf(alpha))
    two_sided = 2.0 * alpha
    return mixture_multiplier(n, two_sided, mixture_rho2(tuning_n, two_sided))
