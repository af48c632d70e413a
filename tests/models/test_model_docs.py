"""Every model's input description is a rendering of its typed preprocessing record, and the docs and
``mammoscreen models`` show exactly that rendering (no hand-written description anywhere)."""

from __future__ import annotations

import dataclasses
import re

from testutils import REPO_ROOT

from mammoscreen.cli import main
from mammoscreen.cli.models import inputs_markdown
from mammoscreen.models.preprocessing import Preprocessing
from mammoscreen.models.registry import ModelSpec, list_models

DOCS = REPO_ROOT / "docs" / "models"
BEGIN, END = "<!-- generated from the preprocessing records: begin -->", \
    "<!-- generated from the preprocessing records: end -->"


def test_no_model_has_a_hand_written_description():
    assert "input_description" not in {f.name for f in dataclasses.fields(ModelSpec)}
    for spec in list_models():
        assert isinstance(spec.preprocessing, Preprocessing), spec.name
        assert spec.input_description == spec.preprocessing.describe()


def test_the_docs_table_is_the_records_rendering():
    text = (DOCS / "inputs.md").read_text()
    generated = text[text.index(BEGIN) + len(BEGIN):text.index(END)].strip("\n") + "\n"
    assert generated == inputs_markdown(), ("docs/models/inputs.md is out of date with the preprocessing records; "
                                            "regenerate it as that page says")
    for spec in list_models():
        assert f"| `{spec.name}` | {spec.preprocessing.describe()} |" in generated


def test_each_model_page_with_an_input_row_shows_the_rendering():
    checked = 0
    for spec in list_models():
        page = DOCS / f"{spec.name}.md"
        if not page.is_file():
            continue
        rows = [line for line in page.read_text().splitlines() if line.startswith("| input |")]
        for row in rows:
            assert spec.preprocessing.describe() in row, f"{page.name}: {row}"
            checked += 1
    assert checked >= 2  # end2end and frcnn_cad


def test_mammoscreen_models_prints_the_rendering(capsys):
    assert main(["models"]) == 0
    out = re.sub(r"\s+", " ", capsys.readouterr().out)
    for spec in list_models():
        assert f"input: {spec.preprocessing.describe()} output:" in out, spec.name


def test_the_rendering_follows_the_typed_fields():
    # the published settings, stated here from the papers' code: py-faster-rcnn's TEST.SCALES 1700 and
    # TEST.MAX_SIZE 2100 in the frcnn_cad config; end2end's 1152x896 input and 255/65535 scale
    specs = {spec.name: spec.preprocessing for spec in list_models()}
    assert "short side is 1700 px or the long side at most 2100 px" in specs["frcnn_cad"].describe()
    assert "resized to 896x1152 (Lanczos, aspect ratio ignored)" in specs["end2end"].describe()
    assert specs["nyu_model"].describe().startswith("all four views of an exam: cropped 16-bit PNG")
    assert specs["nyu_model_single"].describe().startswith("one image at a time: ")
    changed = dataclasses.replace(specs["end2end"], resize=(100, 60), keep_aspect=True, mean=18.01)
    assert "resized to 60x100 (Lanczos)," in changed.describe() and "(18.01 by default)" in changed.describe()
    plain = Preprocessing(source="original")
    assert plain.describe() == "original 16-bit PNG" and not plain.crop
    assert Preprocessing(windows={"CC": (8, 4), "MLO": (9, 4)}, flip="face right").describe() == \
        "cropped 16-bit PNG, breast mirrored to face right, a window of CC 8x4 / MLO 9x4 around best_center"
