"""MRMC: the Van Dyke OR-DBM MRMC 2.51 reference output, jackknife/DeLong by brute force, parsers, AI vs readers."""

from __future__ import annotations

import json
import math
import warnings

import numpy as np
import pandas as pd
import pytest
from scipy import stats
from sklearn import metrics as skm

from mammoscreen.cli import main
from mammoscreen.evaluate import delong_covariance
from mammoscreen.evaluate.delong import delong_test
from mammoscreen.evaluate.mrmc import (
    ai_versus_readers,
    analyse_mrmc_file,
    auc_covariance,
    mrmc_data_from_frame,
    obuchowski_rockette,
    read_imrmc,
    read_mrmc_csv,
)
from mammoscreen.evaluate.mrmc.covariance import or_components
from mammoscreen.evaluate.mrmc.data import MRMCData
from mammoscreen.evaluate.mrmc.or_hillis import _ratio, _t_interval, _t_p_value, hillis_single_rrrc, tie_notes
from mammoscreen.evaluate.validation import EvaluationInputError


def assert_printed(value, printed: str):
    """``value`` shown to the precision of ``printed`` (e.g. '0.0517', '-2.11') equals it."""
    decimals = len(printed.split(".")[1]) if "." in printed else 0
    assert abs(value - float(printed)) <= 0.5 * 10 ** -decimals + 1e-12, (value, printed)


# Function-scoped on purpose (the analysis takes milliseconds): mutation testing (tools/mutation.sh) runs for each
# mutant only the tests during which the mutated function ran, and a module-scoped fixture runs in the first test only.
@pytest.fixture
def van_dyke(van_dyke_file):
    return read_imrmc(van_dyke_file)


@pytest.fixture
def figures(van_dyke):
    return obuchowski_rockette(van_dyke).to_dict()


# ---------------------------------------------------------------------------------------------
# ../shared/mrmc/README.md, every figure (treatment 1, 2 = modalities '0', '1'; readers 1-5 = '0'-'4')
# ---------------------------------------------------------------------------------------------

def test_van_dyke_reader_aucs_and_anova(van_dyke, figures):
    assert van_dyke.modalities == ["0", "1"] and van_dyke.readers == ["0", "1", "2", "3", "4"]
    assert (van_dyke.n_normal, van_dyke.n_abnormal) == (69, 45)
    table = [("0.91964573", "0.94782609"), ("0.85877617", "0.90531401"), ("0.90386473", "0.92173913"),
             ("0.97310789", "0.99935588"), ("0.82979066", "0.92995169")]
    for reader, (t1, t2) in enumerate(table):
        assert_printed(figures["auc"]["0"][str(reader)], t1)
        assert_printed(figures["auc"]["1"][str(reader)], t2)
    assert_printed(figures["modality_means"]["0"], "0.89703704")
    assert_printed(figures["modality_means"]["1"], "0.94083736")
    assert_printed(figures["modality_means"]["0"] - figures["modality_means"]["1"], "-0.04380032")
    anova = figures["anova"]
    assert_printed(anova["MS(T)"], "0.00479617")
    assert_printed(anova["MS(R)"], "0.00383620")
    assert_printed(anova["MS(T*R)"], "0.00055103")
    assert (anova["df(T)"], anova["df(R)"], anova["df(T*R)"]) == (1, 4, 4)
    assert_printed(anova["MS(R) per modality"]["0"], "0.00308263")
    assert_printed(anova["MS(R) per modality"]["1"], "0.00130460")


def test_van_dyke_variance_components(figures):
    for key, printed in {"Var(R)": "0.00153500", "Var(T*R)": "0.00020040", "Cov1": "0.00034661",
                         "Cov2": "0.00034407", "Cov3": "0.00023903", "Var(Error)": "0.00080229"}.items():
        assert_printed(figures["or_variance_components"][key], printed)
    for key, printed in {"Var(R)": "0.00153500", "Var(C)": "0.02724923", "Var(T*R)": "0.00020040",
                         "Var(T*C)": "0.01197530", "Var(R*C)": "0.01226473",
                         "Var(T*R*C)+Var(Error)": "0.03997160"}.items():
        assert_printed(figures["dbm_variance_components"][key], printed)


def test_van_dyke_random_readers_random_cases(figures):
    rrrc = figures["rrrc"]
    assert_printed(rrrc["F"], "4.46")
    assert rrrc["df_numerator"] == 1
    assert_printed(rrrc["df_denominator"], "15.26")
    assert_printed(rrrc["p_value"], "0.0517")
    assert_printed(rrrc["error_term"], "0.00107626")
    (diff,) = rrrc["differences"]
    assert diff["modalities"] == ["0", "1"]
    for key, printed in {"difference": "-0.04380", "standard_error": "0.02075", "df": "15.26", "t": "-2.11",
                         "p_value": "0.0517", "ci_low": "-0.08796", "ci_high": "0.00036"}.items():
        assert_printed(diff[key], printed)
    expected = {"0": ("0.89703704", "0.03317360", "12.74", "0.82522360", "0.96885048", "0.00048396"),
                "1": ("0.94083736", "0.02156637", "12.71", "0.89413783", "0.98753689", "0.00020419")}
    for modality, values in expected.items():
        single = rrrc["single_modality"][modality]
        for key, printed in zip(("auc", "standard_error", "df", "ci_low", "ci_high", "Cov2"), values):
            assert_printed(single[key], printed)


def test_van_dyke_fixed_readers_random_cases(figures):
    frrc = figures["frrc"]
    assert_printed(frrc["chi2"], "5.47595")
    assert frrc["df"] == 1
    assert_printed(frrc["p_value"], "0.0193")
    (diff,) = frrc["differences"]
    for key, printed in {"difference": "-0.04380", "standard_error": "0.01872", "z": "-2.34", "p_value": "0.0193",
                         "ci_low": "-0.08049", "ci_high": "-0.00711"}.items():
        assert_printed(diff[key], printed)
    expected = {"0": ("0.02428971", "0.84943008", "0.94464399", "0.00101410"),
                "1": ("0.01677632", "0.90795637", "0.97371835", "0.00059047")}
    for modality, values in expected.items():
        single = frrc["single_modality"][modality]
        for key, printed in zip(("standard_error", "ci_low", "ci_high", "Var(Error)"), values):
            assert_printed(single[key], printed)
    per_reader = [("-0.02818", "0.02551", "0.2693"), ("-0.04654", "0.02630", "0.0768"),
                  ("-0.01787", "0.03121", "0.5668"), ("-0.02625", "0.01729", "0.1290"),
                  ("-0.10016", "0.04406", "0.0230")]
    components = [("0.00069890", "0.00037347"), ("0.00110605", "0.00076016"), ("0.00084234", "0.00035532"),
                  ("0.00015058", "0.00000108"), ("0.00121357", "0.00024304")]
    for row, (d, se, p), (var, cov1) in zip(frrc["per_reader"], per_reader, components):
        assert_printed(row["difference"], d)
        assert_printed(row["standard_error"], se)
        assert_printed(row["p_value"], p)
        assert_printed(figures["per_reader_components"][row["reader"]]["Var(Error)"], var)
        assert_printed(figures["per_reader_components"][row["reader"]]["Cov1"], cov1)


