"""compare_scores and compare_models in detail: every interval against replicates recomputed case by case with
scikit-learn and the metric functions, the pairs against delong_test, the JSON fields, the alignment of files and
every refusal with its message."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn import metrics as skm

from mammoscreen import __version__
from mammoscreen.data.exams import VIEWS, Exam
from mammoscreen.evaluate import compare_models, compare_scores
from mammoscreen.evaluate.bootstrap import bootstrap_counts
from mammoscreen.evaluate.compare import _default_name, paired_bootstrap_difference
from mammoscreen.evaluate.delong import delong_test
from mammoscreen.evaluate.metrics import (
    auprc_trapezoid,
    calibration_curve,
    operating_point_at_sensitivity,
    operating_point_at_specificity,
)
from mammoscreen.evaluate.validation import EvaluationInputError


def order_statistics(values, confidence):
    """The percentile interval written out: sorted values at int(a n) and int((1 - a) n), a = (1 - confidence) / 2."""
    v = np.sort(np.asarray(values))
    a = (1 - confidence) / 2
    return v[int(a * v.size)], v[min(int((1 - a) * v.size), v.size - 1)]


def resampled(n, n_replicates, seed, groups=None):
    """Case indices of each replicate (the counts of bootstrap_counts, tested against RandomState elsewhere)."""
    for block in bootstrap_counts(n, n_replicates, seed, groups=groups):
        for row in block:
            yield np.repeat(np.arange(n), row)


def three_models(n=40, seed=11):
    rng = np.random.default_rng(seed)
    y = np.zeros(n, dtype=int)
    y[rng.permutation(n)[: n // 2]] = 1
    scores = {"A": 1 / (1 + np.exp(-(rng.normal(size=n) + 1.5 * y))), "B": rng.random(n) * 0.7 + 0.3 * y,
              "C": rng.random(n)}
    return y, scores


@pytest.fixture  # per test, not per module: mutmut runs a mutant only with the tests during which its function ran
def compared():
    y, scores = three_models()
    result = compare_scores(y, scores, n_bootstrap=30, seed=4, confidence=0.8, specificities=(0.75,),
                            sensitivities=(0.6, 0.85), calibration_bins=4, level="breasts")
    return y, scores, result


def test_point_estimates_and_operating_points(compared):
    y, scores, result = compared
    assert (result.level, result.n_cases, result.n_positive, result.n_bootstrap, result.seed, result.confidence) == (
        "breasts", 40, 20, 30, 4, 0.8)
    assert list(result.models) == ["A", "B", "C"] and result.notes == []
    np.testing.assert_array_equal(result.y_true, y)
    for name, s in scores.items():
        np.testing.assert_array_equal(result.scores[name], s)
        model = result.models[name]
        assert model.name == name
        assert model.metrics["auroc"].value == pytest.approx(skm.roc_auc_score(y, s), abs=1e-12)
        assert model.metrics["average_precision"].value == pytest.approx(skm.average_precision_score(y, s), abs=1e-12)
        assert model.metrics["auprc_trapezoid"].value == pytest.approx(auprc_trapezoid(y, s), abs=1e-12)
        (op,) = model.sensitivity_at_specificity.values()
        point = operating_point_at_specificity(y, s, 0.75)
        assert (op.target, op.value, op.reached, op.threshold) == (0.75, point.sensitivity, point.specificity,
                                                                   point.threshold)
        assert list(model.specificity_at_sensitivity) == [0.6, 0.85]
        for target, op in model.specificity_at_sensitivity.items():
            point = operating_point_at_sensitivity(y, s, target)
            assert (op.target, op.value, op.reached, op.threshold) == (target, point.specificity, point.sensitivity,
                                                                       point.threshold)
        assert model.brier_score == pytest.approx(skm.brier_score_loss(y, s), abs=1e-15)
        observed, predicted, count = calibration_curve(y, s, n_bins=4)
        assert model.calibration == {"mean_predicted": predicted.tolist(), "fraction_positive": observed.tolist(),
                                     "count": count.tolist()}


def test_every_interval_equals_replicates_recomputed_case_by_case(compared):
    y, scores, result = compared
    names = list(scores)
    replicates = {name: {"auroc": [], "ap": [], "trap": [], "sens": [], "spec60": [], "spec85": []} for name in names}
    used = 0
    for idx in resampled(40, 30, 4):
        yy = y[idx]
        if yy.min() == yy.max():
            continue
        used += 1
        for name in names:
            s = scores[name][idx]
            r = replicates[name]
            r["auroc"].append(skm.roc_auc_score(yy, s))
            r["ap"].append(skm.average_precision_score(yy, s))
            r["trap"].append(auprc_trapezoid(yy, s))
            r["sens"].append(operating_point_at_specificity(yy, s, 0.75).sensitivity)
            r["spec60"].append(operating_point_at_sensitivity(yy, s, 0.6).specificity)
            r["spec85"].append(operating_point_at_sensitivity(yy, s, 0.85).specificity)
    assert result.bootstrap == {"requested": 30, "used": used, "skipped_single_class": 30 - used}
    for name in names:
        model, r = result.models[name], replicates[name]
        for metric, key in (("auroc", "auroc"), ("average_precision", "ap"), ("auprc_trapezoid", "trap")):
            estimate = model.metrics[metric]
            assert (estimate.ci_low, estimate.ci_high) == pytest.approx(order_statistics(r[key], 0.8), abs=1e-12)
        op = model.sensitivity_at_specificity[0.75]
        assert (op.ci_low, op.ci_high) == pytest.approx(order_statistics(r["sens"], 0.8), abs=1e-12)
        for target, key in ((0.6, "spec60"), (0.85, "spec85")):
            op = model.specificity_at_sensitivity[target]
            assert (op.ci_low, op.ci_high) == pytest.approx(order_statistics(r[key], 0.8), abs=1e-12)
    assert [(p.model_a, p.model_b) for p in result.pairs] == [("A", "B"), ("A", "C"), ("B", "C")]
    for pair in result.pairs:
        a, b = scores[pair.model_a], scores[pair.model_b]
        assert pair.delong == delong_test(y, a, b, confidence=0.8)
        assert pair.bootstrap_difference.value == pytest.approx(skm.roc_auc_score(y, a) - skm.roc_auc_score(y, b),
                                                                abs=1e-12)
        diff = np.subtract(replicates[pair.model_a]["auroc"], replicates[pair.model_b]["auroc"])
        assert (pair.bootstrap_difference.ci_low, pair.bootstrap_difference.ci_high) == pytest.approx(
            order_statistics(diff, 0.8), abs=1e-12)


def test_the_json_fields(compared):
    _, _, result = compared
    result.sources = {"A": "a.csv"}
    out = result.to_dict()
    assert list(out) == ["tool", "version", "level", "n_cases", "n_positive", "n_negative", "sources", "bootstrap",
                         "models", "pairs", "notes"]
    assert (out["tool"], out["version"], out["level"], out["n_cases"], out["n_positive"], out["n_negative"]) == (
        "mammoscreen compare", __version__, "breasts", 40, 20, 20)
    assert out["sources"] == {"A": "a.csv"} and out["notes"] == []
    assert out["bootstrap"] == {"replicates": 30, "seed": 4, "confidence": 0.8, "replicates_used": result.bootstrap,
                                "paired": True}
    model = result.models["B"]
    assert out["models"]["B"] == {
        "metrics": {k: {"value": v.value, "ci_low": v.ci_low, "ci_high": v.ci_high} for k, v in model.metrics.items()},
        "sensitivity_at_specificity": {"0.75": model.sensitivity_at_specificity[0.75].to_dict()},
        "specificity_at_sensitivity": {"0.6": model.specificity_at_sensitivity[0.6].to_dict(),
                                       "0.85": model.specificity_at_sensitivity[0.85].to_dict()},
        "brier_score": model.brier_score, "calibration": model.calibration}
    op = model.specificity_at_sensitivity[0.85]
    assert op.to_dict() == {"target": 0.85, "value": op.value, "ci_low": op.ci_low, "ci_high": op.ci_high,
                            "achieved": op.reached, "threshold": op.threshold}
    pair = result.pairs[2]
    assert out["pairs"][2] == {"model_a": "B", "model_b": "C", "auroc_difference": pair.delong.difference,
                               "delong": pair.delong.to_dict(),
                               "bootstrap_ci": [pair.bootstrap_difference.ci_low, pair.bootstrap_difference.ci_high]}


def test_a_random_state_continues_its_stream_and_is_not_reported_as_a_seed():
    y, scores = three_models(20, seed=2)
    by_seed = compare_scores(y, scores, n_bootstrap=20, seed=9)
    by_state = compare_scores(y, scores, n_bootstrap=20, seed=np.random.RandomState(9))
    assert by_seed.seed == 9 and by_state.seed is None
    assert by_state.models["A"].metrics["auroc"] == by_seed.models["A"].metrics["auroc"]
    assert by_state.pairs[0].bootstrap_difference == by_seed.pairs[0].bootstrap_difference
    default = compare_scores(y, scores, n_bootstrap=20)
    assert default.seed == 0 and default.confidence == 0.95 and default.level == "cases"
    assert list(default.models["A"].sensitivity_at_specificity) == [0.9, 0.95]
    assert list(default.models["A"].specificity_at_sensitivity) == [0.8, 0.9]
    counts = default.models["C"].calibration["count"]  # ten bins by default
    assert counts == calibration_curve(y, scores["C"], n_bins=10)[2].tolist()
    assert counts != calibration_curve(y, scores["C"], n_bins=9)[2].tolist()
    seeded = compare_scores(y, scores, n_bootstrap=20, seed=0)
    assert default.models["A"].metrics["auroc"] == seeded.models["A"].metrics["auroc"]
    assert compare_scores(y, scores).n_bootstrap == 2000


def test_groups_resample_whole_clusters():
    y, scores = three_models(24, seed=5)
    groups = np.arange(24) // 2  # pairs of cases (the two breasts of an exam)
    result = compare_scores(y, {"A": scores["A"], "C": scores["C"]}, n_bootstrap=25, seed=1, groups=groups)
    values = [skm.roc_auc_score(y[i], scores["A"][i]) for i in resampled(24, 25, 1, groups) if 0 < y[i].mean() < 1]
    auroc = result.models["A"].metrics["auroc"]
    assert (auroc.ci_low, auroc.ci_high) == pytest.approx(order_statistics(values, 0.95), abs=1e-12)


def test_small_sets_and_no_bootstrap():
    y = np.array([0, 1, 0, 1, 0, 1, 0])
    s = np.array([0.1, 0.7, 0.4, 0.6, 0.2, 0.9, 0.65])
    seven = compare_scores(y, {"m": s}, n_bootstrap=50)
    assert seven.notes == ["no bootstrap: fewer than 8 cases"] and seven.bootstrap is None
    assert seven.models["m"].metrics["auroc"].ci_low is None and seven.pairs == []
    eight = compare_scores(np.append(y, 1), {"m": np.append(s, 0.5)}, n_bootstrap=50)
    assert eight.notes == [] and eight.bootstrap["requested"] == 50
    assert eight.models["m"].metrics["auroc"].ci_low is not None
    none = compare_scores(y, {"m": s}, n_bootstrap=0)
    assert none.notes == [] and none.bootstrap is None and none.n_bootstrap == 0
    assert none.models["m"].sensitivity_at_specificity[0.9].ci_low is None


def test_no_usable_replicate_leaves_the_intervals_empty():
    """One positive among eight cases: a replicate misses it with probability (7/8)^8; seed 4's only replicate does."""
    y = np.array([0, 0, 0, 1, 0, 0, 0, 0])
    s = np.linspace(0, 1, 8)
    assert 3 not in next(resampled(8, 1, 4))
    result = compare_scores(y, {"a": s, "b": s[::-1]}, n_bootstrap=1, seed=4)
    assert result.bootstrap == {"requested": 1, "used": 0, "skipped_single_class": 1}
    assert result.models["a"].metrics["auroc"].ci_low is None
    assert result.models["a"].sensitivity_at_specificity[0.9].ci_high is None
    assert result.pairs[0].bootstrap_difference.ci_low is None


