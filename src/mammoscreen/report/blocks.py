"""The pieces a report section is made of, as plain data: the templates (``templates/blocks.html``) turn each
kind into HTML, escaping every value on the way. Python code builds blocks and never writes markup."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Sequence

__all__ = ["Code", "Hash", "Image", "TruthMissing", "Heading", "Note", "Table", "KeyValues", "Plots",
           "OutlineLegend", "GalleryItem", "Gallery", "Section", "Block"]


# ----------------------------------------------------------------------------------------------
# cell values (anything else in a cell is shown as text; None as '-')
# ----------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Code:
    """A path, command or name shown in a monospace ``<code>``."""

    text: Any


@dataclass(frozen=True)
class Hash:
    """A checksum, shown small and breakable."""

    text: Any


@dataclass(frozen=True)
class Image:
    """An embedded image: ``uri`` is a ``data:`` URI."""

    uri: str
    alt: str
    css: str = ""


@dataclass(frozen=True)
class TruthMissing:
    """In place of a ground-truth outline that could not be drawn: why."""

    text: str


# ----------------------------------------------------------------------------------------------
# blocks
# ----------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Heading:
    text: str
    level: int = 3
    id: str | None = None
    kind: str = field(default="heading", init=False)


@dataclass(frozen=True)
class Note:
    text: str
    kind: str = field(default="note", init=False)


@dataclass(frozen=True)
class Table:
    """Rows of cells; columns from ``numeric_from`` on are right-aligned numbers."""

    header: Sequence[Any]
    rows: Sequence[Sequence[Any]]
    numeric_from: int | None = None
    css: str = ""
    kind: str = field(default="table", init=False)


@dataclass(frozen=True)
class KeyValues:
    rows: Sequence[tuple[str, Any]]
    kind: str = field(default="key_values", init=False)


@dataclass(frozen=True)
class Plots:
    """Figures side by side: (image, caption) pairs."""

    items: Sequence[tuple[Image, str]]
    kind: str = field(default="plots", init=False)


@dataclass(frozen=True)
class OutlineLegend:
    """The colour key of the ground-truth outlines drawn next to the gallery figures."""

    kind: str = field(default="outline_legend", init=False)


@dataclass(frozen=True)
class GalleryItem:
    rank: int
    name: str
    malignant: Any  # the malignant score as the predictions file has it (None: unscored)
    thumbnail: Image
    truth: Image | TruthMissing | None  # the outlined mammogram beside the figure
    scores: Sequence[tuple[str, str]]  # (label, formatted score)
    truth_label: Sequence[str] | None  # lesion kinds of the image ([] no lesion, None unknown)
    localization: str | None = None


@dataclass(frozen=True)
class Gallery:
    items: Sequence[GalleryItem]
    kind: str = field(default="gallery", init=False)


Block = Heading | Note | Table | KeyValues | Plots | OutlineLegend | Gallery


@dataclass(frozen=True)
class Section:
    id: str
    title: str
    blocks: Sequence[Block]