def test_van_dyke_random_readers_fixed_cases(figures):
    rrfc = figures["rrfc"]
    assert_printed(rrfc["F"], "8.70")
    assert (rrfc["df_numerator"], rrfc["df_denominator"]) == (1, 4)
    assert_printed(rrfc["p_value"], "0.0420")
    (diff,) = rrfc["differences"]
    for key, printed in {"standard_error": "0.01485", "ci_low": "-0.08502", "ci_high": "-0.00258"}.items():
        assert_printed(diff[key], printed)
    expected = {"0": ("0.02482994", "0.82809808", "0.96597599"), "1": ("0.01615303", "0.89598936", "0.98568536")}
    for modality, values in expected.items():
        for key, printed in zip(("standard_error", "ci_low", "ci_high"), values):
            assert_printed(rrfc["single_modality"][modality][key], printed)


def test_two_modality_tests_are_squared_t_statistics(figures):
    assert figures["rrrc"]["F"] == pytest.approx(figures["rrrc"]["differences"][0]["t"] ** 2, rel=1e-12)
    assert figures["frrc"]["chi2"] == pytest.approx(figures["frrc"]["differences"][0]["z"] ** 2, rel=1e-12)
    assert figures["rrfc"]["F"] == pytest.approx(figures["rrfc"]["differences"][0]["t"] ** 2, rel=1e-12)


# ---------------------------------------------------------------------------------------------
# covariance estimators by brute force
# ---------------------------------------------------------------------------------------------

def leave_one_out_aucs(truth, predictors):
    """AUC of each predictor with each case left out, from the pairwise kernel psi over (positive, negative)."""
    pos, neg = predictors[:, truth == 1], predictors[:, truth == 0]
    psi = (pos[:, :, None] > neg[:, None, :]) + 0.5 * (pos[:, :, None] == neg[:, None, :])
    out = np.empty((truth.size, predictors.shape[0]))
    for k, case in enumerate(np.flatnonzero(truth == 1)):
        out[case] = np.delete(psi, k, axis=1).mean(axis=(1, 2))
    for k, case in enumerate(np.flatnonzero(truth == 0)):
        out[case] = np.delete(psi, k, axis=2).mean(axis=(1, 2))
    return out


def test_leave_one_out_helper_agrees_with_sklearn(van_dyke):
    loo = leave_one_out_aucs(van_dyke.truth, van_dyke.scores[0])
    for k in (0, 70):  # a normal and an abnormal case
        keep = np.arange(len(van_dyke.cases)) != k
        for j in range(5):
            assert loo[k, j] == pytest.approx(skm.roc_auc_score(van_dyke.truth[keep], van_dyke.scores[0, j, keep]),
                                              abs=1e-14)


def test_jackknife_covariance_equals_leave_one_out_loop(van_dyke):
    t, r, c = van_dyke.scores.shape
    flat = leave_one_out_aucs(van_dyke.truth, van_dyke.scores.reshape(t * r, c))
    dev = flat - flat.mean(axis=0)
    expected = (c - 1) / c * dev.T @ dev
    np.testing.assert_allclose(auc_covariance(van_dyke, "jackknife").reshape(t * r, t * r), expected, rtol=0,
                               atol=1e-15)


def test_delong_covariance_option(van_dyke):
    t, r, c = van_dyke.scores.shape
    _, expected = delong_covariance(van_dyke.truth, van_dyke.scores.reshape(t * r, c))
    np.testing.assert_allclose(auc_covariance(van_dyke, "delong").reshape(t * r, t * r), expected, rtol=0, atol=1e-16)
    assert obuchowski_rockette(van_dyke, covariance="delong").dbm_variance_components is None
    result = obuchowski_rockette(van_dyke, covariance="delong").to_dict()
    assert result["covariance_method"] == "delong" and "dbm_variance_components" not in result
    # the two estimators agree closely on this data (jackknife is slightly larger)
    jack = obuchowski_rockette(van_dyke).to_dict()["or_variance_components"]["Var(Error)"]
    assert 0.9 < result["or_variance_components"]["Var(Error)"] / jack <= 1.0
    with pytest.raises(EvaluationInputError, match="covariance must be one of"):
        auc_covariance(van_dyke, "bootstrap")


# ---------------------------------------------------------------------------------------------
# input formats
# ---------------------------------------------------------------------------------------------

def _long_frame(data):
    rows = [(data.readers[j], data.cases[k], data.modalities[i], data.scores[i, j, k], int(data.truth[k]))
            for i in range(len(data.modalities)) for j in range(len(data.readers)) for k in range(len(data.cases))]
    return pd.DataFrame(rows, columns=["reader", "case", "modality", "score", "truth"])


def test_tidy_csv_gives_the_same_analysis(van_dyke, figures, tmp_path):
    frame = _long_frame(van_dyke).sample(frac=1, random_state=0)  # any row order
    frame.to_csv(tmp_path / "vd.csv", index=False)
    data = read_mrmc_csv(tmp_path / "vd.csv")
    again = obuchowski_rockette(data.select(modalities=["0", "1"], readers=["0", "1", "2", "3", "4"])).to_dict()
    assert again["rrrc"]["differences"][0]["ci_low"] == pytest.approx(figures["rrrc"]["differences"][0]["ci_low"],
                                                                     abs=1e-15)
    assert again["or_variance_components"] == pytest.approx(figures["or_variance_components"], abs=1e-15)


def _imrmc_text(van_dyke_file):
    return van_dyke_file.read_text()


