"""The self-contained HTML report of a run (``mammoscreen report RUN_DIR``)."""

from .collect import ReportInputError, collect_run
from .html import DEFAULT_MAX_GALLERY, REPORT_FILE, build_report, render_report

__all__ = ["build_report", "render_report", "collect_run", "ReportInputError", "DEFAULT_MAX_GALLERY", "REPORT_FILE"]
