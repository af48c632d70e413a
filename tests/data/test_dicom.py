"""The DICOM pixel pipeline and header rules, through real DICOM files, with exact integer results."""

from __future__ import annotations

import numpy as np
import pydicom
import pytest
from pydicom.encaps import encapsulate
from pydicom.uid import JPEGExtended12Bit, JPEGLosslessSV1

from mammoscreen.data.dicom import (
    AcceptPolicy,
    DicomFileError,
    PixelPolicy,
    inspect_dicom,
    png_pixels,
    read_dicom,
    skip_reason,
    standard_view,
    stored_facing,
)
from mammoscreen.data.dicom_write import MG_FOR_PROCESSING, mammogram_dataset

STORED = np.array([[0, 1, 2047], [4095, 100, 7]], dtype=np.uint16)
# round(x * 65535 / 4095) of STORED, worked out by hand (1 -> 16.004, 2047 -> 32759.498, 100 -> 1600.37, 7 -> 112.03)
STORED_16 = [[0, 16, 32759], [65535, 1600, 112]]
# 4095 - x, then the same rescale (4094 -> 65518.996, 2048 -> 32775.99, 3995 -> 63934.63, 4088 -> 65422.97)
INVERTED_16 = [[65535, 65519, 32776], [0, 63935, 65423]]


def convert(path, **policy):
    pixels, record = png_pixels(read_dicom(path, pixels=True), PixelPolicy(**policy), str(path))
    return pixels.tolist(), record


def test_monochrome2_12_bit_is_rescaled_to_16_bits(tmp_path, make_dicom):
    path = make_dicom(tmp_path / "a.dcm", STORED)
    pixels, record = convert(path)
    assert pixels == STORED_16
    assert record["bit_depth"] == 12 and record["bit_depth_source"] == "Bits Stored"
    assert record["inverted"] is None


def test_monochrome1_is_inverted_over_the_full_12_bit_range(tmp_path, make_dicom):
    path = make_dicom(tmp_path / "a.dcm", STORED, photometric="MONOCHROME1")
    pixels, record = convert(path)
    assert pixels == INVERTED_16
    assert record["inverted"] == "4095 - x"


def test_monochrome1_of_a_dim_image_is_not_stretched(tmp_path, make_dicom):
    # the brightest stored value is 1000: max(x) - x would map it to 0; the fixed range maps it to 3095
    path = make_dicom(tmp_path / "a.dcm", np.array([[1000, 0]], np.uint16), photometric="MONOCHROME1")
    pixels, _ = convert(path)
    assert pixels == [[49531, 65535]]  # 3095 * 65535 / 4095 = 49531.34


def test_rescale_slope_widens_the_bit_depth(tmp_path, make_dicom):
    # 11-bit stored values with slope 2 span 0..4094: a 12-bit range
    path = make_dicom(tmp_path / "a.dcm", np.array([[0, 1, 2047]], np.uint16), bits_stored=11, rescale=(2, 0))
    pixels, record = convert(path)
    assert pixels == [[0, 32, 65519]]  # 2 -> 32.007, 4094 -> 65518.996
    assert record["bit_depth"] == 12 and record["bit_depth_source"] == "Modality LUT output range"


def test_negative_values_after_the_modality_lut_are_an_error_naming_the_file(tmp_path, make_dicom):
    path = make_dicom(tmp_path / "neg.dcm", np.array([[0, 5]], np.uint16), rescale=(1, -1000))
    with pytest.raises(DicomFileError, match=r"neg\.dcm.*-1000\.\.-995.*--bit-depth"):
        convert(path)


def test_bit_depth_override(tmp_path, make_dicom):
    path = make_dicom(tmp_path / "a.dcm", STORED)
    pixels, record = convert(path, bit_depth=16)
    assert pixels == STORED.tolist()  # 16 bits: no rescale
    assert record["bit_depth_source"] == "--bit-depth"
    with pytest.raises(DicomFileError, match="outside the 10-bit range"):
        convert(path, bit_depth=10)


def test_window_policy_uses_the_chosen_window(tmp_path, make_dicom):
    stored = np.array([[899, 900, 950, 1000, 1099, 1100]], np.uint16)
    path = make_dicom(tmp_path / "a.dcm", stored, window=([2048, 1000], [4096, 201]))
    pixels, record = convert(path, voi="window", voi_index=1, bit_depth=8)
    # 8-bit window values [0, 1, 64, 128, 254, 255] (see test_voi), then rescaled x * 257
    assert pixels == [[0, 257, 16448, 32896, 65278, 65535]]
    assert record["window_center"] == 1000 and record["window_width"] == 201
    identity, _ = convert(path, voi="window", voi_index=0)
    assert identity == [[round(int(v) * 65535 / 4095) for v in stored[0]]]


