"""Reading mammography DICOM: which objects to convert, which view they show, and their pixels.

The pixel pipeline (:func:`png_pixels`) is explicit and the same for every file:

1. stored values, decoded by pydicom (compressed transfer syntaxes through its optional plugins);
2. the Modality LUT (Rescale Slope/Intercept, or a Modality LUT Sequence), by pydicom;
3. the VOI policy: ``none`` (default — the published NYU models were trained on For Presentation
   pixel data as stored), ``window`` (Window Center/Width number ``voi_index``, with the VOI LUT
   Function), ``lut`` (VOI LUT Sequence item ``voi_index``) or ``minmax``;
4. MONOCHROME1 inversion over the fixed range ``2**bits - 1 - x``;
5. the meta-repository's bit-depth rescale to 16 bits, ``round(x * 65535 / (2**bits - 1))``.

``bits`` — the bit depth of the values entering steps 4 and 5 — is read from the file: Bits Stored,
widened if the Modality LUT maps the stored range beyond it, or the LUT's own bit depth with ``lut``.
It can be overridden. Every value used is recorded so each conversion can be audited.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pydicom
from pydicom.datadict import keyword_for_tag
from pydicom.dataelem import RawDataElement
from pydicom.dataset import Dataset
from pydicom.errors import InvalidDicomError
from pydicom.multival import MultiValue
from pydicom.sequence import Sequence as DicomSequence
from pydicom.pixels import apply_modality_lut, apply_voi

from . import metadata as meta
from ..core.limits import InputLimitError, check_pixels
from . import voi
from .dicom_write import MG_FOR_PRESENTATION, MG_FOR_PROCESSING

VOI_POLICIES = ("none", "window", "lut", "minmax")

BREAST_TOMOSYNTHESIS = "1.2.840.10008.5.1.4.1.1.13.1.3"
BREAST_PROJECTION_PRESENTATION = "1.2.840.10008.5.1.4.1.1.13.1.4"
BREAST_PROJECTION_PROCESSING = "1.2.840.10008.5.1.4.1.1.13.1.5"
MAMMOGRAPHY_IMAGE_CLASSES = (MG_FOR_PRESENTATION, MG_FOR_PROCESSING, BREAST_PROJECTION_PRESENTATION,
                             BREAST_PROJECTION_PROCESSING)

# View Code Sequence code values (SNOMED CT and the older SNOMED RT) -> view abbreviation (CID 4014).
VIEW_CODE_VALUES = {
    "399162004": "CC", "R-10242": "CC",
    "399368009": "MLO", "R-10226": "MLO",
    "399260004": "ML", "R-10224": "ML",
    "399352003": "LM", "R-10228": "LM",
    "399099002": "LMO", "R-10230": "LMO",
    "399196006": "XCCL", "R-1024A": "XCCL",
    "399101009": "XCCM", "R-1024B": "XCCM",
    "399188001": "FB", "R-10244": "FB",
}

DECODER_HINT = ("install the optional decoders: pip install 'mammoscreen[dicom]' "
                "(pylibjpeg with its libjpeg and openjpeg plugins)")


class DicomFileError(ValueError):
    """A DICOM file cannot be read or converted; the message names the file and what to do."""


@dataclass(frozen=True)
class AcceptPolicy:
    """Which DICOM objects besides 2-D For Presentation mammograms to convert."""

    for_processing: bool = False  # raw detector images: the NYU models never saw these
    synthesized_2d: bool = False  # 2-D images synthesised from tomosynthesis (breast projection)


@dataclass(frozen=True)
class PixelPolicy:
    """How stored pixel values become the 16-bit PNG values (see the module docstring)."""

    voi: str = "none"
    voi_index: int = 0
    bit_depth: int | None = None  # override the bit depth read from the file

    def __post_init__(self) -> None:
        if self.voi not in VOI_POLICIES:
            raise ValueError(f"VOI policy must be one of {', '.join(VOI_POLICIES)}; got {self.voi!r}")
        if self.voi_index < 0:
            raise ValueError(f"voi_index must be >= 0, got {self.voi_index}")
        if self.bit_depth is not None and not 1 <= self.bit_depth <= 16:
            raise ValueError(f"bit_depth must be from 1 to 16, got {self.bit_depth}")


def read_dicom(path: str | Path, pixels: bool = False) -> Dataset:
    """Read a DICOM file; raises :class:`DicomFileError` if it is not one, or is truncated.

    Without ``pixels`` large values (the pixel data) are not loaded, only noted as present. Files
    without the 128-byte preamble (older exports) are read too, provided they parse as DICOM and
    carry an SOP Class UID. pydicom stops quietly where a file ends; a file that ends inside a data
    element (the pixel data, typically) is reported as truncated rather than read as a shorter object.
    """
    path = Path(path)
    options: dict[str, Any] = {} if pixels else {"defer_size": "256 KB"}
    try:
        return _checked_read(path, options)
    except InvalidDicomError:
        pass
    except DicomFileError:
        raise
    except (OSError, EOFError) as e:
        raise DicomFileError(f"{path}: cannot read ({e})") from None
    except Exception as e:  # pydicom raises many kinds of errors on damaged files
        raise DicomFileError(f"{path}: damaged DICOM file ({type(e).__name__}: {e})") from None
    try:
        ds = _checked_read(path, {"force": True, **options})
        if "SOPClassUID" in ds:
            return ds
    except DicomFileError:
        raise
    except Exception:
        pass
    raise DicomFileError(f"{path}: not a DICOM file")


def _checked_read(path: Path, options: dict[str, Any]) -> Dataset:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        ds = pydicom.dcmread(path, **options)
        if any("end of file" in str(w.message).lower() for w in caught):
            raise DicomFileError(f"{path}: truncated DICOM file: it ends inside the encapsulated (compressed) pixel "
                                 "data; copy or download the file again")
        problem = _truncation(ds, path.stat().st_size)  # before parsing: it reads the raw elements' offsets
        if problem:
            raise DicomFileError(f"{path}: truncated DICOM file: {problem}; copy or download the file again")
        _parse_header(ds, path)
    return ds


def _parse_header(ds: Dataset, path: Path) -> None:
    """Convert every element now (pydicom parses lazily, so a damaged element - a wrong VR, a broken sequence -
    would otherwise raise wherever it is first read); large deferred values (the pixel data) stay unread."""
    for tag in list(ds.keys()):
        raw = ds.get_item(tag)
        if isinstance(raw, RawDataElement) and raw.value is None and raw.length:
            continue  # deferred: read when the pixels are asked for
        try:
            element = ds[tag]
            items = list(element.value) if element.VR == "SQ" else []
        except Exception as e:  # pydicom raises many kinds of errors on damaged values
            name = keyword_for_tag(tag) or "private element"
            message = str(e).splitlines()[0] if str(e) else type(e).__name__
            raise DicomFileError(f"{path}: damaged DICOM header: {name} ({tag.group:04X},{tag.element:04X}) cannot be "
                                 f"read ({message})") from None
        for item in items:
            if isinstance(item, Dataset):
                _parse_header(item, path)


def _truncation(ds: Dataset, size: int) -> str | None:
    """Why ``ds`` (just read from a file of ``size`` bytes) must be a truncated file, or None."""
    for tag in list(ds.keys()):
        raw = ds.get_item(tag)
        if not isinstance(raw, RawDataElement) or raw.length == 0xFFFFFFFF or raw.value_tell is None:
            continue
        end = raw.value_tell + raw.length
        if end > size:
            name = "Pixel Data" if tag == 0x7FE00010 else (keyword_for_tag(tag) or f"element {tag}")
            return f"{name} ({tag.group:04X},{tag.element:04X}) declares {raw.length} bytes but the file ends " \
                   f"{size - raw.value_tell} bytes into it"
    # A mammogram's header that stops before both Modality and the pixel data: the file was cut short.
    if _text(ds, "SOPClassUID") in MAMMOGRAPHY_IMAGE_CLASSES and "Modality" not in ds and not _has_pixels(ds):
        return "the header stops before Modality and the pixel data of a mammography image object"
    return None


def _has_pixels(ds: Dataset) -> bool:
    return "PixelData" in ds or "FloatPixelData" in ds or "DoubleFloatPixelData" in ds


def _text(ds: Dataset, keyword: str) -> str:
    try:
        value = ds.get(keyword)
    except Exception:  # a damaged value pydicom cannot convert: show the stored text
        raw = ds.get_item(keyword) if keyword in ds else None
        value = getattr(raw, "value", b"")
        return value.decode("latin-1", "replace").strip() if isinstance(value, bytes) else str(value).strip()
    if value is None:
        return ""
    if isinstance(value, MultiValue):
        return "\\".join(str(v) for v in value)
    return str(value).strip()


def _shown(ds: Dataset, keyword: str, limit: int = 24) -> str:
    """An attribute's value for a one-line message: 'missing', the short text, or a shortened repr of odd values."""
    if keyword not in ds:
        return "missing"
    try:
        value = ds.get(keyword)
    except Exception:
        value = None
    if isinstance(value, DicomSequence):
        return "(a sequence)"
    text = _text(ds, keyword)
    if not text:
        return "empty"
    if len(text) <= limit and text.isprintable():
        return text
    return repr(text[:limit]) + ("..." if len(text) > limit else "")


