"""Writing synthetic exams to disk: 16-bit PNGs, lesion masks, an exam list, optionally DICOM files.

Layout of ``output_dir``::

    images/<exam>_<view>.png              the mammograms (12-bit values, or rescaled to 16 bits)
    segmentation/<image>_benign.png       lesion masks (0/255, same size and orientation as the image)
    segmentation/<image>_malignant.png
    dicom/<image>.dcm                     with format 'dicom' or 'both'
    exam_list.pkl                         the NYU exam list (pickle protocol 4) with cancer_label and
                                          metadata (age per exam, BI-RADS density per image)
    lesions.json                          per image: kind, class, centre and bounding box of each lesion
    labels.csv                            with DICOM output: breast labels by StudyInstanceUID, the
                                          input of ``convert-dicom --labels``

Exam ``i`` depends only on (seed, i) and the options, never on how many exams are generated or how
many workers run, so a dataset can be extended or regenerated piece by piece.
"""

from __future__ import annotations

from functools import partial
from pathlib import Path

import cv2
import numpy as np

from ...core.files import write_bytes_atomic, write_json_atomic, write_text_atomic
from ...core.journal import Journal
from ...core.parallel_map import map_images
from ...core.paths import UnsafePathError, ensure_output_dir, name_problem, output_path
from ...core.safejson import load_json
from ..dicom_write import STANDARD_ORIENTATION, mammogram_dataset, save_dicom, uid_from
from ..exams import VIEWS, Exam, exams_from_data, load_exam_list, save_exam_list, view_angle, view_side
from ..voi import rescale_to_16bit
from .render import MAX_VALUE, SynthOptions, render_exam

EXAM_LIST = "exam_list.pkl"
LABELS_CSV = "labels.csv"
FORMATS = ("png", "dicom", "both")

# How each view is encoded in the DICOM files, rotated across exams so every view meets every case:
# plain MONOCHROME2 (with a window), MONOCHROME1, a VOI LUT, and a rescale slope of 2.
DICOM_VARIANTS = ("monochrome2", "monochrome1", "voi_lut", "rescale_slope")


def image_name(exam_index: int, view: str, prefix: str = "") -> str:
    """File name (no extension) of a synthetic image, e.g. '3_L-CC'."""
    return f"{prefix}{exam_index}_{view}"


def dicom_variant(exam_index: int, view: str) -> str:
    """Which DICOM encoding exam ``exam_index`` uses for ``view``."""
    return DICOM_VARIANTS[(exam_index + VIEWS.index(view)) % len(DICOM_VARIANTS)]


def encode_png(image: np.ndarray) -> bytes:
    """PNG bytes of a uint8/uint16 image; OpenCV's encoder is about twice as fast as Pillow's here."""
    ok, data = cv2.imencode(".png", image, [cv2.IMWRITE_PNG_COMPRESSION, 1, cv2.IMWRITE_PNG_STRATEGY,
                                            cv2.IMWRITE_PNG_STRATEGY_RLE])
    if not ok:
        raise OSError("PNG encoding failed")
    return data.tobytes()


