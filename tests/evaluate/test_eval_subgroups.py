"""Subgroup metrics and operating points against scikit-learn and a plainly written resampling loop."""

from __future__ import annotations

import math

import numpy as np
import pytest
from sklearn import metrics as skm

from mammoscreen.evaluate.delong import delong_test
from mammoscreen.evaluate.metrics import (
    operating_point_at_recall_rate,
    operating_point_at_sensitivity,
    operating_point_at_specificity,
)
from mammoscreen.evaluate.subgroups import (
    MISSING,
    analyse_subgroups,
    group_values,
    operating_points,
    parse_bins,
    parse_operating_point,
    subgroup_metrics,
)
from mammoscreen.evaluate.validation import EvaluationInputError


def dataset(n_exams=60, seed=0, ties=False):
    """Four images per exam, a density per breast, an age per exam; scores worse in dense breasts."""
    rng = np.random.default_rng(seed)
    exam = np.repeat(np.arange(n_exams), 4)
    side = np.tile(["L", "L", "R", "R"], n_exams)
    breast_label = (rng.random((n_exams, 2)) < 0.3).astype(int)
    y = breast_label[exam, (side == "R").astype(int)]
    density_of_breast = rng.choice(list("ABCD"), size=(n_exams, 2))
    density = density_of_breast[exam, (side == "R").astype(int)].astype(object)
    density[rng.random(exam.size) < 0.05] = None
    age = rng.integers(40, 80, n_exams)[exam]
    dense = np.isin(density, ["C", "D"])
    s = rng.normal(size=exam.size) + y * np.where(dense, 0.7, 1.8)
    if ties:
        s = np.round(s, 1)
    return y, s, density, age, exam


def sk_auprc(y, s):
    precision, recall, _ = skm.precision_recall_curve(y, s)
    return skm.auc(recall, precision)


# ----------------------------------------------------------------------------------------------
# point values
# ----------------------------------------------------------------------------------------------

@pytest.mark.parametrize("ties", [False, True])
def test_subgroup_values_equal_sklearn_on_each_subset(ties):
    y, s, density, age, exam = dataset(ties=ties)
    table = subgroup_metrics(y, s, density, key="density", clusters=exam, n_bootstrap=0,
                             operating_points=["threshold=0.5"])
    for group in ["A", "B", "C", "D", MISSING, "all"]:
        if group == "all":
            members = np.ones(y.size, bool)
        elif group == MISSING:
            members = np.array([d is None for d in density])
        else:
            members = density == group
        yy, ss = y[members], s[members]
        rows = table[table.group == group].set_index(["metric", "operating_point"])
        assert rows.loc[("auroc", ""), "value"] == pytest.approx(skm.roc_auc_score(yy, ss), abs=1e-12, rel=0)
        assert rows.loc[("auprc_trapezoid", ""), "value"] == pytest.approx(sk_auprc(yy, ss), abs=1e-12, rel=0)
        tn, fp, fn, tp = skm.confusion_matrix(yy, (ss >= 0.5).astype(int)).ravel()
        assert rows.loc[("sensitivity", "threshold=0.5"), "value"] == pytest.approx(tp / (tp + fn), abs=1e-12)
        assert rows.loc[("specificity", "threshold=0.5"), "value"] == pytest.approx(tn / (tn + fp), abs=1e-12)
        assert rows.loc[("auroc", ""), "n_cases"] == members.sum()
        assert rows.loc[("auroc", ""), "n_positive"] == yy.sum()
        assert rows.loc[("auroc", ""), "n_exams"] == np.unique(exam[members]).size