@pytest.mark.parametrize("edit, message", [
    (lambda t: t.replace("NR:5", "NR:6"), "header says NR:6 but the data have 5 readers"),
    (lambda t: t.replace("BEGIN DATA:", "DATA"), "no 'BEGIN DATA:' line"),
    (lambda t: t.replace("\n0,1,0,1.000000\n", "\n"), "not fully crossed - 1 of 1140 readings are missing"),
    (lambda t: t.replace("\n0,1,0,1.000000\n", "\n0,1,0,1.000000\n0,1,0,2.000000\n"), "more than once"),
    (lambda t: t.replace("-1,1,truth,0", "-1,1,truth,2"), "truth must be 0 .* got '2'"),
    (lambda t: t.replace("-1,1,truth,0", "-1,1,truth,0\n-1,1,truth,1"), "two different truth rows"),
    (lambda t: t.replace("-1,1,truth,0\n", ""), r"case\(s\) have scores but no truth, e.g. \['1'\]"),
    (lambda t: t.replace("0,2,0,2.000000", "0,2,0,high"), "score 'high' is not a number"),
    (lambda t: t.replace("0,2,0,2.000000", "0,2,0"), "expected 4 comma-separated fields"),
])
def test_bad_imrmc_files(van_dyke_file, tmp_path, edit, message):
    path = tmp_path / "bad.imrmc"
    path.write_text(edit(_imrmc_text(van_dyke_file)))
    with pytest.raises(EvaluationInputError, match=message) as info:
        read_imrmc(path)
    assert str(path) in str(info.value)


def test_bad_tidy_rows():
    frame = pd.DataFrame({"reader": ["a", "a", "b", "b"], "case": ["1", "2", "1", "2"], "modality": ["m"] * 4,
                          "score": [1, 2, 1, 2], "truth": [0, 1, 1, 1]})
    with pytest.raises(EvaluationInputError, match="case 1 has conflicting truth values"):
        mrmc_data_from_frame(frame)
    with pytest.raises(EvaluationInputError, match="missing column"):
        mrmc_data_from_frame(frame.drop(columns="score"))
    frame["truth"] = [1, 1, 1, 1]
    with pytest.raises(EvaluationInputError, match="all 2 cases are abnormal"):
        mrmc_data_from_frame(frame)
    with pytest.raises(EvaluationInputError, match="no readings"):  # a header only (was an IndexError)
        mrmc_data_from_frame(frame.iloc[:0])


# ---------------------------------------------------------------------------------------------
# a standalone model against the readers (1T-RRRC)
# ---------------------------------------------------------------------------------------------

def hillis_by_hand(truth, readers, ai):
    """Differences AUC(AI) - AUC(reader), brute-force jackknife covariance, Hillis's single-treatment formulas."""
    r, c = readers.shape
    predictors = np.vstack([readers, ai])
    full = np.array([skm.roc_auc_score(truth, p) for p in predictors])
    d = full[-1] - full[:-1]
    loo = leave_one_out_aucs(truth, predictors)
    d_loo = loo[:, -1:] - loo[:, :-1]
    dev = d_loo - d_loo.mean(axis=0)
    cov = (c - 1) / c * dev.T @ dev
    cov2 = cov[~np.eye(r, dtype=bool)].mean()
    ms_r = d.var(ddof=1)
    se = math.sqrt((ms_r + r * max(cov2, 0)) / r)
    ddf = (ms_r + r * max(cov2, 0)) ** 2 / (ms_r ** 2 / (r - 1))
    return d.mean(), se, ddf


def test_ai_versus_readers_by_hand(van_dyke):
    readers, ai = van_dyke.scores[0, 1:], van_dyke.scores[0, 0]  # reader '0' plays the model
    result = ai_versus_readers(van_dyke.truth, readers, ai).to_dict()
    mean_d, se, ddf = hillis_by_hand(van_dyke.truth, readers, ai)
    rrrc = result["rrrc"]
    assert rrrc["difference"] == pytest.approx(mean_d, abs=1e-14)
    assert rrrc["standard_error"] == pytest.approx(se, rel=1e-10)
    assert rrrc["df"] == pytest.approx(ddf, rel=1e-10)
    assert rrrc["p_value"] == pytest.approx(2 * stats.t.sf(abs(mean_d / se), ddf), rel=1e-9)
    assert rrrc["ci_low"] == pytest.approx(mean_d - stats.t.ppf(0.975, ddf) * se, rel=1e-10)


def test_uninformative_model_reduces_to_the_readers_single_modality_analysis(van_dyke):
    """A constant model has AUC 0.5 and no case variance, so only the readers' RRRC uncertainty remains."""
    ai = np.zeros(len(van_dyke.cases))
    result = ai_versus_readers(van_dyke.truth, van_dyke.scores[0], ai).to_dict()
    assert result["ai_auc"] == 0.5
    assert_printed(0.5 - result["rrrc"]["difference"], "0.89703704")
    assert_printed(result["rrrc"]["standard_error"], "0.03317360")  # Van Dyke treatment 1, RRRC
    assert_printed(result["rrrc"]["df"], "12.74")


def test_non_inferiority_margin(van_dyke):
    readers, ai = van_dyke.scores[1, 1:], van_dyke.scores[1, 0]
    p_values = []
    for margin in (0.01, 0.05, 0.1):
        ni = ai_versus_readers(van_dyke.truth, readers, ai, margin=margin).to_dict()["non_inferiority"]
        p_values.append(ni["p_value"])
        assert ni["non_inferior"] == (ni["one_sided_lower_bound"] > -margin)
    assert p_values[0] > p_values[1] > p_values[2]
    with pytest.raises(EvaluationInputError, match="margin must lie between 0 and 1"):
        ai_versus_readers(van_dyke.truth, readers, ai, margin=-0.05)
    with pytest.raises(EvaluationInputError, match="at least two readers"):
        ai_versus_readers(van_dyke.truth, readers[:1], ai)


def test_ai_versus_readers_refuses_truth_that_is_not_0_or_1(van_dyke):
    # int8 conversion alone would read 1.7 as 1 and -0.5 as 0: a wrong table must be named, not rounded
    readers, ai = van_dyke.scores[1, 1:], van_dyke.scores[1, 0]
    truth = np.asarray(van_dyke.truth, dtype=float)
    truth[3] = 1.7
    message = r"^my study: truth must hold only the labels 0 and 1, but has \[1\.7\] at positions 3"
    with pytest.raises(EvaluationInputError, match=message):
        ai_versus_readers(truth, readers, ai, source="my study")


