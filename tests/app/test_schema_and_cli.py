"""The migrations build exactly the schema the code describes; the CLI's one-line errors and outputs."""

from __future__ import annotations

import json
import re

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import text

from mammoscreen.app.db import Base, Database, head_revision
from mammoscreen.app.errors import StudyError
from mammoscreen.app.study import open_study
from mammoscreen.cli import main

from conftest import ReaderClient


def test_migrations_build_the_models_schema(tmp_path):
    db = Database(f"sqlite:///{tmp_path / 'x.sqlite'}")
    db.upgrade()
    assert db.revision() == head_revision()
    with db.engine.connect() as connection:
        assert compare_metadata(MigrationContext.configure(connection), Base.metadata) == []
        assert connection.execute(text("PRAGMA journal_mode")).scalar() == "wal"
        assert connection.execute(text("PRAGMA synchronous")).scalar() == 2  # FULL
        assert connection.execute(text("PRAGMA foreign_keys")).scalar() == 1
    db.upgrade()  # idempotent
    db.dispose()


def test_a_newer_schema_is_refused(make_study):
    handle = make_study()
    with handle.db.write() as s:
        s.execute(text("UPDATE alembic_version SET version_num = '9999'"))
    handle.close()
    with pytest.raises(StudyError, match="newer than this mammoscreen"):
        open_study(handle.directory)


def test_cli_create_add_reader_and_errors(tmp_path, study_inputs, capsys, serve_study):
    study = tmp_path / "cli_study"
    args = ["reader-app", "create-study", str(study), "--images", str(study_inputs["images"]), "--exam-list",
            str(study_inputs["exam_list"]), "--ai-run", str(study_inputs["run"]), "--design", "sequential",
            "--training", "1", "--seed", "42"]
    assert main(args) == 0
    assert "Study created" in capsys.readouterr().out
    assert json.loads((study / "study.json").read_text())["database"] == "sqlite"
    # the same directory again: one line, no traceback
    assert main(args) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "not an empty directory" in err[0]
    assert main(["reader-app", "add-reader", str(study), "dr_a"]) == 0
    password = capsys.readouterr().out.strip().splitlines()[-1]
    assert re.fullmatch(r"[A-Za-z0-9]{5}(-[A-Za-z0-9]{5}){3}", password)
    assert main(["reader-app", "add-reader", str(study), "DR_A"]) == 2
    assert "already exists" in capsys.readouterr().err
    assert main(["reader-app", "add-reader", str(study), "bad,name"]) == 2
    assert "not allowed" in capsys.readouterr().err
    # the printed one-time password logs in
    handle = open_study(study)
    server = serve_study(handle)
    client = ReaderClient(server.url)
    assert client.login("dr_a", password).headers["location"] == "/password"
    client.close()
    settings = handle.settings()
    assert (settings.design, settings.seed, settings.modalities) == ("sequential", 42, ["unaided", "aided"])


@pytest.mark.parametrize("change, message", [
    (["--images", "/nonexistent"], "not a directory"),
    (["--exam-list", "/nonexistent.pkl"], "not found"),
    (["--design", "sequential", "--modalities", "unaided"], "sequential design needs both"),
    (["--modalities", "unaided", "aided", "--no-ai"], "needs the AI's outputs"),
    (["--training", "5"], "--training must be between"),
    (["--ai-model", "nyu_glam"], "no nyu_glam/predictions.csv"),
])
def test_cli_create_study_bad_input_is_one_line(tmp_path, study_inputs, capsys, change, message):
    args = {"--images": str(study_inputs["images"]), "--exam-list": str(study_inputs["exam_list"]),
            "--ai-run": str(study_inputs["run"])}
    extra = []
    for i, item in enumerate(change):
        if item in args and i + 1 < len(change):
            args[item] = change[i + 1]
        elif item == "--no-ai":
            args.pop("--ai-run")
        elif not (i > 0 and change[i - 1] in args):
            extra.append(item)
    argv = ["reader-app", "create-study", str(tmp_path / "s")] + [x for k, v in args.items() for x in (k, v)] + extra
    assert main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and message in err[0], err
    assert not (tmp_path / "s").exists()


def test_unlabelled_exam_list_is_refused(tmp_path, study_inputs, capsys):
    from mammoscreen.data.exams import load_exam_list, save_exam_list

    exams = load_exam_list(study_inputs["exam_list"])
    exams[2].cancer_label = None
    bad = tmp_path / "unlabelled.pkl"
    save_exam_list(exams, bad)
    assert main(["reader-app", "create-study", str(tmp_path / "s"), "--images", str(study_inputs["images"]),
                 "--exam-list", str(bad)]) == 2
    assert "exam 2 has no left_malignant label" in capsys.readouterr().err