def test_probabilities_include_both_ends_and_other_scores_get_a_note():
    y = np.array([0, 1, 0, 1, 1, 0, 0, 1, 0, 1])
    ends = np.array([0.0, 1.0, 0.2, 0.9, 0.6, 0.1, 0.3, 1.0, 0.0, 0.7])
    result = compare_scores(y, {"p": ends, "low": ends - 0.01, "high": ends + 0.01}, n_bootstrap=0)
    assert result.models["p"].brier_score == pytest.approx(skm.brier_score_loss(y, ends), abs=1e-15)
    assert result.models["low"].calibration is None and result.models["low"].brier_score is None
    assert result.models["high"].calibration is None
    assert result.notes == [
        "model 'low': scores outside [0, 1] are not probabilities; no calibration or Brier score",
        "model 'high': scores outside [0, 1] are not probabilities; no calibration or Brier score"]


@pytest.mark.parametrize("kwargs, message", [
    ({"confidence": 1.2}, "^confidence must lie between 0 and 1, got 1.2$"),
    ({"specificities": (0.9, 1.5)}, "^specificity must lie between 0 and 1, got 1.5$"),
    ({"sensitivities": (-0.1,)}, "^sensitivity must lie between 0 and 1, got -0.1$"),
])
def test_compare_scores_refuses_bad_arguments(kwargs, message):
    y, scores = three_models(10)
    with pytest.raises(EvaluationInputError, match=message):
        compare_scores(y, scores, n_bootstrap=0, **kwargs)
    with pytest.raises(EvaluationInputError, match="^compare needs at least one model$"):
        compare_scores(y, {})