def laterality(ds: Dataset) -> str | None:
    """'L' or 'R' from Image Laterality (0020,0062), else Laterality (0020,0060); None if neither says."""
    for keyword in ("ImageLaterality", "Laterality"):
        value = _text(ds, keyword).upper()
        if value in ("L", "R"):
            return value
    return None


def view_position(ds: Dataset) -> str | None:
    """The view ('CC', 'MLO', 'ML', ...) from View Position (0018,5101), else the View Code Sequence."""
    value = _text(ds, "ViewPosition").upper()
    if value:
        return value
    for item in ds.get("ViewCodeSequence") or []:
        code = str(item.get("CodeValue", "")).strip()
        if code in VIEW_CODE_VALUES:
            return VIEW_CODE_VALUES[code]
        meaning = str(item.get("CodeMeaning", "")).strip().lower()
        if meaning:
            return {"cranio-caudal": "CC", "medio-lateral oblique": "MLO"}.get(meaning, meaning.upper())
    return None


def stored_facing(ds: Dataset) -> str | None:
    """Direction the nipple points in the stored image, from Patient Orientation (0020,0020).

    The first value is the patient direction of the rows (towards increasing column): 'A' (anterior)
    means the nipple points right, 'P' left. None when the attribute is absent or says neither.
    """
    value = ds.get("PatientOrientation")
    if not value:
        return None
    values = list(value) if isinstance(value, (list, MultiValue)) else str(value).split("\\")
    row_direction = str(values[0]).upper() if values else ""
    if row_direction.startswith("A"):
        return "right"
    if row_direction.startswith("P"):
        return "left"
    return None


