"""The vectorised bootstrap against a naive scikit-learn loop over the same resamples."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn import metrics as skm
from sklearn.utils import resample

from mammoscreen.evaluate import metrics as m
from mammoscreen.evaluate.bootstrap import bootstrap_counts, bootstrap_metrics, percentile_interval
from mammoscreen.evaluate.validation import EvaluationInputError


def naive_reference_loop(y, s, n_replicates, seed):
    """The meta-repository's procedure written out plainly: resample, skip single-class replicates."""
    np.random.seed(seed)
    values = {"auroc": [], "auprc_trapezoid": [], "average_precision": []}
    skipped = 0
    for _ in range(n_replicates):
        pairs = resample(list(zip(y, s)), replace=True, n_samples=len(y))
        labels, scores = map(np.array, zip(*pairs))
        if len(set(labels.tolist())) == 1:
            skipped += 1
            continue
        precision, recall, _ = skm.precision_recall_curve(labels, scores)
        values["auroc"].append(skm.roc_auc_score(labels, scores))
        values["auprc_trapezoid"].append(skm.auc(recall, precision))
        values["average_precision"].append(skm.average_precision_score(labels, scores))
    return {k: np.array(v) for k, v in values.items()}, skipped


@pytest.mark.parametrize("n, prevalence, ties, seed", [
    (300, 0.1, False, 0), (200, 0.3, True, 7), (12, 0.25, False, 3), (9, 0.2, True, 1)])
def test_replicates_equal_sklearn_on_same_resamples(n, prevalence, ties, seed):
    rng = np.random.default_rng(n)
    y = (rng.random(n) < prevalence).astype(int)
    y[:2] = [0, 1]
    if n < 20:
        y[2:] = 0  # one positive: many replicates miss it and must be skipped
    s = rng.random(n) + 0.4 * y
    if ties:
        s = np.round(s, 1)
    reference, skipped = naive_reference_loop(y, s, 80, seed)
    result = bootstrap_metrics(y, s, 80, random_state=seed)
    assert result.n_single_class == skipped
    assert result.n_used == 80 - skipped
    if n < 20:
        assert skipped > 0  # small samples must exercise the skipping
    for name, values in reference.items():
        np.testing.assert_allclose(result.replicates[name], values, rtol=0, atol=1e-12)


def test_blocks_do_not_change_the_stream():
    whole = np.concatenate(list(bootstrap_counts(50, 37, random_state=4, block_size=37)))
    pieces = np.concatenate(list(bootstrap_counts(50, 37, random_state=4, block_size=5)))
    np.testing.assert_array_equal(whole, pieces)
    assert whole.shape == (37, 50)
    assert np.all(whole.sum(axis=1) == 50)
    # each replicate is what resample() draws after RandomState(4)
    rs = np.random.RandomState(4)
    first = resample(np.arange(50), replace=True, n_samples=50, random_state=rs)
    np.testing.assert_array_equal(whole[0], np.bincount(first, minlength=50))


def test_memory_is_bounded_by_blocks():
    blocks = list(bootstrap_counts(100_000, 30, random_state=0))
    assert len(blocks) > 1
    assert max(b.size for b in blocks) <= 2 ** 20


def test_group_resampling_keeps_groups_together():
    groups = np.repeat(np.arange(40), 2)  # two breasts per exam
    for counts in bootstrap_counts(80, 200, random_state=2, groups=groups):
        np.testing.assert_array_equal(counts[:, 0::2], counts[:, 1::2])
        assert np.all(counts.sum(axis=1) == 80)  # 40 exams drawn, 2 breasts each


def test_operating_point_replicates_equal_point_estimates_on_resampled_data():
    rng = np.random.default_rng(5)
    y = (rng.random(150) < 0.3).astype(int)
    s = np.round(rng.random(150) + 0.3 * y, 2)
    result = bootstrap_metrics(y, s, 40, random_state=9, metrics=(), specificities=(0.9,), sensitivities=(0.8,))
    counts = np.concatenate(list(bootstrap_counts(150, 40, random_state=9)))
    k = 0
    for row in counts:
        idx = np.repeat(np.arange(150), row)
        if y[idx].min() == y[idx].max():
            continue
        replicates = result.replicates
        assert replicates["sensitivity_at_specificity_0.9"][k] == m.sensitivity_at_specificity(y[idx], s[idx], 0.9)
        assert replicates["specificity_at_sensitivity_0.8"][k] == m.specificity_at_sensitivity(y[idx], s[idx], 0.8)
        k += 1
    assert k == result.n_used


