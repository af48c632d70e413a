"""Helpers of the stage-state and fault-injection tests: small copies of the synthetic data, altered demo
weights, and a comparison of two output directories (import as ``from stageutils import ...``)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from mammoscreen.data.exams import exams_to_data, iter_images, load_exam_list, save_exam_list


def small_dataset(synthetic: Path, root: Path, exams=(0,)) -> tuple[Path, Path]:
    """(images dir, exam list) holding copies of the chosen exams of the synthetic dataset fixture."""
    chosen = [load_exam_list(synthetic / "exam_list.pkl")[i] for i in exams]
    images = root / "images"
    images.mkdir(parents=True)
    for record in iter_images(chosen):
        shutil.copy(synthetic / "images" / f"{record.name}.png", images / f"{record.name}.png")
    return images, save_exam_list(chosen, root / "exam_list.pkl")


def demo_checkpoint(directory: Path, name: str, change) -> Path:
    """A copy of the bundled demo weights (and the model card that is its sidecar) with ``change`` applied to
    the state dict."""
    import torch

    from mammoscreen.models.gmic_demo import DEMO_WEIGHTS
    from mammoscreen.models.weights import PRETRAINED_DIR

    directory.mkdir(parents=True, exist_ok=True)
    state = torch.load(PRETRAINED_DIR / DEMO_WEIGHTS, map_location="cpu", weights_only=True)
    change(state)
    path = directory / f"{name}.pt"
    torch.save(state, path)
    shutil.copy(PRETRAINED_DIR / DEMO_WEIGHTS.replace(".pt", ".json"), directory / f"{name}.json")
    return path


# What may differ between an interrupted-and-resumed run and an uninterrupted one:
# - the lock file (it holds the PID and command of the last process that took it);
# - in journals, each file's metadata (size, times, inode: the files were written at other moments) - the
#   results, the item parameters and the content hashes of every input and output are compared;
# - in run_summary.json, the time the run finished and how many images this invocation reused or computed.
VOLATILE_NOTE = ("lock file; journals' file metadata; run_summary.json 'finished' and the per-invocation counts "
                 "'n_reused', 'reused', 'computed'")


def _journal_results(text: str) -> dict:
    lines = [json.loads(line) for line in text.splitlines()]
    entries = {}
    for line in lines[1:]:
        value = dict(line["value"])
        value["inputs"] = [s and s["sha256"] for s in value.get("inputs", [])]
        value["outputs"] = {k: s and s["sha256"] for k, s in value.get("outputs", {}).items()}
        entries[line["key"]] = value
    return {"fingerprint": lines[0]["fingerprint"], "entries": entries}


def output_tree(out: Path) -> dict[str, object]:
    """Every file under ``out`` by relative path: its bytes, or for the files listed in VOLATILE_NOTE what
    must be equal in them."""
    tree: dict[str, object] = {}
    for path in sorted(p for p in out.rglob("*") if p.is_file()):
        name = str(path.relative_to(out))
        if path.name == ".mammoscreen.lock":
            continue
        if path.name.endswith("journal.jsonl"):
            tree[name] = _journal_results(path.read_text())
        elif path.name == "run_summary.json":
            summary = json.loads(path.read_text())
            summary["run"].pop("finished", None)
            for stage in summary["run"].get("stages", {}).values():
                stage.pop("reused", None)
                stage.pop("computed", None)
            for model in summary["models"]:
                model.pop("n_reused", None)
            tree[name] = summary
        else:
            tree[name] = path.read_bytes()
    return tree


def differences(expected: dict[str, object], found: dict[str, object]) -> list[str]:
    """Files missing, extra or different between two :func:`output_tree` results."""
    return sorted(f"{'missing' if k not in found else 'extra' if k not in expected else 'different'}: {k}"
                  for k in set(expected) | set(found) if expected.get(k) != found.get(k))


def exam_list_data(path: Path) -> list[dict]:
    return exams_to_data(load_exam_list(path))
