"""The Ray engine on the reference data gives the local engine's files, on two nodes (issue 13's "done when").

Why this proves the claim: the reference exam (four views, official-format checkpoints of GMIC, GLAM and
the DMV-CNN rebuilt from ../shared/reference) runs through every stage - crop and centres as Ray tasks,
each model on a pool of two actors spread over two Ray nodes - and every output file is compared with a
local run of the same command: predictions.csv, failures.csv and the exam lists byte for byte, every map
with ``np.array_equal``. A corrupt image in the set must give the same per-image failures. The reference
images are full-size, so the networks run at their real input sizes; the random reference weights make
every output value distinct, so a mix-up of images between workers would show.
"""

from __future__ import annotations

import importlib.util
import json
import pickle
import shutil
from pathlib import Path

import numpy as np
import pytest

from rayutils import assert_same_outputs, connected, node_ids, run_mammoscreen, started_cluster

pytestmark = [pytest.mark.reference, pytest.mark.slow]

REPO = Path(__file__).resolve().parents[2]
MODELS = "gmic,nyu_glam,nyu_model"


@pytest.fixture(scope="session")
def reference_weights(reference_dir, tmp_path_factory) -> Path:
    """Official-format checkpoints of every model, rebuilt from the reference data (never committed)."""
    spec = importlib.util.spec_from_file_location("build_reference_weights",
                                                  REPO / "tools" / "build_reference_weights.py")
    tool = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(tool)
    return tool.build_all(reference_dir, tmp_path_factory.mktemp("reference_weights"), log=lambda m: None)


@pytest.fixture(scope="module")
def two_nodes():
    """One two-node cluster for the module's tests (none removes a node): (cluster, its node ids)."""
    with started_cluster(nodes=2) as cluster:
        with connected(cluster):
            nodes = node_ids()
        assert len(nodes) == 2
        yield cluster, nodes


