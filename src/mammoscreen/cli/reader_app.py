"""``mammoscreen reader-app``: create, staff, serve, export and analyse a reader study (optional extra ``app``)."""

from __future__ import annotations

import argparse
import contextlib
import functools
import sys
from pathlib import Path
from typing import Any, Callable, Iterator

from . import UserError

APP_MODULES = ("starlette", "uvicorn", "sqlalchemy", "alembic", "argon2", "jinja2")


def _needs_app_extra(handler: Callable[[argparse.Namespace], int]) -> Callable[[argparse.Namespace], int]:
    """One-line errors for a missing extra and for bad study input."""

    @functools.wraps(handler)
    def wrapped(args: argparse.Namespace) -> int:
        import importlib.util

        missing = [m for m in APP_MODULES if importlib.util.find_spec(m) is None]
        if missing:
            raise UserError(f"the reader app needs the 'app' extra ({', '.join(missing)} missing): "
                            "pip install 'mammoscreen[app]'")
        from ..app.errors import StudyError

        try:
            return handler(args)
        except StudyError as e:
            raise UserError(str(e)) from None

    return wrapped


def _study_action(sub: argparse._SubParsersAction, name: str, handler: Callable[[argparse.Namespace], int],
                  help: str) -> argparse.ArgumentParser:
    """An action on an existing study: its STUDY_DIR and --database-url (for a study in an external database)."""
    p = sub.add_parser(name, help=help)
    p.add_argument("study_dir", type=Path, metavar="STUDY_DIR")
    p.add_argument("--database-url", help="for a study in an external database")
    p.set_defaults(handler=handler)
    return p


@contextlib.contextmanager
def _opened_study(args: argparse.Namespace) -> Iterator[Any]:
    """The study of STUDY_DIR (and --database-url), closed afterwards."""
    from ..app.study import open_study

    study = open_study(args.study_dir, args.database_url)
    try:
        yield study
    finally:
        study.close()


def _days(text: str) -> float:
    value = float(text)
    if not 0 <= value <= 3650:
        raise argparse.ArgumentTypeError(f"must be between 0 and 3650 days, got {text}")
    return value


def _port(text: str) -> int:
    value = int(text)
    if not 1 <= value <= 65535:
        raise argparse.ArgumentTypeError(f"must be a TCP port (1-65535), got {text}")
    return value


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "reader-app", help="reader-study web application: radiologists read with and without the AI (extra 'app')",
        description="Run a reader study: create it from 16-bit PNGs, an exam list and optionally a 'mammoscreen run' "
                    "output (the AI arm), add readers, serve the reading web application, export the answers and run "
                    "the MRMC analysis. Needs: pip install 'mammoscreen[app]'. See docs/reader_study_app.md.")
    sub = p.add_subparsers(dest="action", metavar="ACTION")
    sub.required = True

    c = sub.add_parser("create-study", help="create a study directory and its database",
                       description="Create a reader study. Every image is checked (and its SHA-256 recorded); with "
                                   "--ai-run the aided modality shows the model's per-breast probability and its "
                                   "saliency maps (run with --save-maps) as an overlay.")
    c.add_argument("study_dir", type=Path, metavar="STUDY_DIR", help="a new directory for the study")
    c.add_argument("--images", required=True, type=Path, help="directory of the 16-bit PNGs")
    c.add_argument("--exam-list", required=True, type=Path, help="exam list (.pkl or .json) with cancer_label")
    c.add_argument("--ai-run", type=Path, help="output directory of 'mammoscreen run' on the same exam list")
    c.add_argument("--ai-model", help="the model of --ai-run to show (default: its only model)")
    c.add_argument("--design", choices=("independent", "sequential"), default="independent",
                   help="independent: one session per modality with a wash-out between; sequential: unaided, then "
                        "the AI is revealed and the reader may revise (default: %(default)s)")
    c.add_argument("--modalities", nargs="+", choices=("unaided", "aided"),
                   help="default: unaided aided with --ai-run, else unaided")
    c.add_argument("--washout-days", type=_days, default=28.0,
                   help="independent design: days between finishing one session and starting the next (default: "
                        "%(default)s)")
    c.add_argument("--training", type=int, default=0, metavar="N",
                   help="exams used as training cases: read first, excluded from analysis (default: 0)")
    c.add_argument("--seed", type=int, help="seed of the case orders (default: random, recorded)")
    c.add_argument("--layout", choices=("four-view", "single"), default="four-view",
                   help="hanging at the start of each case (default: %(default)s)")
    c.add_argument("--no-lesion-marks", action="store_true", help="do not let readers mark lesion locations")
    c.add_argument("--name", help="the study's title (default: the directory name)")
    c.add_argument("--database-url", help="SQLAlchemy URL of an external database (e.g. postgresql+psycopg://...); "
                                          "default: SQLite in STUDY_DIR")
    c.set_defaults(handler=run_create_study)

    a = _study_action(sub, "add-reader", run_add_reader, "add a reader; prints the one-time password on its last line")
    a.add_argument("name", metavar="NAME",
                   help="letters, digits, '_', '.', '-' (it becomes the reader's ID in exports)")
    a.add_argument("--admin", action="store_true", help="an administrator (progress page, exports) instead of a reader")

    r = _study_action(sub, "reset-password", run_reset_password,
                      "a new one-time password for a reader (printed on the last line)")
    r.add_argument("name", metavar="NAME")

    s = _study_action(sub, "serve", run_serve, "serve the study (127.0.0.1:8000 by default)")
    s.add_argument("--host", default="127.0.0.1", help="address to bind (default: %(default)s; anything else "
                                                       "belongs behind a TLS reverse proxy)")
    s.add_argument("--port", type=_port, default=8000, help="default: %(default)s")
    s.add_argument("--proxy", action="store_true", help="behind a reverse proxy on this machine: trust its "
                                                        "X-Forwarded-Proto/-For headers")
    s.add_argument("--forwarded-allow-ips", default="127.0.0.1", help="with --proxy: the proxy's address(es)")

    e = _study_action(sub, "export", run_export, "export the answers: imrmc (for 'mammoscreen mrmc'), csv (every "
                                                 "answer), pkl (results.pkl layout)")
    e.add_argument("--format", required=True, choices=("imrmc", "csv", "pkl"))
    e.add_argument("--output", required=True, type=Path, help="file to write")
    e.add_argument("--modality", help="pkl: which modality's scores (default: the first)")

    n = _study_action(sub, "analyse", run_analyse,
                      "OR/Hillis MRMC: unaided vs aided, each vs the AI alone; the report section")
    n.add_argument("--output-dir", type=Path, help="default: STUDY_DIR/analysis")
    n.add_argument("--covariance", choices=("jackknife", "delong"), default="jackknife")
    n.add_argument("--bootstrap", type=int, default=2000, metavar="N", help="replicates of the per-reader CIs")


