"""Prediction on files a user has (no labels needed): model loading, input discovery, the batch run.

    python -m xray_exp.predict model=models:/yolo12s@development source=/data/unlabelled out_dir=outputs/predict/today
    python -m xray_exp.predict model=best.onnx source='/data/*.dcm' sr=true conf=0.25 save_images=true

`predictor.load_predictor` turns `model=` into an object with `.predict(gray) -> detections`; the batch run
(`batch.run_predict`) and the service's DICOM routes only use that object.
"""