def test_ai_on_the_released_reader_study(reader_study_file):
    result, ai = analyse_mrmc_file(reader_study_file, ai="AI_GMIC_top5_POM", margin=0.05, hybrid_with="GMIC_top5")
    figures = result.to_dict()
    assert figures["data"]["modalities"] == ["readers", "hybrid"] and len(figures["data"]["readers"]) == 14
    assert round(figures["modality_means"]["readers"], 3) == 0.779  # README: readers' mean AUROC
    assert round(figures["modality_means"]["hybrid"], 3) == 0.887  # README: hybrid with GMIC top-5
    gmic = ai["readers"].to_dict()
    assert round(gmic["ai_auc"], 3) == 0.881
    assert gmic["rrrc"]["difference"] == pytest.approx(gmic["ai_auc"] - gmic["mean_reader_auc"], abs=1e-15)


# ---------------------------------------------------------------------------------------------
# the command
# ---------------------------------------------------------------------------------------------

def test_mrmc_command(van_dyke_file, tmp_path, capsys):
    out = tmp_path / "mrmc"
    assert main(["mrmc", str(van_dyke_file), "--output-dir", str(out), "--ai", "4", "--margin", "0.05"]) == 0
    printed = capsys.readouterr().out
    assert "RANDOM READERS AND RANDOM CASES" in printed and "4 VERSUS READERS, modality 0" in printed
    summary = json.loads((out / "mrmc.json").read_text())
    assert summary["data"]["readers"] == ["0", "1", "2", "3"]  # the AI is taken out of the readers
    assert set(summary["ai_versus_readers"]) == {"0", "1"}
    assert "non_inferiority" in summary["ai_versus_readers"]["0"]
    assert (out / "mrmc.txt").read_text().startswith("OBUCHOWSKI-ROCKETTE")


def test_mrmc_command_errors(van_dyke_file, tmp_path, capsys):
    assert main(["mrmc", str(van_dyke_file), "--output-dir", str(tmp_path), "--margin", "0.05"]) == 2
    assert "--margin needs --ai" in capsys.readouterr().err
    assert main(["mrmc", str(van_dyke_file), "--output-dir", str(tmp_path), "--ai", "9"]) == 2
    assert "no reader '9'" in capsys.readouterr().err
    assert main(["mrmc", str(van_dyke_file), "--output-dir", str(tmp_path), "--modalities", "7"]) == 2
    assert "unknown modality ['7']" in capsys.readouterr().err


def test_three_modalities_components_by_explicit_loops():
    rng = np.random.default_rng(4)
    t, r, c = 3, 4, 60
    truth = (np.arange(c) % 3 == 0).astype(np.int8)
    case_effect = rng.normal(size=c) + 1.2 * truth
    effect = 0.3 * np.arange(t)[:, None, None] * truth
    scores = np.round(case_effect + rng.normal(scale=0.8, size=(t, r, c)) + effect, 1)
    frame = pd.DataFrame([(f"r{j}", f"c{k}", f"m{i}", scores[i, j, k], truth[k])
                          for i in range(t) for j in range(r) for k in range(c)],
                         columns=["reader", "case", "modality", "score", "truth"])
    data = mrmc_data_from_frame(frame)
    result = obuchowski_rockette(data)
    cov = result.covariance
    groups = {"Var(Error)": [], "Cov1": [], "Cov2": [], "Cov3": []}
    for i in range(t):
        for j in range(r):
            for i2 in range(t):
                for j2 in range(r):
                    key = {(True, True): "Var(Error)", (False, True): "Cov1", (True, False): "Cov2",
                           (False, False): "Cov3"}[(i == i2, j == j2)]
                    groups[key].append(cov[i, j, i2, j2])
    fields = {"Var(Error)": "var_error", "Cov1": "cov1", "Cov2": "cov2", "Cov3": "cov3"}
    for key, values in groups.items():
        assert getattr(result.or_variance_components, fields[key]) == pytest.approx(np.mean(values), abs=1e-15)
        assert result.to_dict()["or_variance_components"][key] == getattr(result.or_variance_components, fields[key])
    assert len(result.rrrc.test.differences) == 3 and len(result.frrc.per_reader) == 3 * r
    ms_t = r * np.var(result.aucs.mean(axis=1), ddof=1)
    assert result.anova.ms_t == pytest.approx(ms_t, rel=1e-12)
    assert result.rrrc.test.df_numerator == 2 and 0 <= result.rrrc.test.p_value <= 1
    assert result.frrc.test.chi2 == pytest.approx(2 * ms_t / result.frrc.test.error_term, rel=1e-12)


def test_typed_results_are_what_the_file_holds(van_dyke):
    """The typed fields and mrmc.json's nested dictionaries are one set of numbers: each field named in the
    file under the literature's name, nothing in the file that is not a field."""
    result = obuchowski_rockette(van_dyke)
    figures = result.to_dict()
    assert figures["rrrc"]["F"] == result.rrrc.test.F and figures["rrrc"]["error_term"] == result.rrrc.test.error_term
    first = result.rrrc.test.differences[0]
    assert figures["rrrc"]["differences"][0] == {
        "modalities": ["0", "1"], "difference": first.difference, "standard_error": first.standard_error,
        "df": first.df, "t": first.statistic, "p_value": first.p_value, "ci_low": first.ci_low,
        "ci_high": first.ci_high}
    assert figures["frrc"]["differences"][0]["z"] == result.frrc.test.differences[0].statistic
    assert "error_term" not in figures["rrfc"] and figures["rrfc"]["F"] == result.rrfc.test.F
    assert figures["anova"]["MS(T*R)"] == result.anova.ms_tr and figures["anova"]["df(T*R)"] == 4
    assert figures["dbm_variance_components"]["Var(T*R*C)+Var(Error)"] == result.dbm_variance_components.var_trc_error
    assert figures["frrc"]["single_modality"]["0"] == {
        "auc": result.frrc.single_modality["0"].auc, "standard_error": result.frrc.single_modality["0"].standard_error,
        "ci_low": result.frrc.single_modality["0"].ci_low, "ci_high": result.frrc.single_modality["0"].ci_high,
        "Var(Error)": result.per_modality_components["0"].var_error, "Cov2": result.per_modality_components["0"].cov2}
    assert figures["modality_means"] == result.modality_means and figures["auc"] == result.auc


