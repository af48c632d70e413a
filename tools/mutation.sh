#!/usr/bin/env bash
# Mutation testing (mutmut 3) of the modules whose mistakes would be silent. Slow, so not part of CI.
#
#   tools/mutation.sh [--jobs N] [--keep | --rerun] [NAME ...]     (default: every module in the table below)
#
# --keep resumes a partial run in its scratch copy. --rerun refreshes the copy's tests/ from the repository and runs
# the last run's survivors again (after measuring afresh which functions each test reaches): the way to check tests
# written against survivors.diff without a full run.
#
# Each module is mutated alone, in a scratch copy of src/, tests/ and pyproject.toml under .mutation/NAME/,
# and each mutant runs only the module's test files below (mutmut narrows that further to the tests that
# reach the mutated function). The base settings are [tool.mutmut] in pyproject.toml. Results:
#   .mutation/NAME/summary.json     mutmut's counts (killed, survived, timeout, ...)
#   .mutation/NAME/survivors.diff   every surviving mutant as a diff, to kill or to list as equivalent
#   .mutation/scores.tsv            one line per module: killed, survived, equivalent, total, score
# Score = (killed + timeout) / (total - equivalent); equivalent mutants (tools/mutation-equivalent.txt,
# one "mutant-name  reason" a line) cannot be killed by any test. Needs: pip install -e ".[mutation]".
set -euo pipefail
cd "$(dirname "$0")/.."

# NAME | file under src/mammoscreen | test files [| mutant-name globs] (the one place to edit when modules move). The
# optional globs (mutmut's names, fnmatch) restrict a module to the functions in scope; the score then counts only
# those mutants (gmic: the forward pieces; loop: everything but plot_curves, the curves figure). The hypothesis fuzz
# tests (tests/fuzz) run hundreds of examples per test, which every surviving mutant pays: only safepickle lists
# one (it measures the loader they target); CI runs them all.
MODULES=$(cat <<'EOF'
metrics    | evaluate/metrics.py   | tests/evaluate/test_eval_metrics.py
ranking    | evaluate/_ranking.py  | tests/evaluate/test_eval_metrics.py tests/evaluate/test_eval_bootstrap.py tests/evaluate/test_eval_compare.py
bootstrap  | evaluate/bootstrap.py | tests/evaluate/test_eval_bootstrap.py tests/evaluate/test_eval_bootstrap_api.py
compare    | evaluate/compare.py   | tests/evaluate/test_eval_compare.py tests/evaluate/test_eval_compare_api.py
delong     | evaluate/delong.py    | tests/evaluate/test_eval_delong.py tests/evaluate/test_eval_subgroups.py
mrmc_cov   | evaluate/mrmc/covariance.py | tests/evaluate/test_eval_mrmc.py
mrmc       | evaluate/mrmc/or_hillis.py  | tests/evaluate/test_eval_mrmc.py
mrmc_ai    | evaluate/mrmc/ai_readers.py | tests/evaluate/test_eval_mrmc.py
gmic       | models/gmic/modeling.py | tests/models/gmic/test_gmic.py | *xǁGMICǁattention* *xǁGMICǁforward* *xǁGMICǁlocal_forward* *xǁGMICǁglobal_forward* *xǁSaliencyHeadǁforward*
roi_patches | models/layers/roi_patches.py | tests/models/gmic/test_gmic.py
losses     | train/losses.py       | tests/train/test_losses_and_labels.py
loop       | train/loop.py         | tests/train/test_loop.py | mammoscreen.train.loop.x_[!p]* mammoscreen.train.loop.xǁ*
crop       | preprocess/crop.py    | tests/preprocess/test_crop.py tests/preprocess/test_crop_points.py
centers    | preprocess/centers.py | tests/preprocess/test_centers.py tests/preprocess/test_centers_stage.py
windows    | preprocess/windows.py | tests/preprocess/test_windows.py tests/preprocess/test_windows_geometry.py
localize_geo | explain/localize/geometry.py | tests/explain/test_localize.py tests/explain/test_localize_glam.py tests/explain/test_localize_mask_frames.py
localize   | explain/localize/metrics.py | tests/explain/test_localize.py tests/explain/test_localize_glam.py tests/explain/test_localize_mask_frames.py
exams      | data/exams.py         | tests/data/test_exams.py tests/data/test_exams_validation.py tests/data/test_exam_metadata.py
safepickle | core/safepickle.py    | tests/core/test_safepickle.py tests/core/test_safepickle_callables.py tests/fuzz/test_fuzz_pickles.py tests/data/test_exams.py
picklescan | core/pickle_scan.py   | tests/core/test_pickle_scan.py tests/core/test_safepickle.py tests/core/test_safepickle_callables.py tests/data/test_exams.py
EOF
)