def test_operating_points_reuse_the_whole_set_threshold_in_every_subgroup():
    y, s, density, age, exam = dataset(seed=3)
    analysis = analyse_subgroups(y, s, {"density": density}, clusters=exam, n_bootstrap=0,
                                 operating_points=["specificity=0.9", "sensitivity=0.8", "recall_rate=0.2"])
    at_spec = operating_point_at_specificity(y, s, 0.9)
    at_sens = operating_point_at_sensitivity(y, s, 0.8)
    at_recall = operating_point_at_recall_rate(y, s, 0.2, groups=exam)
    for rule, point in (("specificity=0.9", at_spec), ("sensitivity=0.8", at_sens), ("recall_rate=0.2", at_recall)):
        whole = analysis.row("", "all", "sensitivity", operating_point=rule)
        assert whole.threshold == point.threshold
        assert whole.value == pytest.approx(point.sensitivity, abs=1e-12)
        assert analysis.row("", "all", "specificity", operating_point=rule).value == pytest.approx(
            point.specificity, abs=1e-12)
        for group in "ABCD":
            members = density == group
            called = s[members] >= point.threshold
            expected = called[y[members] == 1].mean()
            assert analysis.row("density", group, "sensitivity", operating_point=rule).value == pytest.approx(
                expected, abs=1e-12)
            assert analysis.row("density", group, "specificity", operating_point=rule).threshold == point.threshold
            # recall rate: the subgroup's exams with any of their subgroup cases called
            exams = np.unique(exam[members])
            recalled = [np.any(s[members & (exam == e)] >= point.threshold) for e in exams]
            assert analysis.row("density", group, "recall_rate", operating_point=rule).value == pytest.approx(
                np.mean(recalled), abs=1e-12)


def test_recall_rate_threshold_is_the_lowest_that_recalls_at_most_the_rate():
    y, s, _, _, exam = dataset(seed=5, ties=True)
    exam_max = np.array([s[exam == e].max() for e in np.unique(exam)])
    for rate in (0.0, 0.1, 0.25, 0.5, 1.0):
        point = operating_point_at_recall_rate(y, s, rate, groups=exam)
        recalled = np.mean(exam_max >= point.threshold)
        assert point.recall_rate == pytest.approx(recalled) and recalled <= rate + 1e-12
        lower = exam_max[exam_max < point.threshold]
        if lower.size:  # the next lower score would recall too many exams
            assert np.mean(exam_max >= lower.max()) > rate
    assert operating_point_at_recall_rate(y, s, 0.0, groups=exam).threshold == math.inf


# ----------------------------------------------------------------------------------------------
# bootstrap: the same numbers as a plainly written reference with the same seed
# ----------------------------------------------------------------------------------------------

def reference_replicates(y, s, groups, exam, n_replicates, seed, specificity):
    """Resample exams with numpy's RandomState(seed) as score.py draws, then use scikit-learn on every subset."""
    rng = np.random.RandomState(seed)
    units = np.unique(exam)
    cases_of = [np.flatnonzero(exam == u) for u in units]
    out = {}
    for _ in range(n_replicates):
        drawn = rng.randint(0, units.size, size=units.size)
        cases = np.concatenate([cases_of[u] for u in drawn])
        yy, ss, gg = y[cases], s[cases], groups[cases]
        fpr, tpr, thresholds = skm.roc_curve(yy, ss, drop_intermediate=False)
        threshold = thresholds[np.flatnonzero(1 - fpr >= specificity - 1e-12).max()]
        for label in ["all"] + sorted(set(g for g in groups if g is not None)):
            members = np.ones(cases.size, bool) if label == "all" else gg == label
            ym, sm = yy[members], ss[members]
            both = 0 < ym.sum() < ym.size
            out.setdefault((label, "auroc"), []).append(skm.roc_auc_score(ym, sm) if both else np.nan)
            out.setdefault((label, "auprc"), []).append(sk_auprc(ym, sm) if both else np.nan)
            positives = ym == 1
            out.setdefault((label, "sensitivity"), []).append(
                np.mean(sm[positives] >= threshold) if positives.any() else np.nan)
    return {k: np.array(v) for k, v in out.items()}


def order_statistic_interval(values, confidence=0.95):
    v = np.sort(values[~np.isnan(values)])
    a = (1 - confidence) / 2
    return v[min(int(a * v.size), v.size - 1)], v[min(int((1 - a) * v.size), v.size - 1)]