def test_designs_without_a_test_leave_it_out(van_dyke):
    one_reader = obuchowski_rockette(van_dyke.select(readers=["0"]))
    assert one_reader.rrrc is None and one_reader.rrfc is None and one_reader.anova.ms_tr is None
    assert one_reader.or_variance_components.var_r is None and one_reader.dbm_variance_components is None
    figures = one_reader.to_dict()
    assert "rrrc" not in figures and "rrfc" not in figures and figures["dbm_variance_components"] == {}
    assert list(figures["or_variance_components"]) == ["Var(Error)", "Cov1", "Cov2", "Cov3"]
    one_modality = obuchowski_rockette(van_dyke.select(modalities=["1"]), covariance="delong")
    assert one_modality.rrrc.test is None and one_modality.frrc.test is None and one_modality.frrc.per_reader is None
    figures = one_modality.to_dict()
    assert "F" not in figures["rrrc"] and "per_reader" not in figures["frrc"]
    assert "dbm_variance_components" not in figures
    assert list(figures["or_variance_components"]) == ["Var(R)", "Var(Error)", "Cov1", "Cov2", "Cov3"]


# ---------------------------------------------------------------------------------------------
# a standalone model against the readers: every field by hand
# ---------------------------------------------------------------------------------------------

def difference_covariance_by_hand(truth, readers, ai, method):
    """Covariance of the differences AUC(AI) - AUC(reader j) over cases: brute-force jackknife, or DeLong's
    covariance of the predictors combined as D = A Cov A' (A: +1 for the model, -1 for the reader)."""
    r, c = readers.shape
    predictors = np.vstack([readers, ai])
    if method == "jackknife":
        loo = leave_one_out_aucs(truth, predictors)
        d_loo = loo[:, -1:] - loo[:, :-1]
        dev = d_loo - d_loo.mean(axis=0)
        return (c - 1) / c * dev.T @ dev
    _, cov = delong_covariance(truth, predictors)
    a = np.hstack([-np.eye(r), np.ones((r, 1))])
    return a @ cov @ a.T


@pytest.mark.parametrize("method, confidence", [("jackknife", 0.95), ("delong", 0.9)])
def test_ai_versus_readers_every_field_by_hand(van_dyke, method, confidence):
    readers, ai = van_dyke.scores[1, 1:], van_dyke.scores[1, 0]
    r = readers.shape[0]
    result = ai_versus_readers(van_dyke.truth, readers, ai, reader_names=["a", "b", "c", "d"], ai_name="model",
                               covariance=method, confidence=confidence, margin=0.03)
    aucs = np.array([skm.roc_auc_score(van_dyke.truth, p) for p in readers])
    ai_auc = skm.roc_auc_score(van_dyke.truth, ai)
    d = ai_auc - aucs
    cov = difference_covariance_by_hand(van_dyke.truth, readers, ai, method)
    var_error, cov2 = np.diag(cov).mean(), cov[~np.eye(r, dtype=bool)].mean()
    ms_r = d.var(ddof=1)
    se = math.sqrt((ms_r + r * max(cov2, 0)) / r)
    ddf = (ms_r + r * max(cov2, 0)) ** 2 / (ms_r ** 2 / (r - 1))
    tq = stats.t.ppf(0.5 + confidence / 2, ddf)
    out = result.to_dict()
    assert (out["covariance_method"], out["confidence"], out["ai"]) == (method, confidence, "model")
    assert out["ai_auc"] == pytest.approx(ai_auc, abs=1e-14)
    assert out["reader_aucs"] == pytest.approx(dict(zip("abcd", aucs)), abs=1e-14)
    assert out["mean_reader_auc"] == pytest.approx(aucs.mean(), abs=1e-14)
    assert out["variance_components"] == pytest.approx(
        {"Var(R)": ms_r - var_error + cov2, "Var(Error)": var_error, "Cov2": cov2, "MS(R)": ms_r}, rel=1e-9, abs=1e-15)
    assert out["rrrc"] == pytest.approx(
        {"difference": d.mean(), "standard_error": se, "df": ddf, "t": d.mean() / se,
         "p_value": 2 * stats.t.sf(abs(d.mean() / se), ddf), "ci_low": d.mean() - tq * se,
         "ci_high": d.mean() + tq * se}, rel=1e-9)
    se_fc = math.sqrt(ms_r / r)
    tq_fc = stats.t.ppf(0.5 + confidence / 2, r - 1)
    assert out["rrfc"] == pytest.approx(
        {"difference": d.mean(), "standard_error": se_fc, "df": r - 1, "t": d.mean() / se_fc,
         "p_value": 2 * stats.t.sf(abs(d.mean() / se_fc), r - 1), "ci_low": d.mean() - tq_fc * se_fc,
         "ci_high": d.mean() + tq_fc * se_fc}, rel=1e-9)
    alpha = 1 - confidence
    t_ni = (d.mean() + 0.03) / se
    p_ni = stats.t.sf(t_ni, ddf)
    ni = dict(out["non_inferiority"])
    assert ni.pop("hypothesis") == "H0: AUC(model) - mean reader AUC <= -0.03"
    assert ni.pop("non_inferior") is bool(p_ni < alpha)
    assert ni == pytest.approx({"margin": 0.03, "t": t_ni, "df": ddf, "p_value": p_ni,
                                "one_sided_lower_bound": d.mean() - stats.t.ppf(1 - alpha, ddf) * se, "alpha": alpha},
                               rel=1e-9)


