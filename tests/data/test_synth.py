"""The synthetic mammogram generator: reproducible, correctly oriented, labelled, croppable."""

from __future__ import annotations

import os
import pickle

import numpy as np
import pytest

from mammoscreen.data.exams import VIEWS, load_exam_list
from mammoscreen.data.images import read_png
from mammoscreen.data.synth import SynthOptions, generate_exams, load_lesions, render_exam
from mammoscreen.preprocess.crop import crop_dataset, crop_info

SMALL = SynthOptions(scale=0.12, p_benign=0.5, p_malignant=0.5)


def test_same_seed_same_pixels_and_other_seed_differs():
    a, b = render_exam(7, 3, SMALL), render_exam(7, 3, SMALL)
    c = render_exam(8, 3, SMALL)
    for view in VIEWS:
        assert np.array_equal(a.views[view].image, b.views[view].image)
        assert np.array_equal(a.views[view].masks["malignant"], b.views[view].masks["malignant"])
        assert not np.array_equal(a.views[view].image, c.views[view].image)
    assert a.labels == b.labels


def test_size_scale_and_12_bit_values():
    exam = render_exam(0, 0, SynthOptions(scale=0.1))
    for view in VIEWS:
        image = exam.views[view].image
        assert image.shape == (333, 256)  # round(3328 * 0.1), round(2560 * 0.1)
        assert image.dtype == np.uint16
        assert image.max() <= 4095
        assert (image == 0).mean() > 0.2  # a real zero background


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_orientation_left_faces_right_right_faces_left(seed):
    exam = render_exam(seed, 0, SynthOptions(scale=0.1, label_text=False))
    for view in VIEWS:
        breast = exam.views[view].image > 0
        chest_wall = breast[:, 0] if view.startswith("L") else breast[:, -1]
        far_edge = breast[:, -1] if view.startswith("L") else breast[:, 0]
        assert chest_wall.sum() > 0.3 * breast.shape[0], view  # the breast leans on the chest-wall edge
        assert far_edge.sum() == 0, view  # and points away from it


def test_labels_match_masks_and_masks_lie_in_the_breast():
    seen = {"benign": 0, "malignant": 0}
    for exam_index in range(6):
        exam = render_exam(11, exam_index, SMALL)
        labels = exam.labels
        assert labels["benign"] == max(labels["left_benign"], labels["right_benign"])
        assert labels["malignant"] == max(labels["left_malignant"], labels["right_malignant"])
        assert labels["unknown"] == 0
        for view in VIEWS:
            side = "left" if view.startswith("L") else "right"
            synth_view = exam.views[view]
            for label in ("benign", "malignant"):
                mask = synth_view.masks[label]
                assert mask.shape == synth_view.image.shape
                assert bool(mask.any()) == bool(labels[f"{side}_{label}"]), (exam_index, view, label)
                assert (synth_view.image[mask] > 0).all()
                seen[label] += int(mask.any())
    assert seen["benign"] > 0 and seen["malignant"] > 0


def test_lesions_are_brighter_than_their_surroundings():
    import cv2

    options = SynthOptions(scale=0.25, p_benign=1.0, p_malignant=1.0)
    for exam_index in range(2):
        exam = render_exam(5, exam_index, options)
        for view in VIEWS:
            synth_view = exam.views[view]
            image = synth_view.image.astype(float)
            for label in ("benign", "malignant"):
                mask = synth_view.masks[label].astype(np.uint8)
                ring = cv2.dilate(mask, np.ones((31, 31), np.uint8)).astype(bool) & ~mask.astype(bool)
                ring &= image > 0
                # calcifications are sparse specks: compare the brightest part of the lesion region
                lesion_level = np.percentile(image[mask.astype(bool)], 90)
                assert lesion_level > np.median(image[ring]) + 200, (exam_index, view, label)


