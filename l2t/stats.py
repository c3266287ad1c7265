"""Statistics that fit two or three seeds: paired differences with a t-interval (the CPU-scale Figure 5)."""

import statistics


def paired_interval(differences, level=0.95):
    """Mean of paired differences and its two-sided t-interval ``{'mean', 'low', 'high', 'sd'}`` (scipy.stats.t).

    One difference has no spread: ``low``, ``high`` and ``sd`` are then None.
    """
    k = len(differences)
    if k == 0:
        raise ValueError("paired_interval needs at least one difference")
    mean = statistics.mean(differences)
    if k == 1:
        return {"mean": mean, "low": None, "high": None, "sd": None}
    sd = statistics.stdev(differences)
    half = half_width(sd, k, level)
    return {"mean": mean, "low": mean - half, "high": mean + half, "sd": sd}


def half_width(sd, k, level=0.95):
    """Half the width of the two-sided t-interval of a mean of ``k`` values whose sample spread is ``sd``."""
    from scipy import stats

    return stats.t.ppf(0.5 + level / 2, k - 1) * sd / k**0.5
