"""The viewer's route: `POST /render` gives the page the decoded pixels of an upload in their own bit depth
(browsers cannot decode DICOM, and an 8-bit PNG would lose the 12-16 bits window/level works on).

    app.include_router(viewer_router(settings, pool))
    curl -F file=@chest.dcm http://127.0.0.1:8000/render -D headers.txt -o pixels.raw

Answer: `application/octet-stream`, width x height little-endian samples of type X-Render-Info.dtype
(uint8, uint16 or int16), row by row; `X-Render-Info` is a JSON object (ASCII): width, height, dtype,
format, frames, rescale [slope, intercept], voi_function, window {center, width, source}, presets,
invert, padding [lo, hi] | null, pixel_spacing_mm [row, column] | null, spacing_source, dicom
(allow-listed tags only; xray_exp/serve/render.py). The same checks, limits, worker pool and status codes
as /predict (413, 415, 422, 503, 504).
"""

from __future__ import annotations

import json
from typing import Annotated

from fastapi import APIRouter, File, HTTPException, UploadFile
from fastapi.responses import Response

from xray_exp.imaging import DecodeLimits, ImageDecodeError
from xray_exp.serve.render import render_pixels
from xray_exp.serve.schemas import errors
from xray_exp.serve.settings import ServeSettings
from xray_exp.serve.upload_routes import read_checked_upload, run_in_pool
from xray_exp.serve.uploads import decode_status
from xray_exp.serve.worker_pool import Handoff, WorkerPool

RenderUpload = Annotated[UploadFile, File(description="PNG, JPEG or DICOM radiograph")]


def viewer_router(settings: ServeSettings, pool: WorkerPool) -> APIRouter:
    router = APIRouter()

    def run_render(file: UploadFile):
        """In the worker pool: read (byte limit), check the header (pixel limits); decode here, or in the pool's
        large lane when the header announces more than XRAY_SERVE_LARGE_DECODE_BYTES of pixels (as /predict)."""
        data, header, limits = read_checked_upload(file, settings)
        if header.frame_bytes * header.frames > settings.large_decode_bytes:
            return Handoff(finish_render, (data, header, limits))
        return finish_render(data, header, limits)

    def finish_render(data: bytes, header, limits: DecodeLimits):
        """Decode within the limits: the pixels in their own bit depth and the display information."""
        try:
            pixels, info = render_pixels(data, header, limits)
        except ImageDecodeError as exc:
            raise HTTPException(decode_status(exc), f"cannot decode the image: {exc}") from exc
        except Exception as exc:  # pydicom/numpy raise many types for malformed pixel data
            raise HTTPException(422, f"cannot decode the image: {type(exc).__name__}: {exc}") from exc
        if pixels.size > settings.max_pixels:
            raise HTTPException(413, f"decoded image has {pixels.size} pixels; the limit is {settings.max_pixels}")
        return pixels, info

    @router.post(
        "/render",
        response_class=Response,
        responses={
            200: {
                "content": {"application/octet-stream": {}},
                "description": "raw little-endian pixels; X-Render-Info header: JSON with size, type and display",
            },
            **errors(413, 415, 422, 503, 504),
        },
    )
    async def render(file: RenderUpload):
        """The decoded first frame in its own bit depth, for the viewer's window/level (see module docs)."""
        pixels, info = await run_in_pool(pool, run_render, file)
        headers = {"X-Render-Info": json.dumps(info, separators=(",", ":")), "Cache-Control": "no-store"}
        return Response(memoryview(pixels).cast("B"), media_type="application/octet-stream", headers=headers)

    return router
