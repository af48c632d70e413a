"""The reader application's one error type for bad input (printed as one line by the CLI)."""

from __future__ import annotations


class StudyError(ValueError):
    """A problem with a study's inputs or state that the user can fix; the message says how."""