@pytest.mark.slow
def test_intervals_and_differences_equal_a_reference_resampling_with_the_same_seed():
    y, s, density, age, exam = dataset(n_exams=40, seed=11)
    density = np.array([d if d is not None else "A" for d in density], dtype=object)
    analysis = analyse_subgroups(y, s, {"density": density}, clusters=exam, n_bootstrap=120, random_state=17,
                                 operating_points=["specificity=0.9"])
    reference = reference_replicates(y, s, density, exam, 120, 17, 0.9)
    for label in ["all", "A", "B", "C", "D"]:
        key = "" if label == "all" else "density"
        for metric, name, op in (("auroc", "auroc", ""), ("auprc_trapezoid", "auprc", ""),
                                 ("sensitivity", "sensitivity", "specificity=0.9")):
            row = analysis.row(key, label, metric, operating_point=op)
            low, high = order_statistic_interval(reference[label, name])
            assert (row.ci_low, row.ci_high) == (pytest.approx(low, abs=1e-12), pytest.approx(high, abs=1e-12))
            assert row.replicates_used == np.sum(~np.isnan(reference[label, name]))
            if label != "all":
                d = reference[label, name] - reference["all", name]
                d = d[~np.isnan(d)]
                low, high = order_statistic_interval(d)
                assert row.difference_ci_low == pytest.approx(low, abs=1e-12)
                assert row.difference_ci_high == pytest.approx(high, abs=1e-12)
                expected_p = min(1.0, (2 * min(np.sum(d <= 0), np.sum(d >= 0)) + 1) / (d.size + 1))
                assert row.p_value == pytest.approx(expected_p, abs=1e-12)


def test_resampling_cases_instead_of_exams_draws_single_cases():
    y, s, density, _, exam = dataset(n_exams=30, seed=2)
    by_case = analyse_subgroups(y, s, None, clusters=None, n_bootstrap=200, random_state=1)
    by_exam = analyse_subgroups(y, s, None, clusters=exam, n_bootstrap=200, random_state=1)
    rng = np.random.RandomState(1)
    values = []
    for _ in range(200):
        cases = rng.randint(0, y.size, y.size)
        values.append(skm.roc_auc_score(y[cases], s[cases]))
    low, high = order_statistic_interval(np.array(values))
    row = by_case.row("", "all", "auroc")
    assert (row.ci_low, row.ci_high) == (pytest.approx(low, abs=1e-12), pytest.approx(high, abs=1e-12))
    assert by_case.resample == "case" and by_exam.resample == "exam"
    assert by_exam.row("", "all", "auroc").ci_low != row.ci_low


# ----------------------------------------------------------------------------------------------
# tests across subgroups and models
# ----------------------------------------------------------------------------------------------

@pytest.mark.slow  # about a second or more: CI runs it, the fast loop leaves it out
def test_heterogeneity_detects_a_real_difference_and_does_not_depend_on_the_order_of_groups():
    rng = np.random.default_rng(4)
    n = 600
    y = (rng.random(n) < 0.4).astype(int)
    group = rng.choice(["fatty", "dense"], n)
    s = rng.normal(size=n) + y * np.where(group == "dense", 0.3, 2.5)
    analysis = analyse_subgroups(y, s, {"density": group}, n_bootstrap=150)
    (test,) = [h for h in analysis.heterogeneity if h["metric"] == "auroc"]
    assert test["df"] == 1 and test["p_value"] < 1e-6
    # the same data with the labels of the groups swapped: the same statistic
    renamed = np.where(group == "dense", "a", "b")
    swapped = analyse_subgroups(y, s, {"density": renamed}, n_bootstrap=150)
    (again,) = [h for h in swapped.heterogeneity if h["metric"] == "auroc"]
    assert again["statistic"] == pytest.approx(test["statistic"], rel=1e-9)
    # with two groups the Wald statistic is the squared z of the difference over its bootstrap SD
    reps = {label: [] for label in ("dense", "fatty")}
    rng = np.random.RandomState(0)
    for _ in range(150):
        cases = rng.randint(0, n, n)
        for label in reps:
            members = cases[group[cases] == label]
            reps[label].append(skm.roc_auc_score(y[members], s[members]))
    d = np.array(reps["fatty"]) - np.array(reps["dense"])
    point = (skm.roc_auc_score(y[group == "fatty"], s[group == "fatty"])
             - skm.roc_auc_score(y[group == "dense"], s[group == "dense"]))
    assert test["statistic"] == pytest.approx(point ** 2 / np.var(d, ddof=1), rel=1e-9)


def test_no_heterogeneity_in_a_random_split():
    y, s, _, _, exam = dataset(n_exams=200, seed=8)
    halves = np.where(np.random.default_rng(1).random(y.size) < 0.5, "x", "y")
    analysis = analyse_subgroups(y, s, {"split": halves}, clusters=exam, n_bootstrap=300)
    (test,) = [h for h in analysis.heterogeneity if h["metric"] == "auroc"]
    assert test["p_value"] > 0.05