def test_paired_rows_share_replicates():
    rng = np.random.default_rng(6)
    y = (rng.random(100) < 0.4).astype(int)
    a, b = rng.random(100) + y, rng.random(100)
    both = bootstrap_metrics(y, np.vstack([a, b]), 60, random_state=1)
    only_a = bootstrap_metrics(y, a, 60, random_state=1)
    only_b = bootstrap_metrics(y, b, 60, random_state=1)
    np.testing.assert_array_equal(both.replicates["auroc"][:, 0], only_a.replicates["auroc"])
    np.testing.assert_array_equal(both.replicates["auroc"][:, 1], only_b.replicates["auroc"])


def test_percentile_interval_is_the_reference_order_statistic():
    values = np.arange(2000)[::-1].astype(float)
    # 2000 sorted values: the 51st and 1951st smallest
    assert percentile_interval(values) == (50.0, 1950.0)
    values = np.arange(1999).astype(float)
    assert percentile_interval(values) == (float(int(0.025000000000000022 * 1999)), float(int(0.975 * 1999)))
    assert percentile_interval([np.nan, 1.0, 2.0, np.nan]) == (1.0, 2.0)
    low, high = percentile_interval(np.random.default_rng(0).normal(size=10_000))
    assert -2.1 < low < -1.85 and 1.85 < high < 2.1


def test_bad_bootstrap_arguments():
    with pytest.raises(EvaluationInputError, match="positive integer"):
        bootstrap_metrics([0, 1, 0, 1], [0.1, 0.2, 0.3, 0.4], 0)
    with pytest.raises(EvaluationInputError, match="non-negative integer"):
        bootstrap_metrics([0, 1, 0, 1], [0.1, 0.2, 0.3, 0.4], 10, random_state=-3)
    with pytest.raises(EvaluationInputError, match="groups must have one entry per case"):
        list(bootstrap_counts(4, 3, groups=[1, 2]))


def test_replicates_in_many_blocks_equal_weighted_metrics_row_by_row():
    """RankedScores evaluates replicates in cache-sized blocks of rows: with 1,000 cases a block is 65 rows,
    so 300 replicates take five blocks. Each row must equal scikit-learn's metric with the row's counts as
    sample weights (a replicate in which a case occurs k times weighs it k times)."""
    from mammoscreen.evaluate._ranking import RankedScores

    rng = np.random.default_rng(21)
    n = 1000
    y = (rng.random(n) < 0.3).astype(int)
    s = np.round(rng.random(n) + 0.4 * y, 2)  # ties
    counts = rng.multinomial(n, np.full(n, 1 / n), size=300)
    got = RankedScores(y, s).ranking_metrics(counts)
    assert all(v.shape == (300,) for v in got.values())
    for r in range(0, 300, 23):
        w = counts[r]
        assert got["auroc"][r] == pytest.approx(skm.roc_auc_score(y, s, sample_weight=w), abs=1e-12)
        assert got["average_precision"][r] == pytest.approx(skm.average_precision_score(y, s, sample_weight=w),
                                                            abs=1e-12)
    # more replicates than cases (100 cases: blocks of 655 rows), each row still its own weighted metric
    small_y, small_s = y[:100], s[:100]
    many = rng.multinomial(100, np.full(100, 1 / 100), size=1000)
    auroc = RankedScores(small_y, small_s).ranking_metrics(many)["auroc"]
    assert auroc.shape == (1000,)
    for r in (0, 654, 655, 999):
        assert auroc[r] == pytest.approx(skm.roc_auc_score(small_y, small_s, sample_weight=many[r]), abs=1e-12)
    # a replicate without negatives (or without positives) has no ranking metric at all
    one_class = np.zeros((2, n), dtype=np.int64)
    one_class[0, y == 1] = 1
    one_class[1, y == 0] = 1
    for values in RankedScores(y, s).ranking_metrics(one_class).values():
        assert np.isnan(values).all()