def laterality_conflict(ds: Dataset) -> str | None:
    """A one-line warning when Image Laterality and Laterality name different breasts, else None.

    Image Laterality (0020,0062) describes the image and wins (:func:`laterality`); Laterality
    (0020,0060) belongs to the series and is sometimes left over from another image.
    """
    image_side = _text(ds, "ImageLaterality").upper()
    series_side = _text(ds, "Laterality").upper()
    if image_side in ("L", "R") and series_side in ("L", "R") and image_side != series_side:
        return (f"ImageLaterality (0020,0062) {image_side} contradicts Laterality (0020,0060) {series_side}; "
                f"converted as {image_side} (ImageLaterality describes the image) - check the view")
    return None


def object_reason(ds: Dataset, accept: AcceptPolicy = AcceptPolicy()) -> str | None:
    """Why ``ds`` is not a 2-D mammogram the models can take (one line), whatever its view; None if it is.

    The part of :func:`skip_reason` every importer applies too (their tables name the view): 3-D,
    synthesised 2-D, non-image, multi-frame and colour objects, and For Processing images unless
    ``accept`` allows them.
    """
    sop_class = _text(ds, "SOPClassUID")
    if sop_class == BREAST_TOMOSYNTHESIS:
        return "breast tomosynthesis (3-D), not a 2-D mammogram"
    if sop_class in (BREAST_PROJECTION_PRESENTATION, BREAST_PROJECTION_PROCESSING) and not accept.synthesized_2d:
        return "2-D image synthesised from tomosynthesis (accept with --accept-synthesized-2d)"
    if not _has_pixels(ds):
        return "no pixel data (a report, presentation state or other non-image object)"
    frames = _integer(ds, "NumberOfFrames", 1)
    if frames is None or frames > 1:
        return f"multi-frame object ({_shown(ds, 'NumberOfFrames')} frames), not a 2-D mammogram"
    samples = _integer(ds, "SamplesPerPixel", 1)
    if samples != 1:
        return f"colour image (SamplesPerPixel {_shown(ds, 'SamplesPerPixel')}), not a mammogram"
    intent = _text(ds, "PresentationIntentType").upper()
    if (intent == "FOR PROCESSING" or sop_class in (MG_FOR_PROCESSING, BREAST_PROJECTION_PROCESSING)) \
            and not accept.for_processing:
        return FOR_PROCESSING_REASON
    return None


