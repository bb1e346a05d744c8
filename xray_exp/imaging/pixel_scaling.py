"""Any-depth pixels -> uint8 in bounded memory: the result equals imaging.to_uint8 bit for bit.

    from xray_exp.imaging.pixel_scaling import scale_to_uint8
    gray, excluded = scale_to_uint8(raw_uint16)                                # min-max to 0..255
    gray, excluded = scale_to_uint8(raw, transform=window, exclude=(0, 0), invert=True)

`transform` (e.g. DICOM's modality and VOI LUTs) must map each value on its own (element-wise); values in
the `exclude` range (DICOM's pixel padding) are left out of the min-max range and come out 0. A colour
(H, W, 3|4) frame is reduced to the mean of its first three samples first.

Memory: the uint8 result plus small temporaries, never a float copy of the frame. Integer images of up to
16 bits go through a lookup table over [min, max] of the stored values (transform and scaling computed once
per value, then one gather per strip of rows); anything else is scaled strip by strip in two passes (range,
then values), each strip computed as the whole-frame code did. The arithmetic (float32 scaling of the
transform's values, +0.5, clip) is the one of imaging.to_uint8, so training and serving see the same pixels.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import numpy as np

STRIP_ELEMENTS = 1 << 18  # pixels per strip of rows (temporaries of 2-3 MiB)
MAX_LUT_ENTRIES = 1 << 16  # integer range for the lookup-table path


def row_strips(raw: np.ndarray) -> Iterator[slice]:
    """Slices of whole rows of about STRIP_ELEMENTS pixels each."""
    rows = raw.shape[0]
    per_row = max(1, raw[:1].size)
    step = max(1, STRIP_ELEMENTS // per_row)
    for top in range(0, rows, step):
        yield slice(top, min(rows, top + step))


def _scale(values: np.ndarray, lo: float, hi: float) -> np.ndarray:
    """imaging.to_uint8's float32 arithmetic."""
    if hi <= lo:
        return np.zeros(values.shape, np.uint8)
    return np.clip((values - lo) * (255.0 / (hi - lo)) + 0.5, 0, 255).astype(np.uint8)


def _excluded(values: np.ndarray, exclude: tuple[float, float] | None) -> np.ndarray | None:
    if exclude is None:
        return None
    return (values >= exclude[0]) & (values <= exclude[1])


def value_counts(raw: np.ndarray, low: int, entries: int) -> np.ndarray:
    """How often each value low .. low + entries - 1 occurs (strip by strip: bincount's int64 copy stays small)."""
    counts = np.zeros(entries, np.int64)
    for rows in row_strips(raw):
        counts += np.bincount((raw[rows].astype(np.int64) - low).ravel(), minlength=entries)
    return counts


def scale_to_uint8(
    raw: np.ndarray,
    transform: Callable[[np.ndarray], np.ndarray] | None = None,
    exclude: tuple[float, float] | None = None,
    invert: bool = False,
    monotonic: bool = True,
) -> tuple[np.ndarray, int]:
    """(uint8 image, number of excluded pixels). `monotonic=False` when the transform may not be monotonic
    (LUT sequences): the range then comes from the values that occur, not from the extremes."""
    if raw.size == 0:
        return np.zeros(raw.shape, np.uint8), 0
    integer = np.issubdtype(raw.dtype, np.integer) and raw.dtype.itemsize <= 2
    if integer and raw.ndim == 2:
        low, high = int(raw.min()), int(raw.max())
        if high - low < MAX_LUT_ENTRIES:
            return _scale_by_lut(raw, low, high, transform, exclude, invert, monotonic)
    return _scale_by_strips(raw, transform, exclude, invert)


def _scale_by_lut(
    raw: np.ndarray,
    low: int,
    high: int,
    transform: Callable[[np.ndarray], np.ndarray] | None,
    exclude: tuple[float, float] | None,
    invert: bool,
    monotonic: bool,
) -> tuple[np.ndarray, int]:
    entries = high - low + 1
    values = np.arange(low, high + 1, dtype=np.int64).astype(raw.dtype)
    mapped = np.asarray(values if transform is None else transform(values), dtype=np.float32)
    skip = _excluded(values, exclude)
    counts = None
    if exclude is not None or not monotonic:
        counts = value_counts(raw, low, entries)
        valid = counts > 0
        if skip is not None:
            valid &= ~skip
    else:
        valid = np.zeros(entries, bool)
        valid[[0, -1]] = True  # a monotonic map takes its extremes at the extreme values
    lut = np.zeros(entries, np.uint8)
    if valid.any():
        lut = _scale(mapped, float(mapped[valid].min()), float(mapped[valid].max()))
    if invert:
        lut = 255 - lut
    if skip is not None:
        lut[skip] = 0
    out = np.empty(raw.shape, np.uint8)
    index_type = np.uint16 if low >= 0 and raw.dtype.kind == "u" else np.int32  # value - low, no overflow
    for rows in row_strips(raw):
        np.take(lut, np.subtract(raw[rows], low, dtype=index_type), out=out[rows])
    excluded = int(counts[skip].sum()) if counts is not None and skip is not None else 0
    return out, excluded


def _scale_by_strips(
    raw: np.ndarray,
    transform: Callable[[np.ndarray], np.ndarray] | None,
    exclude: tuple[float, float] | None,
    invert: bool,
) -> tuple[np.ndarray, int]:
    def mapped(rows: slice) -> tuple[np.ndarray, np.ndarray | None]:
        values = raw[rows]
        if values.ndim == 3:  # colour: the mean of the first three samples (float64), as the frame code did
            values = values[..., :3].mean(axis=-1)
        skip = _excluded(values, exclude)
        out = values if transform is None else transform(values)
        return np.asarray(out, dtype=np.float32), skip

    lo, hi, excluded = np.inf, -np.inf, 0
    for rows in row_strips(raw):
        values, skip = mapped(rows)
        if skip is not None:
            excluded += int(skip.sum())
            values = values[~skip]
        if values.size:
            lo, hi = min(lo, float(values.min())), max(hi, float(values.max()))
    out = np.zeros(raw.shape[:2], np.uint8)
    if lo > hi:  # every pixel excluded
        return out, excluded
    for rows in row_strips(raw):
        values, skip = mapped(rows)
        scaled = _scale(values, lo, hi)
        if invert:
            np.subtract(255, scaled, out=scaled)
        if skip is not None:
            scaled[skip] = 0
        out[rows] = scaled
    return out, excluded
