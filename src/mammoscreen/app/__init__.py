"""The reader-study web application: radiologists read exams with and without the AI; ``mammoscreen mrmc``
analyses their scores.

``pip install 'mammoscreen[app]'`` brings its dependencies (Starlette, uvicorn, SQLAlchemy, Alembic,
argon2-cffi, Jinja2). The pieces, each importable on its own:

* :func:`create_study`, :func:`open_study`, :func:`add_reader` (:mod:`.study`): the study directory and database;
* :func:`create_app` (:mod:`.web`): the ASGI application; :func:`serve` runs it under uvicorn;
* :func:`export_study` (:mod:`.export`): ``.imrmc``, ``results.pkl``-style table, CSV of every answer;
* :func:`analyse_study` (:mod:`.analyse`): the OR/Hillis MRMC comparison and the report section.

See ``docs/reader_study_app.md``.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "study": ("create_study", "open_study", "add_reader", "reset_password", "StudyHandle"),
    "web": ("create_app",),
    "serve": ("serve",),
    "export": ("export_study", "export_bytes"),
    "analyse": ("analyse_study",),
    "errors": ("StudyError",),
}
_MODULE_OF = {name: module for module, names in _EXPORTS.items() for name in names}
__all__ = sorted(_MODULE_OF)


def __getattr__(name: str) -> Any:
    module = _MODULE_OF.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f".{module}", __name__), name)
