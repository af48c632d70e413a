"""convert-dicom, crop and centers with --engine ray write the local engine's files.

Why this proves the claim: synthetic DICOMs (two four-view exams) are converted, cropped and centred
once locally and once as Ray tasks on a two-node cluster; the output directories must be equal file by
file (PNGs, sidecars, manifest and exam lists byte for byte), and the tasks must have run on both nodes.
"""

from __future__ import annotations

import pytest

from mammoscreen.cli import main
from rayutils import assert_same_outputs, local_cluster, node_ids

pytestmark = pytest.mark.slow


def test_preprocessing_commands_on_ray_equal_local(tmp_path, capsys):
    synth = tmp_path / "synth"
    assert main(["synth", "--output-dir", str(synth), "--exams", "2", "--seed", "3", "--scale", "0.15",
                 "--format", "both", "--quiet", "--workers", "1"]) == 0

    def commands(root, *engine):
        return [["convert-dicom", str(synth / "dicom"), "--output-dir", str(root / "converted"), "--quiet", *engine],
                ["crop", "--images", str(root / "converted" / "images"), "--exam-list",
                 str(root / "converted" / "exam_list.pkl"), "--output-dir", str(root / "cropped"), "--quiet", *engine],
                ["centers", "--images", str(root / "cropped"), "--exam-list",
                 str(root / "cropped" / "cropped_exam_list.pkl"), "--output", str(root / "cropped" / "data.pkl"),
                 "--window", "736", "480", "--quiet", *engine]]

    for command in commands(tmp_path / "local", "--workers", "1"):
        assert main(command) == 0, command
    with local_cluster(nodes=2) as cluster:
        for command in commands(tmp_path / "ray", "--engine", "ray", "--address", cluster.address):
            assert main(command) == 0, command
        nodes = node_ids()
    printed = capsys.readouterr().out
    assert_same_outputs(tmp_path / "local", tmp_path / "ray")
    # Each stage ran as Ray tasks, and the tasks of the three stages together ran on both nodes (where a
    # single short stage's tasks land is Ray's choice: SPREAD is a preference, not a guarantee).
    for stage in ("convert", "crop", "centres"):
        assert f"{stage}: ran on " in printed, printed
    assert len(nodes) == 2 and all(node[:8] in printed for node in nodes), printed
