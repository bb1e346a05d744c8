"""Structured config schema: every key and type the `train` config may hold.

Hydra merges `xray_exp/conf/train.yaml` and its groups onto these dataclasses, so a typo in a key or a
value of the wrong type fails at compose time and names the key:

    python -m xray_exp.train train.epoch=3      # -> Key 'epoch' is not in struct ... full_key: train.epoch
    python -m xray_exp.train train.epochs=abc   # -> Value 'abc' ... could not be converted to Integer

This module imports only the standard library and omegaconf/hydra: the CLI's start-up stays light.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from omegaconf import MISSING


class Mode(StrEnum):
    """`train` starts from the model yaml (or `model.weights`); `finetune` from a registered model."""

    train = "train"
    finetune = "finetune"


class RegisterPolicy(StrEnum):
    """What a successful training does in the MLflow Model Registry: `if_better` registers a new version and
    moves the alias (development / staging) to it only when it is at least as good as the holder on the
    objective (else the version is tagged `promotion.skipped` with why); `always` also moves the alias
    unconditionally; `never` registers nothing (debug=smoke)."""

    always = "always"
    never = "never"
    if_better = "if_better"


class Direction(StrEnum):
    maximize = "maximize"
    minimize = "minimize"


class Cache(StrEnum):
    """Ultralytics image cache: none, decoded images in RAM, or .npy files on disk."""

    none = "none"
    ram = "ram"
    disk = "disk"


@dataclass
class PathsConfig:
    """Where things live. Absolute paths: jobs may run elsewhere (Ray workers, trial dirs)."""

    root: str = MISSING
    output_dir: str = MISSING
    cache_dir: str = MISSING


@dataclass
class ModelConfig:
    """A YOLO12 scale; `weights`: a local .pt, a `models:/name@alias` registry URI, or an Ultralytics asset
    name (`yolo12n.pt`, COCO-pretrained: fetched when offline=false)."""

    name: str = MISSING
    arch: str = MISSING
    weights: str | None = None


@dataclass
class SyntheticConfig:
    """The embedded synthetic chest X-ray generator (see xray_exp.data.synthetic)."""

    num_train: int = 160
    num_val: int = 40
    num_test: int = 40
    image_size: int = 320
    normal_fraction: float = 0.25
    seed: int = 0


@dataclass
class DatasetConfig:
    """A YOLO-format dataset: `data_yaml` points at its data.yaml, or is null for the synthetic one."""

    name: str = MISSING
    data_yaml: str | None = None
    synthetic: SyntheticConfig = field(default_factory=SyntheticConfig)


@dataclass
class AugmentationConfig:
    """Ultralytics augmentation hyper-parameters (the names are Ultralytics' own)."""

    name: str = MISSING
    hsv_h: float = 0.015
    hsv_s: float = 0.7
    hsv_v: float = 0.4
    degrees: float = 0.0
    translate: float = 0.1
    scale: float = 0.5
    shear: float = 0.0
    perspective: float = 0.0
    flipud: float = 0.0
    fliplr: float = 0.5
    mosaic: float = 1.0
    mixup: float = 0.0
    cutmix: float = 0.0
    copy_paste: float = 0.0
    erasing: float = 0.4
    auto_augment: str | None = "randaugment"
    close_mosaic: int = 10


@dataclass
class HardwareConfig:
    """Performance levers: device, batch (-1 = automatic sizing, 0-1 = GPU memory fraction), loader
    workers, mixed precision, image cache, the one-channel loader for grayscale image sets (identical
    batches, a third of the CPU work: xray_exp/yolo/trainer.py), and the resources one job asks of Ray."""

    name: str = MISSING
    device: str | None = None
    batch: int | float = 16
    workers: int = 2
    amp: bool = True
    cache: Cache = Cache.none
    compile: bool = False
    gray_loader: bool = True
    num_gpus: float = 0.0
    num_cpus: int = 2


class BetterIf(StrEnum):
    """What `if_better` compares: the objective's point value with the holder's recorded one
    (`at_least_as_good`), or both models on the same images by a paired test that must find this version
    better at p < 0.05 (`significant`; xray_exp.evaluation.significance)."""

    at_least_as_good = "at_least_as_good"
    significant = "significant"


@dataclass
class TrackingConfig:
    """MLflow: `local` (sqlite in the project), `server` (a tracking server) or `disabled`."""

    name: str = MISSING
    enabled: bool = True
    tracking_uri: str | None = None
    experiment: str = "YOLO12-Training"
    finetune_experiment: str = "YOLO12-Finetuning"
    register: RegisterPolicy = RegisterPolicy.if_better
    better_if: BetterIf = BetterIf.at_least_as_good
    timeout_s: float = 10.0


@dataclass
class TrainParams:
    """Training schedule and optimiser; `extra` passes any other Ultralytics train argument (checked
    against Ultralytics' own keys)."""

    epochs: int = 30
    patience: int = 10
    imgsz: int = 320
    optimizer: str = "auto"
    lr0: float = 0.01
    lrf: float = 0.01
    momentum: float = 0.937
    weight_decay: float = 0.0005
    warmup_epochs: float = 3.0
    cos_lr: bool = False
    seed: int = 0
    deterministic: bool = True
    fraction: float = 1.0
    plots: bool = True
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass
class PostConfig:
    """After training: best.pt scored by xray_exp.metrics on `eval_splits` (every val/* and test/* metric,
    with bootstrap CIs), annotated samples, ONNX export + parity. The metric keys mean what they mean in
    `python -m xray_exp.evaluate` (xray_exp.evaluation.MetricSettings)."""

    eval_splits: list[str] = field(default_factory=lambda: ["val", "test"])
    match_iou: float = 0.4
    map40_method: str = "voc2010"  # voc2010 (VinBigData: VOC 2010 all-point, IoU > 0.4) | coco101
    froc_hit: str = "iou"  # iou | center
    no_finding_class: int | None = None
    n_boot: int = 1000
    ci_seed: int = 0
    progress: bool = True
    samples: int = 4
    conf: float = 0.25
    onnx: bool = True
    parity_conf: float = 0.01
    parity_iou: float = 0.9


class Task(StrEnum):
    """`detect`: boxes (YOLO12 detection); `classify`: one normal/abnormal probability per image (YOLO12-cls,
    trained on the detection dataset: an image with any box is `abnormal`; xray_exp.data.classify)."""

    detect = "detect"
    classify = "classify"


class ClassifyLabels(StrEnum):
    """`binary`: normal / abnormal (softmax over two classes). `multilabel` (one output per class) is not
    offered: Ultralytics' classify head, loss and validator are single-label softmax (README)."""

    binary = "binary"
    multilabel = "multilabel"


@dataclass
class TaskConfig:
    """What is trained (`task=detect|classify`). `labels`, `threshold`: the classifier's labels and operating
    point (probability >= threshold -> abnormal: sensitivity/specificity). `suffix`: what the task adds to
    the model's name in a cross-validation's folder name (`-cls`: outputs/cv/yolo12n-cls-<dataset>-k5-s0)."""

    name: Task = Task.detect
    labels: ClassifyLabels = ClassifyLabels.binary
    threshold: float = 0.5
    suffix: str = ""


@dataclass
class GateParams:
    """`gate=<classifier>` (a task=classify model) and its thresholds, on evaluate, compare and ensemble.
    low/high/mode null: the thresholds tuned for the same detector and saved on the classifier's registered
    version (tags gate.*), else 0.1 / 0.9 / multiply (xray_exp/conf/evaluate.yaml explains each key)."""

    model: str | None = None
    low: float | None = None
    high: float | None = None
    mode: str | None = None  # multiply | suppress
    tune: bool = False


@dataclass
class GateConfig(GateParams):
    """The gate of evaluate and compare (the schemas in config/eval_schema.py hold it as `gate`)."""

    imgsz: int | None = None
    register: bool = False
    name: str | None = None
    register_policy: RegisterPolicy = RegisterPolicy.if_better


@dataclass
class ObjectiveConfig:
    """The metric `main()` returns (sweepers optimise it); e.g. test/mAP50-95, val/map40 (post.eval_splits),
    ultralytics/val/mAP50-95 (Ultralytics' validator; needs no post-training evaluation)."""

    metric: str = "test/mAP50-95"
    direction: Direction = Direction.maximize


@dataclass
class CvConfig:
    """k-fold cross-validation (`--multirun sweep=cv`, xray_exp/conf/sweep/cv.yaml): `folds` patient-grouped,
    stratified folds of the dataset's train + val (test held out), planned with `seed`; one job per `fold`
    (set by the sweep) trains on the other folds and validates on its own. `name`: the folder
    outputs/cv/<name> (default from model, dataset, folds and seed: the same command finds it again and
    resumes). `allow_missing`: score the out-of-fold predictions of the finished folds when a fold failed."""

    enabled: bool = False
    folds: int = 5
    seed: int = 0
    fold: int | None = None
    name: str = "${model.name}${task.suffix}-${dataset.name}-k${cv.folds}-s${cv.seed}"
    allow_missing: bool = False


@dataclass
class TrainConfig:
    """The whole `python -m xray_exp.train` config."""

    run_name: str = MISSING
    mode: Mode = Mode.train
    resume: str | None = None
    offline: bool = True
    paths: PathsConfig = field(default_factory=PathsConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    dataset: DatasetConfig = field(default_factory=DatasetConfig)
    augmentation: AugmentationConfig = field(default_factory=AugmentationConfig)
    hardware: HardwareConfig = field(default_factory=HardwareConfig)
    tracking: TrackingConfig = field(default_factory=TrackingConfig)
    train: TrainParams = field(default_factory=TrainParams)
    post: PostConfig = field(default_factory=PostConfig)
    objective: ObjectiveConfig = field(default_factory=ObjectiveConfig)
    cv: CvConfig = field(default_factory=CvConfig)
    tags: list[str] = field(default_factory=list)
    task: TaskConfig = field(default_factory=TaskConfig)


# ---- Ensembles (python -m xray_exp.ensemble) ---------------------------------------------------------------


@dataclass
class FusionParams:
    """ensemble-boxes: `method` wbf (default) | nms | soft_nms | nmw; boxes of one class overlapping more than
    `iou_thr` are fused; boxes below `skip_box_thr` are ignored; `conf_type` (WBF) avg | max |
    box_and_model_avg | absent_model_aware_avg; `sigma`: soft-NMS."""

    method: str = "wbf"
    iou_thr: float = 0.55
    skip_box_thr: float = 0.001
    conf_type: str = "avg"
    sigma: float = 0.5


@dataclass
class EnsembleConfig:
    """The whole `python -m xray_exp.ensemble` config (xray_exp/conf/ensemble.yaml)."""

    cv: str | None = None  # a CV folder (outputs/cv/<name>): its FINISHED fold models
    models: list[str] = field(default_factory=list)  # run folders, .pt/.onnx files, models:/ URIs, CV folders
    weights: list[float] | None = None  # one per entry (cv first, then models); null: all 1
    allow_missing: bool = False  # ensemble a CV whose folds are not all FINISHED (the rest only)
    data_yaml: str | None = None  # null: the CV's dataset, else the dataset group
    dataset: DatasetConfig = field(default_factory=DatasetConfig)
    split: str = "test"
    fusion: FusionParams = field(default_factory=FusionParams)
    tta: bool = False  # add the mirror image of every view
    tta_scales: list[float] = field(default_factory=list)  # extra zoom views, e.g. [0.83, 1.2]
    tuning: bool = False  # `tune=true` on the command line: Optuna on out-of-fold predictions (CV members only)
    n_trials: int = 30
    tune_metric: str = "map40"
    tune_seed: int = 0
    conf: float = 0.001
    iou: float = 0.7  # members' own NMS
    max_det: int = 300
    device: str = "auto"  # ONNX Runtime: auto | cpu | cuda
    threads: int = 0  # ONNX Runtime intra-op threads per member (0: its default)
    match_iou: float = 0.4
    decision_conf: float = 0.25
    map40_method: str = "voc2010"
    froc_hit: str = "iou"
    no_finding_class: int | None = None
    gate: GateParams = field(default_factory=GateParams)  # gate=<classifier>: the fused boxes gated (-ensemble-gated)
    n_boot: int = 1000
    ci_seed: int = 0
    ci_level: float = 0.95
    gallery_size: int = 12
    progress: bool = True
    compare_metric: str = "map40"  # the verdict printed first; also picks the best single member
    objective: str | None = None  # the registration objective; null: <split>/map40
    register: RegisterPolicy = RegisterPolicy.if_better
    register_alias: str = "development"
    model_name: str | None = None  # registered as <model_name>-ensemble; null: the members' architecture
    offline: bool = True
    ensemble_experiment: str = "YOLO12-Ensemble"
    out_dir: str = MISSING
    paths: PathsConfig = field(default_factory=PathsConfig)
    tracking: TrackingConfig = field(default_factory=TrackingConfig)


# ---- Ray: Tune search and Train data parallelism (python -m xray_exp.ray_main) ----------------------------


class RayMode(StrEnum):
    """`tune` searches hyper-parameters (Ray Tune); `train` trains data-parallel over Ray Train workers;
    `retrain` does the same starting from `model_path` (a checkpoint to continue, or a weights file)."""

    tune = "tune"
    train = "train"
    retrain = "retrain"


@dataclass
class RayTrainSettings:
    """Ray Train (`mode=train|retrain`): `num_workers` data-parallel workers, one process group (nccl on
    GPUs, gloo on CPU). `hardware.batch` is the global batch, split over the workers. A worker that dies
    restarts the group from the last epoch's checkpoint, up to `max_failures` times."""

    num_workers: int = 2
    use_gpu: bool | None = None  # null: GPUs when hardware.num_gpus > 0
    cpus_per_worker: float = 1.0
    gpus_per_worker: float = 1.0  # used when use_gpu
    backend: str | None = None  # null: nccl with GPUs, gloo on CPU
    max_failures: int = 1
    checkpoints_to_keep: int = 2
    timeout_s: int = 1800  # process group set-up timeout


@dataclass
class RayClusterConfig:
    """Where Ray runs. `address` (or RAY_ADDRESS) attaches to an existing cluster (`auto` = the one started
    on this machine with `ray start`); without one a new local Ray is started, sized by num_cpus/num_gpus.
    `storage_path` holds Tune experiments and Train checkpoints: a shared folder or s3:// on a cluster."""

    address: str | None = None
    num_cpus: int | None = None
    num_gpus: int | None = None
    include_dashboard: bool | None = None  # local Ray only; null: Ray's default (on; Ray Train's state checks use it)
    namespace: str = "xray_exp"
    storage_path: str = MISSING
    train: RayTrainSettings = field(default_factory=RayTrainSettings)


@dataclass
class TuneSettings:
    """Ray Tune (`mode=tune`): `num_samples` trials from `searcher` over `space`, `max_concurrent` at once,
    each with `cpus_per_trial`/`gpus_per_trial` (fractions share a GPU); ASHA stops weak trials on `metric`
    (reported every epoch) after `grace_period` epochs. `space` maps config keys to distributions, e.g.
    `train: {lr0: {type: loguniform, low: 1e-4, high: 1e-1}}` (see xray_exp/conf/tune/default.yaml)."""

    name: str = MISSING
    num_samples: int = 20
    max_concurrent: int = 4
    metric: str = "ultralytics/val/mAP50-95"  # per epoch, from Ultralytics' validator
    direction: Direction = Direction.maximize
    searcher: str = "optuna"  # optuna (TPE) | random | hyperopt | bayesopt | hebo | ax | zoopt (if installed)
    seed: int | None = 0
    scheduler: str = "asha"  # asha | fifo
    grace_period: int = 1
    reduction_factor: int = 2
    cpus_per_trial: float = 1.0
    gpus_per_trial: float = 0.0
    max_failures: int = 1  # a trial whose process dies restarts from its last checkpoint
    experiment: str = "YOLO12-Tuning"  # MLflow experiment of the parent run and its trial runs
    space: dict[str, Any] = field(default_factory=dict)


@dataclass
class RayMainConfig(TrainConfig):
    """The whole `python -m xray_exp.ray_main` config: the train config plus `ray` and `tune`."""

    mode: RayMode = RayMode.tune  # type: ignore[assignment]
    model_path: str | None = None  # mode=retrain: a run folder, Ray checkpoint folder, last.pt or weights .pt
    ray: RayClusterConfig = field(default_factory=RayClusterConfig)
    tune: TuneSettings = field(default_factory=TuneSettings)


# ---- Prediction on unlabelled files (python -m xray_exp.predict) ----------------------------------------------


@dataclass
class DicomWebConfig:
    """A DICOMweb server (`source=dicomweb:<url>/studies/<uid>`): WADO-RS to fetch the study, STOW-RS to store
    the SRs back. `credentials_file` holds `user:password` (HTTP basic) or a bearer token; never logged."""

    credentials_file: str | None = None
    timeout_s: float = 30.0
    retries: int = 3  # attempts per request on connection errors and 5xx answers (backoff 0.5 s, 1 s, 2 s ...)
    store_sr: bool = True  # STOW-RS the SRs into the study (sr=true)


@dataclass
class PredictConfig:
    """The whole `python -m xray_exp.predict` config."""

    model: str = MISSING  # .onnx | .pt | a run folder | a folder with model.onnx | models:/<name>@<alias>
    source: str = MISSING  # file | folder | 'glob/*.dcm' | list.txt | dicomweb:<url>/studies/<uid>
    out_dir: str = MISSING
    conf: float = 0.25
    iou: float = 0.7
    max_det: int = 300
    device: str = "auto"  # ONNX Runtime: auto | cpu | cuda
    imgsz: int | None = None  # a .pt is exported at this size (null: the size it was trained at)
    save_images: bool = False  # annotated PNGs under out_dir/images
    sr: bool = False  # a DICOM SR (TID 1500) per DICOM input under out_dir/sr
    sr_codes: str | None = None  # class -> finding code YAML; null: xray_exp/sr/finding_codes.yaml
    progress: bool = True
    offline: bool = True  # a .pt is exported with Ultralytics offline
    tracking_uri: str | None = None  # MLflow for models:/ (null: MLFLOW_TRACKING_URI, else outputs/mlflow.db)
    paths: PathsConfig = field(default_factory=PathsConfig)
    dicomweb: DicomWebConfig = field(default_factory=DicomWebConfig)


# ---- The fold plan alone (python -m xray_exp.folds) --------------------------------------------------------


@dataclass
class FoldsConfig:
    """`python -m xray_exp.folds data=<data.yaml> folds=5 seed=0 out_dir=...`: the k-fold plan of a dataset's
    train + val (folds.csv, per-fold data.yaml), or, with `cv_dir=outputs/cv/<name>`, a cross-validation
    finished again (out-of-fold predictions, cv_metrics.json, report.md)."""

    data: str | None = None
    folds: int = 5
    seed: int = 0
    out_dir: str | None = None
    cv_dir: str | None = None
    allow_missing: bool = False
    n_boot: int = 1000
    paths: PathsConfig = field(default_factory=PathsConfig)