def generate_exams(n_exams: int, output_dir: str | Path, seed: int = 0, *, options: SynthOptions | None = None,
                   fmt: str = "png", bits: int = 12, start: int = 0, prefix: str = "",
                   dicom_compression: str | None = None, workers: int = 1,
                   progress: bool = True) -> list[Exam]:
    """Generate ``n_exams`` four-view exams into ``output_dir`` and return their exam list.

    Parameters
    ----------
    n_exams : number of exams; they are numbered ``start .. start + n_exams - 1``.
    output_dir : where images/, segmentation/, dicom/, exam_list.pkl and lesions.json go.
    seed : dataset seed; exam ``i`` depends only on (seed, i) and the options.
    options : :class:`SynthOptions` (size, lesion frequency and contrast, label text, noise).
    fmt : 'png', 'dicom' (DICOM files only) or 'both'.
    bits : 12 stores the 12-bit values as they are (as the GMIC sample exams); 16 rescales them to
        the 16-bit range as the meta-repository's DICOM-to-PNG snippet does.
    prefix : prepended to every image name (e.g. 'test_').
    dicom_compression : None, 'jpeg2000' or 'rle' for the DICOM files (needs the ``dicom`` extra).
    workers : parallel processes. Finished exams are journaled: a re-run skips them.
    """
    options = options or SynthOptions()
    if fmt not in FORMATS:
        raise ValueError(f"format must be one of {FORMATS}, got {fmt!r}")
    if bits not in (12, 16):
        raise ValueError(f"bits must be 12 or 16, got {bits}")
    if n_exams < 0:
        raise ValueError(f"n_exams must be >= 0, got {n_exams}")
    # The prefix becomes part of file names: '../x' or '/tmp/x' would write outside output_dir.
    longest = image_name(start + max(n_exams - 1, 0), "R-MLO", prefix) + "_malignant.png"
    if name_problem(longest) is not None:
        raise UnsafePathError(f"prefix {prefix!r} does not make plain file names: {name_problem(longest)}; the "
                              "prefix is prepended to every image name")
    output_dir = ensure_output_dir(output_dir)
    indices = list(range(start, start + n_exams))
    settings = {"stage": "synth", "seed": seed, "options": vars(options), "format": fmt, "bits": bits,
                "prefix": prefix, "compression": dicom_compression}
    journal = Journal(output_dir / ".synth_journal.jsonl", fingerprint=settings)
    func = partial(_write_exam, output_dir=str(output_dir), seed=seed, options=options, fmt=fmt, bits=bits,
                   prefix=prefix, dicom_compression=dicom_compression)
    names = [str(i) for i in indices]
    results, failures = map_images(func, indices, names, journal=journal,
                                   still_valid=lambda name: _exam_files_exist(output_dir, int(name), fmt, prefix),
                                   workers=workers, desc="synth", progress=progress)
    if failures:
        raise RuntimeError("synthetic exams failed: " + "; ".join(str(f) for f in failures))
    exam_dicts = [results[name]["exam"] for name in names]
    exams = exams_from_data(exam_dicts, source="synthetic exams")
    if fmt != "dicom" and not _same_exam_list(output_dir / EXAM_LIST, exams):
        # Rewritten only when it changed, so that stages fingerprinting its bytes stay up to date on a re-run.
        save_exam_list(exams, output_dir / EXAM_LIST)
    lesions = {image: info for name in names for image, info in results[name]["lesions"].items()}
    write_json_atomic(output_dir / "lesions.json", lesions)
    if fmt != "png":
        _write_labels_csv(output_dir / LABELS_CSV, [results[name]["study_uid"] for name in names], exams)
    return exams


def _same_exam_list(path: Path, exams: list[Exam]) -> bool:
    try:
        return path.is_file() and load_exam_list(path) == exams
    except Exception:  # an unreadable file is simply rewritten
        return False


def _exam_files_exist(output_dir: Path, exam_index: int, fmt: str, prefix: str) -> bool:
    for view in VIEWS:
        name = image_name(exam_index, view, prefix)
        if fmt != "dicom" and not output_path(output_dir, "images", f"{name}.png").is_file():
            return False
        if fmt != "png" and not output_path(output_dir, "dicom", f"{name}.dcm").is_file():
            return False
    return True


