"""GET /metrics after real requests, and deploy/prometheus.yml + deploy/grafana/xray_exp.json in a real Prometheus.

    .venv/bin/pytest tests/serve/test_metrics_prometheus.py

The scrape test starts Debian's `prometheus` (scripts/test.sh installs it; skipped without it) on loopback against
a real `python -m xray_exp.serve`, makes requests between scrapes and runs every dashboard panel's PromQL query
through Prometheus' HTTP API: each must return data.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import threading
import time
from pathlib import Path

import httpx
import numpy as np
import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families

try:
    from serve_fixtures import helpers as h
except ImportError:  # tests/ imported as a package
    from tests.serve_fixtures import helpers as h

from fastapi.testclient import TestClient

from xray_exp.serve.app import create_app
from xray_exp.serve.model_source import load_detector
from xray_exp.serve.settings import ServeSettings

DEPLOY = h.REPO / "deploy"
DASHBOARD = DEPLOY / "grafana" / "xray_exp.json"


def samples(text: str) -> dict[tuple[str, frozenset], float]:
    """{(sample name, labels): value} of a Prometheus text exposition."""
    out = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            out[(s.name, frozenset(s.labels.items()))] = s.value
    return out


def value(parsed: dict, sample: str, **labels) -> float | None:
    return parsed.get((sample, frozenset(labels.items())))


def upload(client, data: bytes, path: str = "/predict"):
    return client.post(path, files={"file": ("x", data, "application/octet-stream")})


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    # a 2000x2000 image is over this pixel limit (413, too_large); the 1024x1024 samples are under it
    folder = tmp_path_factory.mktemp("metrics")
    yield from h.demo_service(folder, XRAY_SERVE_MAX_PIXELS="2000000", XRAY_EXP_ROOT=str(folder))


def test_metric_names_after_real_requests(server):
    images = [gray for _, gray in h.sample_images(3)]
    with httpx.Client(base_url=server.url, timeout=60) as client:
        before = samples(client.get("/metrics").text)
        version = client.get("/health").json()["model"]["version"]
        name = client.get("/config").json()["model"]["name"]
        for gray in images:
            assert upload(client, h.png_bytes(gray)).status_code == 200
        assert upload(client, h.png_bytes(images[0]), "/predict/annotated").status_code == 200
        assert upload(client, h.png_bytes(np.zeros((2000, 2000), np.uint8))).status_code == 413
        assert upload(client, h.png_bytes(images[0])[:300]).status_code == 422
        assert upload(client, b"plain text, not an image").status_code == 415
        assert client.get("/jobs/abc123").status_code == 404
        job = client.post(
            "/trigger-training",
            json={"overrides": ["train.epochs=1", "train.fake_sleep=0"]},
            headers={"Authorization": f"Bearer {h.TOKEN}"},
        ).json()
        wait_for(lambda: client.get(f"/jobs/{job['id']}").json()["status"] not in ("queued", "running"))
        job = client.get(f"/jobs/{job['id']}").json()
        response = client.get("/metrics")
    assert response.headers["content-type"].startswith("text/plain")
    after = samples(response.text)

    def delta(sample, **labels):
        return (value(after, sample, **labels) or 0) - (value(before, sample, **labels) or 0)

    model = {"model": name, "version": version}
    assert delta("xray_predictions_total", **model) == 4
    assert (
        delta("xray_inference_seconds_count", **model) == 4 and value(after, "xray_inference_seconds_sum", **model) > 0
    )
    assert delta("http_requests_total", handler="/predict", method="POST", status="2xx") == 3
    assert delta("http_requests_total", handler="/predict", method="POST", status="4xx") == 3
    assert delta("http_requests_total", handler="/predict/annotated", method="POST", status="2xx") == 1
    assert delta("http_requests_total", handler="/jobs/{job_id}", method="GET", status="4xx") == 1  # template
    assert not any(dict(labels).get("handler") == "/jobs/abc123" for _, labels in after)  # never the raw path
    assert delta("http_request_duration_seconds_count", handler="/predict", method="POST", status="2xx") == 3
    for kind, count in {"too_large": 1, "corrupt": 1, "unsupported_syntax": 1, "timeout": 0}.items():
        assert delta("xray_decode_failures_total", kind=kind) == count, kind
    assert value(after, "xray_model_info", name=name, version=version, source="file", alias="") == 1
    assert value(after, "xray_model_loaded") == 1 and value(after, "xray_worker_capacity", slot="workers") == 4
    assert job["status"] == "succeeded" and value(after, "xray_training_jobs", state="succeeded") == 1
    assert (
        value(after, "xray_training_jobs", state="running") == 0 == value(after, "xray_training_jobs", state="queued")
    )
    assert value(after, "xray_worker_queue_depth") == 0 and value(after, "xray_worker_busy") == 0
    assert not any(n.startswith("http_") and dict(labels).get("handler") == "/metrics" for n, labels in after)


class GatedDetector:
    """A detector that waits for `gate` before predicting (fills the pool without sleeping)."""

    def __init__(self, detector):
        self.detector, self.gate = detector, threading.Event()

    def predict(self, *args, **kwargs):
        assert self.gate.wait(30)
        return self.detector.predict(*args, **kwargs)


def wait_for(condition, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.01)


def test_pool_gauges_and_rejections(tmp_path):
    detector, info = load_detector(str(h.demo_model()[1]), device="cpu")
    gated = GatedDetector(detector)
    settings = ServeSettings(
        job_dir=str(tmp_path / "jobs"),
        workers=1,
        queue_size=1,
        request_timeout_s=3.0,
        audit_log=str(tmp_path / "a.log"),
    )
    app = create_app(settings, gated, info)
    png = h.png_bytes(h.sample_images(2)[0][1])
    with TestClient(app) as client:
        results: list = []
        first = threading.Thread(target=lambda: results.append(upload(client, png)))
        first.start()
        wait_for(lambda: app.state.pool.admitted == 1)
        queued = threading.Thread(target=lambda: results.append(upload(client, png)))
        queued.start()
        wait_for(lambda: app.state.pool.admitted == 2)
        during = samples(client.get("/metrics").text)
        assert value(during, "xray_worker_busy") == 1 and value(during, "xray_worker_queue_depth") == 1
        assert upload(client, png).status_code == 503  # one worker, one queue place: both taken
        first.join()
        queued.join()  # both time out (504) at 3 s while the gate stays closed
        gated.gate.set()
        wait_for(lambda: app.state.pool.admitted == 0)
        after = samples(client.get("/metrics").text)
    assert sorted(r.status_code for r in results) == [504, 504]
    assert value(after, "xray_worker_rejections_total", reason="busy") == 1
    assert value(after, "xray_worker_rejections_total", reason="timeout") == 2
    assert value(after, "http_requests_total", handler="/predict", method="POST", status="5xx") == 3
    audit = [json.loads(line) for line in (tmp_path / "a.log").read_text().splitlines()[1:]]
    assert sorted((r["status"], r["outcome"], r["detail"]) for r in audit) == [
        (503, "rejected", "busy"),
        (504, "rejected", "timeout"),
        (504, "rejected", "timeout"),
    ]


def dashboard_queries() -> list[tuple[str, str]]:
    """(panel title, PromQL) of every target of the Grafana dashboard, Grafana's $__rate_interval made concrete."""
    board = json.loads(DASHBOARD.read_text())
    queries = [(p["title"], t["expr"].replace("$__rate_interval", "1m")) for p in board["panels"] for t in p["targets"]]
    assert len(queries) >= 10 and all("$" not in q for _, q in queries), queries
    return queries


