"""Multi-reader multi-case (MRMC) ROC analysis: Obuchowski-Rockette with Hillis's degrees of freedom.

The figure of merit is the empirical (trapezoidal, Wilcoxon) AUC of each reader in each modality
("treatment"). Its covariance over cases is estimated by the jackknife (leave one case out; the
default, as OR-DBM MRMC and RJafroc) or by DeLong's method, and the Obuchowski-Rockette (OR) model
decomposes it into Var(Error), Cov1 (same reader, different modalities), Cov2 (different readers,
same modality) and Cov3 (different readers and modalities). Three generalisations are reported:

* RRRC - random readers and random cases (Hillis 2007, 2008): F = MS(T) / [MS(T*R) + r max(Cov2 -
  Cov3, 0)] with Hillis's denominator degrees of freedom
  ddf = [MS(T*R) + r max(Cov2 - Cov3, 0)]^2 / {MS(T*R)^2 / [(t - 1)(r - 1)]};
* FRRC - fixed readers, random cases: chi^2 = (t - 1) MS(T) / [Var(Error) - Cov1 + (r - 1) max(Cov2 -
  Cov3, 0)] with t - 1 df, and each reader's own modality difference;
* RRFC - random readers, fixed cases: F = MS(T) / MS(T*R) with (t - 1, (t - 1)(r - 1)) df.

Single-modality CIs use that modality's reader mean square and covariances. The "AI versus readers"
analysis (Hillis's single-treatment method applied to the differences AUC(AI) - AUC(reader), with
the model as a fixed reader; RJafroc calls it 1T-RRRC) compares a standalone model with the readers'
mean, optionally against a non-inferiority margin.

The DBM variance components are reported too (from jackknife pseudovalues), for comparison with
output of OR-DBM MRMC.

The package: :mod:`.data` (readers of iMRMC, tidy CSV and reader-study tables), :mod:`.covariance` (AUCs
and their covariance over cases), :mod:`.or_hillis` (the OR analysis), :mod:`.ai_readers` (a model against
the readers), :mod:`.results` (their typed results), :mod:`.run` (one call for a whole file, what
``mammoscreen mrmc`` runs).

References: Obuchowski & Rockette (1995) Commun Stat Simul Comput 24:285; Hillis (2007) Stat Med
26:596; Hillis, Berbaum & Metz (2008) Acad Radiol 15:647; Dorfman, Berbaum & Metz (1992) Invest
Radiol 27:723; DeLong, DeLong & Clarke-Pearson (1988) Biometrics 44:837.
"""

from .ai_readers import ai_versus_readers
from .covariance import COVARIANCE_METHODS, auc_covariance, jackknife_aucs, or_components, reader_aucs
from .data import MRMCData, mrmc_data_from_frame, mrmc_from_reader_study, read_imrmc, read_mrmc, read_mrmc_csv
from .or_hillis import dbm_variance_components, obuchowski_rockette
from .results import AIVersusReadersResult, MRMCResult
from .run import analyse_mrmc_file

__all__ = [
    "MRMCData", "read_imrmc", "read_mrmc_csv", "read_mrmc", "mrmc_data_from_frame", "mrmc_from_reader_study",
    "reader_aucs", "jackknife_aucs", "auc_covariance", "or_components", "obuchowski_rockette",
    "dbm_variance_components", "ai_versus_readers", "MRMCResult", "AIVersusReadersResult", "analyse_mrmc_file",
    "COVARIANCE_METHODS",
]