def _write_exam(exam_index: int, output_dir: str, seed: int, options: SynthOptions, fmt: str, bits: int,
                prefix: str, dicom_compression: str | None) -> dict:
    """Render one exam and write its files; returns its exam dict and lesion records (JSON-able)."""
    out = Path(output_dir)
    exam = render_exam(seed, exam_index, options)
    study_uid = uid_from("mammoscreen-synth", seed, exam_index)
    exam_dict: dict = {"horizontal_flip": "NO"}
    lesions = {}
    for view in VIEWS:
        name = image_name(exam_index, view, prefix)
        synth_view = exam.views[view]
        values = synth_view.image
        variant = dicom_variant(exam_index, view)
        if fmt != "png" and variant == "rescale_slope":
            values = values & ~np.uint16(1)  # slope 2 stores x // 2: keep the PNG identical to the DICOM
        if fmt != "dicom":
            png_values = values if bits == 12 else rescale_to_16bit(values, 12)
            write_bytes_atomic(output_path(out, "images", f"{name}.png"), encode_png(png_values))
            for label in ("benign", "malignant"):
                mask = synth_view.masks[label].astype(np.uint8) * np.uint8(255)
                write_bytes_atomic(output_path(out, "segmentation", f"{name}_{label}.png"), encode_png(mask))
        if fmt != "png":
            ds = _dicom_for(values, view, variant, study_uid, f"SYNTH-{seed}-{exam_index}", options.pixel_mm,
                            exam.age)
            save_dicom(ds, output_path(out, "dicom", f"{name}.dcm"), compression=dicom_compression)
        exam_dict[view] = [name]
        exam_dict[f"{view}_benign_seg"] = [f"{name}_benign"]
        exam_dict[f"{view}_malignant_seg"] = [f"{name}_malignant"]
        lesions[name] = synth_view.lesions
    exam_dict["cancer_label"] = exam.labels
    # Age per exam; density per image (each breast its own), as VinDr-Mammo records it.
    exam_dict["metadata"] = {"age": exam.age, "images": {image_name(exam_index, view, prefix):
                                                         {"density": exam.density[view_side(view)]} for view in VIEWS}}
    return {"exam": exam_dict, "lesions": lesions, "study_uid": study_uid}


def _dicom_for(values: np.ndarray, view: str, variant: str, study_uid: str, patient_id: str, pixel_mm: float,
               age: int):
    """A DICOM dataset whose default conversion (VOI 'none', 12 bits) gives back ``values`` exactly; the
    patient's age in the header, as scanners record it (importers read it from there)."""
    side, angle = view_side(view), view_angle(view)
    common = dict(laterality=side, view=angle, study_uid=study_uid, patient_id=patient_id,
                  pixel_spacing_mm=round(pixel_mm, 6), patient_orientation=STANDARD_ORIENTATION[(side, angle)],
                  extra={"BurnedInAnnotation": "YES", "SeriesDescription": f"{side} {angle}",
                         "PatientAge": f"{int(age):03d}Y"})
    if variant == "monochrome1":
        return mammogram_dataset((MAX_VALUE - values).astype(np.uint16), photometric="MONOCHROME1",
                                 window=(2048, 4096), **common)
    if variant == "voi_lut":
        # A gamma-like display curve: ignored by the default pipeline (VOI 'none'), used with --voi lut.
        lut = np.round(65535 * (np.arange(4096) / 4095) ** 0.7).astype(np.uint16)
        return mammogram_dataset(values, voi_lut=([4096, 0, 16], lut), **common)
    if variant == "rescale_slope":
        return mammogram_dataset((values // 2).astype(np.uint16), bits_stored=11, rescale=(2, 0), **common)
    return mammogram_dataset(values, window=([2048, 1800], [4096, 2600]), **common)


def _write_labels_csv(path: Path, study_uids: list[str], exams: list[Exam]) -> None:
    """Breast-level labels in the form ``convert-dicom --labels`` reads."""
    lines = ["study,laterality,malignant,benign"]
    for uid, exam in zip(study_uids, exams):
        labels = exam.cancer_label or {}
        for side, name in (("L", "left"), ("R", "right")):
            lines.append(f"{uid},{side},{labels[name + '_malignant']},{labels[name + '_benign']}")
    write_text_atomic(path, "\n".join(lines) + "\n")


def load_lesions(output_dir: str | Path) -> dict[str, list[dict]]:
    """The lesion records written by :func:`generate_exams` (image name -> list of lesions)."""
    return load_json(Path(output_dir) / "lesions.json")