def test_ai_versus_identical_readers_uses_normal_quantiles():
    """Readers who all score alike have MS(R) = 0: Hillis's ddf is infinite, so the intervals and the
    non-inferiority test use the normal distribution, and the fixed-case analysis has no error at all."""
    rng = np.random.default_rng(3)
    truth = (np.arange(30) % 2).astype(int)
    reader = rng.random(30) + 0.5 * truth
    ai = rng.random(30) + 0.8 * truth
    result = ai_versus_readers(truth, [reader, reader, reader], ai, margin=0.1, confidence=0.9)
    d = skm.roc_auc_score(truth, ai) - skm.roc_auc_score(truth, reader)
    cov = difference_covariance_by_hand(truth, np.vstack([reader] * 3), ai, "jackknife")
    se = math.sqrt(cov[0, 1])  # every entry is the same variance of the one difference
    auc = skm.roc_auc_score(truth, reader)
    assert result.reader_aucs == pytest.approx({"1": auc, "2": auc, "3": auc}, abs=1e-14)
    assert list(result.reader_aucs) == ["1", "2", "3"] and result.ai == "AI"
    assert result.variance_components.ms_r == 0 and result.rrrc.df == math.inf
    assert result.rrrc.standard_error == pytest.approx(se, rel=1e-12)
    assert result.rrrc.p_value == pytest.approx(2 * stats.norm.sf(abs(d / se)), rel=1e-9)
    assert result.rrrc.ci_low == pytest.approx(d - 1.6448536269514722 * se, rel=1e-9)
    ni = result.non_inferiority
    assert ni.p_value == pytest.approx(stats.norm.sf((d + 0.1) / se), rel=1e-9)
    assert ni.one_sided_lower_bound == pytest.approx(d - 1.2815515655446004 * se, rel=1e-9)
    assert ni.non_inferior and ni.alpha == pytest.approx(0.1, abs=1e-15)
    assert result.rrfc.standard_error == 0 and result.rrfc.t == math.copysign(math.inf, d)
    assert result.rrfc.p_value == 0 and result.rrfc.ci_low == result.rrfc.ci_high == pytest.approx(d, abs=1e-15)


@pytest.mark.parametrize("margin", [0, 1, 1.5])
def test_non_inferiority_margin_must_lie_strictly_inside(van_dyke, margin):
    with pytest.raises(EvaluationInputError, match=rf"^the non-inferiority margin must lie between 0 and 1 \(AUC "
                                                   rf"scale\), got {float(margin)}$"):
        ai_versus_readers(van_dyke.truth, van_dyke.scores[0, 1:], van_dyke.scores[0, 0], margin=margin)


def test_ai_versus_readers_refusals_name_the_source(van_dyke):
    with pytest.raises(EvaluationInputError, match=r"^study.csv: comparing a model with readers needs at least two "
                                                   r"readers, got 1$"):
        ai_versus_readers(van_dyke.truth, van_dyke.scores[0, 1], van_dyke.scores[0, 0], source="study.csv")
    with pytest.raises(EvaluationInputError, match=r"^confidence must lie between 0 and 1, got 2.0$"):
        ai_versus_readers(van_dyke.truth, van_dyke.scores[0, 1:], van_dyke.scores[0, 0], confidence=2)
    default = ai_versus_readers(van_dyke.truth, van_dyke.scores[0, 1:], van_dyke.scores[0, 0])
    assert (default.covariance_method, default.confidence, default.non_inferiority) == ("jackknife", 0.95, None)


# ---------------------------------------------------------------------------------------------
# Obuchowski-Rockette: the helpers, the degenerate designs, the notes
# ---------------------------------------------------------------------------------------------

def _study(scores, truth, modalities=None, readers=None):
    t, r, c = scores.shape
    return MRMCData(modalities or [f"m{i}" for i in range(t)], readers or [f"r{j}" for j in range(r)],
                    [f"c{k}" for k in range(c)], np.asarray(truth, dtype=np.int8), np.asarray(scores, dtype=float))


def test_interval_p_value_ratio_and_single_modality_helpers():
    assert _t_interval(1.0, 2.0, math.inf, 0.95) == pytest.approx((1 - 2 * 1.959963984540054,
                                                                   1 + 2 * 1.959963984540054), rel=1e-12)
    assert _t_interval(0.0, 1.0, 5, 0.9) == pytest.approx((-2.015048, 2.015048), abs=1e-6)  # t table, 5 df
    assert _t_p_value(2.0, math.inf) == pytest.approx(0.04550026389635842, rel=1e-12)
    assert _t_p_value(-2.0, 10) == pytest.approx(2 * stats.t.sf(2.0, 10), rel=1e-12)
    assert _t_p_value(2.0, 10) == pytest.approx(0.07338803477074478, rel=1e-9)
    assert math.isnan(_t_p_value(math.nan, 10)) and math.isnan(_t_p_value(math.nan, math.inf))
    assert _ratio(3.0, 2.0) == 1.5 and _ratio(-1.0, 0.0) == math.inf and _ratio(1.0, -1.0) == math.inf
    assert math.isnan(_ratio(0.0, 0.0))
    # SE^2 = [MS(R) + r max(Cov2, 0)] / r, ddf = [MS(R) + r max(Cov2, 0)]^2 / [MS(R)^2 / (r - 1)], by hand:
    se, ddf = hillis_single_rrrc(0.004, 0.001, 5)  # 0.004 + 5 * 0.001 = 0.009
    assert (se, ddf) == pytest.approx((math.sqrt(0.009 / 5), 0.009 ** 2 / (0.004 ** 2 / 4)), rel=1e-12)
    assert ddf == pytest.approx(20.25, rel=1e-12)
    assert hillis_single_rrrc(0.004, -0.001, 5) == pytest.approx((math.sqrt(0.004 / 5), 4.0), rel=1e-12)
    assert hillis_single_rrrc(0.0, 0.002, 4) == (math.sqrt(0.002), math.inf)


def test_one_reader_fixed_readers_analysis_is_the_delong_test(van_dyke):
    """With one reader and DeLong's covariance the fixed-reader comparison of two modalities is DeLong's paired test
    of that reader's two AUCs (error term Var(Error) - Cov1 = (Var_a + Var_b) / 2 - Cov_ab)."""
    one = van_dyke.select(readers=["2"])
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the undefined reader averages are NaN by choice, not numpy's 0/0
        result = obuchowski_rockette(one, covariance="delong", confidence=0.9)
    assert math.isnan(result.anova.ms_r) and math.isnan(result.anova.ms_r_per_modality["0"])
    assert result.dbm_variance_components is None
    expected = delong_test(van_dyke.truth, van_dyke.scores[0, 2], van_dyke.scores[1, 2], confidence=0.9)
    (diff,) = result.frrc.test.differences
    assert (diff.difference, diff.standard_error, diff.statistic, diff.p_value, diff.ci_low, diff.ci_high) == \
        pytest.approx((expected.difference, expected.standard_error, expected.z, expected.p_value, expected.ci_low,
                       expected.ci_high), rel=1e-9)
    assert diff.df == math.inf and diff.statistic_name == "z"
    assert result.frrc.test.chi2 == pytest.approx(expected.z ** 2, rel=1e-9)
    assert result.frrc.test.p_value == pytest.approx(expected.p_value, rel=1e-9)
    (row,) = result.frrc.per_reader
    assert (row.reader, row.z, row.ci_high) == ("2", pytest.approx(expected.z, rel=1e-9),
                                                pytest.approx(expected.ci_high, rel=1e-9))
    _, cov = delong_covariance(van_dyke.truth, van_dyke.scores[:, 2])
    single = result.frrc.single_modality["1"]
    assert single.standard_error == pytest.approx(math.sqrt(cov[1, 1]), rel=1e-12)
    assert single.ci_low == pytest.approx(single.auc - 1.6448536269514722 * single.standard_error, rel=1e-12)
    assert math.isnan(result.per_modality_components["0"].cov2)  # no pair of different readers
    assert math.isnan(result.or_variance_components.cov2) and math.isnan(result.or_variance_components.cov3)
    assert result.or_variance_components.cov1 == pytest.approx(cov[0, 1], rel=1e-12)
    assert result.notes == ["one reader: the random-reader analyses (RRRC, RRFC) need at least two readers"]


