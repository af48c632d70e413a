"""The append-only audit trail: every answer, login and administrative action, with who, when and from where."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy.orm import Session

from .db import Audit, utcnow


def record(session: Session, actor: str, action: str, detail: dict[str, Any], *, ip: str | None = None,
           now: datetime | None = None) -> None:
    """Add one audit row in the caller's transaction (so it commits, or not, with what it describes)."""
    session.add(Audit(at=now or utcnow(), actor=actor[:80], action=action[:40], detail=detail, ip=ip))
