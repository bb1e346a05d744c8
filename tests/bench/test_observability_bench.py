"""python -m xray_exp.bench observability on the demo model, a few pairs: it runs, counts and writes its JSON.

.venv/bin/pytest tests/bench/test_observability_bench.py
"""

from __future__ import annotations

import json

try:
    from serve_fixtures import helpers as h
except ImportError:  # tests/ imported as a package
    from tests.serve_fixtures import helpers as h

from xray_exp.bench import observability


def test_observability_bench_measures_both_sides(tmp_path, capsys):
    image = tmp_path / "chest.png"
    image.write_bytes(h.png_bytes(h.sample_images(1)[0][1]))
    argv = ["--model", str(h.demo_model()[1]), "--image", str(image), "--reps", "3", "--out", str(tmp_path)]
    assert observability.main(argv) == 0
    out = capsys.readouterr().out
    assert "/predict p50 B/A" in out and "17 audit lines written" in out  # start + 2 x (5 warm-up + 3 pairs)
    (result,) = tmp_path.glob("observability-*.json")
    results = json.loads(result.read_text())["results"]
    for route in ("predict", "models"):
        r = results[route]
        assert r["wall_ms_p50"]["A"] > 0 and r["wall_ms_p50"]["B"] > 0
        assert abs(r["p50_ratio_b_over_a"] - r["wall_ms_p50"]["B"] / r["wall_ms_p50"]["A"]) < 1e-9