def test_one_modality_components_and_note(van_dyke):
    one = van_dyke.select(modalities=["0"])
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # Cov1 of a reader is NaN by choice, not numpy's mean of an empty slice
        result = obuchowski_rockette(one)
    assert_printed(result.per_modality_components["0"].ms_r, "0.00308263")  # Van Dyke MS(R) of treatment 1
    two = obuchowski_rockette(van_dyke.select(modalities=["1"], readers=["0", "3"]))
    vc2 = two.or_variance_components
    assert vc2.var_r == pytest.approx(two.anova.ms_r - vc2.var_error + vc2.cov2, rel=1e-12)
    comp = two.per_modality_components["1"]  # FRRC: SE^2 = [Var(Error) + (r - 1) max(Cov2, 0)] / r
    assert two.frrc.single_modality["1"].standard_error == pytest.approx(
        math.sqrt((comp.var_error + max(comp.cov2, 0)) / 2), rel=1e-12)
    vc = result.or_variance_components
    assert math.isnan(vc.cov1) and math.isnan(vc.cov3) and vc.var_tr is None
    assert vc.var_r == pytest.approx(result.anova.ms_r - vc.var_error + vc.cov2, rel=1e-12)
    assert_printed(vc.var_error, "0.00101410")  # Van Dyke treatment 1 (FRRC Var(Error), RRRC Cov2)
    assert_printed(vc.cov2, "0.00048396")
    assert math.isnan(result.per_reader_components["0"].cov1)
    assert result.notes == ["one modality: no modality comparison; single-modality CIs only"]
    assert result.anova.ms_t is None and result.anova.df_t is None and result.anova.df_tr is None
    single = result.rrrc.single_modality["0"]
    assert_printed(single.standard_error, "0.03317360")
    assert_printed(single.df, "12.74")


def test_confidence_level_reaches_every_interval(van_dyke):
    result = obuchowski_rockette(van_dyke, confidence=0.8)
    assert result.confidence == 0.8
    diff = result.rrrc.test.differences[0]
    half = stats.t.ppf(0.9, diff.df) * diff.standard_error
    assert (diff.ci_low, diff.ci_high) == pytest.approx((diff.difference - half, diff.difference + half), rel=1e-12)
    diff = result.frrc.test.differences[0]
    half = 1.2815515655446004 * diff.standard_error
    assert (diff.ci_low, diff.ci_high) == pytest.approx((diff.difference - half, diff.difference + half), rel=1e-12)
    single = result.rrfc.single_modality["1"]
    half = stats.t.ppf(0.9, 4) * single.standard_error
    assert (single.ci_low, single.ci_high) == pytest.approx((single.auc - half, single.auc + half), rel=1e-12)
    assert result.rrfc.test.differences[0].df == 4 and result.rrfc.single_modality["0"].df == 4
    with pytest.raises(EvaluationInputError, match=r"^confidence must lie between 0 and 1, got 1.5$"):
        obuchowski_rockette(van_dyke, confidence=1.5)


def test_identical_readers_have_no_reader_variance_and_infinite_ddf(van_dyke):
    """Two copies of one reader: MS(R) = MS(T*R) = 0, so Hillis's ddf is infinite and the F test is a chi-square
    test on (t - 1) F; the error term is r (Cov2 - Cov3) = r (Var(Error) - Cov1) (the copies covary fully)."""
    scores = np.repeat(van_dyke.scores[:, :1], 2, axis=1)
    result = obuchowski_rockette(_study(scores, van_dyke.truth))
    assert result.anova.ms_tr == 0 and result.anova.ms_r == 0
    vc = result.or_variance_components
    test = result.rrrc.test
    assert test.df_denominator == math.inf
    assert test.error_term == pytest.approx(2 * (vc.var_error - vc.cov1), rel=1e-9)
    assert test.F == pytest.approx(result.anova.ms_t / test.error_term, rel=1e-12)
    assert test.p_value == pytest.approx(stats.chi2.sf(test.F, 1), rel=1e-9)
    (diff,) = test.differences
    assert diff.df == math.inf and diff.p_value == pytest.approx(test.p_value, rel=1e-9)
    assert diff.ci_low == pytest.approx(diff.difference - 1.959963984540054 * diff.standard_error, rel=1e-9)
    single = result.rrrc.single_modality["m0"]
    assert single.df == math.inf and single.ms_r == 0
    assert single.standard_error == pytest.approx(math.sqrt(result.per_modality_components["m0"].cov2), rel=1e-12)
    assert math.isnan(result.rrfc.test.F) is False and result.rrfc.test.F == math.inf
    assert result.frrc.test.error_term == pytest.approx(2 * (vc.var_error - vc.cov1), rel=1e-9)  # + (r-1)(Cov2-Cov3)
    three = obuchowski_rockette(_study(np.repeat(np.stack([van_dyke.scores[0, :1], van_dyke.scores[1, :1],
                                                           van_dyke.scores[1, 1:2]]), 2, axis=1), van_dyke.truth))
    assert three.rrrc.test.df_denominator == math.inf and three.rrrc.test.df_numerator == 2
    assert three.rrrc.test.p_value == pytest.approx(stats.chi2.sf(2 * three.rrrc.test.F, 2), rel=1e-9)
    assert result.rrfc.single_modality["m0"].standard_error == 0