FOR_PROCESSING_REASON = ("For Processing (raw) image; the models expect For Presentation "
                         "(accept with --accept-for-processing)")


def _integer(ds: Dataset, keyword: str, default: int) -> int | None:
    """An integer attribute (IS/US), ``default`` when absent or empty, None when not a number."""
    try:
        value = ds.get(keyword)
    except Exception:  # a value pydicom cannot even convert
        return None
    if value is None or value == "":
        return default
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


def skip_reason(ds: Dataset, accept: AcceptPolicy = AcceptPolicy()) -> str | None:
    """Why ``ds`` is not converted (one line), or None for a 2-D mammogram to convert."""
    modality = _text(ds, "Modality").upper()
    if modality != "MG":
        return f"not a mammogram (Modality {_shown(ds, 'Modality')})"
    reason = object_reason(ds, accept)
    if reason is not None:
        return reason
    side = laterality(ds)
    if side is None:
        found = _shown(ds, "ImageLaterality" if _text(ds, "ImageLaterality") else "Laterality")
        return f"no left/right laterality (ImageLaterality/Laterality: {found})"
    position = view_position(ds)
    if position not in ("CC", "MLO"):
        shown = position if position and len(position) <= 20 and position.isprintable() else repr((position or "")[:20])
        return f"view {shown if position else 'missing'} is not one of the standard screening views CC/MLO"
    return None


def header_metadata(ds: Dataset) -> dict[str, Any]:
    """Exam metadata the DICOM header gives, canonicalised (see :mod:`.metadata`): age, manufacturer,
    manufacturer_model, implant. Keys whose value is absent or not understood are left out."""
    sources = {"age": "PatientAge", "manufacturer": "Manufacturer", "manufacturer_model": "ManufacturerModelName",
               "implant": "BreastImplantPresent"}
    out: dict[str, Any] = {}
    for key, keyword in sources.items():
        try:
            value = meta.NORMALISERS[key](_text(ds, keyword))
        except ValueError:  # MetadataValueError: a value the canonicaliser does not understand
            continue
        if value is not None:
            out[key] = value
    return out


