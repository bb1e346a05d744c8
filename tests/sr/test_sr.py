"""DICOM SR (TID 1500) of the findings: content read back with highdicom, dciodvfy clean, messy sources repaired.

Sources are real files: pydicom's CT_small.dcm and a DX built from a real NIH radiograph, once clean and once
as real exports come (no birth date, sex, study date/time; Patient's Age "81").
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import pytest
from dicom_corpus import dciodvfy_errors, nih_pixels
from pydicom import dcmread
from pydicom.data import get_testdata_file

from xray_exp.data.synthetic_dicom import chest_xray_dicom
from xray_exp.errors import ConfigError
from xray_exp.sr import FindingCodes, ModelIdentity, build_sr, read_sr_findings
from xray_exp.sr.codes import LOCAL_SCHEME
from xray_exp.sr.source_header import SourceHeaderError, evidence_header

MODEL = ModelIdentity("yolo12s", "7")


@dataclass
class Det:
    box: tuple
    confidence: float
    label: str
    class_id: int = 0


DETECTIONS = [
    Det((10.5, 20.0, 40.0, 60.25), 0.83, "Nodule"),
    Det((100.0, 50.0, 300.5, 240.0), 0.4125, "Effusion"),
    Det((5.0, 6.0, 7.0, 8.0), 0.3, "Some new class"),
]


@pytest.fixture(scope="module")
def codes():
    return FindingCodes.load()


def written(sr, tmp_path, name="sr.dcm"):
    path = tmp_path / name
    sr.save_as(str(path), enforce_file_format=True)
    return path


def check_dciodvfy(path):
    errors = dciodvfy_errors(path)
    if errors is None:
        pytest.skip("dciodvfy (Debian dicom3tools) is not installed")
    assert errors == [], "\n".join(errors)


def test_ct_sr_reads_back_the_same_boxes_and_passes_dciodvfy(tmp_path, codes):
    source = dcmread(get_testdata_file("CT_small.dcm"), stop_before_pixels=True)
    path = written(build_sr(source, DETECTIONS, MODEL, codes), tmp_path)
    sr = dcmread(path)
    assert sr.SOPClassUID == "1.2.840.10008.5.1.4.1.1.88.34"  # Comprehensive 3D SR
    assert sr.StudyInstanceUID == source.StudyInstanceUID and sr.SeriesInstanceUID != source.SeriesInstanceUID
    assert sr.PatientID == source.PatientID and sr.Modality == "SR"
    evidence = sr.CurrentRequestedProcedureEvidenceSequence[0].ReferencedSeriesSequence[0].ReferencedSOPSequence[0]
    assert evidence.ReferencedSOPInstanceUID == source.SOPInstanceUID
    back = read_sr_findings(path)
    assert [f["box"] for f in back["findings"]] == [list(d.box) for d in DETECTIONS]
    assert [f["confidence"] for f in back["findings"]] == pytest.approx([d.confidence for d in DETECTIONS])
    assert all(f["closed"] and f["referenced_sop_instance_uid"] == source.SOPInstanceUID for f in back["findings"])
    assert [(f["scheme"], f["code"]) for f in back["findings"]] == [
        ("SCT", "27925004"),
        ("SCT", "60046008"),
        (LOCAL_SCHEME, "XC-SOME_NEW_CLAS"),
    ]
    assert back["summary"] == "All algorithms succeeded; with findings"
    assert [i.CodingSchemeDesignator for i in sr.CodingSchemeIdentificationSequence].count(LOCAL_SCHEME) == 1
    text = str(sr)
    assert "yolo12s" in text and "Algorithm Version" in text  # algorithm identification: name and version
    check_dciodvfy(path)


def test_image_without_findings_says_so(tmp_path, codes):
    source = dcmread(get_testdata_file("CT_small.dcm"), stop_before_pixels=True)
    path = written(build_sr(source, [], MODEL, codes), tmp_path)
    back = read_sr_findings(path)
    assert back == {"findings": [], "summary": "All algorithms succeeded; without findings"}
    check_dciodvfy(path)


def test_messy_chest_dx_gives_a_valid_sr_and_says_what_it_repaired(tmp_path, codes, caplog):
    _, pixels = nih_pixels(0)
    messy = chest_xray_dicom(pixels, header="messy")
    source_path = tmp_path / "messy.dcm"
    messy.save_as(str(source_path), enforce_file_format=True)
    assert "PatientBirthDate" not in messy and "StudyDate" not in messy and messy.PatientAge == "81"
    with caplog.at_level(logging.INFO, logger="xray_exp.sr"):
        sr = build_sr(
            dcmread(source_path, stop_before_pixels=True), DETECTIONS[:2], MODEL, codes, source_name="messy.dcm"
        )
    path = written(sr, tmp_path)
    back = dcmread(path)
    assert back.PatientAge == "081Y" and back.PatientBirthDate == "" and back.StudyDate == ""
    assert "PatientSex" in back and back.PatientSex == ""
    log = caplog.text
    assert "PatientAge '81' is not a valid AS: repaired to '081Y'" in log
    assert "StudyDate missing (type 2): left empty" in log
    assert read_sr_findings(path)["findings"][1]["box"] == [100.0, 50.0, 300.5, 240.0]
    check_dciodvfy(path)
    assert dcmread(source_path).PatientAge == "81"  # the source is never changed


def test_clean_chest_dx_keeps_its_values(codes):
    clean = chest_xray_dicom(nih_pixels(1)[1], header="complete")
    header, notes = evidence_header(clean)
    assert notes == [] and header.PatientAge == "081Y" and header.StudyDate == "20240102"


@pytest.mark.parametrize(("vr_value", "expected"), [("81", "081Y"), ("7 M", "007M"), ("abc", "")])
def test_age_repairs(vr_value, expected):
    ds = chest_xray_dicom(nih_pixels(0, size=64)[1], header="complete")
    ds.PatientAge = vr_value
    assert evidence_header(ds)[0].PatientAge == expected


def test_a_source_without_uids_is_refused():
    ds = chest_xray_dicom(nih_pixels(0, size=64)[1], header="complete")
    del ds.StudyInstanceUID
    with pytest.raises(SourceHeaderError, match="StudyInstanceUID"):
        evidence_header(ds)


def test_standard_codes_match_the_dicom_dictionary(codes):
    """Codes whose source says PS3.16 are what pydicom's copy of PS3.16 says (value and scheme)."""
    import yaml
    from pydicom.sr._concepts_dict import concepts

    raw = yaml.safe_load(codes.path.read_text())
    checked = 0
    for name, entry in raw.items():
        if "PS3.16" not in entry["source"]:
            continue
        meanings = [
            m
            for by_code in concepts[entry["scheme"]].values()
            for code, (m, _) in by_code.items()
            if code == entry["value"]
        ]
        assert entry["meaning"] in meanings, (name, entry, meanings)
        checked += 1
    assert checked >= 10


def test_a_malformed_code_table_names_the_entry(tmp_path):
    table = tmp_path / "codes.yaml"
    table.write_text("nodule: {scheme: SCT, meaning: Nodule}\n")
    with pytest.raises(ConfigError, match="'nodule' lacks value"):
        FindingCodes.load(table)
    with pytest.raises(ConfigError, match="none.yaml"):
        FindingCodes.load(tmp_path / "none.yaml")