def test_readers_whose_scores_all_tie_are_named():
    truth = np.array([0, 0, 0, 1, 1, 1])
    ranked = np.arange(6.0)
    scores = np.stack([np.stack([ranked, ranked[::-1] * 0 + 2, ranked]),
                       np.stack([np.full(6, 1.0), np.full(6, 3.0), ranked])])  # (2 modalities, 3 readers, 6 cases)
    notes = tie_notes(_study(scores, truth, readers=["a", "b", "c"]))
    assert notes == ["b in m0, a in m1, b in m1: the same score for every case - no ranking information (AUC 0.5 "
                     "from ties alone)"]
    many = np.stack([np.stack([np.full(6, 1.0)] * 3 + [ranked])] * 2)  # 6 of 8 readings tied
    assert tie_notes(_study(many, truth)) == [
        "r0 in m0, r1 in m0, r2 in m0, r0 in m1, r1 in m1, ... (6 in all): the same score for every case - no ranking "
        "information (AUC 0.5 from ties alone)"]
    five = many.copy()
    five[1, 2] = ranked
    assert tie_notes(_study(five, truth))[0].startswith("r0 in m0, r1 in m0, r2 in m0, r0 in m1, r1 in m1: the same")
    assert tie_notes(_study(np.stack([np.stack([ranked] * 2)] * 2), truth)) == []
    flat = obuchowski_rockette(_study(np.full((2, 2, 6), 4.0), truth))
    assert flat.notes == [
        "every reader gives every case the same score in every modality: the data carry no ranking information - "
        "each AUC is 0.5 from ties alone, every variance is 0, so F and p are undefined (nan) and the intervals have "
        "no width; check that the score column holds the readers' ratings"]
    assert math.isnan(flat.rrrc.test.F) and math.isnan(flat.rrrc.test.differences[0].p_value)
    assert math.isnan(flat.frrc.test.chi2) and flat.modality_means == {"m0": 0.5, "m1": 0.5}


# ---------------------------------------------------------------------------------------------
# covariance: the smallest designs
# ---------------------------------------------------------------------------------------------

def test_jackknife_needs_two_cases_of_each_class():
    truth = np.array([0, 0, 1, 1])
    scores = np.array([[[0.1, 0.6, 0.4, 0.9]]])
    cov = auc_covariance(_study(scores, truth), "jackknife")
    loo = leave_one_out_aucs(truth, scores[0])  # leaving out 0.1 or 0.9 leaves one pair of two wrong: AUC 1/2
    np.testing.assert_allclose(loo[:, 0], [0.5, 1.0, 1.0, 0.5])
    assert cov.shape == (1, 1, 1, 1) and cov[0, 0, 0, 0] == pytest.approx(3 / 4 * 4 * 0.25 ** 2, abs=1e-15)
    for bad_truth in ([0, 1, 1, 1], [0, 0, 0, 1]):
        data = _study(scores, bad_truth)
        data.source = "tiny.csv"
        with pytest.raises(EvaluationInputError, match=r"^tiny.csv: the jackknife needs at least 2 normal and 2 "
                                                       r"abnormal cases$"):
            auc_covariance(data)
    delong = auc_covariance(_study(scores, truth), "delong")
    _, expected = delong_covariance(truth, scores[0])
    assert delong.shape == (1, 1, 1, 1) and delong[0, 0, 0, 0] == pytest.approx(expected[0, 0], abs=1e-16)


def test_or_components_average_their_cells():
    cov = np.arange(16.0).reshape(2, 2, 2, 2)  # cov[i, j, i2, j2] = 8 i + 4 j + 2 i2 + j2
    components = or_components(cov)
    assert components.var_error == np.mean([0, 5, 10, 15])  # (0,0,0,0) (0,1,0,1) (1,0,1,0) (1,1,1,1)
    assert components.cov1 == np.mean([2, 7, 8, 13])  # same reader, other modality
    assert components.cov2 == np.mean([1, 4, 11, 14])  # same modality, other reader
    assert components.cov3 == np.mean([3, 6, 9, 12])
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # an empty average is NaN by choice, not numpy's "mean of empty slice"
        single = or_components(np.full((1, 1, 1, 1), 2.0))
    assert single.var_error == 2.0 and math.isnan(single.cov1) and math.isnan(single.cov2)


def test_dbm_reader_components_equal_or_with_jackknife_covariance():
    """With the jackknife covariance, DBM's Var(R) and Var(T*R) are the OR model's (Hillis, Obuchowski, Schartz &
    Berbaum 2005; Van Dyke prints 0.00153500 and 0.00020040 for both) - here on two readers, one of them with AUC 0."""
    rng = np.random.default_rng(1)
    c = 24
    truth = (np.arange(c) % 2).astype(np.int8)
    scores = rng.random((2, 2, c)) + 0.6 * truth
    scores[0, 0] = rng.random(c) * 0.5 - truth  # every abnormal case below every normal one
    result = obuchowski_rockette(_study(scores, truth))
    assert result.aucs[0, 0] == 0
    dbm, vc = result.dbm_variance_components, result.or_variance_components
    assert dbm.var_r == pytest.approx(vc.var_r, rel=1e-9) and dbm.var_tr == pytest.approx(vc.var_tr, rel=1e-9)


def test_ai_versus_two_readers_and_scores_given_as_text(van_dyke):
    truth, readers, ai = van_dyke.truth, van_dyke.scores[0, 1:3], van_dyke.scores[0, 0]
    two = ai_versus_readers(truth, readers, ai)
    mean_d, se, ddf = hillis_by_hand(truth, readers, ai)
    assert two.rrrc.difference == pytest.approx(mean_d, abs=1e-14) and two.rrfc.df == 1
    assert two.rrrc.standard_error == pytest.approx(se, rel=1e-10) and two.rrrc.df == pytest.approx(ddf, rel=1e-10)
    as_text = ai_versus_readers(truth, readers.astype(str).tolist(), ai.astype(str).tolist())
    assert as_text == two


def test_ai_versus_readers_names_its_source(van_dyke):
    ai, readers = van_dyke.scores[0, 0], van_dyke.scores[0, 1:]
    with pytest.raises(EvaluationInputError, match=r"^reader study: comparing a model with readers needs at least "
                                                   r"two readers, got 1$"):
        ai_versus_readers(van_dyke.truth, readers[0], ai)
    normal = np.zeros_like(van_dyke.truth)
    with pytest.raises(EvaluationInputError, match=r"^study.csv: all 114 cases are normal;"):
        ai_versus_readers(normal, readers, ai, source="study.csv")
    with pytest.raises(EvaluationInputError, match=r"^reader study: all 114 cases are normal;"):
        ai_versus_readers(normal, readers, ai)