def standard_view(ds: Dataset) -> str:
    """'L-CC', 'R-MLO', ... for a dataset :func:`skip_reason` accepts."""
    return f"{laterality(ds)}-{view_position(ds)}"


def _first(value: Any, index: int, what: str, path: str) -> float:
    values = list(value) if isinstance(value, (list, tuple, MultiValue)) else [value]
    if index >= len(values):
        raise DicomFileError(f"{path}: {what} has {len(values)} value(s); --voi-index {index} does not exist")
    try:
        number = float(values[index])
    except (TypeError, ValueError):
        number = math.nan
    if not math.isfinite(number):
        raise DicomFileError(f"{path}: {what} {values[index]!r} is not a number; use --voi none, lut or minmax")
    return number


def _decimal(ds: Dataset, keyword: str, tag: str, default: float, path: str) -> float:
    """A decimal-string attribute as a finite float, or a DicomFileError naming the file and the attribute."""
    try:
        value = ds.get(keyword, default)
    except Exception:  # pydicom cannot convert the stored text (e.g. 'abc')
        value = _text(ds, keyword)
    if value is None or (isinstance(value, str) and not value.strip()):
        return default
    try:
        number = float(value)
    except (TypeError, ValueError):
        number = math.nan
    if not math.isfinite(number):
        raise DicomFileError(f"{path}: {keyword} {tag} is {str(value)!r}, not a number; the Modality LUT cannot be "
                             "applied - the header is damaged (fix the attribute, or leave the file out)")
    return number


def rescale(ds: Dataset, path: str = "") -> tuple[float, float]:
    """(slope, intercept) of the Modality LUT's rescale, checked: a DicomFileError for a slope that is 0 (every
    pixel would become the intercept) or either value that is not a finite number."""
    path = path or str(getattr(ds, "filename", "") or "dataset")
    slope = _decimal(ds, "RescaleSlope", "(0028,1053)", 1.0, path)
    intercept = _decimal(ds, "RescaleIntercept", "(0028,1052)", 0.0, path)
    if slope == 0:
        raise DicomFileError(f"{path}: RescaleSlope (0028,1053) is 0, which would make every pixel "
                             f"{intercept:g} (a blank image) - the header is damaged (fix the attribute, or leave "
                             "the file out)")
    return slope, intercept


def _modality_bits(ds: Dataset, bits_stored: int, path: str) -> tuple[int, dict]:
    """Bit depth of the Modality LUT's output range, and a record of the LUT."""
    if "ModalityLUTSequence" in ds:
        descriptor = ds.ModalityLUTSequence[0].LUTDescriptor
        bits = int(descriptor[2])
        return bits, {"modality_lut": "Modality LUT Sequence", "lut_descriptor": [int(v) for v in descriptor]}
    slope, intercept = rescale(ds, path)
    record = {"modality_lut": "rescale", "rescale_slope": slope, "rescale_intercept": intercept}
    if slope == 1 and intercept == 0:
        return bits_stored, record
    signed = int(ds.get("PixelRepresentation", 0)) == 1
    lo_stored = -(1 << (bits_stored - 1)) if signed else 0
    hi_stored = (1 << (bits_stored - 1)) - 1 if signed else (1 << bits_stored) - 1
    top = max(lo_stored * slope + intercept, hi_stored * slope + intercept)
    return max(1, min(16, int(math.ceil(top + 1e-9)).bit_length())), record


def _decode_problem(ds: Dataset, error: Exception, transfer_syntax: Any, path: str) -> str:
    """The message for pixel data that could not be decoded: corrupt data when the decoder is there,
    the decoders to install when it is not."""
    message = str(error).splitlines()[0] if str(error) else type(error).__name__
    syntax = f" (transfer syntax {syntax_name(transfer_syntax)})" if transfer_syntax else ""
    try:
        compressed = bool(transfer_syntax.is_compressed)
    except Exception:  # absent, or not a transfer syntax UID at all (a damaged file meta)
        compressed = False
    if compressed and _decoder_available(transfer_syntax):
        return (f"{path}: the compressed pixel data{syntax} is corrupt or truncated - the decoder is installed but "
                f"cannot read it ({message.rstrip(':')}); copy or export the file again")
    hint = f"; {DECODER_HINT}" if compressed else ""
    return f"{path}: cannot decode the pixel data{syntax}: {message}{hint}"


