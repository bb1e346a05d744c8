"""What the upload routes share (/predict, /predict/annotated, /render, /predict/sr): an upload read within its
limits into its bytes and checked header, and work run in the worker pool with the pool's answers as HTTP errors.

    data, header, limits = read_checked_upload(file, settings)   # HTTPException 413 / 415 / 422 / 504
    result = await run_in_pool(pool, work, file, conf)            # HTTPException 503 (pool full) / 504 (too slow)
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from fastapi import HTTPException, UploadFile

from xray_exp.imaging import DecodeLimits, ImageHeader
from xray_exp.serve.uploads import UploadError, check_header, read_limited
from xray_exp.serve.worker_pool import PoolBusy, PoolTimeout, WorkerPool


def request_limits(settings) -> DecodeLimits:
    """This request's decode limits: pixel bytes, inflated bytes and its deadline (XRAY_SERVE_REQUEST_TIMEOUT_S)."""
    return DecodeLimits(
        settings.max_pixel_bytes, settings.max_decompressed_bytes, time.monotonic() + settings.request_timeout_s
    )


def read_checked_upload(file: UploadFile, settings) -> tuple[bytes, ImageHeader, DecodeLimits]:
    """The upload's bytes (at most XRAY_SERVE_MAX_UPLOAD_BYTES), its header checked against the pixel limits
    before any pixel is decoded, and the request's decode limits; the upload's fault as an HTTPException."""
    limits = request_limits(settings)
    try:
        data = read_limited(file.file, settings.max_upload_bytes)
        header = check_header(data, settings.max_pixels, limits)
    except UploadError as exc:
        raise HTTPException(exc.status_code, exc.message) from exc
    return data, header, limits


async def run_in_pool(pool: WorkerPool, work: Callable[..., Any], *args: Any) -> Any:
    """`work(*args)` in the worker pool: 503 with Retry-After when workers and queue are taken, 504 past the
    request's time limit."""
    try:
        return await pool.run(work, *args)
    except PoolBusy as exc:
        raise HTTPException(
            503, f"{exc}; retry shortly (XRAY_SERVE_WORKERS, XRAY_SERVE_QUEUE_SIZE)", {"Retry-After": "1"}
        ) from exc
    except PoolTimeout as exc:
        raise HTTPException(504, f"{exc} (XRAY_SERVE_REQUEST_TIMEOUT_S)") from exc