def test_paired_bootstrap_difference_of_another_metric_with_groups():
    y, scores = three_models(20, seed=8)
    a, b = scores["A"], scores["B"]
    groups = np.arange(20) % 7
    estimate = paired_bootstrap_difference(y, a, b, 25, random_state=3, metric="average_precision", confidence=0.7,
                                           groups=groups)
    diffs = [skm.average_precision_score(y[i], a[i]) - skm.average_precision_score(y[i], b[i])
             for i in resampled(20, 25, 3, groups) if 0 < y[i].mean() < 1]
    assert estimate.value == pytest.approx(skm.average_precision_score(y, a) - skm.average_precision_score(y, b),
                                           abs=1e-12)
    assert (estimate.ci_low, estimate.ci_high) == pytest.approx(order_statistics(diffs, 0.7), abs=1e-12)
    default = paired_bootstrap_difference(y, a, b, 25)
    diffs = [skm.roc_auc_score(y[i], a[i]) - skm.roc_auc_score(y[i], b[i]) for i in resampled(20, 25, 0)
             if 0 < y[i].mean() < 1]
    assert (default.ci_low, default.ci_high) == pytest.approx(order_statistics(diffs, 0.95), abs=1e-12)


def test_paired_bootstrap_difference_refuses_an_unknown_metric_before_any_work():
    y, scores = three_models(20, seed=8)
    a, b = scores["A"], scores["B"]
    allowed = r"; choose from \('auroc', 'auprc_trapezoid', 'average_precision'\)$"
    for bad in ("nope", "AUROC", "auc", None, ["auroc"]):
        with pytest.raises(ValueError, match=r"^unknown metric " + repr(bad).replace("[", r"\[").replace("]", r"\]")
                           + allowed) as refused:
            paired_bootstrap_difference(y, a, b, 25, metric=bad)
        assert isinstance(refused.value, EvaluationInputError)
    # the metric is checked first: with scores of the wrong length as well, the metric is what is reported
    with pytest.raises(EvaluationInputError, match=r"^unknown metric 'nope'" + allowed):
        paired_bootstrap_difference(y, a[:5], b, 25, metric="nope")
    # and every allowed name still works: the trapezoidal AUPRC against its own function
    estimate = paired_bootstrap_difference(y, a, b, 25, metric="auprc_trapezoid")
    assert estimate.value == pytest.approx(auprc_trapezoid(y, a) - auprc_trapezoid(y, b), abs=1e-12)
    assert estimate.ci_low <= estimate.value <= estimate.ci_high