def syntax_name(transfer_syntax: Any) -> str:
    """The transfer syntax's name ('JPEG 2000 Image Compression (Lossless Only)'), or its text if it has none."""
    try:
        name = str(transfer_syntax.name)
    except Exception:  # not a UID pydicom knows, or a damaged value
        name = ""
    text = str(transfer_syntax)
    shown = name if name and name != text else text
    return shown if len(shown) <= 80 and shown.isprintable() else repr(shown[:80])


def _decoder_available(transfer_syntax: Any) -> bool:
    try:
        from pydicom.pixels.decoders.base import get_decoder

        return bool(get_decoder(transfer_syntax).is_available)
    except Exception:  # an unknown transfer syntax has no decoder
        return False


def png_pixels(ds: Dataset, policy: PixelPolicy = PixelPolicy(), path: str = "") -> tuple[np.ndarray, dict]:
    """The 16-bit PNG values of a mammogram dataset (read with pixels) and a record of every step.

    Raises :class:`DicomFileError` naming ``path`` when the pixels cannot be decoded or do not fit the
    pipeline (e.g. values outside the bit depth, a missing window or LUT for the chosen VOI policy).
    """
    path = path or str(getattr(ds, "filename", "") or "dataset")
    transfer_syntax = ds.file_meta.get("TransferSyntaxUID") if hasattr(ds, "file_meta") else None
    rows, columns = _integer(ds, "Rows", 0), _integer(ds, "Columns", 0)
    if not rows or not columns or rows < 0 or columns < 0:
        raise DicomFileError(f"{path}: Rows/Columns {_shown(ds, 'Rows')} x {_shown(ds, 'Columns')}"
                             " do not describe an image - the header is damaged")
    try:  # a decompression bomb is refused from the header, before pydicom decodes anything
        check_pixels(rows * max(_integer(ds, "NumberOfFrames", 1) or 1, 1), columns, path)
    except InputLimitError as e:
        raise DicomFileError(str(e)) from None
    if "ModalityLUTSequence" not in ds:
        rescale(ds, path)  # a damaged Rescale Slope/Intercept fails before any decoding
    try:
        stored = ds.pixel_array
    except Exception as e:
        raise DicomFileError(_decode_problem(ds, e, transfer_syntax, path)) from None
    if stored.ndim != 2:
        raise DicomFileError(f"{path}: expected a 2-D image, the pixel data has shape {stored.shape}")

    bits_stored = int(ds.get("BitsStored", 0) or 0) or int(ds.BitsAllocated)
    photometric = _text(ds, "PhotometricInterpretation").upper()
    if photometric not in ("MONOCHROME1", "MONOCHROME2"):
        raise DicomFileError(f"{path}: Photometric Interpretation {_shown(ds, 'PhotometricInterpretation')}; "
                             "only MONOCHROME1 and MONOCHROME2 mammograms can be converted")
    record: dict[str, Any] = {
        "transfer_syntax": str(transfer_syntax) if transfer_syntax else None,
        "rows": int(stored.shape[0]), "columns": int(stored.shape[1]),
        "bits_allocated": int(ds.get("BitsAllocated", 0) or 0), "bits_stored": bits_stored,
        "pixel_representation": int(ds.get("PixelRepresentation", 0) or 0),
        "photometric_interpretation": photometric,
        "presentation_lut_shape": _text(ds, "PresentationLUTShape") or None,
        "stored_min": int(stored.min()), "stored_max": int(stored.max()),
    }

    bits, modality_record = _modality_bits(ds, bits_stored, path)
    record.update(modality_record)
    values = apply_modality_lut(stored, ds)
    record["voi"] = policy.voi
    if policy.voi == "none":
        pass
    elif policy.voi == "window":
        if "WindowCenter" not in ds or "WindowWidth" not in ds:
            raise DicomFileError(f"{path}: --voi window, but the file has no Window Center/Width; "
                                 "use --voi none, lut or minmax")
        center = _first(ds.WindowCenter, policy.voi_index, "Window Center", path)
        width = _first(ds.WindowWidth, policy.voi_index, "Window Width", path)
        function = _text(ds, "VOILUTFunction").upper() or "LINEAR"
        if policy.bit_depth is not None:
            bits = policy.bit_depth
        try:
            values = voi.apply_window(values, center, width, bits, function)
        except ValueError as e:
            raise DicomFileError(f"{path}: {e}") from None
        record.update({"window_index": policy.voi_index, "window_center": center, "window_width": width,
                       "voi_lut_function": function})
    elif policy.voi == "lut":
        sequence = ds.get("VOILUTSequence") or []
        if policy.voi_index >= len(sequence):
            raise DicomFileError(f"{path}: --voi lut with index {policy.voi_index}, but the file has "
                                 f"{len(sequence)} VOI LUT(s); use --voi none, window or minmax")
        item = sequence[policy.voi_index]
        descriptor = [int(v) for v in item.LUTDescriptor]
        bits = descriptor[2]
        values = apply_voi(values, ds, index=policy.voi_index)
        record.update({"voi_lut_index": policy.voi_index, "voi_lut_descriptor": descriptor,
                       "voi_lut_explanation": str(item.get("LUTExplanation", "")) or None})
    else:
        if policy.bit_depth is not None:
            bits = policy.bit_depth
        record["minmax_source_range"] = [float(np.min(values)), float(np.max(values))]
        try:
            values = voi.minmax_scale(values, bits)
        except ValueError as e:
            raise DicomFileError(f"{path}: {e}") from None

    if policy.bit_depth is not None:
        bits = policy.bit_depth
    record["bit_depth"] = bits
    record["bit_depth_source"] = ("--bit-depth" if policy.bit_depth is not None
                                  else "VOI LUT descriptor" if policy.voi == "lut"
                                  else "Bits Stored" if bits == bits_stored else "Modality LUT output range")
    values = np.asarray(values)
    lo_value, hi_value = float(np.min(values)), float(np.max(values))
    in_range = math.isfinite(lo_value) and math.isfinite(hi_value) and lo_value >= -0.5 and hi_value < (1 << bits) - 0.5
    if in_range and values.dtype.kind == "f":  # checked first: NaN or 1e30 must not reach the integer cast
        rounded = voi.round_half_up(values)
        record["rounded_to_integers"] = bool(np.any(rounded != values))
        values = rounded
    if not in_range:
        lo, hi = (f"{v:g}" if not float(v).is_integer() else str(int(v)) for v in (lo_value, hi_value))
        raise DicomFileError(
            f"{path}: values after the {'Modality LUT' if policy.voi == 'none' else 'VOI step'} span {lo}..{hi}, "
            f"outside the {bits}-bit range 0..{(1 << bits) - 1} ({record['bit_depth_source']}); pass --bit-depth "
            "with the real bit depth, or --voi window/minmax")
    values = values.astype(np.int64)
    if photometric == "MONOCHROME1":
        values = voi.invert(values, bits)
        record["inverted"] = f"{(1 << bits) - 1} - x"
    else:
        record["inverted"] = None
    out = voi.rescale_to_16bit(values, bits)
    record["rescale"] = None if bits == 16 else f"round(x * 65535 / {(1 << bits) - 1})"
    record["output_min"], record["output_max"] = int(out.min()), int(out.max())
    return out, record


