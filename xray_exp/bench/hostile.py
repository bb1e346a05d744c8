"""Hostile uploads for the service, and what each one costs the server.

    python scripts/hostile_inputs.py --url http://127.0.0.1:8000 --pid <server pid>

Each input is sent once; the table gives its size, the status code, the wall time and, with --pid (the
server must run on this machine as this user), the server's CPU time (utime + stime of /proc/<pid>/stat,
all threads, before vs after the request) and its peak RSS during the request (VmHWM of /proc/<pid>/status,
reset through /proc/<pid>/clear_refs before each request; "process peak" when that is not permitted).
The files are built here (deterministic; the real ones on the NIH sample when a PNG path is given).
"""

from __future__ import annotations

import io
import struct
import time
import zlib
from functools import cache
from pathlib import Path

import numpy as np

from xray_exp.data.synthetic_dicom import chest_xray_bytes
from xray_exp.imaging.pydicom_compat import read_file_meta

# name -> what it is; the builders below make the bytes
DESCRIPTIONS = {
    "deflate-flood-16k": "16 KB Deflated DICOM inflating to 16 MiB of zeros (2 million empty data elements)",
    "deflate-bomb-1m": "1 MB Deflated DICOM inflating to 1 GiB of zeros",
    "deflate-pixels-1m": "1 MB Deflated DICOM: a 64x64 header, then 1 GiB of pixel data",
    "element-flood-16m": "16 MiB uncompressed DICOM of empty data elements",
    "element-flood-sorted": "1.6 MB uncompressed DICOM: 200000 empty elements in ascending tag order",
    "png-10000x10000-rgba16": "777 KB PNG, 10000x10000 16-bit RGBA (800 MB decoded)",
    "jpeg-claims-65535x65535": "JPEG whose frame header claims 65535x65535x3",
    "dicom-claims-65535x65535": "DICOM whose Rows/Columns claim 65535x65535 16-bit",
    "dicom-100000-frames": "DICOM claiming 100000 frames of 512x512 16-bit",
    "j2k-frame-larger-than-header": "JPEG 2000 DICOM: header 64x64, codestream 30000x30000",
}


def _png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)