def test_window_then_monochrome1_inversion(tmp_path, make_dicom):
    path = make_dicom(tmp_path / "a.dcm", np.array([[0, 4095]], np.uint16), photometric="MONOCHROME1",
                      window=(2048, 4096))
    pixels, _ = convert(path, voi="window")
    assert pixels == [[65535, 0]]


def test_window_policy_without_a_window_is_a_clear_error(tmp_path, make_dicom):
    path = make_dicom(tmp_path / "nowin.dcm", STORED)
    with pytest.raises(DicomFileError, match=r"nowin\.dcm: --voi window, but the file has no Window"):
        convert(path, voi="window")
    path = make_dicom(tmp_path / "onewin.dcm", STORED, window=(2048, 4096))
    with pytest.raises(DicomFileError, match="--voi-index 3 does not exist"):
        convert(path, voi="window", voi_index=3)


def test_voi_lut_policy(tmp_path, make_dicom):
    stored = np.array([[99, 100, 101], [102, 103, 200]], np.uint16)
    path = make_dicom(tmp_path / "a.dcm", stored, voi_lut=([4, 100, 16], np.array([10, 20, 30, 40])))
    pixels, record = convert(path, voi="lut")
    # below the first mapped value -> first entry, above the last -> last entry; 16-bit LUT: no rescale
    assert pixels == [[10, 10, 20], [30, 40, 40]]
    assert record["voi_lut_descriptor"] == [4, 100, 16]
    path12 = make_dicom(tmp_path / "b.dcm", stored, voi_lut=([4, 100, 12], np.array([0, 1000, 2000, 4095])))
    pixels, record = convert(path12, voi="lut")
    assert pixels == [[0, 0, 16004], [32007, 65535, 65535]]  # 12-bit LUT output rescaled
    assert record["bit_depth"] == 12
    # the default policy ignores the LUT
    plain, _ = convert(path12)
    assert plain == [[round(int(v) * 65535 / 4095) for v in row] for row in stored.tolist()]
    with pytest.raises(DicomFileError, match="has 0 VOI LUT"):
        convert(make_dicom(tmp_path / "c.dcm", stored), voi="lut")


def test_minmax_policy(tmp_path, make_dicom):
    path = make_dicom(tmp_path / "a.dcm", np.array([[10, 20, 30]], np.uint16))
    pixels, record = convert(path, voi="minmax", bit_depth=8)
    assert pixels == [[0, 128 * 257, 65535]]
    assert record["minmax_source_range"] == [10, 30]


@pytest.mark.parametrize("compression", ["rle", "jpeg2000"])
def test_compressed_files_decode_to_the_same_values(tmp_path, make_dicom, compression):
    stored = (np.arange(64 * 48).reshape(64, 48) * 7 % 4096).astype(np.uint16)
    plain = make_dicom(tmp_path / "plain.dcm", stored, photometric="MONOCHROME1")
    packed = make_dicom(tmp_path / "packed.dcm", stored, photometric="MONOCHROME1", compression=compression)
    assert pydicom.dcmread(packed).file_meta.TransferSyntaxUID.is_compressed
    assert convert(packed)[0] == convert(plain)[0]


def test_jpeg_lossless_first_order_prediction_decodes(tmp_path, make_dicom):
    imagecodecs = pytest.importorskip("imagecodecs")
    stored = (np.arange(40 * 30).reshape(40, 30) * 13 % 4096).astype(np.uint16)
    frame = imagecodecs.jpeg8_encode(stored, lossless=True, predictor=1, bitspersample=12)
    assert b"\xff\xc3" in frame  # SOF3: lossless JPEG
    path = make_dicom(tmp_path / "plain.dcm", stored)
    ds = pydicom.dcmread(path)
    ds.PixelData = encapsulate([frame])
    ds["PixelData"].VR = "OB"
    ds.file_meta.TransferSyntaxUID = JPEGLosslessSV1
    ds.save_as(tmp_path / "ljpeg.dcm", enforce_file_format=True)
    assert convert(tmp_path / "ljpeg.dcm")[0] == convert(path)[0]


def test_undecodable_pixel_data_names_the_file(tmp_path, make_dicom):
    ds = pydicom.dcmread(make_dicom(tmp_path / "a.dcm", STORED))
    ds.PixelData = encapsulate([b"\xff\xd8 not really a jpeg"])
    ds["PixelData"].VR = "OB"
    ds.file_meta.TransferSyntaxUID = JPEGExtended12Bit
    ds.save_as(tmp_path / "broken.dcm", enforce_file_format=True)
    # the JPEG decoders are installed here, so the data is what is wrong (issue 16.6: not "install decoders")
    with pytest.raises(DicomFileError, match=r"broken\.dcm: the compressed pixel data \(transfer syntax JPEG Extended"
                                             r".*\) is corrupt or truncated - the decoder is installed") as caught:
        convert(tmp_path / "broken.dcm")
    assert "pip install" not in str(caught.value)


