"""Data preparation: VinDr-CXR / NIH ChestX-ray14 downloads -> a YOLO dataset the train entry point uses.

    python -m xray_exp.prepare dataset=nih_cxr14 source=/data/nih-cxr14 out_dir=/data/yolo/nih workers=2
    python -m xray_exp.train dataset=nih_cxr14        # reads outputs/datasets/nih_cxr14/data.yaml

Modules: config (schema), sources (CSV importers), boxes/fusion/split (pure logic), convert (one image,
in worker processes), store (the output folder, resume), summary/report, pipeline (all of it together).
Importing this package is light; heavy work is imported where it runs.
"""
