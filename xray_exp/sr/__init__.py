"""DICOM Structured Reports of the model's findings (TID 1500 measurement report, highdicom).

from xray_exp.sr import FindingCodes, build_sr, read_sr_findings
sr = build_sr(source_header, detections, ModelIdentity("yolo12n", "3"), FindingCodes.load())
sr.save_as("report.dcm")
read_sr_findings(sr)     # [{"label", "code", "confidence", "box"}] - the same boxes back

python -m xray_exp.predict model=best.onnx source='/data/*.dcm' sr=true   # <out_dir>/sr/<name>.dcm
"""

from xray_exp.sr.codes import FindingCodes
from xray_exp.sr.reader import read_sr_findings
from xray_exp.sr.writer import ModelIdentity, build_sr

__all__ = ["FindingCodes", "ModelIdentity", "build_sr", "read_sr_findings"]
