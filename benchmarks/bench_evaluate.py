"""Benchmark: mammoscreen's evaluation against a naive scikit-learn loop, measured in the same run.

1. Bootstrap: 2000 replicates of AUROC and AUPRC on 1440 cases - ``bootstrap_metrics`` (all
   replicates as count matrices; it also computes average precision) against a loop of
   ``roc_auc_score`` + ``precision_recall_curve`` + ``auc`` over the same resamples, as the
   meta-repository's score.py does.
2. End to end: ``mammoscreen evaluate`` on an image-level file of 720 exams (2880 images, 1440
   breasts) with its exam list, against a script that follows score.py's procedure (pandas look-ups
   per view, the sklearn bootstrap loop for both levels, pyplot figures), each run as a fresh process.

The naive side is written here from score.py's description; it is a stand-in for the reference,
not a copy of it. Run from the repository root:

    python benchmarks/bench_evaluate.py            # full measurement (the naive loops take a while)
    python benchmarks/bench_evaluate.py --quick    # naive bootstrap timed on 200 replicates, scaled up

Results are printed and written to benchmarks/results/bench_evaluate.json.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

import numpy as np
import pandas as pd

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))

from _timing import best_of  # noqa: E402
from mammoscreen.data.exams import VIEWS, Exam, save_exam_list  # noqa: E402
from mammoscreen.evaluate.bootstrap import bootstrap_metrics  # noqa: E402

NAIVE_SCRIPT = textwrap.dedent('''
    """score.py's procedure, written plainly: the baseline that mammoscreen evaluate is compared with."""
    import pickle, sys
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np
    import pandas as pd
    from sklearn import metrics
    from sklearn.utils import resample

    exam_path, csv_path, out, n_boot = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
    np.random.seed(0)

    def statistics(labels, scores, name):
        pairs = list(zip(labels, scores))
        aucs, auprcs = [], []
        for _ in range(n_boot):
            b_labels, b_scores = zip(*resample(pairs, replace=True, n_samples=len(pairs)))
            if len(set(b_labels)) == 1:
                continue
            aucs.append(metrics.roc_auc_score(b_labels, b_scores))
            p, r, _ = metrics.precision_recall_curve(b_labels, b_scores)
            auprcs.append(metrics.auc(r, p))
        auc = metrics.roc_auc_score(labels, scores)
        p, r, _ = metrics.precision_recall_curve(labels, scores)
        auprc = metrics.auc(r, p)
        ci = ([sorted(v)[int(0.025 * len(v))] for v in (aucs, auprcs)],
              [sorted(v)[int(0.975 * len(v))] for v in (aucs, auprcs)])
        fpr, tpr, _ = metrics.roc_curve(labels, scores)
        plt.figure(figsize=(5, 5)); plt.plot(fpr, tpr); plt.savefig(f"{out}/{name}_roc.png"); plt.close()
        plt.figure(figsize=(5, 5)); plt.plot(r, p); plt.savefig(f"{out}/{name}_pr.png"); plt.close()
        print(name, auc, auprc, ci)

    exams = pickle.load(open(exam_path, "rb"))
    frame = pd.read_csv(csv_path)
    scores, labels = {"L": [], "R": []}, {"L": [], "R": []}
    for exam in exams:
        for side, views in (("L", ("L-CC", "L-MLO")), ("R", ("R-CC", "R-MLO"))):
            values = [frame[frame["image_index"].isin(exam[v])]["malignant_pred"].iloc[0] for v in views if exam[v]]
            if values:
                scores[side].append(sum(values) / len(values))
                labels[side].append(exam["cancer_label"]["left_malignant" if side == "L" else "right_malignant"])
    statistics(labels["L"] + labels["R"], scores["L"] + scores["R"], "breast")
    statistics(frame["malignant_label"].tolist(), frame["malignant_pred"].tolist(), "image")
