"""The one-channel training loader (xray_exp.yolo.trainer) gives the same batches as Ultralytics' 3-channel one.

Exactness is the whole point (a faster loader that changed the images would change the training), so the
integration tests draw samples from both pipelines under identical random seeds and compare them bit for bit,
with mosaic on and after close_mosaic, for 8-bit and 16-bit PNGs, with Ultralytics' colour augmentation on.
"""

from __future__ import annotations

import random

import cv2
import numpy as np
import pytest
import torch

from xray_exp.yolo import trainer as gray_loader


def test_gray_hsv_equals_ultralytics_random_hsv_on_gray_images():
    from ultralytics.data.augment import RandomHSV

    rng = np.random.default_rng(0)
    for seed in range(25):
        gray = rng.integers(0, 256, (37, 53), dtype=np.uint8)
        np.random.seed(seed)
        three = RandomHSV(0.015, 0.7, 0.4)({"img": np.repeat(gray[..., None], 3, -1)})["img"]
        after_three = np.random.rand()
        np.random.seed(seed)
        one = gray_loader.GrayHSV(0.015, 0.7, 0.4)({"img": gray[..., None].copy()})["img"]
        assert np.random.rand() == after_three  # the same random numbers were drawn
        assert one.shape == (37, 53, 1)
        np.testing.assert_array_equal(np.repeat(one, 3, -1), three)


def test_gray_hsv_without_gains_changes_nothing():
    img = np.arange(256, dtype=np.uint8).reshape(16, 16, 1)
    assert gray_loader.GrayHSV(0, 0, 0)({"img": img})["img"] is img


def test_first_non_gray_reads_headers(tmp_path):
    gray, rgb, broken = tmp_path / "g.png", tmp_path / "c.png", tmp_path / "b.png"
    cv2.imwrite(str(gray), np.zeros((4, 4), np.uint8))
    cv2.imwrite(str(rgb), np.zeros((4, 4, 3), np.uint8))
    broken.write_bytes(b"not a png")
    g16 = tmp_path / "g16.png"
    cv2.imwrite(str(g16), np.zeros((4, 4), np.uint16))
    assert gray_loader.first_non_gray([gray, g16]) is None
    assert "mode RGB" in gray_loader.first_non_gray([gray, rgb])
    assert "b.png" in gray_loader.first_non_gray([broken])


def test_image_files_lists_folders_and_list_files(tmp_path):
    (tmp_path / "a" / "sub").mkdir(parents=True)
    for name in ("a/1.png", "a/sub/2.jpg", "a/notes.txt"):
        (tmp_path / name).write_bytes(b"")
    listing = tmp_path / "train.txt"
    listing.write_text("./a/1.png\n./a/1.png\n")
    assert gray_loader.image_files(tmp_path / "a") == [str(tmp_path / "a/1.png"), str(tmp_path / "a/sub/2.jpg")]
    assert gray_loader.image_files([listing]) == [str(tmp_path / "a/1.png")]


def test_enabled_by_environment(monkeypatch):
    monkeypatch.delenv(gray_loader.ENV, raising=False)
    assert gray_loader.enabled()
    for off in ("0", "false", "off"):
        monkeypatch.setenv(gray_loader.ENV, off)
        assert not gray_loader.enabled()


# ---------------------------------------------------------------- whole pipeline, bit for bit


def _write_set(root, n: int, size: int, bits: int):
    from xray_exp.data.synthetic import CLASS_NAMES, generate_image, to_yolo_lines

    rng = np.random.default_rng(1)
    (root / "images").mkdir(parents=True)
    (root / "labels").mkdir()
    for i in range(n):
        image, boxes = generate_image(rng, size, normal_fraction=0.0)
        if bits == 16:
            image = image.astype(np.uint16) * 257 + rng.integers(0, 257, image.shape).astype(np.uint16)
        cv2.imwrite(str(root / "images" / f"{i}.png"), image)
        (root / "labels" / f"{i}.txt").write_text(to_yolo_lines(boxes, size))
    data = root / "data.yaml"
    data.write_text(f"path: {root}\ntrain: images\nval: images\nnames: {dict(enumerate(CLASS_NAMES))}\n")
    return data


def _datasets(data_yaml, cache):
    from ultralytics.cfg import get_cfg
    from ultralytics.data import build_yolo_dataset
    from ultralytics.data.utils import check_det_dataset

    # Ultralytics' default augmentation: hue and saturation jitter on, the case the shortcut must get right.
    cfg = get_cfg(overrides={"data": str(data_yaml), "imgsz": 64, "cache": cache, "degrees": 5.0, "mixup": 0.2})
    data = check_det_dataset(str(data_yaml), autodownload=False)
    three = build_yolo_dataset(cfg, data["train"], 4, data, mode="train", stride=32)
    one = build_yolo_dataset(cfg, data["train"], 4, {**data, "channels": 1}, mode="train", stride=32)
    gray_loader.to_gray_pipeline(one.transforms)
    return cfg, three, one