def test_paired_delong_within_each_subgroup_equals_the_delong_test_on_the_subset():
    y, s, density, _, exam = dataset(seed=6)
    other = s + np.random.default_rng(0).normal(0, 0.8, s.size)
    analysis = analyse_subgroups(y, {"a": s, "b": other}, {"density": density}, clusters=exam, n_bootstrap=50)
    for entry in analysis.paired:
        members = np.ones(y.size, bool) if entry["key"] == "" else (density == entry["group"])
        if entry["group"] == MISSING:
            members = np.array([d is None for d in density])
        expected = delong_test(y[members], s[members], other[members])
        assert entry["difference"] == pytest.approx(expected.difference, abs=1e-12)
        assert entry["p_value"] == pytest.approx(expected.p_value, abs=1e-12)
    assert {(e["model_a"], e["model_b"]) for e in analysis.paired} == {("a", "b")}
    # both models on the same replicates: rows for each
    assert {r.predictor for r in analysis.rows} == {"a", "b"}


def test_readers_mean_specificity_puts_each_model_there():
    rng = np.random.default_rng(12)
    n = 600
    y = (rng.random(n) < 0.2).astype(int)
    readers = {f"R{k}": np.clip(np.round(rng.normal(0.1 + 0.3 * y, 0.2), 2), 0, 1) for k in range(4)}
    model = rng.normal(size=n) + 1.5 * y
    analysis = analyse_subgroups(y, {"model": model}, None, readers=readers, reader_threshold=0.1,
                                 operating_points=["readers"], n_bootstrap=100)
    specs = [np.mean(r[y == 0] <= 0.1) for r in readers.values()]
    sens = [np.mean(r[y == 1] > 0.1) for r in readers.values()]
    mean = analysis.row("", "all", "specificity", "readers' mean (4)", "reader decision (score > 0.1)")
    assert mean.value == pytest.approx(np.mean(specs), abs=1e-12)
    assert analysis.row("", "all", "sensitivity", "R2", "reader decision (score > 0.1)").value == pytest.approx(
        sens[2], abs=1e-12)
    expected = operating_point_at_specificity(y, model, np.mean(specs))
    at = analysis.row("", "all", "sensitivity", "model", "readers' mean specificity")
    assert at.threshold == expected.threshold and at.value == pytest.approx(expected.sensitivity, abs=1e-12)
    (versus,) = analysis.versus_readers
    assert versus["difference"] == pytest.approx(expected.sensitivity - np.mean(sens), abs=1e-12)
    assert versus["ci_low"] < versus["difference"] < versus["ci_high"]


def test_reader_study_at_the_readers_mean_specificity(reader_study_file):
    import pandas as pd

    from mammoscreen.evaluate.subgroup_evaluation import reader_study_subgroups

    frame = pd.read_pickle(reader_study_file)
    result = reader_study_subgroups(reader_study_file, None, n_bootstrap=100)
    analysis = result.levels["breast"]
    y = frame["label"].to_numpy()
    readers = [c for c in frame.columns if c.startswith("Reader")]
    mean_spec = np.mean([np.mean(frame[c].to_numpy()[y == 0] <= 0) for c in readers])
    gmic = frame["AI_GMIC_top5_POM"].to_numpy()
    expected = operating_point_at_specificity(y, gmic, mean_spec)
    row = analysis.row("", "all", "sensitivity", "GMIC_top5", "readers' mean specificity")
    assert row.value == pytest.approx(expected.sensitivity, abs=1e-12)
    assert analysis.row("", "all", "auroc", "GMIC_top5").value == pytest.approx(0.881, abs=5e-4)  # README figure
    assert analysis.row("", "all", "auroc", "readers' mean (14)").value == pytest.approx(0.779, abs=5e-4)


# ----------------------------------------------------------------------------------------------
# small subgroups, bins, rules
# ----------------------------------------------------------------------------------------------

def test_a_subgroup_with_too_few_positives_gets_no_interval_and_a_warning():
    y, s, density, _, exam = dataset(seed=1)
    groups = np.array(["big"] * y.size, dtype=object)
    few = np.flatnonzero(y == 1)[:3]
    groups[few] = "tiny"
    groups[np.flatnonzero(y == 0)[:20]] = "tiny"
    analysis = analyse_subgroups(y, s, {"g": groups}, n_bootstrap=100)
    tiny = analysis.row("g", "tiny", "auroc")
    assert tiny.value is not None and tiny.ci_low is None and "too few positive" in tiny.warning
    assert analysis.row("g", "tiny", "specificity", operating_point="specificity=0.9").ci_low is not None
    assert any("g = tiny: only 3 positive" in w for w in analysis.warnings)
    assert analysis.row("g", "big", "auroc").ci_low is not None


