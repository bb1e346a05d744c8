"""Structured config of `python -m xray_exp.prepare`: every key and type xray_exp/conf/prepare/ may hold.

Hydra merges xray_exp/conf/prepare/prepare.yaml and its `dataset` group onto these dataclasses, so a typo or a
wrong type fails at compose time and names the key:

    python -m xray_exp.prepare dataset=nih_cxr14 source=/data/nih fusion.iou=0.5
    # -> Key 'iou' not in 'FusionConfig' ... full_key: fusion.iou

Standard library + omegaconf/hydra only: `--help` stays fast.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path

from omegaconf import MISSING, DictConfig, OmegaConf

CONF_DIR = Path(__file__).resolve().parents[1] / "conf" / "prepare"  # package data

_REGISTERED = False


class SourceFormat(StrEnum):
    """How the source's CSVs are laid out."""

    vindr_cxr = "vindr_cxr"  # train.csv: one row per reader box (VinDr-CXR / VinBigData)
    nih_cxr14 = "nih_cxr14"  # BBox_List_2017.csv + Data_Entry_2017.csv (NIH ChestX-ray14)
    coco = "coco"  # a COCO JSON: images, annotations ([x, y, w, h] pixel boxes), categories by name
    csv = "csv"  # one row per box: image, x_min, y_min, x_max, y_max, label[, patient_id]
    voc = "voc"  # Pascal VOC: one XML per image (Annotations/*.xml)


class VocDifficult(StrEnum):
    """What to do with VOC objects marked <difficult>1</difficult>."""

    keep = "keep"
    drop = "drop"


@dataclass
class CsvColumns:
    """Column names of a `format: csv` box table (dataset.columns.x_min=xmin ...); patient_id is optional."""

    image: str = "image"
    x_min: str = "x_min"
    y_min: str = "y_min"
    x_max: str = "x_max"
    y_max: str = "y_max"
    label: str = "label"
    patient_id: str = "patient_id"


class FusionMethod(StrEnum):
    """How several readers' boxes of one image and class become one label set."""

    wbf = "wbf"  # weighted boxes fusion (ensemble_boxes)
    nms = "nms"  # non-maximum suppression (OpenCV)
    none = "none"  # keep every reader's box


@dataclass
class SourceDatasetConfig:
    """A source dataset's layout and classes (xray_exp/conf/prepare/dataset/*.yaml). Paths are relative to `source`."""

    name: str = MISSING
    format: SourceFormat = MISSING
    annotations: str = MISSING  # the box CSV / COCO JSON / folder of VOC XMLs
    image_level_labels: str | None = None  # NIH Data_Entry_2017.csv: patients and "No Finding" images
    image_dirs: list[str] = MISSING  # folders searched for images (glob patterns allowed)
    image_extensions: list[str] = MISSING
    classes: list[str] = MISSING  # canonical order: position = YOLO class id; coco/csv/voc: [] = from the source
    no_finding: str = MISSING  # the label of a normal image
    ignore_classes: list[str] = field(default_factory=list)  # known labels left out on purpose
    label_aliases: dict[str, str] = field(default_factory=dict)  # image-level name -> box class name
    negatives: bool = True  # normal images become background images (empty label files)
    max_negatives: int | None = None  # a seeded sample of at most this many background images
    patients: str | None = None  # coco/csv/voc: a CSV `image,patient` (overrides the annotations' patient ids)
    columns: CsvColumns = field(default_factory=CsvColumns)  # format: csv
    voc_difficult: VocDifficult = VocDifficult.keep  # format: voc
    voc_one_based: bool = False  # format: voc; true: the devkit's 1-based pixel indices (x_min - 1, y_min - 1)


@dataclass
class FusionConfig:
    """Reader-box fusion, per image and class; images with a single reader are left as they are.

    wbf: `skip_box_thr` drops fused boxes whose score is below it; a fused box's score is the share of the
    image's readers that drew it (3 readers: 0.33, 0.67, 1.0), so 0.5 keeps boxes most readers agree on.
    """

    method: FusionMethod = FusionMethod.wbf
    iou_thr: float = 0.4
    skip_box_thr: float = 0.0
    min_readers: int = 1  # drop fused boxes fewer readers drew (xray_exp.prepare.readers)


@dataclass
class ReadersConfig:
    """Readers whose boxes and reads are left out (VinDr-CXR: `readers.exclude=[R8,R9,R10]`)."""

    exclude: list[str] = field(default_factory=list)


@dataclass
class SplitConfig:
    """Patient-level, class-stratified split; ratios are normalised, `test: 0` means no test split."""

    train: float = 0.8
    val: float = 0.1
    test: float = 0.1
    seed: int = 0


@dataclass
class SummaryConfig:
    """The dataset summary written next to the data: summary.json, summary.png, examples.png."""

    enabled: bool = True
    examples: int = 16  # images in the examples grid
    tile: int = 320  # pixel size of one grid cell


@dataclass
class PrepareConfig:
    """The whole `python -m xray_exp.prepare` config."""

    source: str = MISSING
    out_dir: str = MISSING
    dataset: SourceDatasetConfig = field(default_factory=SourceDatasetConfig)
    longest_side: int | None = 1024  # downscale so the longest side is at most this; null keeps the size
    png_compression: int = 1  # cv2 PNG level 0-9: 1 is fast, 9 is ~10% smaller and several times slower
    max_pixel_bytes: int = 48 * 1024 * 1024  # a decoded frame (w*h*samples*bytes); larger: image_too_large
    max_decompressed_bytes: int = 128 * 1024 * 1024  # an inflated Deflated DICOM / all frames' pixel bytes
    fusion: FusionConfig = field(default_factory=FusionConfig)
    readers: ReadersConfig = field(default_factory=ReadersConfig)
    split: SplitConfig = field(default_factory=SplitConfig)
    workers: int | None = None  # processes; null = the CPU cores this process may use
    strict: bool = False  # fail on the first problem instead of counting and skipping it
    limit: int | None = None  # use a seeded sample of this many images (smoke runs)
    progress: bool = True
    summary: SummaryConfig = field(default_factory=SummaryConfig)


def register_prepare_configs() -> None:
    """Register the schema (`prepare_schema`) in Hydra's ConfigStore once per process."""
    global _REGISTERED
    if _REGISTERED:
        return
    from hydra.core.config_store import ConfigStore

    ConfigStore.instance().store(name="prepare_schema", node=PrepareConfig)
    _REGISTERED = True


def compose_prepare_config(overrides: list[str]) -> PrepareConfig:
    """Compose xray_exp/conf/prepare as the CLI does, for scripts and tests (pass out_dir: the default needs Hydra's
    runtime). Returns the typed config; errors name the key like the CLI's."""
    from hydra import compose, initialize_config_dir

    register_prepare_configs()
    with initialize_config_dir(config_dir=str(CONF_DIR)):
        cfg = compose("prepare", overrides=overrides)
    return prepare_config_object(cfg)


def prepare_config_object(cfg: DictConfig) -> PrepareConfig:
    """The composed config as its schema's dataclass (prepare.yaml's defaults start with `prepare_schema`)."""
    config = OmegaConf.to_object(cfg)
    if not isinstance(config, PrepareConfig):
        raise TypeError(
            f"the prepare config is not built on PrepareConfig (got {type(config).__name__}): "
            "prepare.yaml's defaults must start with prepare_schema"
        )
    return config
