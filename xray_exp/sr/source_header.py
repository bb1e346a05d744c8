"""The source image's header as SR evidence: the patient and study attributes an SR copies, made valid.

    header, notes = evidence_header(pydicom.dcmread(path, stop_before_pixels=True))

Real files are messier than the standard: type 2 attributes missing (no birth date, sex, study date or time),
values invalid for their VR (a Patient's Age of "81", a date written 2019-03-01). The SR copies these, so they
are repaired where the intent is clear (AS "81" -> "081Y", DA "2019-03-01" -> "20190301", TM "10:20:30" ->
"102030"), else left empty, and each change is returned as a note (the caller logs it). The source file is
never changed. A source without Study/SOP Instance UID cannot be reported on in its study: SourceHeaderError.
"""

from __future__ import annotations

import re
from copy import deepcopy

from pydicom import config as pydicom_config
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.valuerep import validate_value

from xray_exp.errors import XrayExpError

# Type 1 attributes without which an SR cannot reference the image in its study
REQUIRED = ("StudyInstanceUID", "SOPInstanceUID", "SOPClassUID")
# Type 2 attributes of the SR's Patient and General Study modules: present, possibly empty
TYPE2 = (
    "PatientName",
    "PatientID",
    "PatientBirthDate",
    "PatientSex",
    "StudyDate",
    "StudyTime",
    "ReferringPhysicianName",
    "StudyID",
    "AccessionNumber",
)
# Patient / study attributes the SR copies (highdicom copies the Patient and Study modules' root attributes)
CHECKED_VRS = ("AS", "DA", "TM", "DT", "CS", "DS", "IS", "LO", "SH", "PN", "UI", "ST", "LT", "AE")
PATIENT_SEX = ("M", "F", "O")


class SourceHeaderError(XrayExpError):
    """The source DICOM lacks what an SR must reference (Study or SOP Instance UID, SOP Class)."""


def _repair(vr: str, value: str) -> str | None:
    """A valid value with the same meaning, or None when there is none."""
    text = value.strip()
    if vr == "AS":
        match = re.fullmatch(r"0*(\d{1,3})\s*([DWMY]?)", text.upper())
        if match:
            return f"{int(match[1]):03d}{match[2] or 'Y'}"
    elif vr == "DA":
        digits = re.sub(r"[-./]", "", text)
        if re.fullmatch(r"\d{8}", digits):
            return digits
    elif vr == "TM":
        digits = text.replace(":", "")
        if re.fullmatch(r"\d{2}(\d{2}(\d{2}(\.\d{1,6})?)?)?", digits):
            return digits
    elif vr == "CS":
        upper = re.sub(r"[^A-Z0-9_ ]", "_", text.upper())[:16]
        return upper or None
    return None


def _valid(vr: str, value) -> bool:
    try:
        validate_value(vr, str(value), pydicom_config.RAISE)
    except (ValueError, TypeError):
        return False
    return True


def evidence_header(source: Dataset) -> tuple[Dataset, list[str]]:
    """A copy of the source header (no pixel data) whose copied attributes are valid; and what was changed."""
    missing = [k for k in REQUIRED if not str(source.get(k, "") or "").strip()]
    if missing:
        raise SourceHeaderError(
            f"the source DICOM has no {', '.join(missing)}: an SR cannot reference it in its "
            "study. Fix: send the original file from the modality or PACS."
        )
    header = Dataset()
    header.file_meta = deepcopy(getattr(source, "file_meta", FileMetaDataset()))
    for element in source:
        if element.tag.group in (0x7FE0,) or element.tag.is_private:
            continue  # pixel data and private tags are not evidence
        header.add(deepcopy(element))
    notes: list[str] = []
    for keyword in TYPE2:
        if keyword not in header:
            setattr(header, keyword, "")
            notes.append(f"{keyword} missing (type 2): left empty")
    for element in list(header):
        if element.VR not in CHECKED_VRS or element.VM == 0 or element.value in (None, ""):
            continue
        values = element.value if element.VM > 1 else [element.value]
        fixed, changed = [], False
        for value in values:
            if _valid(element.VR, value):
                fixed.append(value)
                continue
            repaired = _repair(element.VR, str(value))
            changed = True
            if repaired is not None and _valid(element.VR, repaired):
                fixed.append(repaired)
        if changed:
            old = element.value
            element.value = (fixed if element.VM > 1 else fixed[0]) if fixed else ""
            verb = f"repaired to {element.value!r}" if fixed else "left empty"
            notes.append(f"{element.keyword or element.tag} {old!r} is not a valid {element.VR}: {verb}")
    sex = str(header.get("PatientSex", "") or "")
    if sex and sex not in PATIENT_SEX:
        header.PatientSex = ""
        notes.append(f"PatientSex {sex!r} is not M, F or O: left empty")
    return header, notes