''')


def synthetic_study(directory: Path, n_exams: int = 720, seed: int = 0) -> tuple[Path, Path]:
    """An exam list and an image-level prediction CSV like a screening cohort (about 4% malignant)."""
    rng = np.random.default_rng(seed)
    exams, rows = [], []
    for i in range(n_exams):
        labels = {"left_malignant": int(rng.random() < 0.042), "right_malignant": int(rng.random() < 0.042),
                  "left_benign": 0, "right_benign": 0}
        exams.append(Exam(images={v: [f"{i}_{v}"] for v in VIEWS}, cancer_label=labels))
        for v in VIEWS:
            y = labels["left_malignant" if v[0] == "L" else "right_malignant"]
            rows.append((f"{i}_{v}", round(float(1 / (1 + np.exp(-(rng.normal() + 1.5 * y - 2)))), 4), y))
    exam_path = directory / "exams.pkl"
    save_exam_list(exams, exam_path)
    csv_path = directory / "predictions.csv"
    pd.DataFrame(rows, columns=["image_index", "malignant_pred", "malignant_label"]).to_csv(csv_path, index=False)
    return exam_path, csv_path


def naive_bootstrap(y: np.ndarray, s: np.ndarray, n_replicates: int, seed: int) -> float:
    """Seconds for the sklearn loop over n_replicates resamples."""
    from sklearn import metrics
    from sklearn.utils import resample

    rng = np.random.RandomState(seed)
    start = time.perf_counter()
    for _ in range(n_replicates):
        idx = resample(np.arange(y.size), replace=True, n_samples=y.size, random_state=rng)
        if y[idx].min() == y[idx].max():
            continue
        metrics.roc_auc_score(y[idx], s[idx])
        p, r, _ = metrics.precision_recall_curve(y[idx], s[idx])
        metrics.auc(r, p)
    return time.perf_counter() - start


def run_process(arguments: list[str]) -> float:
    start = time.perf_counter()
    subprocess.run(arguments, check=True, stdout=subprocess.DEVNULL, env={**os.environ, "MPLBACKEND": "Agg"})
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--replicates", type=int, default=2000)
    parser.add_argument("--cases", type=int, default=1440)
    parser.add_argument("--quick", action="store_true", help="time the naive bootstrap on 200 replicates and scale")
    parser.add_argument("--skip-end-to-end", action="store_true")
    args = parser.parse_args()

    rng = np.random.default_rng(1)
    y = (rng.random(args.cases) < 0.042).astype(np.int8)
    y[:2] = [0, 1]
    s = np.round(1 / (1 + np.exp(-(rng.normal(size=args.cases) + 1.5 * y - 2))), 4)
    results: dict = {"machine": {"python": platform.python_version(), "cpus": os.cpu_count(),
                                 "load_average": os.getloadavg()}}

    fast = best_of(3, lambda: bootstrap_metrics(y, s, args.replicates, random_state=0))
    naive_n = 200 if args.quick else args.replicates
    naive = naive_bootstrap(y, s, naive_n, 0) * args.replicates / naive_n
    results["bootstrap"] = {"cases": args.cases, "replicates": args.replicates, "vectorised_s": fast,
                            "naive_sklearn_s": naive, "naive_extrapolated_from": naive_n, "ratio": naive / fast}
    print(f"bootstrap, {args.replicates} replicates x {args.cases} cases (AUROC + AUPRC):")
    print(f"  vectorised {fast:.3f} s, naive sklearn loop {naive:.2f} s"
          + (f" (timed on {naive_n}, scaled)" if naive_n != args.replicates else "")
          + f"  ->  {naive / fast:.0f}x faster")

    large = best_of(1, lambda: bootstrap_metrics(y, s, 20000, random_state=0))
    results["bootstrap_20000"] = {"vectorised_s": large}
    print(f"  20000 replicates: {large:.2f} s (memory stays bounded: blocks of about 2**20 counts)")

    if not args.skip_end_to_end:
        with tempfile.TemporaryDirectory() as tmp:
            tmp = Path(tmp)
            exam_path, csv_path = synthetic_study(tmp)
            script = tmp / "naive_score.py"
            script.write_text(NAIVE_SCRIPT)
            (tmp / "naive_out").mkdir()
            ours = min(run_process([sys.executable, "-m", "mammoscreen", "evaluate", "--predictions", str(csv_path),
                                    "--exam-list", str(exam_path), "--output-dir", str(tmp / "out"),
                                    "--bootstrap", str(args.replicates)]) for _ in range(2))
            theirs = run_process([sys.executable, str(script), str(exam_path), str(csv_path), str(tmp / "naive_out"),
                                  str(args.replicates)])
        results["end_to_end"] = {"exams": 720, "images": 2880, "breasts": 1440, "replicates": args.replicates,
                                 "mammoscreen_evaluate_s": ours, "naive_script_s": theirs, "ratio": theirs / ours}
        print(f"end to end, 720 exams (2880 images, 1440 breasts), {args.replicates} replicates, both levels:")
        print(f"  mammoscreen evaluate {ours:.2f} s (PNG + SVG plots, metrics.json), score.py-style script "
              f"{theirs:.2f} s  ->  {theirs / ours:.1f}x faster")

    print(f"(load average during the run: {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs)")
    out = REPO / "benchmarks" / "results"
    out.mkdir(parents=True, exist_ok=True)
    (out / "bench_evaluate.json").write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