def test_a_subgroup_without_positives_has_no_auroc():
    y, s, _, _, _ = dataset(seed=1)
    groups = np.where(y == 1, "cancer", np.where(np.arange(y.size) % 2, "x", "cancer")).astype(object)
    groups[np.flatnonzero(y == 0)[:5]] = "normal-only"
    analysis = analyse_subgroups(y, s, {"g": groups}, n_bootstrap=20)
    row = analysis.row("g", "normal-only", "auroc")
    assert row.value is None and row.ci_low is None
    assert analysis.row("g", "normal-only", "sensitivity", operating_point="specificity=0.9").value is None


def test_bins_are_left_closed_and_quantiles_split_evenly():
    values = [49, 50, 59.5, 60, 69, 70, 85, None]
    grouping = group_values(values, "age", "50,60,70")
    assert grouping.labels == ("<50", "[50, 60)", "[60, 70)", ">=70", MISSING)
    assert [grouping.labels[c] for c in grouping.codes] == ["<50", "[50, 60)", "[50, 60)", "[60, 70)", "[60, 70)",
                                                            ">=70", ">=70", MISSING]
    quartiles = group_values(list(range(100)), "x", "q4")
    assert quartiles.edges == (24.75, 49.5, 74.25)
    assert np.bincount(quartiles.codes).tolist() == [25, 25, 25, 25]
    assert group_values([1, 2, 1, 2], "birads").labels == ("1", "2")  # few numbers: categories
    assert group_values(list(range(20)), "bmi").note.startswith("more than 8 distinct values")
    assert group_values(["B", "A", None, True], "x").labels == ("A", "B", "True", MISSING)
    assert parse_bins("50,60") == parse_bins([50, 60]) == (50.0, 60.0) and parse_bins("Q3") == 3


@pytest.mark.parametrize("spec, message", [
    ("60,50", "must increase"), ("q1", "between q2 and q20"), ("fifty", "edges such as"), ("", "at least one"),
])
def test_bad_bins_are_refused(spec, message):
    with pytest.raises(EvaluationInputError, match=message):
        parse_bins(spec)


def test_text_values_cannot_be_binned_and_identifiers_are_not_subgroups():
    with pytest.raises(EvaluationInputError, match="not numbers"):
        group_values(["A", "B"], "density", "50,60")
    with pytest.raises(EvaluationInputError, match="too many subgroups"):
        group_values([f"patient {k}" for k in range(60)], "patient")


@pytest.mark.parametrize("text, kind, target", [
    ("spec=0.9", "specificity", 0.9), ("specificity=0.95", "specificity", 0.95), ("sens=0.8", "sensitivity", 0.8),
    ("recall=0.1", "recall_rate", 0.1), ("recall_rate=0.12", "recall_rate", 0.12),
    ("threshold=1.5", "threshold", 1.5), ("readers", "readers_specificity", None),
])
def test_operating_point_spellings(text, kind, target):
    rule = parse_operating_point(text)
    assert (rule.kind, rule.target) == (kind, target)


@pytest.mark.parametrize("text", ["spec=1.5", "spec", "auc=0.9", "threshold=inf", "recall=x"])
def test_bad_operating_points_are_refused(text):
    with pytest.raises(EvaluationInputError):
        parse_operating_point(text)


def test_operating_points_table_of_the_whole_set():
    y, s, _, _, exam = dataset(seed=9)
    table = operating_points(y, s, ["specificity=0.9", "recall_rate=0.2"], clusters=exam, n_bootstrap=100)
    assert set(table.operating_point) == {"specificity=0.9", "recall_rate=0.2"}
    assert set(table.metric) == {"sensitivity", "specificity", "recall_rate"}
    recall = table[(table.metric == "recall_rate") & (table.operating_point == "recall_rate=0.2")].iloc[0]
    assert recall.value <= 0.2 and recall.ci_low <= recall.value <= recall.ci_high


def test_the_readers_rule_needs_readers():
    y, s, _, _, _ = dataset()
    with pytest.raises(EvaluationInputError, match="needs readers"):
        analyse_subgroups(y, s, None, operating_points=["readers"], n_bootstrap=0)