# ---------------------------------------------------------------------------------------------
# compare_models: files, names, alignment
# ---------------------------------------------------------------------------------------------

def _write(path, names, labels, preds, extra=None):
    frame = pd.DataFrame({"image_index": names, "malignant_pred": preds, "malignant_label": labels})
    for column, values in (extra or {}).items():
        frame[column] = values
    frame.to_csv(path, index=False)
    return path


NAMES = [f"img{i}" for i in range(10)]
LABELS = [0, 1, 0, 1, 1, 0, 0, 1, 0, 0]
PRED_A = [0.1, 0.8, 0.3, 0.35, 0.9, 0.2, 0.6, 0.7, 0.05, 0.4]
PRED_B = [0.5, 0.6, 0.4, 0.9, 0.3, 0.1, 0.2, 0.8, 0.7, 0.0]


def test_files_are_aligned_by_case_and_named_after_them(tmp_path):
    a = _write(tmp_path / "alpha.csv", NAMES, LABELS, PRED_A)
    order = [3, 0, 9, 5, 1, 8, 2, 7, 4, 6]
    b = _write(tmp_path / "beta.csv", [NAMES[i] for i in order], [LABELS[i] for i in order],
               [PRED_B[i] for i in order], extra={"benign_pred": 0.5})
    result = compare_models([a, b], n_bootstrap=0)
    assert result.level == "image" and list(result.models) == ["alpha", "beta"]
    np.testing.assert_array_equal(result.scores["beta"], PRED_B)
    np.testing.assert_array_equal(result.y_true, LABELS)
    assert result.models["beta"].metrics["auroc"].value == pytest.approx(skm.roc_auc_score(LABELS, PRED_B), abs=1e-12)
    assert result.sources == {"alpha": str(a), "beta": str(b)}
    assert result.notes == [f"{b}: has 'benign_pred' but not 'benign_label'; benign metrics skipped"]
    named = compare_models([a, b], ["x", "y"], n_bootstrap=20, seed=3, confidence=0.9, specificities=(0.5,),
                           sensitivities=(0.5,), calibration_bins=3)
    direct = compare_scores(LABELS, {"x": PRED_A, "y": PRED_B}, n_bootstrap=20, seed=3, confidence=0.9,
                            specificities=(0.5,), sensitivities=(0.5,), calibration_bins=3, level="image")
    assert named.to_dict()["models"] == direct.to_dict()["models"] and named.pairs == direct.pairs
    assert (named.n_bootstrap, named.seed, named.confidence) == (20, 3, 0.9)
    same = tmp_path / "again"
    same.mkdir()
    twin = _write(same / "alpha.csv", NAMES, LABELS, PRED_B)
    assert list(compare_models([a, twin], n_bootstrap=0).models) == ["alpha (1)", "alpha (2)"]
    assert _default_name(tmp_path, 0) == tmp_path.name and _default_name("", 2) == "model 3"
    assert _default_name(None, 1) == "model 2"