jobs=2
keep=0
rerun=0
names=()
while [ $# -gt 0 ]; do
    case "$1" in
        --jobs) jobs="$2"; shift 2 ;;
        --keep) keep=1; shift ;;
        --rerun) rerun=1; shift ;;
        -h|--help) sed -n '2,18p' "$0"; exit 0 ;;
        *) names+=("$1"); shift ;;
    esac
done
command -v mutmut >/dev/null || { echo "mutmut not found: pip install -e '.[mutation]'" >&2; exit 2; }
known=$(echo "$MODULES" | cut -d'|' -f1 | xargs)
for name in "${names[@]}"; do  # a mistyped name would otherwise run nothing and only print the old scores
    [[ " $known " == *" $name "* ]] || { echo "unknown module '$name'; the modules: $known" >&2; exit 2; }
done

root=$(pwd)
work="$root/.mutation"
mkdir -p "$work"
# One thread per mutant: --jobs runs several at once, and a small model is several times slower when its threads
# wait for cores that other processes hold (the training-loop tests: 10 s with one thread, 35-130 s with two on a
# busy machine).
export OMP_NUM_THREADS="${OMP_NUM_THREADS:-1}"
export MAMMOSCREEN_REFERENCE_DIR="${MAMMOSCREEN_REFERENCE_DIR:-$(cd "$root/.." && pwd)/shared/reference}"
# the evaluation tests find ../shared from their own path, which in the scratch copy is not beside the repository
export MAMMOSCREEN_SHARED_DIR="${MAMMOSCREEN_SHARED_DIR:-$(cd "$root/.." && pwd)/shared}"
[ -f "$work/scores.tsv" ] || printf 'module\tfile\tkilled\tsurvived\tequivalent\ttotal\tscore\n' > "$work/scores.tsv"