INSPECT_KEYWORDS = (
    "SOPClassUID", "Modality", "PresentationIntentType", "Manufacturer", "ManufacturerModelName",
    "PatientID", "StudyInstanceUID", "StudyDate", "AccessionNumber", "SeriesDescription", "SOPInstanceUID",
    "ImageLaterality", "Laterality", "ViewPosition", "PatientOrientation", "ImageType",
    "Rows", "Columns", "NumberOfFrames", "SamplesPerPixel", "BitsAllocated", "BitsStored", "HighBit",
    "PixelRepresentation", "PhotometricInterpretation", "PresentationLUTShape", "RescaleSlope",
    "RescaleIntercept", "RescaleType", "WindowCenter", "WindowWidth", "VOILUTFunction",
    "PixelPaddingValue", "PixelIntensityRelationship", "PixelSpacing", "ImagerPixelSpacing",
    "BurnedInAnnotation", "BreastImplantPresent",
)


def dicom_tags(ds: Dataset) -> dict[str, str]:
    """The attributes of :data:`INSPECT_KEYWORDS` present in ``ds``, as text (for sidecars)."""
    tags = {keyword: _text(ds, keyword) for keyword in INSPECT_KEYWORDS if keyword in ds}
    for keyword in ("ViewCodeSequence", "ViewModifierCodeSequence"):
        items = ds.get(keyword) or []
        if items:
            tags[keyword] = "; ".join(f"{i.get('CodeValue', '')} {i.get('CodeMeaning', '')}".strip() for i in items)
    return tags


