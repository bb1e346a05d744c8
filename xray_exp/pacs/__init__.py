"""A PACS round trip over DICOMweb: fetch a study (WADO-RS), run the model, store the SRs back (STOW-RS).

    client = DicomWeb("http://pacs:8042/dicom-web", credentials_file="/run/secrets/pacs", retries=3)
    result = analyze_study(client, study_uid, predictor, FindingCodes.load())

    XRAY_SERVE_DICOMWEB_URL=http://pacs:8042/dicom-web python -m xray_exp.serve   # POST /studies/{uid}/analyze
    python -m xray_exp.predict model=best.onnx source=dicomweb:http://pacs:8042/dicom-web/studies/<uid> sr=true

docs/pacs.md has the Orthanc configuration the tests use.
"""