@_needs_app_extra
def run_create_study(args: argparse.Namespace) -> int:
    from ..app.study import create_study

    study = create_study(args.study_dir, args.images, args.exam_list, ai_run=args.ai_run, ai_model=args.ai_model,
                         design=args.design, modalities=args.modalities, washout_days=args.washout_days,
                         seed=args.seed, training=args.training, layout=args.layout,
                         lesion_marks=not args.no_lesion_marks, name=args.name, database_url=args.database_url,
                         command=args.command_line)
    study.close()
    print(f"Study created: {args.study_dir}. Next: mammoscreen reader-app add-reader {args.study_dir} NAME")
    return 0


@_needs_app_extra
def run_add_reader(args: argparse.Namespace) -> int:
    from ..app.study import add_reader

    with _opened_study(args) as study:
        password = add_reader(study, args.name, "admin" if args.admin else "reader")
    print(f"{'Administrator' if args.admin else 'Reader'} {args.name} added. One-time password (they choose their own "
          "at the first login):")
    print(password)
    return 0


@_needs_app_extra
def run_reset_password(args: argparse.Namespace) -> int:
    from ..app.study import reset_password

    with _opened_study(args) as study:
        password = reset_password(study, args.name)
    print(f"New one-time password for {args.name}:")
    print(password)
    return 0


@_needs_app_extra
def run_serve(args: argparse.Namespace) -> int:
    from ..app.serve import serve

    serve(str(args.study_dir), args.host, args.port, database_url=args.database_url, proxy=args.proxy,
          forwarded_allow_ips=args.forwarded_allow_ips)
    return 0


@_needs_app_extra
def run_export(args: argparse.Namespace) -> int:
    from ..app import audit
    from ..app.export import export_study

    with _opened_study(args) as study:
        notes = export_study(study.db, args.format, args.output, args.modality)
        with study.db.write() as s:
            audit.record(s, "cli", "export", {"format": args.format, "output": str(args.output),
                                              "modality": args.modality, "notes": notes})
    for note in notes:
        print(f"note: {note}", file=sys.stderr)
    print(f"Wrote {args.output}")
    return 0


@_needs_app_extra
def run_analyse(args: argparse.Namespace) -> int:
    from ..app.analyse import analyse_study

    with _opened_study(args) as study:
        result = analyse_study(study, args.output_dir, covariance=args.covariance, n_bootstrap=args.bootstrap)
    for note in result.notes:
        print(f"note: {note}", file=sys.stderr)
    sys.stdout.write(result.text)
    print(f"Wrote to {result.output_dir}: {', '.join(p.name for p in result.files if p.parent == result.output_dir)}")
    return 0