def _same_samples(three, one, count: int, seed: int):
    for i in range(count):
        random.seed(seed + i)
        np.random.seed(seed + i)
        a = three[i % len(three)]
        random.seed(seed + i)
        np.random.seed(seed + i)
        b = one[i % len(one)]
        assert a["img"].shape == (3, 64, 64) and b["img"].shape == (1, 64, 64)
        assert (a["img"] == b["img"].expand(3, -1, -1)).all(), f"sample {i}: images differ"
        assert (a["bboxes"] == b["bboxes"]).all() and (a["cls"] == b["cls"]).all(), f"sample {i}: labels differ"


@pytest.mark.parametrize(("bits", "cache"), [(8, False), (8, "ram"), (16, False)])
def test_one_channel_pipeline_gives_identical_samples(tmp_path, bits, cache):
    from copy import copy

    data_yaml = _write_set(tmp_path / "set", n=6, size=96, bits=bits)  # 96 px -> imgsz 64: the resize is used
    cfg, three, one = _datasets(data_yaml, cache)
    assert one.channels == 1 and three.channels == 3
    assert any(isinstance(t, gray_loader.GrayHSV) for t in one.transforms.transforms)
    _same_samples(three, one, count=12, seed=10)  # mosaic, mixup, affine, HSV, flips
    for ds in (three, one):
        ds.close_mosaic(hyp=copy(cfg))
    gray_loader.to_gray_pipeline(one.transforms)
    _same_samples(three, one, count=6, seed=50)  # letterbox path after close_mosaic


def test_trainer_uses_the_gray_loader_only_for_gray_sets(tmp_path, monkeypatch):
    """XrayDetectionTrainer.build_dataset: one channel for a gray set, Ultralytics' pipeline otherwise."""
    from xray_exp.data.synthetic import ensure_synthetic_dataset

    data_yaml = ensure_synthetic_dataset(tmp_path / "cache", num_train=4, num_val=2, num_test=1, image_size=64)
    trainer = gray_loader.XrayDetectionTrainer(
        overrides={
            "data": str(data_yaml),
            "model": "yolo12n.yaml",
            "imgsz": 64,
            "device": "cpu",
            "project": str(tmp_path),
            "name": "t",
            "plots": False,
        }
    )
    trainer.model = trainer.get_model(cfg="yolo12n.yaml", verbose=False)
    train_images = data_yaml.parent / "images" / "train"
    ds = trainer.build_dataset(str(train_images), mode="train", batch=2)
    assert ds.channels == 1 and trainer.gray_loader and ds[0]["img"].shape[0] == 1
    trainer.device = torch.device("cpu")
    batch = trainer.preprocess_batch(ds.collate_fn([ds[0], ds[1]]))
    assert batch["img"].shape == (2, 3, 64, 64) and batch["img"].is_contiguous()
    assert (batch["img"][:, 0] == batch["img"][:, 2]).all() and batch["img"].max() <= 1.0
    assert trainer.build_dataset(str(data_yaml.parent / "images" / "val"), mode="val", batch=2).channels == 3
    assert trainer.data.get("channels", 3) == 3  # the model is still built for 3 channels

    monkeypatch.setenv(gray_loader.ENV, "0")
    assert trainer.build_dataset(str(train_images), mode="train", batch=2).channels == 3 and not trainer.gray_loader

    monkeypatch.delenv(gray_loader.ENV)
    real_find_spec = gray_loader.importlib.util.find_spec
    with monkeypatch.context() as m:  # albumentations installed: Ultralytics adds colour transforms -> off
        m.setattr(
            gray_loader.importlib.util,
            "find_spec",
            lambda name, *a: object() if name == "albumentations" else real_find_spec(name, *a),
        )
        assert trainer.build_dataset(str(train_images), mode="train", batch=2).channels == 3
        assert not trainer.gray_loader
    assert trainer.build_dataset(str(train_images), mode="train", batch=2).channels == 1 and trainer.gray_loader
    cv2.imwrite(str(train_images / "colour.png"), np.zeros((64, 64, 3), np.uint8))
    assert trainer.build_dataset(str(train_images), mode="train", batch=2).channels == 3 and not trainer.gray_loader


def test_training_with_the_gray_loader_matches_ultralytics_pipeline(tmp_path):
    """End to end: two CPU trainings (deterministic, Ultralytics' colour augmentation on), gray loader on and
    off, give the same losses and validation metrics epoch for epoch."""
    import csv

    from xray_exp.data.synthetic import ensure_synthetic_dataset
    from xray_exp.yolo.fit import fit

    data_yaml = ensure_synthetic_dataset(tmp_path / "cache", num_train=8, num_val=4, num_test=1, image_size=96)
    rows = {}
    for on in (True, False):
        args = {
            "data": str(data_yaml),
            "epochs": 2,
            "imgsz": 64,
            "batch": 4,
            "workers": 1,
            "device": "cpu",
            "project": str(tmp_path / "runs"),
            "name": f"gray-{on}",
            "exist_ok": True,
            "plots": False,
            "seed": 0,
            "deterministic": True,
            "close_mosaic": 1,
            "amp": False,
        }
        result = fit("yolo12n.yaml", args, gray_loader=on)
        assert result.trainer.gray_loader is on and result.trainer.train_loader.dataset.channels == (1 if on else 3)
        with open(result.run_dir / "results.csv") as f:
            rows[on] = [{k: v for k, v in r.items() if k not in ("time",)} for r in csv.DictReader(f)]
    assert len(rows[True]) == 2 and rows[True] == rows[False]
