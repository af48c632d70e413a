"""The bootstrap's interface: seeds and streams, argument checks and their messages, intervals, several problems on
one set of replicates, the block size; expected values from numpy's RandomState or counted by hand."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn import metrics as skm

from mammoscreen.evaluate.bootstrap import (DEFAULT_REPLICATES, BootstrapProblem, BootstrapResult, as_random_state,
                                            bootstrap_counts, bootstrap_metrics, operating_metric_name,
                                            percentile_interval, run_bootstrap)
from mammoscreen.evaluate.validation import EvaluationInputError

Y = np.array([0, 1, 0, 1, 1, 0, 0, 1, 0, 0])
S = np.array([0.1, 0.8, 0.3, 0.35, 0.9, 0.2, 0.6, 0.7, 0.05, 0.4])


def test_random_states_are_created_or_continued():
    given = np.random.RandomState(5)
    assert as_random_state(given) is given
    assert as_random_state(5).randint(0, 1000, 5).tolist() == np.random.RandomState(5).randint(0, 1000, 5).tolist()
    assert as_random_state(np.int64(0)).randint(0, 10 ** 9) == np.random.RandomState(0).randint(0, 10 ** 9)
    assert isinstance(as_random_state(None), np.random.RandomState)
    for bad in (-1, 1.5, "3", True):
        with pytest.raises(EvaluationInputError, match=rf"^the bootstrap seed must be a non-negative integer, got "
                                                       rf"{bad!r}$".replace("(", r"\(").replace(")", r"\)")):
            as_random_state(bad)


def test_the_default_seed_is_zero_and_a_given_state_continues():
    first = np.concatenate(list(bootstrap_counts(10, 5)))
    rs = np.random.RandomState(0)
    assert first[0].tolist() == np.bincount(rs.randint(0, 10, 10), minlength=10).tolist()
    shared = np.random.RandomState(0)
    a = np.concatenate(list(bootstrap_counts(10, 5, shared)))
    b = np.concatenate(list(bootstrap_counts(10, 5, shared)))
    assert np.array_equal(a, first) and not np.array_equal(a, b)  # the second call continues the stream
    assert np.array_equal(b, np.concatenate(list(bootstrap_counts(10, 10, 0)))[5:])
    assert DEFAULT_REPLICATES == 2000
    assert len(np.concatenate(list(bootstrap_counts(3)))) == 2000


@pytest.mark.parametrize("bad", [0, -2, 2.0, True, "5"])
def test_the_number_of_replicates_must_be_a_positive_integer(bad):
    with pytest.raises(EvaluationInputError, match=r"^the number of bootstrap replicates must be a positive integer, "
                                                   rf"got {bad!r}$"):
        list(bootstrap_counts(4, bad))
    assert len(np.concatenate(list(bootstrap_counts(4, np.int32(3))))) == 3


def test_groups_are_resampled_as_units():
    groups = np.array(["b", "a", "b", "c", "a"])  # units a, b, c (sorted): cases [1, 4], [0, 2], [3]
    rs = np.random.RandomState(3)
    (counts,) = list(bootstrap_counts(5, 4, 3, groups=groups))
    for row in counts:
        unit = np.bincount(rs.randint(0, 3, 3), minlength=3)  # what each replicate draws: 3 units
        assert row.tolist() == [unit[1], unit[0], unit[1], unit[2], unit[0]]
    with pytest.raises(EvaluationInputError, match=r"^groups must have one entry per case \(5\), got shape \(2, 3\)$"):
        list(bootstrap_counts(5, 4, groups=np.zeros((2, 3))))


def test_blocks_hold_about_a_million_counts():
    sizes = [len(b) for b in bootstrap_counts(1 << 14, 200, 0)]
    assert sizes == [64, 64, 64, 8]  # 2**20 // 2**14 = 64 replicates per block
    assert [len(b) for b in bootstrap_counts(3 << 20, 2, 0)] == [1, 1]  # more cases than the budget: one at a time
    grouped = [len(b) for b in bootstrap_counts(1 << 14, 130, 0, groups=np.arange(1 << 14) // 2)]
    assert grouped == [64, 64, 2]  # the larger of units and cases sets the size
    assert [len(b) for b in bootstrap_counts(10, 7, 0, block_size=3)] == [3, 3, 1]


def test_percentile_interval_edges():
    assert all(np.isnan(percentile_interval([np.nan, np.nan])))
    assert percentile_interval([3.0]) == (3.0, 3.0)
    # 10 values, 80 %: a = (1 - 0.8) / 2 is 0.0999... in floating point, so int(a * 10) = 0 and int((1 - a) * 10) = 9,
    # the meta-repository's arithmetic; at 50 % a = 0.25 exactly: int(2.5) = 2 and int(7.5) = 7
    values = np.arange(10.0)
    assert percentile_interval(values, 0.8) == (0.0, 9.0)
    assert percentile_interval(values, 0.9999) == (0.0, 9.0)  # int(9.9995) = 9: the index stays inside
    assert percentile_interval(values, 0.5) == (2.0, 7.0)
    assert percentile_interval(values[::-1], 0.5) == (2.0, 7.0)
    with pytest.raises(EvaluationInputError):
        percentile_interval(values, 1.5)


def test_results_give_intervals_per_predictor_at_their_level():
    result = BootstrapResult({"one": np.arange(10.0), "two": np.stack([np.arange(10.0), -np.arange(10.0)], 1)},
                             n_requested=12, n_used=10, n_single_class=2, confidence=0.5)
    assert result.interval("one") == (2.0, 7.0)
    assert result.interval("one", 0.8) == (0.0, 9.0)
    assert result.interval("two") == [(2.0, 7.0), (-7.0, -2.0)]
    assert result.summary() == {"requested": 12, "used": 10, "skipped_single_class": 2}
    assert BootstrapResult({}, 1, 1, 0).confidence == 0.95


def test_one_replicate_counted_by_hand():
    # 4 cases; the replicate draws case 0 twice, case 1 once, case 3 once (labels 0, 0, 1, 1 -> two of each)
    y = np.array([0, 1, 0, 1])
    s = np.array([0.2, 0.9, 0.5, 0.4])
    counts = np.array([[2, 1, 0, 1]])
    draws = np.repeat(np.arange(4), counts[0])
    expected = skm.roc_auc_score(y[draws], s[draws])  # 0.2, 0.2 (negatives) vs 0.9, 0.4: all pairs right -> 1.0
    assert expected == 1.0
    from unittest import mock

    with mock.patch("mammoscreen.evaluate.bootstrap.bootstrap_counts", return_value=iter([counts])):
        result = bootstrap_metrics(y, s, 1)
    assert result.replicates["auroc"].tolist() == [1.0] and result.n_used == 1


def test_single_class_replicates_are_skipped_and_counted():
    y = np.array([0, 0, 0, 1])
    s = np.array([0.1, 0.2, 0.3, 0.9])
    counts = np.array([[4, 0, 0, 0], [0, 0, 0, 4], [1, 1, 1, 1], [2, 0, 1, 1]])
    from unittest import mock

    with mock.patch("mammoscreen.evaluate.bootstrap.bootstrap_counts", return_value=iter([counts])):
        result = bootstrap_metrics(y, s, 4, metrics=("auroc",), specificities=(0.5,), sensitivities=(1,))
    assert (result.n_requested, result.n_used, result.n_single_class) == (4, 2, 2)
    assert set(result.replicates) == {"auroc", "sensitivity_at_specificity_0.5", "specificity_at_sensitivity_1"}
    assert result.replicates["auroc"].tolist() == [1.0, 1.0]
    assert result.replicates["sensitivity_at_specificity_0.5"].tolist() == [1.0, 1.0]


def test_several_problems_share_one_set_of_replicates():
    rng = np.random.default_rng(4)
    y1 = (rng.random(40) < 0.5).astype(int)
    y2 = 1 - y1
    s = rng.random((2, 40))
    together = run_bootstrap([BootstrapProblem(y1, s), BootstrapProblem(y2, s[:1], metrics=("auroc",))], 30, 7)
    alone = [run_bootstrap([BootstrapProblem(y1, s)], 30, 7)[0],
             run_bootstrap([BootstrapProblem(y2, s[:1], ("auroc",))], 30, 7)[0]]
    for got, expected in zip(together, alone):
        assert set(got.replicates) == set(expected.replicates) and got.n_used == expected.n_used
        for name in got.replicates:
            assert np.array_equal(got.replicates[name], expected.replicates[name], equal_nan=True)
    # swapping the labels of every case turns each replicate's AUROC into 1 - AUROC
    assert np.allclose(together[1].replicates["auroc"][:, 0], 1 - together[0].replicates["auroc"][:, 0])
    assert together[0].replicates["auroc"].shape == (together[0].n_used, 2)
    assert run_bootstrap([], 10) == []


def test_bad_problems_are_refused():
    with pytest.raises(EvaluationInputError, match=r"^all bootstrap problems must have the same cases$"):
        run_bootstrap([BootstrapProblem(Y, S[None]), BootstrapProblem(Y[:5], S[None, :5])], 5)
    with pytest.raises(EvaluationInputError, match=r"^unknown bootstrap metrics \['auc', 'f1'\]; choose from "
                                                   r"\('auroc', 'auprc_trapezoid', 'average_precision'\)$"):
        bootstrap_metrics(Y, S, 5, metrics=("f1", "auroc", "auc"))


def test_metric_names_are_checked_before_the_data_and_one_name_may_stand_alone():
    allowed = r"; choose from \('auroc', 'auprc_trapezoid', 'average_precision'\)$"
    # a name given alone is that metric, not its letters
    with pytest.raises(ValueError, match=r"^unknown bootstrap metrics \['nope'\]" + allowed):
        bootstrap_metrics(Y, S, 5, metrics="nope")
    with pytest.raises(EvaluationInputError, match=r"^unknown bootstrap metrics \[None\]" + allowed):
        bootstrap_metrics(Y, S, 5, metrics=None)
    with pytest.raises(EvaluationInputError, match=r"^unknown bootstrap metrics \[3, \['auroc'\]\]" + allowed):
        bootstrap_metrics(Y, S, 5, metrics=("auroc", ["auroc"], 3))
    with pytest.raises(EvaluationInputError, match=r"^unknown bootstrap metrics \['nope'\]" + allowed):
        bootstrap_metrics(Y, S[:4], 5, metrics=("nope",))  # labels and scores of different lengths too
    with pytest.raises(EvaluationInputError, match=r"^unknown bootstrap metrics \['auc'\]" + allowed):
        run_bootstrap([BootstrapProblem(Y, S[None], "auc")], 5)
    alone, as_tuple = bootstrap_metrics(Y, S, 30, 4, metrics="auprc_trapezoid"), bootstrap_metrics(
        Y, S, 30, 4, metrics=("auprc_trapezoid",))
    assert list(alone.replicates) == ["auprc_trapezoid"]
    assert np.array_equal(alone.replicates["auprc_trapezoid"], as_tuple.replicates["auprc_trapezoid"])


def test_an_interval_of_a_metric_the_result_lacks_names_the_ones_it_has():
    result = bootstrap_metrics(Y, S, 20, 1, metrics=("auroc",), specificities=(0.5,))
    with pytest.raises(ValueError, match=r"^no bootstrap replicates of 'average_precision'; this result has 'auroc', "
                                         r"'sensitivity_at_specificity_0.5'$"):
        result.interval("average_precision")
    with pytest.raises(EvaluationInputError, match=r"^no bootstrap replicates of 'auroc'; this result has none$"):
        BootstrapResult({}, 1, 0, 1).interval("auroc")


def test_operating_point_names():
    assert operating_metric_name("sensitivity_at_specificity", 0.9) == "sensitivity_at_specificity_0.9"
    assert operating_metric_name("specificity_at_sensitivity", 0.875) == "specificity_at_sensitivity_0.875"
    assert operating_metric_name("x", 1.0) == "x_1"


def test_a_single_score_vector_gives_one_dimensional_replicates():
    single = bootstrap_metrics(Y, S, 20, 1, confidence=0.9)
    stacked = bootstrap_metrics(Y, S[None], 20, 1)
    assert single.replicates["auroc"].shape == (single.n_used,)
    assert stacked.replicates["auroc"].shape == (single.n_used, 1)
    assert np.array_equal(single.replicates["auroc"], stacked.replicates["auroc"][:, 0])
    assert single.confidence == 0.9 and single.interval("auroc") == percentile_interval(single.replicates["auroc"], 0.9)


def test_percentile_interval_at_the_extreme_coverages_and_its_input():
    # confidence 1: a = 0, the indices 0 and int(n) = n, capped to the largest value
    assert percentile_interval([3.0, 1.0, 2.0], 1.0) == (1.0, 3.0)
    # confidence 0: a = 1/2, both ends at int(n / 2) - for two values the larger one
    assert percentile_interval([2.0, 1.0], 0.0) == (2.0, 2.0)
    assert percentile_interval([5.0, 1.0, 3.0], 0.0) == (3.0, 3.0)
    # values are converted to floats: None is a missing replicate like NaN, numbers may come as text or integers
    assert percentile_interval([0.3, None, 0.1, np.nan, 0.2], 1.0) == (0.1, 0.3)
    assert percentile_interval(["0.5", "0.25"], 1.0) == (0.25, 0.5)
    low, high = percentile_interval([7, 9], 1.0)
    assert (low, high) == (7.0, 9.0) and type(low) is float and type(high) is float
    with pytest.raises(EvaluationInputError, match=r"^confidence must lie between 0 and 1, got 1.5$"):
        percentile_interval([1.0, 2.0], 1.5)


def test_defaults_of_the_bootstrap_functions():
    """Seed 0 and 95 % coverage unless told otherwise, in every entry point."""
    problem = BootstrapProblem(Y, S[None])
    (default,) = run_bootstrap([problem], 15)
    (seeded,) = run_bootstrap([problem], 15, 0, None, 0.95)
    assert default.confidence == 0.95 and np.array_equal(default.replicates["auroc"], seeded.replicates["auroc"])
    assert not np.array_equal(seeded.replicates["auroc"], run_bootstrap([problem], 15, 1)[0].replicates["auroc"])
    assert np.array_equal(bootstrap_metrics(Y, S, 15).replicates["auroc"], seeded.replicates["auroc"][:, 0])
    assert bootstrap_metrics(Y, S, 15).confidence == 0.95


def test_bootstrap_metrics_resamples_the_groups_it_is_given():
    groups = np.array([0, 0, 1, 1, 2, 2, 3, 3, 4, 4])  # pairs of cases drawn together
    result = bootstrap_metrics(Y, S, 12, 2, metrics=("auroc",), groups=groups)
    expected = []
    for counts in bootstrap_counts(10, 12, 2, groups=groups):
        for row in counts:
            draws = np.repeat(np.arange(10), row)
            if 0 < Y[draws].mean() < 1:
                expected.append(skm.roc_auc_score(Y[draws], S[draws]))
    np.testing.assert_allclose(result.replicates["auroc"], expected, rtol=0, atol=1e-12)
    assert result.n_used == len(expected)


def test_one_replicate_is_enough():
    assert [b.shape for b in bootstrap_counts(4, 1, 0)] == [(1, 4)]
    assert bootstrap_metrics(Y, S, 1, 0).n_requested == 1


def test_replicates_from_several_blocks_are_stacked_and_counted():
    """Two blocks of two replicates, one skipped in each (a single class drawn): the used replicates are stacked
    row after row and the skipped ones counted over both blocks."""
    y = np.array([0, 0, 0, 1])
    s = np.array([0.1, 0.2, 0.3, 0.9])
    blocks = [np.array([[4, 0, 0, 0], [1, 1, 1, 1]]), np.array([[2, 0, 1, 1], [0, 0, 0, 4]])]
    from unittest import mock

    with mock.patch("mammoscreen.evaluate.bootstrap.bootstrap_counts", return_value=iter(blocks)):
        result = bootstrap_metrics(y, np.stack([s, s[::-1]]), 4, metrics=("auroc",), specificities=(0.5,))
    assert (result.n_requested, result.n_used, result.n_single_class) == (4, 2, 2)
    assert result.replicates["auroc"].tolist() == [[1.0, 0.0], [1.0, 0.0]]
    assert result.replicates["sensitivity_at_specificity_0.5"].shape == (2, 2)