def test_dashboard_covers_the_issue():
    text = " ".join(q for _, q in dashboard_queries())
    for series in (
        "http_requests_total",
        "http_request_duration_seconds_bucket",
        "xray_inference_seconds_bucket",
        "xray_worker_queue_depth",
        "xray_decode_failures_total",
        "xray_training_jobs",
        "xray_model_info",
    ):
        assert series in text, series
    for quantile in ("0.5", "0.95", "0.99"):
        assert f"histogram_quantile({quantile}," in text


class Prometheus:
    """Debian's prometheus on a free loopback port, scraping `target` every second, config from deploy/."""

    def __init__(self, target: str, folder: Path):
        config = yaml.safe_load((DEPLOY / "prometheus.yml").read_text())
        config["global"]["scrape_interval"] = config["global"]["evaluation_interval"] = "1s"
        config["rule_files"] = [str(DEPLOY / name) for name in config["rule_files"]]  # the alerts, from deploy/
        (job,) = config["scrape_configs"]
        job["static_configs"][0]["targets"] = [target]
        (folder / "prometheus.yml").write_text(yaml.safe_dump(config))
        self.url = f"http://127.0.0.1:{h.free_port()}"
        self.log = (folder / "prometheus.log").open("w")
        self.proc = subprocess.Popen(
            [
                "prometheus",
                f"--config.file={folder / 'prometheus.yml'}",
                f"--storage.tsdb.path={folder / 'tsdb'}",
                f"--web.listen-address={self.url.removeprefix('http://')}",
            ],
            stdout=self.log,
            stderr=subprocess.STDOUT,
        )

    def query(self, promql: str) -> list:
        body = httpx.get(self.url + "/api/v1/query", params={"query": promql}, timeout=10).json()
        assert body["status"] == "success", (promql, body)
        return body["data"]["result"]

    def wait(self, condition, what: str, timeout: float = 30.0):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            assert self.proc.poll() is None, "prometheus exited"
            try:
                if result := condition():
                    return result
            except httpx.TransportError:
                pass
            time.sleep(0.2)
        raise AssertionError(f"prometheus: {what} not seen within {timeout} s")

    def stop(self):
        self.proc.terminate()
        self.proc.wait(timeout=15)
        self.log.close()