def test_generate_exams_writes_a_standard_dataset(tmp_path):
    exams = generate_exams(3, tmp_path, seed=4, options=SMALL, progress=False)
    loaded = load_exam_list(tmp_path / "exam_list.pkl")
    assert [e.to_dict() for e in loaded] == [e.to_dict() for e in exams]
    with open(tmp_path / "exam_list.pkl", "rb") as f:
        assert f.read(2) == b"\x80\x04"  # pickle protocol 4, readable by the official code
    lesions = load_lesions(tmp_path)
    for exam_index, exam in enumerate(loaded):
        assert exam.horizontal_flip == "NO"
        assert set(exam.cancer_label) == {"left_benign", "right_benign", "left_malignant", "right_malignant",
                                          "benign", "malignant", "unknown"}
        for view in VIEWS:
            (name,) = exam.images[view]
            assert name == f"{exam_index}_{view}"
            image = read_png(tmp_path / "images" / f"{name}.png")
            assert image.dtype == np.uint16
            for label in ("benign", "malignant"):
                assert exam.extra[f"{view}_{label}_seg"] == [f"{name}_{label}"]
                mask = read_png(tmp_path / "segmentation" / f"{name}_{label}.png")
                assert mask.shape == image.shape and set(np.unique(mask)) <= {0, 255}
                n_lesions = sum(item["class"] == label for item in lesions[name])
                assert bool(mask.any()) == (n_lesions > 0)
    # the files hold exactly what render_exam returns
    again = render_exam(4, 1, SMALL)
    assert np.array_equal(read_png(tmp_path / "images" / "1_R-MLO.png"), again.views["R-MLO"].image)


def test_exam_does_not_depend_on_dataset_size_or_workers(tmp_path):
    generate_exams(2, tmp_path / "a", seed=9, options=SMALL, progress=False)
    generate_exams(3, tmp_path / "b", seed=9, options=SMALL, workers=2, progress=False)
    for view in VIEWS:
        a = (tmp_path / "a" / "images" / f"1_{view}.png").read_bytes()
        b = (tmp_path / "b" / "images" / f"1_{view}.png").read_bytes()
        assert a == b


def test_sixteen_bit_output_is_the_meta_repository_rescale(tmp_path):
    generate_exams(1, tmp_path / "12", seed=3, options=SMALL, progress=False)
    generate_exams(1, tmp_path / "16", seed=3, options=SMALL, bits=16, progress=False)
    twelve = read_png(tmp_path / "12" / "images" / "0_L-CC.png").astype(np.float64)
    sixteen = read_png(tmp_path / "16" / "images" / "0_L-CC.png")
    assert np.array_equal(sixteen, np.round(twelve * 65535 / 4095).astype(np.uint16))
    assert sixteen.max() == 65535  # the burnt-in label text is saturated white


def test_rerun_skips_finished_exams_and_redoes_missing_files(tmp_path):
    generate_exams(2, tmp_path, seed=1, options=SMALL, progress=False)
    kept = tmp_path / "images" / "0_L-CC.png"
    removed = tmp_path / "images" / "1_R-CC.png"
    original = removed.read_bytes()
    os.utime(kept, (1, 1))
    removed.unlink()
    generate_exams(2, tmp_path, seed=1, options=SMALL, progress=False)
    assert kept.stat().st_mtime == 1  # exam 0 was not written again
    assert removed.read_bytes() == original


@pytest.mark.slow  # about a second or more: CI runs it, the fast loop leaves it out
def test_official_crop_succeeds_and_keeps_every_lesion(tmp_path):
    options = SynthOptions(scale=0.25, p_benign=0.6, p_malignant=0.6, background_noise=0.002)
    exams = generate_exams(2, tmp_path, seed=21, options=options, progress=False)
    cropped, failures = crop_dataset(tmp_path / "images", exams, tmp_path / "cropped", progress=False)
    assert failures == []
    for exam in cropped:
        for view in VIEWS:
            (name,) = exam.images[view]
            top, bottom, left, right = exam.image_metadata["window_location"][view][0]
            assert exam.image_metadata["distance_from_starting_side"][view][0] == 0
            image = read_png(tmp_path / "images" / f"{name}.png")
            breast = image > 0
            assert breast[top:bottom, left:right].sum() >= 0.98 * breast.sum()
            for label in ("benign", "malignant"):
                mask = read_png(tmp_path / "segmentation" / f"{name}_{label}.png") > 0
                assert mask[top:bottom, left:right].sum() == mask.sum()


def test_label_text_is_outside_the_crop():
    exam = render_exam(2, 0, SynthOptions(scale=0.25))
    plain = render_exam(2, 0, SynthOptions(scale=0.25, label_text=False))
    for view in VIEWS:
        text = exam.views[view].image != plain.views[view].image
        assert text.any(), view
        facing = "right" if view.startswith("L") else "left"
        top, bottom, left, right = crop_info(exam.views[view].image, facing).window_location
        assert not text[top:bottom, left:right].any(), view


