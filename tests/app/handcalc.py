"""MRMC figures computed by hand in the tests: pair counting, leave-one-out by recomputation, the OR formulas.

Deliberately the slow, literal way - independent of mammoscreen.evaluate's vectorised DeLong components.
"""

from __future__ import annotations

import math
from itertools import product


def auc(truth, scores) -> float:
    """Wilcoxon AUC: P(abnormal > normal) + 1/2 P(tie), by counting every pair."""
    pos = [s for s, t in zip(scores, truth) if t == 1]
    neg = [s for s, t in zip(scores, truth) if t == 0]
    total = sum(1.0 if p > n else 0.5 if p == n else 0.0 for p, n in product(pos, neg))
    return total / (len(pos) * len(neg))


def or_analysis(scores, truth) -> dict:
    """OR-Hillis RRRC and RRFC figures of ``scores[t][r][c]`` (t = 2 modalities)."""
    t, r, c = len(scores), len(scores[0]), len(truth)
    aucs = [[auc(truth, scores[i][j]) for j in range(r)] for i in range(t)]
    # Jackknife: recompute every AUC with case k left out.
    jack = [[[auc(truth[:k] + truth[k + 1:], scores[i][j][:k] + scores[i][j][k + 1:]) for j in range(r)]
             for i in range(t)] for k in range(c)]
    mean = [[sum(jack[k][i][j] for k in range(c)) / c for j in range(r)] for i in range(t)]

    def cov(i, j, i2, j2):
        return (c - 1) / c * sum((jack[k][i][j] - mean[i][j]) * (jack[k][i2][j2] - mean[i2][j2]) for k in range(c))

    cells = [(i, j) for i in range(t) for j in range(r)]
    groups = {"var": [], "cov1": [], "cov2": [], "cov3": []}
    for (i, j), (i2, j2) in product(cells, cells):
        if j == j2:
            key = "var" if i == i2 else "cov1"  # same reader
        else:
            key = "cov2" if i == i2 else "cov3"  # different readers
        groups[key].append(cov(i, j, i2, j2))
    comp = {k: sum(v) / len(v) for k, v in groups.items()}
    m_mod = [sum(aucs[i]) / r for i in range(t)]
    m_read = [sum(aucs[i][j] for i in range(t)) / t for j in range(r)]
    grand = sum(m_mod) / t
    ms_t = r * sum((m - grand) ** 2 for m in m_mod) / (t - 1)
    ms_tr = sum((aucs[i][j] - m_mod[i] - m_read[j] + grand) ** 2
                for i in range(t) for j in range(r)) / ((t - 1) * (r - 1))
    error = ms_tr + r * max(comp["cov2"] - comp["cov3"], 0.0)
    ddf = error ** 2 / (ms_tr ** 2 / ((t - 1) * (r - 1))) if ms_tr > 0 else math.inf
    return {"auc": aucs, "means": m_mod, "difference": m_mod[0] - m_mod[1], "components": comp, "MS(T)": ms_t,
            "MS(T*R)": ms_tr, "F_rrrc": ms_t / error, "ddf_rrrc": ddf, "se_rrrc": math.sqrt(2 * error / r),
            "F_rrfc": ms_t / ms_tr if ms_tr > 0 else math.inf}
