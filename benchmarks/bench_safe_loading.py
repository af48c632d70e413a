"""What the safe-loading layer costs: an exam list read with the restricted unpickler and its limits, against
plain ``pickle.loads`` (which would run code), in the same run.

    python benchmarks/bench_safe_loading.py [--exams 10000] [--repeats 3]

The exam list has every preprocessing key (crop windows, extreme points, centres) for four views per exam,
as a cropped and centred list of a large dataset would. Reported: seconds per load for each, the ratio, and
the share of its steps: the opcode scan (which also proves the data a tree within the limits, so that the
structure check is skipped) and the restricted load; and what the structure check would cost when the scan
cannot prove it (shared containers).
"""

from __future__ import annotations

import argparse
import pickle

import numpy as np
from _timing import best_of

from mammoscreen.core.safepickle import check_structure, safe_loads, tree_scan

VIEWS = ("L-CC", "R-CC", "L-MLO", "R-MLO")


def exam_list(n_exams: int, seed: int = 0) -> bytes:
    rng = np.random.default_rng(seed)

    def per_view(make):
        return {view: [make()] for view in VIEWS}

    exams = [{"horizontal_flip": "NO", **{view: [f"{i}_{view}"] for view in VIEWS},
              "cancer_label": {"left_benign": 0, "right_benign": 1, "left_malignant": 0, "right_malignant": 0,
                               "benign": 1, "malignant": 0, "unknown": 0},
              "window_location": per_view(lambda: tuple(int(v) for v in rng.integers(0, 3000, 4))),
              "rightmost_points": per_view(lambda: ((int(rng.integers(2000)), int(rng.integers(2000))), 1500)),
              "bottommost_points": per_view(lambda: (2800, (int(rng.integers(2000)), int(rng.integers(2000))))),
              "distance_from_starting_side": per_view(lambda: int(rng.integers(100))),
              "best_center": per_view(lambda: (int(rng.integers(3000)), int(rng.integers(2000))))}
             for i in range(n_exams)]
    return pickle.dumps(exams, protocol=4)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--exams", type=int, default=10_000)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    data = exam_list(args.exams)
    assert safe_loads(data) == pickle.loads(data)  # same result
    plain = best_of(args.repeats, lambda: pickle.loads(data))
    safe = best_of(args.repeats, lambda: safe_loads(data))
    scan = best_of(args.repeats, lambda: tree_scan(data))
    loaded = pickle.loads(data)
    check = best_of(args.repeats, lambda: check_structure(loaded))
    depth, elements = check_structure(loaded)
    print(f"exam list: {args.exams} exams, {len(data) / 1e6:.1f} MB, {elements:,} elements, depth {depth}; "
          f"the scan proves it a tree within the limits: {tree_scan(data)}")
    print(f"pickle.loads (unsafe)       {plain:.3f} s")
    print(f"safe_loads                  {safe:.3f} s  ({safe / plain:.1f}x): opcode scan {scan:.3f} s, restricted "
          f"load {max(safe - scan, 0):.3f} s")
    print(f"structure check (only for shared containers) {check:.3f} s")


if __name__ == "__main__":
    main()
