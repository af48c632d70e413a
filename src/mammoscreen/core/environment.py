"""What software produced a result: recorded in run summaries and shown in reports."""

from __future__ import annotations

import platform
import sys
from datetime import datetime, timezone
from typing import Any


def software_versions() -> dict[str, Any]:
    """Versions of mammoscreen, Python, PyTorch and NumPy, and the platform (torch: None if absent)."""
    import numpy

    from .. import __version__

    try:
        import torch

        torch_version: str | None = torch.__version__
    except ImportError:  # the report can be built where torch is not installed
        torch_version = None
    return {"mammoscreen": __version__, "python": platform.python_version(), "torch": torch_version,
            "numpy": numpy.__version__, "platform": platform.platform(), "executable": sys.executable}


def utc_timestamp() -> str:
    """The current time, ISO 8601 in UTC to the second (e.g. '2026-12-04T12:58:03Z')."""
    return datetime.now(timezone.utc).replace(microsecond=0).isoformat().replace("+00:00", "Z")