def png_rgba16(width: int = 10000, height: int = 10000) -> bytes:
    """A complete, valid PNG of zeros (filter byte + 8 bytes per pixel per row)."""
    packer = zlib.compressobj(9)
    row = b"\x00" * (1 + width * 8)
    idat = b"".join(packer.compress(row) for _ in range(height)) + packer.flush()
    ihdr = struct.pack(">IIBBBBB", width, height, 16, 6, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + _png_chunk(b"IHDR", ihdr) + _png_chunk(b"IDAT", idat) + _png_chunk(b"IEND", b"")


def _meta_end(data: bytes) -> int:
    from pydicom.filereader import read_preamble

    fp = io.BytesIO(data)
    read_preamble(fp, False)
    read_file_meta(fp)
    return fp.tell()


def deflated_zeros(size: int, header: bool = False) -> bytes:
    """A Deflated DICOM whose data set is `size` zero bytes (header=True: a real 64x64 image header first,
    and the zeros as its pixel data's value, which claims `size` bytes)."""
    head = chest_xray_bytes(syntax="1.2.840.10008.1.2.1.99")
    meta_end = _meta_end(head)
    packer = zlib.compressobj(9, zlib.DEFLATED, -zlib.MAX_WBITS)
    chunk = b"\x00" * (1 << 20)
    body = b""
    if header:
        plain = zlib.decompress(head[meta_end:], -zlib.MAX_WBITS)
        pixel_tag = plain.rindex(b"\xe0\x7f\x10\x00")
        body = packer.compress(plain[:pixel_tag] + b"\xe0\x7f\x10\x00OW\x00\x00" + struct.pack("<I", size))
    body += b"".join(packer.compress(chunk) for _ in range(size >> 20)) + packer.flush()
    return head[:meta_end] + body


def element_flood(size: int) -> bytes:
    head = chest_xray_bytes()
    return head[: _meta_end(head)] + b"\x00" * size


def sorted_element_flood(count: int = 200_000) -> bytes:
    """Empty LO elements with ascending tags (private groups 0009, 000B, ...), explicit VR little endian."""
    head = chest_xray_bytes()
    tags = ((0x0009 + 2 * (i // 0xF000), 0x1000 + i % 0xF000) for i in range(count))
    return head[: _meta_end(head)] + b"".join(struct.pack("<HH2sH", g, e, b"LO", 0) for g, e in tags)


def jpeg_claiming(width: int, height: int) -> bytes:
    import cv2

    ok, buf = cv2.imencode(".jpg", np.zeros((8, 8, 3), np.uint8))
    real = buf.tobytes()
    sof = real.index(b"\xff\xc0")
    return real[: sof + 5] + struct.pack(">HH", height, width) + real[sof + 9 :]


def j2k_frame_larger_than_header() -> bytes:
    """pydicom's MR_small_jp2klossless.dcm with the codestream's SIZ patched to 30000x30000."""
    from pydicom.data import get_testdata_file

    path = get_testdata_file("MR_small_jp2klossless.dcm")
    if not isinstance(path, str):
        raise FileNotFoundError("pydicom's test file MR_small_jp2klossless.dcm is missing (pydicom.data)")
    data = bytearray(Path(path).read_bytes())
    siz = data.index(b"\xff\x4f\xff\x51") + 4
    data[siz + 4 : siz + 12] = struct.pack(">II", 30000, 30000)
    return bytes(data)


@cache
def hostile_inputs() -> dict[str, bytes]:
    return {
        "deflate-flood-16k": deflated_zeros(16 << 20),
        "deflate-bomb-1m": deflated_zeros(1 << 30),
        "deflate-pixels-1m": deflated_zeros(1 << 30, header=True),
        "element-flood-16m": element_flood(16 << 20),
        "element-flood-sorted": sorted_element_flood(),
        "png-10000x10000-rgba16": png_rgba16(),
        "jpeg-claims-65535x65535": jpeg_claiming(65535, 65535),
        "dicom-claims-65535x65535": chest_xray_bytes(Rows=65535, Columns=65535),
        "dicom-100000-frames": chest_xray_bytes(np.zeros((512, 512), np.uint16), NumberOfFrames=100000),
        "j2k-frame-larger-than-header": j2k_frame_larger_than_header(),
    }


# --- measuring a running server ---


def _cpu_ms(pid: int) -> float:
    """utime + stime of the whole process (all threads), in ms."""
    import os

    fields = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) * 1000.0 / os.sysconf("SC_CLK_TCK")


def _status_kb(pid: int, key: str) -> int:
    for line in open(f"/proc/{pid}/status"):
        if line.startswith(key + ":"):
            return int(line.split()[1])
    return 0


def _reset_peak(pid: int) -> bool:
    """Reset VmHWM to the current RSS (Linux: write 5 to clear_refs); False when not permitted."""
    try:
        with open(f"/proc/{pid}/clear_refs", "w") as handle:
            handle.write("5")
        return True
    except OSError:
        return False


def measure(
    url: str, pid: int | None = None, names: list[str] | None = None, controls: dict[str, bytes] | None = None
) -> list[dict]:
    """POST each control (expected 200) then each hostile input to url/predict once; with pid: the
    server's CPU ms and peak RSS for that request."""
    inputs = {k: v for k, v in hostile_inputs().items() if not names or k in names}
    return measure_inputs(url, inputs, pid, controls)


def measure_inputs(
    url: str, inputs: dict[str, bytes], pid: int | None = None, controls: dict[str, bytes] | None = None
) -> list[dict]:
    """POST each control then each input once (see measure)."""
    import httpx

    rows = []
    with httpx.Client(timeout=120) as client:
        for name, data in {**(controls or {}), **inputs}.items():
            row = {"input": name, "bytes": len(data)}
            if pid:
                row["peak_reset"] = _reset_peak(pid)
                rss_before, cpu_before = _status_kb(pid, "VmRSS"), _cpu_ms(pid)
            started = time.perf_counter()
            response = client.post(url.rstrip("/") + "/predict", files={"file": ("upload", data)})
            row["status"] = response.status_code
            row["wall_ms"] = (time.perf_counter() - started) * 1000
            if pid:
                time.sleep(0.05)  # let the request's thread finish its accounting
                row["server_cpu_ms"] = _cpu_ms(pid) - cpu_before
                row["rss_before_mb"] = rss_before / 1024
                row["peak_rss_mb"] = _status_kb(pid, "VmHWM") / 1024
            detail = response.json().get("detail", "") if response.status_code != 200 else "ok"
            row["detail"] = str(detail)[:90]
            rows.append(row)
    return rows


def table(rows: list[dict]) -> str:
    head = "| input | bytes | status | wall ms | server CPU ms | RSS before MB | peak RSS MB | answer |"
    lines = [head, "|" + " --- |" * 8]
    for r in rows:
        cpu = f"{r['server_cpu_ms']:.0f}" if "server_cpu_ms" in r else "-"
        before = f"{r['rss_before_mb']:.0f}" if "rss_before_mb" in r else "-"
        peak = "-"
        if "peak_rss_mb" in r:
            peak = f"{r['peak_rss_mb']:.0f}" + ("" if r.get("peak_reset") else " (process peak)")
        lines.append(
            f"| {r['input']} | {r['bytes']} | {r['status']} | {r['wall_ms']:.0f} | {cpu} | {before} | {peak} | "
            f"{r['detail'].replace('|', '/')} |"
        )
    return "\n".join(lines)