def test_invalid_options_are_rejected():
    with pytest.raises(ValueError, match="scale"):
        SynthOptions(scale=0)
    with pytest.raises(ValueError, match="p_malignant"):
        SynthOptions(p_malignant=1.5)
    with pytest.raises(ValueError, match="format"):
        generate_exams(1, "unused", fmt="jpeg")
    with pytest.raises(ValueError, match="bits"):
        generate_exams(1, "unused", bits=8)


def test_pickle_holds_only_plain_python_types(tmp_path):
    generate_exams(1, tmp_path, seed=0, options=SMALL, progress=False)
    with open(tmp_path / "exam_list.pkl", "rb") as f:
        data = pickle.load(f)

    def plain(value):
        if isinstance(value, dict):
            return all(isinstance(k, str) and plain(v) for k, v in value.items())
        if isinstance(value, (list, tuple)):
            return all(plain(v) for v in value)
        return isinstance(value, (str, int, float, type(None)))

    assert plain(data)


def test_shared_synthetic_dataset_fixture(synthetic_dataset):
    exams = load_exam_list(synthetic_dataset / "exam_list.pkl")
    assert len(exams) == 4
    assert read_png(synthetic_dataset / "images" / "3_R-MLO.png").shape == (832, 640)


# Pixel digests of three exams as generated before the generator drew any metadata (commit f6a9925):
# the metadata comes from its own random stream and must leave every image and mask unchanged.
PIXELS_BEFORE_METADATA = {
    (0, 0, 0.25): "709cd9a3eb3fc9600d42260fc6e8c8c7d156d0ebe22c07c3ebb198786c96b11c",
    (20261204, 3, 0.25): "02b747f886c740b4ebb7b19788587123a4ec01a523b4cc30bf265f13a325bb00",
    (7777, 1, 0.1): "b97719edf94b23f9406dfbe605ec18992e076fb1245b83d2557b59d2780b8b71",
}


@pytest.mark.parametrize("seed, index, scale", list(PIXELS_BEFORE_METADATA))
def test_metadata_leaves_the_pixels_of_existing_seeds_unchanged(seed, index, scale):
    import hashlib

    exam = render_exam(seed, index, SynthOptions(scale=scale))
    digest = hashlib.sha256()
    for view in VIEWS:
        digest.update(exam.views[view].image.tobytes())
        digest.update(exam.views[view].masks["malignant"].tobytes())
        digest.update(exam.views[view].masks["benign"].tobytes())
    assert digest.hexdigest() == PIXELS_BEFORE_METADATA[(seed, index, scale)]
    assert 40 <= exam.age <= 79 and set(exam.density) == {"L", "R"}


@pytest.mark.slow  # about a second or more: CI runs it, the fast loop leaves it out
def test_density_follows_the_fibroglandular_fraction_and_age_falls_with_it():
    fractions, categories, ages, mean_fraction = [], [], [], []
    for index in range(30):
        exam = render_exam(5, index, SynthOptions(scale=0.06))
        per_side = []
        for side in ("L", "R"):
            fraction = np.mean([exam.views[f"{side}-{a}"].fibroglandular_fraction for a in ("CC", "MLO")])
            fractions.append(fraction)
            categories.append("ABCD".index(exam.density[side]))
            per_side.append(fraction)
        ages.append(exam.age)
        mean_fraction.append(np.mean(per_side))
    fractions, categories = np.asarray(fractions), np.asarray(categories)
    # The category orders the breasts by their tissue: a denser category has a higher mean fraction.
    means = [fractions[categories == c].mean() for c in range(4) if (categories == c).any()]
    assert len(means) >= 3 and np.all(np.diff(means) > 0)
    assert np.corrcoef(fractions, categories)[0, 1] > 0.8
    assert np.corrcoef(mean_fraction, ages)[0, 1] < 0
    # The density is drawn again identically: the same exam gives the same metadata.
    again = render_exam(5, 3, SynthOptions(scale=0.06))
    assert (again.age, again.density) == (ages[3], {s: "ABCD"[categories[6 + k]] for k, s in enumerate("LR")})


def test_generated_exam_list_carries_age_per_exam_and_density_per_image(tmp_path):
    exams = generate_exams(2, tmp_path, seed=4, options=SMALL, progress=False)
    loaded = load_exam_list(tmp_path / "exam_list.pkl")
    assert loaded == exams
    for index, exam in enumerate(loaded):
        rendered = render_exam(4, index, SMALL)
        assert exam.metadata["age"] == rendered.age
        assert exam.metadata["images"] == {f"{index}_{view}": {"density": rendered.density[view[0]]}
                                           for view in VIEWS}