def test_breast_level_from_an_exam_list(tmp_path):
    exams = [Exam(images={v: [f"{i}_{v}"] for v in VIEWS}, cancer_label={"left_malignant": i % 2,
                                                                        "right_malignant": int(i == 2)})
             for i in range(4)]
    names = [f"{i}_{v}" for i in range(4) for v in VIEWS]
    labels = [exams[i].cancer_label["left_malignant" if v[0] == "L" else "right_malignant"]
              for i in range(4) for v in VIEWS]
    rng = np.random.default_rng(0)
    a = _write(tmp_path / "a.csv", names, labels, rng.random(16))
    b = _write(tmp_path / "b.csv", names, labels, rng.random(16))
    breast = compare_models([a, b], exam_list=exams, n_bootstrap=0)
    image = compare_models([a, b], exam_list=exams, level="image", n_bootstrap=0)
    assert (breast.level, breast.n_cases, breast.n_positive) == ("breast", 8, 3)
    assert (image.level, image.n_cases) == ("image", 16)
    frame = pd.read_csv(a)
    left = [frame.malignant_pred[4 * i: 4 * i + 4][[v[0] == "L" for v in VIEWS]].mean() for i in range(4)]
    np.testing.assert_allclose(breast.scores["a"][:4], left, rtol=0, atol=1e-15)


