"""The `xray-exp` console script: one command in front of every `python -m xray_exp.<entry>`.

    xray-exp train epochs=50 imgsz=640 data=/data/data.yaml    # = python -m xray_exp.train ...
    xray-exp evaluate model=models:/yolo12n@development
    xray-exp prepare dataset=nih_cxr14 source=/data/nih
    xray-exp predict model=best.onnx source=/data/unlabelled sr=true
    xray-exp folds data=/data/nih/data.yaml folds=5             # = python -m xray_exp.folds ...
    xray-exp ray mode=tune                                     # = python -m xray_exp.ray_main
    xray-exp registry list yolo12n
    xray-exp serve                                             # = python -m xray_exp.serve

Each command runs its module exactly as `python -m` does (same arguments, exit status and output).
"""

from __future__ import annotations

import runpy
import sys

COMMANDS: dict[str, tuple[str, str]] = {
    "train": ("xray_exp.train", "train a detector (Hydra overrides; Ultralytics shortcuts epochs=, imgsz=, ...)"),
    "evaluate": ("xray_exp.evaluate", "clinical metrics and a report for one split"),
    "ensemble": ("xray_exp.ensemble", "fuse fold models / detectors, evaluate against the best one, register"),
    "folds": ("xray_exp.folds", "the k-fold plan of a dataset (patient-grouped, stratified), or finish a CV again"),
    "prepare": ("xray_exp.prepare", "convert VinDr-CXR / NIH ChestX-ray14 to a YOLO dataset"),
    "predict": ("xray_exp.predict", "findings for unlabelled files: CSV, JSON, annotated PNGs, DICOM SR"),
    "ray": ("xray_exp.ray_main", "Ray Tune search or Ray Train data-parallel training"),
    "registry": ("xray_exp.registry", "list, show and promote registered models"),
    "serve": ("xray_exp.serve", "the FastAPI inference service"),
}


def usage() -> str:
    lines = ["usage: xray-exp <command> [arguments ...]   (each command: xray-exp <command> --help)", ""]
    lines += [f"  {name:<10} {text}   [python -m {module}]" for name, (module, text) in COMMANDS.items()]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    args = sys.argv[1:] if argv is None else argv
    if not args or args[0] in ("-h", "--help", "help"):
        print(usage())
        sys.exit(0 if args else 2)
    if args[0] not in COMMANDS:
        print(f"ERROR: unknown command {args[0]!r}.\n{usage()}", file=sys.stderr)
        sys.exit(2)
    module = COMMANDS[args[0]][0]
    sys.argv = [f"xray-exp {args[0]}", *args[1:]]
    runpy.run_module(module, run_name="__main__", alter_sys=True)


if __name__ == "__main__":
    main()