def test_undecodable_pixel_data_without_a_decoder_advises_installing_one(tmp_path, make_dicom, monkeypatch):
    ds = pydicom.dcmread(make_dicom(tmp_path / "a.dcm", STORED))
    ds.PixelData = encapsulate([b"\xff\xd8 not really a jpeg"])
    ds["PixelData"].VR = "OB"
    ds.file_meta.TransferSyntaxUID = JPEGExtended12Bit
    ds.save_as(tmp_path / "broken.dcm", enforce_file_format=True)
    monkeypatch.setattr("mammoscreen.data.dicom._decoder_available", lambda syntax: False)
    with pytest.raises(DicomFileError, match=r"broken\.dcm: cannot decode the pixel data \(transfer syntax JPEG.*"
                                             r"pip install 'mammoscreen\[dicom\]'"):
        convert(tmp_path / "broken.dcm")


def test_read_dicom_rejects_other_files_and_accepts_files_without_preamble(tmp_path, make_dicom):
    text = tmp_path / "notes.txt"
    text.write_text("not an image\n")
    with pytest.raises(DicomFileError, match=r"notes\.txt: not a DICOM file"):
        read_dicom(text)
    ds = pydicom.dcmread(make_dicom(tmp_path / "a.dcm", STORED))
    bare = tmp_path / "bare"
    ds.preamble = None
    del ds.file_meta
    ds.save_as(bare, enforce_file_format=False, implicit_vr=True, little_endian=True)
    assert not bare.read_bytes()[128:132] == b"DICM"
    assert read_dicom(bare).SOPInstanceUID == ds.SOPInstanceUID


def dataset(**kwargs):
    options = dict(laterality="L", view="CC", study_uid="1.2.3", patient_id="p")
    options.update(kwargs)
    return mammogram_dataset(STORED, **options)


def test_skip_reasons():
    assert skip_reason(dataset()) is None
    ct = dataset()
    ct.Modality = "CT"
    assert "Modality CT" in skip_reason(ct)
    assert "For Processing" in skip_reason(dataset(sop_class_uid=MG_FOR_PROCESSING))
    assert skip_reason(dataset(sop_class_uid=MG_FOR_PROCESSING), AcceptPolicy(for_processing=True)) is None
    assert "tomosynthesis" in skip_reason(dataset(sop_class_uid="1.2.840.10008.5.1.4.1.1.13.1.3"))
    synthesized = dataset(sop_class_uid="1.2.840.10008.5.1.4.1.1.13.1.4")
    assert "synthesised" in skip_reason(synthesized)
    assert skip_reason(synthesized, AcceptPolicy(synthesized_2d=True)) is None
    assert "multi-frame" in skip_reason(dataset(extra={"NumberOfFrames": 3}))
    no_pixels = dataset()
    del no_pixels.PixelData
    assert "no pixel data" in skip_reason(no_pixels)
    assert "view ML is not" in skip_reason(dataset(view="ML"))
    both = dataset()
    both.ImageLaterality = "B"
    both.Laterality = "B"
    assert "laterality" in skip_reason(both)


def test_view_from_code_sequence_and_laterality_fallback():
    ds = dataset(view="MLO")
    del ds.ViewPosition
    ds.ViewCodeSequence[0].CodeValue = "R-10226"  # the older SNOMED RT code
    del ds.ImageLaterality  # series-level Laterality still says L
    assert skip_reason(ds) is None and standard_view(ds) == "L-MLO"


def test_stored_facing_from_patient_orientation():
    assert stored_facing(dataset(patient_orientation=["A", "R"])) == "right"
    assert stored_facing(dataset(patient_orientation=["P", "L"])) == "left"
    unknown = dataset()
    del unknown.PatientOrientation
    assert stored_facing(unknown) is None


def test_inspect_lists_the_attributes_and_the_verdict(tmp_path, make_dicom):
    path = make_dicom(tmp_path / "a.dcm", STORED, side="R", view="MLO", photometric="MONOCHROME1")
    rows = dict(inspect_dicom(path))
    assert rows["PhotometricInterpretation"] == "MONOCHROME1"
    assert rows["BitsStored"] == "12"
    assert rows["mammoscreen"].startswith("converts as R-MLO")
    assert "cranio" not in rows["ViewCodeSequence"] and "oblique" in rows["ViewCodeSequence"]