@pytest.mark.parametrize("edit, message", [
    (lambda names, labels: (names[:-1], labels[:-1]),
     r"^b and a do not cover the same cases at this level \(1 of a's cases missing from b, e.g. \['img9'\]; 0 extra\)"
     r"; models can only be compared on the same cases$"),
    (lambda names, labels: (names + ["img10"], labels + [0]),
     r"^b and a do not cover the same cases at this level \(0 of a's cases missing from b, e.g. \[\]; 1 extra\)"),
    (lambda names, labels: (names[:-1] + ["other"], labels),
     r"\(1 of a's cases missing from b, e.g. \['img9'\]; 1 extra\)"),
    (lambda names, labels: (names, [1 - labels[0], labels[1], 1 - labels[2]] + labels[3:]),
     r"^b and a have different labels for 2 case\(s\), e.g. \['img0', 'img2'\]; were they evaluated on the same exam "
     r"list\?$"),
])
def test_files_over_other_cases_or_labels_are_refused(tmp_path, edit, message):
    a = _write(tmp_path / "a.csv", NAMES, LABELS, PRED_A)
    names, labels = edit(list(NAMES), list(LABELS))
    b = _write(tmp_path / "b.csv", names[::-1], labels[::-1], np.linspace(0, 1, len(names)))
    with pytest.raises(EvaluationInputError, match=message):
        compare_models([a, b], n_bootstrap=0)


def test_compare_models_refuses_bad_names_and_levels(tmp_path):
    a = _write(tmp_path / "a.csv", NAMES, LABELS, PRED_A)
    b = _write(tmp_path / "b.csv", NAMES, LABELS, PRED_B)
    with pytest.raises(EvaluationInputError, match="^compare needs at least one prediction file$"):
        compare_models([])
    with pytest.raises(EvaluationInputError, match="^got 3 names for 2 prediction files; give one name per file$"):
        compare_models([a, b], ["x", "y", "z"])
    with pytest.raises(EvaluationInputError, match=r"^model names must be unique, got \['x', 'x'\]$"):
        compare_models([a, b], ["x", "x"])
    with pytest.raises(EvaluationInputError, match="^level must be 'image' or 'breast', got 'exam'$"):
        compare_models([a, b], level="exam")
    one = compare_models([a], n_bootstrap=0)
    assert list(one.models) == ["a"] and one.pairs == []


def test_each_bad_score_vector_is_named():
    y = [0, 1, 0, 1]
    with pytest.raises(EvaluationInputError, match=r"^scores\['b'\] has 3 values but there are 4 labels; they must "
                                                   r"match one to one$"):
        compare_scores(y, {"a": [1, 2, 3, 4], "b": [1, 2, 3]}, n_bootstrap=0)
    with pytest.raises(EvaluationInputError, match=r"^scores\['a'\] must be numbers$"):
        compare_scores(y, {"a": ["x", 2, 3, 4]}, n_bootstrap=0)
    with pytest.raises(EvaluationInputError, match=r"^score_b contains NaN at positions 1;"):
        paired_bootstrap_difference(y, [1, 2, 3, 4], [1, np.nan, 3, 4], 5)
    with pytest.raises(EvaluationInputError, match=r"^score_a has 5 values but there are 4 labels"):
        paired_bootstrap_difference(y, [1, 2, 3, 4, 5], [1, 2, 3, 4], 5)
    with pytest.raises(EvaluationInputError, match=r"^score_b has 3 values but there are 4 labels"):
        paired_bootstrap_difference(y, [1, 2, 3, 4], [1, 2, 3], 5)
    # numbers given as text or integers are the same scores
    as_text = compare_scores(y, {"a": ["0.5", "0.25", "0.1", "0.75"]}, n_bootstrap=0)
    assert as_text.scores["a"].tolist() == [0.5, 0.25, 0.1, 0.75]
    assert paired_bootstrap_difference(y, [1, 3, 2, 4], ["1", "3", "2", "4"], 10) == paired_bootstrap_difference(
        y, [1.0, 3.0, 2.0, 4.0], [1.0, 3.0, 2.0, 4.0], 10)


