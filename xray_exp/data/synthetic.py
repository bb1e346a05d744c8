"""Embedded synthetic chest X-ray dataset: deterministic, learnable, generated once and cached.

Each image is a grayscale frontal chest film: body outline, dark lung fields, ribs, spine, heart
shadow and diaphragm, with film noise. Findings (YOLO classes):

    0 nodule        small round opacity inside a lung
    1 effusion      dense fluid at a lung base with a concave meniscus
    2 cardiomegaly  heart shadow wider than ~55% of the thorax (box around the heart)
    3 pneumothorax  dark band without lung markings along the lateral lung edge, with a pleural line

A share of images (``normal_fraction``) has no findings (empty label file: a background image).

    python -m xray_exp.data.synthetic /tmp/synth --num-train 16   # prints the data.yaml path

Its settings (counts, image size, normal share, seed) and their defaults are the config schema's
`SyntheticConfig` (xray_exp/config/schema.py): `dataset.synthetic.*` in every config, the same here.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from dataclasses import asdict
from pathlib import Path

import numpy as np

from xray_exp.config.schema import SyntheticConfig

CLASS_NAMES = ("nodule", "effusion", "cardiomegaly", "pneumothorax")
GENERATOR_VERSION = 1
SPLITS = ("train", "val", "test")


def spec_fingerprint(spec: SyntheticConfig) -> str:
    """12 hex digits naming the dataset these settings (and this generator version) make: its cache folder."""
    payload = json.dumps({"v": GENERATOR_VERSION, **asdict(spec)}, sort_keys=True)
    return hashlib.sha256(payload.encode()).hexdigest()[:12]


def split_count(spec: SyntheticConfig, split: str) -> int:
    return {"train": spec.num_train, "val": spec.num_val, "test": spec.num_test}[split]


def ensure_synthetic_dataset(cache_dir: str | Path, **spec_kwargs) -> Path:
    """Return the data.yaml of the synthetic dataset for these settings, generating it if needed. The settings
    left out take the config schema's defaults (xray_exp.config.schema.SyntheticConfig, their one home).

    Generation writes into a temporary folder that is renamed into place when complete, so an
    interrupted or concurrent generation never leaves a half-written dataset behind.
    """
    spec = SyntheticConfig(**spec_kwargs)
    for split in SPLITS:
        if split_count(spec, split) < 1:
            raise ValueError(f"dataset.synthetic.num_{split} must be >= 1 (got {split_count(spec, split)})")
    if spec.image_size < 64:
        raise ValueError(f"dataset.synthetic.image_size must be >= 64 (got {spec.image_size})")
    root = Path(cache_dir).expanduser().resolve() / f"synthetic-{spec_fingerprint(spec)}"
    data_yaml = root / "data.yaml"
    if data_yaml.exists():
        return data_yaml
    root.parent.mkdir(parents=True, exist_ok=True)
    tmp = root.parent / f".{root.name}.tmp-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    write_dataset(tmp, spec, final_root=root)
    try:
        os.rename(tmp, root)
    except OSError:  # another process finished first: use theirs
        shutil.rmtree(tmp, ignore_errors=True)
        if not data_yaml.exists():
            raise
    return data_yaml


def write_dataset(root: Path, spec: SyntheticConfig, final_root: Path | None = None) -> None:
    """Write images/, labels/ and a data.yaml whose `path` is `final_root` (where `root` will be moved)."""
    import cv2

    for split_index, split in enumerate(SPLITS):
        (root / "images" / split).mkdir(parents=True, exist_ok=True)
        (root / "labels" / split).mkdir(parents=True, exist_ok=True)
        for i in range(split_count(spec, split)):
            rng = np.random.default_rng([spec.seed, split_index, i])
            image, boxes = generate_image(rng, spec.image_size, spec.normal_fraction)
            stem = f"synth_{split}_{i:05d}"
            cv2.imwrite(str(root / "images" / split / f"{stem}.png"), image)
            (root / "labels" / split / f"{stem}.txt").write_text(to_yolo_lines(boxes, spec.image_size))
    names = "\n".join(f"  {i}: {name}" for i, name in enumerate(CLASS_NAMES))
    (root / "data.yaml").write_text(
        "# Synthetic chest X-rays (xray_exp.data.synthetic)\n"
        f"# spec: {json.dumps(asdict(spec), sort_keys=True)}\n"
        f"path: {(final_root or root).resolve()}\n"
        f"train: images/train\nval: images/val\ntest: images/test\nnames:\n{names}\n"
    )


def to_yolo_lines(boxes: list[tuple[int, float, float, float, float]], size: int) -> str:
    """(cls, x1, y1, x2, y2) pixel boxes -> YOLO label text (cls xc yc w h, normalised, clipped)."""
    lines = []
    for cls, x1, y1, x2, y2 in boxes:
        x1, x2 = np.clip([x1, x2], 0, size)
        y1, y2 = np.clip([y1, y2], 0, size)
        w, h = (x2 - x1) / size, (y2 - y1) / size
        if w <= 0 or h <= 0:
            continue
        lines.append(f"{cls} {(x1 + x2) / 2 / size:.6f} {(y1 + y2) / 2 / size:.6f} {w:.6f} {h:.6f}")
    return "\n".join(lines) + ("\n" if lines else "")


def generate_image(rng: np.random.Generator, size: int, normal_fraction: float):
    """One radiograph (uint8, size x size) and its finding boxes [(cls, x1, y1, x2, y2)] in pixels."""
    import cv2

    s = size
    img = np.full((s, s), 18.0, np.float32)
    cx = s * rng.uniform(0.47, 0.53)
    cy = s * rng.uniform(0.5, 0.56)
    # Body (soft tissue) and shoulders.
    cv2.ellipse(img, (int(cx), int(cy)), (int(s * 0.46), int(s * 0.52)), 0, 0, 360, 120, -1)
    # Lung fields: two dark ellipses.
    lung_w, lung_h = s * rng.uniform(0.15, 0.18), s * rng.uniform(0.27, 0.31)
    lungs = []
    mask = np.zeros((s, s), np.uint8)
    for side in (-1, 1):
        lx = cx + side * s * rng.uniform(0.19, 0.21)
        ly = cy - s * 0.05
        lungs.append((lx, ly))
        cv2.ellipse(mask, (int(lx), int(ly)), (int(lung_w), int(lung_h)), side * 8, 0, 360, 1, -1)
    lung_mask = mask.astype(bool)
    img[lung_mask] = 55
    # Ribs: bright arcs across the lungs.
    yy, xx = np.mgrid[0:s, 0:s].astype(np.float32)
    rib_period = s * rng.uniform(0.075, 0.09)
    ribs = 0.5 + 0.5 * np.sin(2 * np.pi * (yy + 0.12 * np.abs(xx - cx) ** 1.2 / s**0.2) / rib_period)
    img += lung_mask * (ribs**6) * 35
    # Lung markings (vessels): smoothed noise inside the lungs.
    marks = cv2.GaussianBlur(rng.normal(0, 1, (s, s)).astype(np.float32), (0, 0), s / 120)
    img += lung_mask * marks * 12
    # Spine.
    cv2.rectangle(img, (int(cx - s * 0.035), 0), (int(cx + s * 0.035), s), 165, -1)
    # Diaphragm: bright domes below the lungs.
    for lx, ly in lungs:
        cv2.ellipse(img, (int(lx), int(ly + lung_h * 1.05)), (int(lung_w * 1.1), int(lung_h * 0.3)), 0, 0, 360, 150, -1)

    boxes: list[tuple[int, float, float, float, float]] = []
    has_findings = rng.random() >= normal_fraction
    findings = []
    if has_findings:
        n = int(rng.integers(1, 4))
        findings = list(rng.choice(len(CLASS_NAMES), size=n, replace=False))

    # Heart: normal ~42-48% of thorax width; cardiomegaly 58-66%.
    thorax_w = 2 * (s * 0.2 + lung_w)
    ratio = rng.uniform(0.58, 0.66) if 2 in findings else rng.uniform(0.40, 0.47)
    hw, hh = ratio * thorax_w / 2, s * rng.uniform(0.13, 0.16) * (1 + (ratio - 0.44))
    hx, hy = cx + s * 0.04, cy + s * 0.08
    cv2.ellipse(img, (int(hx), int(hy)), (int(hw), int(hh)), 0, 0, 360, 175, -1)
    if 2 in findings:
        boxes.append((2, hx - hw, hy - hh, hx + hw, hy + hh))

    side_order = rng.permutation(2)
    if 1 in findings:  # effusion at one lung base, meniscus concave upwards
        lx, ly = lungs[side_order[0]]
        depth = lung_h * rng.uniform(0.35, 0.6)
        top = ly + lung_h - depth
        fluid = (yy > top + 0.25 * depth * (1 - ((xx - lx) / lung_w) ** 2)) & lung_mask
        fluid &= (yy > top) & (np.abs(xx - lx) < lung_w * 1.3)
        img[fluid] = 150 + rng.normal(0, 3, int(fluid.sum()))
        ys, xs = np.nonzero(fluid)
        if len(xs):
            boxes.append((1, xs.min(), ys.min(), xs.max() + 1, ys.max() + 1))
    if 3 in findings:  # pneumothorax: lateral lung edge, dark, no markings, thin pleural line
        lx, ly = lungs[side_order[1]]
        outward = -1 if lx < cx else 1
        band = lung_w * rng.uniform(0.35, 0.55)
        y0, y1 = ly - lung_h * 0.9, ly + lung_h * rng.uniform(0.0, 0.4)
        edge = lx + outward * (lung_w - band)
        region = lung_mask & (yy > y0) & (yy < y1) & ((xx - edge) * outward > 0)
        img[region] = 22 + rng.normal(0, 2, int(region.sum()))
        line = lung_mask & (yy > y0) & (yy < y1) & (np.abs(xx - edge) < max(1.0, s / 300))
        img[line] = 120
        ys, xs = np.nonzero(region | line)
        if len(xs):
            boxes.append((3, xs.min(), ys.min(), xs.max() + 1, ys.max() + 1))
    if 0 in findings:  # one or two nodules inside the lungs
        for _ in range(int(rng.integers(1, 3))):
            lx, ly = lungs[int(rng.integers(0, 2))]
            r = s * rng.uniform(0.025, 0.05)
            nx = lx + rng.uniform(-0.55, 0.55) * (lung_w - r)
            ny = ly + rng.uniform(-0.6, 0.3) * (lung_h - r)
            blob = np.exp(-(((xx - nx) ** 2 + (yy - ny) ** 2) / (2 * (r / 1.6) ** 2)))
            img += blob * rng.uniform(70, 100)
            boxes.append((0, nx - r, ny - r, nx + r, ny + r))

    # Film: blur, grain, exposure.
    img = cv2.GaussianBlur(img, (0, 0), max(0.6, s / 400))
    img = img * rng.uniform(0.85, 1.15) + rng.normal(0, 4, (s, s))
    return np.clip(img, 0, 255).astype(np.uint8), boxes


def main(argv: list[str] | None = None) -> None:
    import argparse

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("cache_dir")
    for name, default in asdict(SyntheticConfig()).items():
        parser.add_argument(f"--{name.replace('_', '-')}", type=type(default), default=default)
    args = vars(parser.parse_args(argv))
    print(ensure_synthetic_dataset(args.pop("cache_dir"), **args))


if __name__ == "__main__":
    main()
