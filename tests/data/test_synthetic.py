"""The embedded synthetic dataset: deterministic, valid YOLO labels, every class present, cached."""

from __future__ import annotations

import hashlib
from dataclasses import asdict

import numpy as np
import pytest

from xray_exp.config.schema import SyntheticConfig
from xray_exp.data.synthetic import CLASS_NAMES, ensure_synthetic_dataset, generate_image
from xray_exp.data.validate import validate_dataset


def digest(root):
    h = hashlib.sha256()
    for p in sorted(root.rglob("*")):
        if p.is_file() and p.name != "data.yaml":
            h.update(p.name.encode() + p.read_bytes())
    return h.hexdigest()


def test_same_seed_same_bytes_other_seed_differs(tmp_path):
    a = ensure_synthetic_dataset(tmp_path / "a", num_train=6, num_val=2, num_test=2, image_size=96)
    b = ensure_synthetic_dataset(tmp_path / "b", num_train=6, num_val=2, num_test=2, image_size=96)
    c = ensure_synthetic_dataset(tmp_path / "c", num_train=6, num_val=2, num_test=2, image_size=96, seed=1)
    assert digest(a.parent) == digest(b.parent) != digest(c.parent)


def test_generated_once_then_reused(tmp_path):
    first = ensure_synthetic_dataset(tmp_path, num_train=4, num_val=2, num_test=2, image_size=96)
    mtime = first.stat().st_mtime_ns
    again = ensure_synthetic_dataset(tmp_path, num_train=4, num_val=2, num_test=2, image_size=96)
    assert again == first and again.stat().st_mtime_ns == mtime
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")], "temporary folder left behind"


def test_dataset_validates_with_all_classes_and_some_normals(tmp_path):
    data_yaml = ensure_synthetic_dataset(tmp_path, num_train=40, num_val=8, num_test=8, image_size=128)
    info = validate_dataset(data_yaml)
    assert info.names == dict(enumerate(CLASS_NAMES))
    labels = [p.read_text() for p in (data_yaml.parent / "labels" / "train").glob("*.txt")]
    classes = {int(line.split()[0]) for text in labels for line in text.splitlines()}
    assert classes == set(range(len(CLASS_NAMES)))
    normals = sum(1 for t in labels if not t.strip())
    assert 3 <= normals <= 20  # ~25% of 40


def test_images_look_like_radiographs():
    img, boxes = generate_image(np.random.default_rng(3), 256, normal_fraction=0.0)
    assert img.dtype == np.uint8 and img.shape == (256, 256)
    assert img[:, :8].mean() < 60  # dark outside the body
    assert 60 < img[128, 120:136].mean()  # bright spine / mediastinum in the middle
    for cls, x1, y1, x2, y2 in boxes:
        assert 0 <= cls < len(CLASS_NAMES) and x2 > x1 and y2 > y1


def test_nodule_is_brighter_than_its_surroundings():
    rng = np.random.default_rng(0)
    for _ in range(30):
        img, boxes = generate_image(rng, 256, normal_fraction=0.0)
        nodules = [b for b in boxes if b[0] == 0]
        if nodules:
            _, x1, y1, x2, y2 = nodules[0]
            cx, cy = int((x1 + x2) / 2), int((y1 + y2) / 2)
            assert img[cy, cx] > img[int(y1), int(x1)] + 20
            return
    pytest.fail("no nodule generated in 30 images")


@pytest.mark.parametrize("bad", [{"num_val": 0}, {"image_size": 32}])
def test_bad_spec_is_refused(tmp_path, bad):
    with pytest.raises(ValueError, match="dataset.synthetic"):
        ensure_synthetic_dataset(tmp_path, **{**SyntheticConfig().__dict__, **bad})


def test_the_schema_is_the_one_home_of_the_defaults(tmp_path, monkeypatch):
    """`dataset=synthetic` composes to the schema's defaults, the generator's CLI takes them, no config file
    repeats them, and the default and smoke datasets keep the cache folders they had (their fingerprints)."""
    from hydra import compose, initialize_config_dir
    from omegaconf import OmegaConf

    from xray_exp import CONF_DIR
    from xray_exp.config.store import register_configs
    from xray_exp.data import synthetic

    register_configs()
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base=None):
        cfg = compose(config_name="train", overrides=[])
        smoke = compose(config_name="train", overrides=["debug=smoke"])
    assert OmegaConf.to_container(cfg.dataset.synthetic) == asdict(SyntheticConfig())
    assert "synthetic" not in OmegaConf.load(CONF_DIR / "dataset" / "synthetic.yaml")
    seen = {}
    monkeypatch.setattr(synthetic, "ensure_synthetic_dataset", lambda cache_dir, **spec: seen.update(spec))
    synthetic.main([str(tmp_path)])
    assert seen == asdict(SyntheticConfig())
    assert synthetic.spec_fingerprint(SyntheticConfig()) == "dc9a06d29b8f"
    assert synthetic.spec_fingerprint(SyntheticConfig(**smoke.dataset.synthetic)) == "68393b273983"
