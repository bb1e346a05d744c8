"""The `xray-exp` console script: one command in front of every `python -m xray_exp.<entry>`.

    xray-exp train epochs=50 imgsz=640 data=/data/data.yaml    # = python -m xray_exp.train ...
    xray-exp evaluate model=models:/yolo12n@development
    xray-exp prepare dataset=nih_cxr14 source=/data/nih
    xray-exp predict model=best.onnx source=/data/unlabelled sr=true
    xray-exp folds data=/data/nih/data.yaml folds=5             # = python -m xray_exp.folds ...
    xray-exp ray mode=tune                                     # = python -m xray_exp.ray_main
    xray-exp models list yolo12n                               # = python -m xray_exp.models ...
    xray-exp upload outputs/runs/<run>                         # = python -m xray_exp.upload ...
    xray-exp serve                                             # = python -m xray_exp.serve

Each command runs its module exactly as `python -m` does (same arguments, exit status and output).
COMMANDS is the one table of the entry points: `xray-exp --help`, the README's command list and the tests that
keep every `--help` light read it.
"""

from __future__ import annotations

import runpy
import sys

from xray_exp.errors import exit_with_errors

COMMANDS: dict[str, tuple[str, str]] = {
    "train": ("xray_exp.train", "train a detector (Hydra overrides; Ultralytics shortcuts epochs=, imgsz=, ...)"),
    "evaluate": ("xray_exp.evaluate", "clinical metrics and a report for one split"),
    "compare": ("xray_exp.compare", "two or more models on the same images: the paired verdict"),
    "ensemble": ("xray_exp.ensemble", "fuse fold models / detectors, evaluate against the best one, register"),
    "folds": ("xray_exp.folds", "the k-fold plan of a dataset (patient-grouped, stratified), or finish a CV again"),
    "prepare": ("xray_exp.prepare", "convert VinDr-CXR / NIH ChestX-ray14 to a YOLO dataset"),
    "predict": ("xray_exp.predict", "findings for unlabelled files: CSV, JSON, annotated PNGs, DICOM SR"),
    "ray": ("xray_exp.ray_main", "Ray Tune search or Ray Train data-parallel training"),
    "models": ("xray_exp.models", "list, show and promote registered models"),
    "upload": ("xray_exp.upload", "send a run's journaled MLflow events after an outage"),
    "serve": ("xray_exp.serve", "the FastAPI inference service"),
    "bench": ("xray_exp.bench", "speed and memory benchmarks, measured side by side"),
}
# Former names, still accepted: xray-exp registry = xray-exp models.
ALIASES = {"registry": "models"}


def usage() -> str:
    lines = ["usage: xray-exp <command> [arguments ...]   (each command: xray-exp <command> --help)", ""]
    lines += [f"  {name:<10} {text}   [python -m {module}]" for name, (module, text) in COMMANDS.items()]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    args = sys.argv[1:] if argv is None else argv
    if not args or args[0] in ("-h", "--help", "help"):
        print(usage())
        sys.exit(0 if args else 2)
    args = [ALIASES.get(args[0], args[0]), *args[1:]]
    if args[0] not in COMMANDS:
        exit_with_errors([f"unknown command {args[0]!r}.\n{usage()}"])
    module = COMMANDS[args[0]][0]
    sys.argv = [f"xray-exp {args[0]}", *args[1:]]
    runpy.run_module(module, run_name="__main__", alter_sys=True)


if __name__ == "__main__":
    main()
