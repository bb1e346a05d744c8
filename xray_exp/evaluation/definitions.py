"""The exact definition of each headline metric under the settings used, for reports and summary.json.

    definitions(MetricSettings(map40_method="voc2010", froc_hit="iou"))["map40"]
    # 'mAP@0.4 (VinBigData): PASCAL VOC 2010 all-point AP ...'

docs/metrics.md has the same definitions with their references.
"""

from __future__ import annotations

MAP40 = {
    "voc2010": (
        "mAP@0.4 (VinBigData, as the competition scored it): PASCAL VOC 2010 all-point interpolated AP "
        "per class, mean over classes with ground truth; detections by descending score, each matched to "
        "its highest-IoU ground-truth box of its class; a false positive when that box is already taken "
        "or IoU <= 0.4."
    ),
    "coco101": (
        "mAP@0.4 (COCO-style): COCO 101-point interpolated AP per class at IoU >= 0.4 with COCO "
        "matching (a detection takes the best-IoU box still free), mean over classes with ground truth."
    ),
}
FROC_HIT = {
    "iou": "a detection hits a lesion when IoU >= {match_iou:g} with it (same class)",
    "center": "a detection hits a lesion when its centre lies inside the lesion box (same class)",
}


def definitions(settings) -> dict[str, str]:
    """Metric name -> one sentence, for the given xray_exp.evaluation.MetricSettings."""
    no_finding = (
        ""
        if settings.no_finding_class is None
        else f' Class {settings.no_finding_class} ("No finding") joins the mean as the public leaderboard '
        "scored it: every normal image holds one whole-image 'No finding' box and every image one "
        "'No finding' detection scored by its no_finding_score, else 1 - its highest lesion "
        "confidence, so its AP ranks normal images first."
    )
    return {
        "map40": MAP40[settings.map40_method] + no_finding,
        "mAP50": "COCO 101-point interpolated AP at IoU >= 0.5 with COCO matching (up to 100 detections per "
        "image and class), mean over classes with ground truth.",
        "mAP50-95": "COCO AP (101-point, COCO matching) averaged over IoU 0.50:0.05:0.95 and classes.",
        "froc_mean": (
            "FROC (LUNA16/CAMELYON16 convention): "
            + FROC_HIT[settings.froc_hit].format(match_iou=settings.match_iou)
            + "; further detections on an already-found lesion are ignored (neither "
            "hit nor false positive); false positives per image over all images, normal ones included; "
            "the mean lesion sensitivity at 1/8, 1/4, 1/2, 1, 2, 4, 8 FP per image."
        ),
        "auroc": "Image-level 'any abnormality' ROC AUC; image score = highest detection confidence (0 without "
        "detections), an image without ground-truth boxes is normal.",
        "sensitivity": f"Share of abnormal images with a detection >= {settings.decision_conf:g}.",
        "specificity": f"Share of normal images without a detection >= {settings.decision_conf:g} "
        '(reported "No findings").',
        "ci": (
            f"{settings.ci_level:.0%} percentile bootstrap interval, {settings.n_boot} resamples of images "
            f"(patients when the dataset's manifest.csv lists them), seed {settings.ci_seed}, from the cached "
            "per-image matches."
            if settings.n_boot
            else "no confidence intervals (n_boot=0)."
        ),
    }
