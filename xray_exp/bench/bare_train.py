"""Bare Ultralytics training, the baseline side of the benchmarks: `YOLO(arch).train(**kwargs)`, nothing else.

    python -m xray_exp.bench.bare_train --arch yolo12n.yaml --kwargs /abs/kwargs.json

The kwargs file is a JSON object of Ultralytics train arguments (the overhead benchmark writes the ones
xray_exp's seam produces; the GPU benchmark writes Ultralytics defaults). Nothing of xray_exp runs on this
path but `xray_exp.yolo.bench.train_bare` (that one call): the parent process sets the environment
(YOLO_CONFIG_DIR, offline switches) the same way for both sides.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from xray_exp.yolo.bench import train_bare


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--arch", required=True, help="model yaml (yolo12n.yaml ...) or a .pt file")
    parser.add_argument("--kwargs", required=True, type=Path, help="JSON object of YOLO.train() arguments")
    args = parser.parse_args(argv)
    kwargs = json.loads(args.kwargs.read_text())
    if not isinstance(kwargs, dict):
        raise SystemExit(f"{args.kwargs}: expected a JSON object of train arguments")

    train_bare(args.arch, kwargs)


if __name__ == "__main__":
    main()
