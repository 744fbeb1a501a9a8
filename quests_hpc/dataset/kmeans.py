"""k-means on the structures' mean descriptors (the ``k_means`` compression method).

Pure numpy on a small array (one row per structure, the same on every rank), so every
rank computes the same clustering.  k-means++ seeding from
``numpy.random.default_rng(seed)``, then Lloyd iterations until no assignment changes.
A cluster that empties is re-seeded at the point farthest from its centre, so there
are always ``k`` clusters and ``k`` picks (upstream's ``k_means`` drops its last cluster
and may return fewer).  Each cluster gives the structure nearest its centre (ties: the
lowest index); the picks are returned in the order the clusters were seeded.
"""

import numpy as np

MAX_ITERATIONS = 300


def _sq_dist(a, c):
    """Squared distances ``(len(a), len(c))`` (``|a|^2 + |c|^2 - 2 a.c``, >= 0)."""
    d2 = (a * a).sum(axis=1)[:, None] + (c * c).sum(axis=1)[None, :] - 2.0 * (a @ c.T)
    return np.maximum(d2, 0.0)


def kmeans_pp(points, k, rng):
    """k-means++ initial centres (indices of ``points``)."""
    first = int(rng.integers(len(points)))
    chosen = [first]
    d2 = _sq_dist(points, points[[first]])[:, 0]
    for _ in range(k - 1):
        total = d2.sum()
        if total <= 0:  # every point sits on a centre: the lowest unused index
            nxt = int(np.flatnonzero(~np.isin(np.arange(len(points)), chosen))[0])
        else:
            nxt = int(rng.choice(len(points), p=d2 / total))
        chosen.append(nxt)
        d2 = np.minimum(d2, _sq_dist(points, points[[nxt]])[:, 0])
    return chosen


def lloyd(points, centres, max_iterations=MAX_ITERATIONS):
    """``(labels, centres)`` after Lloyd iterations from ``centres``."""
    labels = None
    for _ in range(max_iterations):
        d2 = _sq_dist(points, centres)
        new = np.argmin(d2, axis=1)
        for c in range(len(centres)):
            if not np.any(new == c):  # empty: re-seed at the farthest point
                far = int(np.argmax(d2[np.arange(len(points)), new]))
                new[far] = c
                d2[far, c] = 0.0
        if labels is not None and np.array_equal(new, labels):
            break
        labels = new
        centres = np.array([points[labels == c].mean(axis=0) for c in range(len(centres))])
    return labels, centres


def kmeans_order(points, k, seed):
    """One structure per cluster of a k-means clustering of ``points`` (see module doc)."""
    rng = np.random.default_rng(seed)
    points = np.asarray(points, dtype=float)
    labels, centres = lloyd(points, points[kmeans_pp(points, k, rng)])
    order = []
    for c in range(k):
        members = np.flatnonzero(labels == c)
        d2 = _sq_dist(points[members], centres[[c]])[:, 0]
        order.append(int(members[np.argmin(d2)]))
    return order
