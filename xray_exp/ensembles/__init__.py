"""Fold and model ensembles: members fused with ensemble-boxes, flip/scale TTA views, OOF tuning, registration.

    python -m xray_exp.ensemble cv=outputs/cv/<name> split=test
    python -m xray_exp.ensemble models=[outputs/runs/a,models:/yolo12s@development,b.onnx] weights=[2,1,1] tta=true

`fusion` and `detector` are torch-free (the service and the registered pyfunc import them); `members`,
`evaluate`, `tune` and `run` serve the command.
"""