def inspect_dicom(path: str | Path, accept: AcceptPolicy = AcceptPolicy()) -> list[tuple[str, str]]:
    """(name, value) pairs of the attributes that matter for conversion, then mammoscreen's verdict."""
    ds = read_dicom(path)
    rows: list[tuple[str, str]] = []
    meta = getattr(ds, "file_meta", None)
    syntax = meta.get("TransferSyntaxUID") if meta is not None else None
    if syntax is not None:
        rows.append(("TransferSyntaxUID", f"{syntax} ({syntax_name(syntax)})"))
    for keyword in INSPECT_KEYWORDS:
        if keyword not in ds:
            continue
        value = ds.get(keyword)
        text = _text(ds, keyword)
        if keyword == "SOPClassUID" and hasattr(value, "name"):
            text = f"{value} ({value.name})"
        rows.append((keyword, text))
    for keyword in ("ViewCodeSequence", "ViewModifierCodeSequence"):
        for item in ds.get(keyword) or []:
            rows.append((keyword, f"{item.get('CodeValue', '')} ({item.get('CodingSchemeDesignator', '')}) "
                                  f"{item.get('CodeMeaning', '')}".strip()))
    for i, item in enumerate(ds.get("VOILUTSequence") or []):
        rows.append((f"VOILUTSequence[{i}]", f"descriptor {list(item.get('LUTDescriptor', []))} "
                                             f"{item.get('LUTExplanation', '')}".strip()))
    if "ModalityLUTSequence" in ds:
        rows.append(("ModalityLUTSequence", f"descriptor {list(ds.ModalityLUTSequence[0].LUTDescriptor)}"))
    reason = skip_reason(ds, accept)
    if reason is None:
        facing = stored_facing(ds)
        conflict = laterality_conflict(ds)
        if conflict:
            rows.append(("warning", conflict))
        try:
            if "ModalityLUTSequence" not in ds:
                rescale(ds, str(path))
        except DicomFileError as e:
            rows.append(("mammoscreen", f"fails: {str(e).removeprefix(f'{path}: ')}"))
            return rows
        rows.append(("mammoscreen", f"converts as {standard_view(ds)}; nipple points "
                                    f"{facing or 'unknown (no Patient Orientation)'} in the stored image"))
    else:
        rows.append(("mammoscreen", f"skips: {reason}"))
    return rows