run_module() {  # name file globs tests...
    local name=$1 file=$2 globs=$3; shift 3
    local dir="$work/$name"
    [ -f "src/mammoscreen/$file" ] || { echo "$name: src/mammoscreen/$file not found (moved? edit MODULES)" >&2; return 1; }
    local tests=() t
    for t in "$@"; do
        if [ -f "$t" ]; then tests+=("$t"); else echo "$name: $t not found, left out" >&2; fi
    done
    [ ${#tests[@]} -gt 0 ] || { echo "$name: none of its test files exist" >&2; return 1; }
    set -- "${tests[@]}"
    local again=()
    if [ "$rerun" = 1 ]; then
        [ -s "$dir/survivors.txt" ] || { echo "$name: no survivors to run again in $dir" >&2; return 0; }
        cp -r tests "$dir/"
        find "$dir/tests" -name __pycache__ -prune -exec rm -rf {} +
        # mutmut re-measures which functions a test reaches only for tests it has not seen: start afresh, since
        # changed tests (or fixtures) may reach more than before
        rm -f "$dir/mutants/mutmut-stats.json"
        mapfile -t again < "$dir/survivors.txt"
    elif [ "$keep" = 0 ] || [ ! -d "$dir" ]; then
        rm -rf "$dir" && mkdir -p "$dir"
        cp -r src tests pyproject.toml "$dir/"
        find "$dir" -name __pycache__ -prune -exec rm -rf {} +
        # This module and its tests, in the copy's [tool.mutmut] (pyproject.toml holds the shared settings).
        python3 - "$dir/pyproject.toml" "src/mammoscreen/$file" "$@" <<'PY'
import json, sys
path, source, tests = sys.argv[1], sys.argv[2], sys.argv[3:]
text = open(path, encoding="utf-8").read()
extra = f"only_mutate = {json.dumps([source])}\npytest_add_cli_args_test_selection = {json.dumps(tests)}\n"
assert "\n[tool.mutmut]\n" in text, "pyproject.toml has no [tool.mutmut] table"
open(path, "w", encoding="utf-8").write(text.replace("\n[tool.mutmut]\n", "\n[tool.mutmut]\n" + extra, 1))
PY
    fi
    echo "== $name (src/mammoscreen/$file${globs:+, mutants $globs}; tests: $*)"
    local started=$SECONDS
    local selection=()
    read -r -a selection <<< "$globs"
    [ ${#again[@]} -eq 0 ] || selection=("${again[@]}")  # --rerun: only the last run's survivors
    (cd "$dir" && mutmut run --max-children "$jobs" "${selection[@]}" > run.log 2>&1) \
        || { echo "$name: mutmut failed, see $dir/run.log" >&2; return 1; }
    (cd "$dir" && mutmut export-cicd-stats > /dev/null && cp mutants/mutmut-cicd-stats.json summary.json)
    # Every mutant's status; with globs, only the selected mutants count (the others were never run).
    (cd "$dir" && mutmut results --all true 2>/dev/null | python3 -c '
import fnmatch, sys
globs = sys.argv[1].split()
for line in sys.stdin:
    mutant, _, status = line.strip().partition(": ")
    if status and (not globs or any(fnmatch.fnmatch(mutant, g) for g in globs)):
        print(mutant, status, sep="\t")' "$globs" > results.tsv)
    awk -F'\t' '$2 == "survived" {print $1}' "$dir/results.tsv" > "$dir/survivors.txt"
    : > "$dir/survivors.diff"
    while read -r mutant; do
        (cd "$dir" && mutmut show "$mutant" >> survivors.diff 2>&1) || true
    done < "$dir/survivors.txt"
    python3 - "$dir" "$name" "$file" "$((SECONDS - started))" "$root/tools/mutation-equivalent.txt" "$work/scores.tsv" <<'PY'
import json, pathlib, sys
directory, name, file, seconds, equivalent_file, scores = sys.argv[1:]
statuses = [line.split("\t")[1] for line in pathlib.Path(directory, "results.tsv").read_text().splitlines()]
stats = {"killed": statuses.count("killed"), "timeout": statuses.count("timeout"), "total": len(statuses)}
survivors = pathlib.Path(directory, "survivors.txt").read_text().split()
known = set()
if pathlib.Path(equivalent_file).is_file():
    known = {line.split()[0] for line in pathlib.Path(equivalent_file).read_text().splitlines()
             if line.strip() and not line.startswith("#")}
equivalent = [m for m in survivors if m in known]
detected = stats["killed"] + stats["timeout"]
total = stats["total"]
score = detected / max(total - len(equivalent), 1)
line = f"{name}\t{file}\t{detected}\t{len(survivors) - len(equivalent)}\t{len(equivalent)}\t{total}\t{score:.1%}"
rows = [r for r in pathlib.Path(scores).read_text().splitlines() if not r.startswith(name + "\t")]
pathlib.Path(scores).write_text("\n".join(rows + [line]) + "\n")
print(f"{name}: {detected} of {total} mutants killed, {len(survivors) - len(equivalent)} survive, "
      f"{len(equivalent)} equivalent -> {score:.1%} ({seconds} s); survivors: {directory}/survivors.diff")
PY
}

status=0
while IFS='|' read -r name file tests globs; do
    name=$(echo "$name" | xargs); file=$(echo "$file" | xargs); globs=$(echo "$globs" | xargs)
    [ -n "$name" ] || continue
    if [ ${#names[@]} -gt 0 ] && [[ ! " ${names[*]} " =~ " $name " ]]; then
        continue
    fi
    # shellcheck disable=SC2086 # the test list is split on purpose
    run_module "$name" "$file" "$globs" $tests || status=1
done <<< "$MODULES"
column -t -s $'\t' "$work/scores.tsv"
exit $status