def test_messages_show_the_first_three_cases(tmp_path):
    a = _write(tmp_path / "a.csv", NAMES, LABELS, PRED_A)
    b = _write(tmp_path / "b.csv", NAMES[:5], LABELS[:5], PRED_B[:5])
    with pytest.raises(EvaluationInputError, match=r"\(5 of a's cases missing from b, e.g. \['img5', 'img6', 'img7'\]; "
                                                   r"0 extra\)"):
        compare_models([a, b], n_bootstrap=0)
    flipped = [1 - v for v in LABELS[:4]] + LABELS[4:]
    c = _write(tmp_path / "c.csv", NAMES, flipped, PRED_B)
    with pytest.raises(EvaluationInputError, match=r"^c and a have different labels for 4 case\(s\), e.g. \['img0', "
                                                   r"'img1', 'img2'\];"):
        compare_models([a, c], n_bootstrap=0)


def test_compare_models_defaults_and_tables_without_file_names(tmp_path):
    a = _write(tmp_path / "a.csv", NAMES, LABELS, PRED_A)
    b = _write(tmp_path / "b.csv", NAMES, LABELS, PRED_B)
    result = compare_models([a, b], n_bootstrap=10)
    direct = compare_scores(LABELS, {"a": PRED_A, "b": PRED_B}, n_bootstrap=10, seed=0, calibration_bins=10)
    assert result.seed == 0 and result.to_dict()["models"] == direct.to_dict()["models"]
    frames = [pd.read_csv(a), pd.read_csv(b)]
    tables = compare_models(frames, n_bootstrap=0)  # DataFrames have no file name: numbered
    assert list(tables.models) == ["model 1", "model 2"]


def test_a_breast_level_file_needs_the_exam_list(tmp_path):
    frame = pd.DataFrame({"left_malignant": [0.2, 0.7], "right_malignant": [0.1, 0.9]})
    frame.to_csv(tmp_path / "breasts.csv", index=False)
    with pytest.raises(EvaluationInputError, match=r"breasts.csv: breast-level metrics need the exam list "
                                                   r"\(--exam-list\) for the labels$"):
        compare_models([tmp_path / "breasts.csv"], n_bootstrap=0)


def test_exam_list_problems_name_the_exam_list(tmp_path):
    from mammoscreen.data.exams import save_exam_list

    exams = [Exam(images={v: [f"{i}_{v}"] for v in VIEWS}, cancer_label={"left_malignant": i % 2,
                                                                        "right_malignant": 1 - i % 2})
             for i in range(3)]
    path = save_exam_list(exams, tmp_path / "exams.pkl")
    names = [f"{i}_{v}" for i in range(4) for v in VIEWS]  # exam 3 is not in the list
    a = _write(tmp_path / "a.csv", names, [i % 2 for i in range(16)], np.linspace(0, 1, 16))
    with pytest.raises(EvaluationInputError, match=rf"4 image\(s\) are not in the exam list {path}, e.g."):
        compare_models([a], exam_list=path, level="image", n_bootstrap=0)
    with pytest.raises(EvaluationInputError, match=r"4 image\(s\) are not in the exam list, e.g."):
        compare_models([a], exam_list=exams, level="image", n_bootstrap=0)
    unlabelled = [Exam(images=exams[0].images, cancer_label=None)] + exams[1:]
    path = save_exam_list(unlabelled, tmp_path / "unlabelled.pkl")
    b = _write(tmp_path / "b.csv", names[:12], [i % 2 for i in range(12)], np.linspace(0, 1, 12))
    with pytest.raises(EvaluationInputError, match=rf"^{path}: exam 0 has no 'left_malignant' in 'cancer_label'"):
        compare_models([b], exam_list=path, n_bootstrap=0)
    with pytest.raises(EvaluationInputError, match=r"^exam list: exam 0 has no 'left_malignant' in 'cancer_label'"):
        compare_models([b], exam_list=unlabelled, n_bootstrap=0)