def evaluated_rules(prom: Prometheus) -> list[dict] | None:
    """The alerting rules from deploy/prometheus-alerts.yml once each was evaluated (None before)."""
    groups = httpx.get(prom.url + "/api/v1/rules", timeout=10).json()["data"]["groups"]
    rules = [rule for group in groups for rule in group["rules"]]
    return rules if rules and all(rule["health"] != "unknown" for rule in rules) else None


def scraped_predictions(prom: Prometheus) -> float:
    result = prom.query("sum(xray_predictions_total)")
    return float(result[0]["value"][1]) if result else 0.0


@pytest.mark.skipif(shutil.which("prometheus") is None, reason="Debian's prometheus is not installed")
def test_prometheus_scrapes_and_every_dashboard_query_has_data(server, tmp_path):
    prom = Prometheus(f"127.0.0.1:{server.port}", tmp_path)
    try:
        prom.wait(lambda: httpx.get(prom.url + "/-/ready", timeout=2).status_code == 200, "ready")
        prom.wait(lambda: prom.query('up{job="xray_exp"} == 1'), "the service's target up")
        png = h.png_bytes(h.sample_images(2)[1][1])
        with httpx.Client(base_url=server.url, timeout=60) as client:
            for _ in range(2):  # two batches, each seen by a scrape: rate() and the quantiles get an increase
                seen = scraped_predictions(prom)
                assert upload(client, png).status_code == 200 and upload(client, b"GIF89a").status_code == 415
                prom.wait(lambda seen=seen: scraped_predictions(prom) > seen, "the new predictions")
        results = {(title, q): prom.query(q) for title, q in dashboard_queries()}
        missing = [key for key, result in results.items() if not result]
        assert not missing, f"dashboard queries without data: {missing}"
        quantiles = {
            q: [float(r["value"][1]) for r in result]
            for (_, q), result in results.items()
            if q.startswith("histogram_quantile")
        }
        assert len(quantiles) == 5 and all(0 < v < 30 for vs in quantiles.values() for v in vs), quantiles
        rules = prom.wait(lambda: evaluated_rules(prom), "the alerting rules evaluated")
        assert len(rules) == 7 and all(r["health"] == "ok" for r in rules), rules
        assert {r["name"] for r in rules if r["state"] != "inactive"} == set()  # a healthy service alerts nothing
    finally:
        prom.stop()
