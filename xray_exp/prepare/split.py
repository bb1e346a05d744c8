"""Patient-level, class-stratified train/val/test split, deterministic from a seed.

    assign_splits([SplitItem("img1", "patient7", frozenset({3})), ...], {"train": .8, "val": .2}, seed=0)
    # -> {"img1": "train", ...}

All images of a patient land in one split. Patients are placed greedily, rarest class first (iterative
stratification, Sechidis et al. 2011, over patient groups): each goes to the split that still needs the
most of that class, then the most images. Background images count as a class of their own. On tiny data
the rare classes all pull towards train, so an empty split then takes one patient from the fullest split.
"""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Hashable, Mapping, Sequence
from dataclasses import dataclass

BACKGROUND = "__background__"


@dataclass(frozen=True)
class SplitItem:
    image_id: str
    group: str  # patient id
    labels: frozenset[Hashable]  # the classes on the image; empty = background


def normalise_ratios(ratios: Mapping[str, float]) -> dict[str, float]:
    """Drop zero ratios, scale the rest to sum to 1; negative ratios or an all-zero set are errors."""
    if any(r < 0 for r in ratios.values()):
        raise ValueError(f"split ratios must be >= 0, got {dict(ratios)}")
    total = sum(ratios.values())
    if total <= 0:
        raise ValueError(f"split ratios must not all be 0, got {dict(ratios)}")
    return {name: r / total for name, r in ratios.items() if r > 0}


def assign_splits(items: Sequence[SplitItem], ratios: Mapping[str, float], seed: int) -> dict[str, str]:
    """Image id -> split name."""
    shares = normalise_ratios(ratios)
    names = list(shares)
    group_images: dict[str, list[str]] = {}
    group_labels: dict[str, Counter] = {}
    for item in items:
        group_images.setdefault(item.group, []).append(item.image_id)
        group_labels.setdefault(item.group, Counter()).update(item.labels or {BACKGROUND})
    totals: Counter[Hashable] = Counter()
    for labels in group_labels.values():
        totals.update(labels)
    need_images = {s: shares[s] * len(items) for s in names}
    need_label = {s: {label: shares[s] * n for label, n in totals.items()} for s in names}

    order = sorted(group_images)
    random.Random(seed).shuffle(order)
    remaining = dict.fromkeys(order)  # insertion-ordered set
    left = Counter(totals)
    assignment: dict[str, str] = {}
    while remaining:
        label = min((lab for lab, n in left.items() if n > 0), key=lambda lab: (left[lab], str(lab)))
        for group in [g for g in remaining if label in group_labels[g]]:
            split = max(names, key=lambda s: (need_label[s][label], need_images[s]))
            size = len(group_images[group])
            need_images[split] -= size
            for lab, n in group_labels[group].items():
                need_label[split][lab] -= n
                left[lab] -= n
            for image_id in group_images[group]:
                assignment[image_id] = split
            del remaining[group]
    _fill_empty_splits(assignment, group_images, need_images)
    return assignment


def _fill_empty_splits(assignment: dict[str, str], group_images: dict[str, list[str]], need: dict[str, float]) -> None:
    """Tiny datasets: rare classes all pull towards train; give every empty split the smallest patient of
    the split furthest over its target (while that split keeps at least one patient)."""
    for split in need:
        if any(s == split for s in assignment.values()):
            continue
        groups = {s: sorted(g for g, ids in group_images.items() if assignment[ids[0]] == s) for s in need}
        donors = [s for s in need if len(groups[s]) > 1]
        if not donors:
            return
        donor = min(donors, key=lambda s: need[s])  # most over-filled
        group = min(groups[donor], key=lambda g: (len(group_images[g]), g))
        for image_id in group_images[group]:
            assignment[image_id] = split
        need[donor] += len(group_images[group])
        need[split] -= len(group_images[group])