@pytest.fixture(scope="session")
def reference_set(reference_dir, tmp_path_factory) -> tuple[Path, Path]:
    """The reference four-view exam plus an exam whose only image is a corrupt PNG: (images, exam list)."""
    root = tmp_path_factory.mktemp("ray_reference_set")
    images = root / "images"
    images.mkdir()
    with open(reference_dir / "exam_list_before_cropping.pkl", "rb") as f:  # the reference data's own list
        exam = {k: v for k, v in pickle.load(f)[0].items() if not k.endswith("_seg")}
    for view in ("L-CC", "R-CC", "L-MLO", "R-MLO"):
        shutil.copyfile(reference_dir / "images" / f"{exam[view][0]}.png", images / f"{exam[view][0]}.png")
    (images / "2_L-CC.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"\0" * 64)  # a truncated PNG
    corrupt = {"horizontal_flip": "NO", "L-CC": ["2_L-CC"], "R-CC": [], "L-MLO": [], "R-MLO": [],
               "cancer_label": {"benign": 0, "malignant": 0, "left_benign": 0, "right_benign": 0,
                                "left_malignant": 0, "right_malignant": 0, "unknown": 1}}
    exam_list = root / "exam_list.pkl"
    exam_list.write_bytes(pickle.dumps([exam, corrupt], protocol=4))
    return images, exam_list


def _command(reference_set, weights, output):
    images, exam_list = reference_set
    return ["run", "--models", MODELS, "--images", images, "--exam-list", exam_list, "--output-dir", output,
            "--weights", weights, "--device", "cpu", "--save-maps", "--no-evaluate", "--quiet", "--workers", "1"]


def _local_and_ray(command, output, cluster, workers=(1, 2)):
    """Run ``command`` with the local engine into output/local and on ``cluster`` with each number of Ray workers
    in ``workers`` into output/ray (the last) and output/ray_N (the others); every file of each Ray run must be
    the local run's (:func:`assert_same_outputs`): the names compared (the same for every run)."""
    run_mammoscreen([*command, "--output-dir", output / "local"])
    compared = []
    for i, n in enumerate(workers):
        ray_out = output / ("ray" if i == len(workers) - 1 else f"ray_{n}")
        run_mammoscreen([*command, "--output-dir", ray_out, "--engine", "ray", "--address", cluster.address,
                         "--num-workers", str(n)])
        compared.append(assert_same_outputs(output / "local", ray_out))
    assert all(names == compared[0] for names in compared)
    return compared[0]


def test_two_node_ray_run_equals_local_run(reference_set, reference_weights, two_nodes, tmp_path):
    cluster, nodes = two_nodes
    local = tmp_path / "local"
    run_mammoscreen(_command(reference_set, reference_weights, local))
    ray_out = tmp_path / "ray"
    run_mammoscreen([*_command(reference_set, reference_weights, ray_out), "--engine", "ray",
                     "--address", cluster.address, "--num-workers", "2"])
    compared = assert_same_outputs(local, ray_out)
    one_worker = tmp_path / "ray_1"  # and with a single worker (the same models, the same cluster)
    run_mammoscreen([*_command(reference_set, reference_weights, one_worker), "--engine", "ray",
                     "--address", cluster.address, "--num-workers", "1"])
    assert assert_same_outputs(local, one_worker) == compared
    for model in MODELS.split(","):
        assert f"{model}/predictions.csv" in compared
    assert "failures.csv" in compared and "gmic/maps/0_L-CC.npz" in compared and "nyu_model/maps/exam_0.npz" in compared
    failures = (local / "failures.csv").read_text()
    assert "2_L-CC" in failures  # the corrupt image failed in the crop stage, in both runs alike

    engine = json.loads((ray_out / "run_summary.json").read_text())["run"]["engine"]
    assert engine["name"] == "ray" and engine["num_workers"] == 2 and sorted(engine["cluster_nodes"]) == nodes
    predicted_on = {node for model in MODELS.split(",") for node in engine["stages"][model]["ran_on"].values()}
    assert predicted_on == set(nodes), engine["stages"]  # both nodes ran model forwards
    assert sorted(engine["stages"]["gmic"]["ran_on"]) == ["0_L-CC", "0_L-MLO", "0_R-CC", "0_R-MLO"]
    assert set(engine["stages"]["crop"]["nodes"]) <= set(nodes)


def test_one_and_two_ray_workers_equal_local_run_for_the_other_models(reference_set, reference_weights, two_nodes,
                                                                      tmp_path):
    """nyu_model_single, end2end and frcnn_cad (the image-level models the two-node test does not run) on the
    two CC views of the reference exam, at full size, plus the corrupt image: one Ray worker and two (on two nodes)
    must each give the local run's files, maps and failures included. gmic_demo, the last registered model, is
    covered by test_ray_faults.py."""
    images, full_exam_list = reference_set  # the reference exam and an exam whose only image is corrupt
    with open(full_exam_list, "rb") as f:
        exam, corrupt = pickle.load(f)
    exam.update({"L-MLO": [], "R-MLO": []})
    exam_list = tmp_path / "exam_list.pkl"
    exam_list.write_bytes(pickle.dumps([exam, corrupt], protocol=4))
    command = ["run", "--models", "nyu_model_single,end2end,frcnn_cad", "--images", images,
               "--exam-list", exam_list, "--weights", reference_weights, "--device", "cpu", "--save-maps",
               "--no-evaluate", "--quiet", "--workers", "1"]
    compared = _local_and_ray(command, tmp_path, two_nodes[0], workers=(1, 2))
    for model in ("nyu_model_single", "end2end", "frcnn_cad"):
        assert f"{model}/predictions.csv" in compared and any(n.startswith(f"{model}/maps/") for n in compared)
    assert "failures.csv" in compared and "2_L-CC" in (tmp_path / "local" / "failures.csv").read_text()


def test_heatmap_patches_of_one_image_spread_over_workers_with_identical_files(synthetic_dataset, reference_weights,
                                                                               two_nodes, tmp_path):
    """nyu_model with heatmaps (official-format checkpoints rebuilt from the reference data) on one synthetic
    exam and two workers on two nodes: one worker runs the exam, and its patch batches go to both, yet every
    file - the heatmaps and patch probabilities in the maps included - equals the local run's. Small images
    (832x640) and batches of 8 patches keep it short while every image still has several batches to spread."""
    with open(synthetic_dataset / "exam_list.pkl", "rb") as f:
        exams = pickle.load(f)[:1]
    exam_list = tmp_path / "exam_list.pkl"
    exam_list.write_bytes(pickle.dumps(exams, protocol=4))
    names = [name for exam in exams for view in ("L-CC", "R-CC", "L-MLO", "R-MLO") for name in exam[view]]
    command = ["run", "--models", "nyu_model", "--heatmaps", "--patch-weights", reference_weights,
               "--heatmap-batch-size", "8", "--images", synthetic_dataset / "images", "--exam-list", exam_list,
               "--weights", reference_weights, "--device", "cpu", "--save-maps", "--no-evaluate", "--quiet",
               "--workers", "1"]
    cluster, nodes = two_nodes
    compared = _local_and_ray(command, tmp_path, cluster, workers=(2,))
    assert {"nyu_model/predictions.csv", "nyu_model/maps/exam_0.npz"} <= set(compared)
    with np.load(tmp_path / "ray" / "nyu_model" / "maps" / "exam_0.npz") as maps:
        assert {f"heatmap_malignant_{n}" for n in names} <= set(maps.files)  # the heatmaps were compared

    engine = json.loads((tmp_path / "ray" / "run_summary.json").read_text())["run"]["engine"]["stages"]["nyu_model"]
    patches = engine["patches_ran_on"]
    assert sorted(patches) == sorted(names)  # every image's patch batches were classified, and recorded
    spread = {image for image, where in patches.items() if len(where["workers"]) > 1}
    assert spread, patches  # the patches of one image ran on more than one worker...
    assert any(patches[image]["nodes"] == nodes for image in spread), patches  # ...on both nodes
    assert len(engine["ran_on"]) == 1  # while the exam itself ran on one
    assert sorted(set(engine["worker_nodes"].values())) == nodes


def test_full_size_heatmap_patches_spread_over_two_nodes_with_the_official_result(reference_dir, reference_weights,
                                                                                 two_nodes, tmp_path):
    """nyu_model_single with heatmaps on a full-size reference image (0_L-CC: 2677x1942 after the crop, the
    official patch grid), two workers on two nodes: the image's patch batches run on both, every file equals the
    local run's, and the prediction is the official one (../shared/reference/nyu_model_single/README.md: each
    image has its own seeds, so one image alone gives its row of the official run; tolerance 5e-4 as in
    tests/parity/test_dmv_reference.py)."""
    with open(reference_dir / "exam_list_before_cropping.pkl", "rb") as f:  # the reference data's own list
        exam = {k: v for k, v in pickle.load(f)[0].items() if not k.endswith("_seg")}
    exam.update({"R-CC": [], "L-MLO": [], "R-MLO": []})
    exam_list = tmp_path / "exam_list.pkl"
    exam_list.write_bytes(pickle.dumps([exam], protocol=4))
    command = ["run", "--models", "nyu_model_single", "--heatmaps", "--patch-weights", reference_weights,
               "--images", reference_dir / "images", "--exam-list", exam_list, "--weights", reference_weights,
               "--device", "cpu", "--save-maps", "--no-evaluate", "--quiet", "--workers", "1"]
    cluster, nodes = two_nodes
    compared = _local_and_ray(command, tmp_path, cluster, workers=(2,))
    assert {"nyu_model_single/predictions.csv", "nyu_model_single/maps/0_L-CC.npz"} <= set(compared)

    engine = json.loads((tmp_path / "ray" / "run_summary.json").read_text())["run"]["engine"]["stages"]
    where = engine["nyu_model_single"]["patches_ran_on"]["0_L-CC"]
    assert where["workers"] == [0, 1] and sorted(where["nodes"]) == nodes, where

    ours = (tmp_path / "ray" / "nyu_model_single" / "predictions.csv").read_text().splitlines()
    official = (reference_dir / "nyu_model_single" / "predictions_image_heatmaps.csv").read_text().splitlines()
    assert ours[0] == official[0] and len(ours) == 2
    row = next(line.split(",") for line in official[1:] if line.split(",")[1] == "0_L-CC")
    index, name, prediction, label = ours[1].split(",")
    assert (name, label) == (row[1], row[3])
    assert float(prediction) == pytest.approx(float(row[2]), abs=5e-4)
