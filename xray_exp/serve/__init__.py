"""Detection service: upload a chest X-ray, get findings (or "No findings"); trigger training.

Start (binds 127.0.0.1:8000 unless told otherwise):

    XRAY_SERVE_MODEL=outputs/runs/<run>/weights/best.onnx python -m xray_exp.serve
    XRAY_SERVE_MODEL=models:/yolo12n@development XRAY_SERVE_TRACKING_URI=sqlite:///outputs/mlflow.db \\
        XRAY_SERVE_TOKEN=$(openssl rand -hex 16) python -m xray_exp.serve --host 0.0.0.0 --port 8000
    python -m xray_exp.serve.demo_model /tmp/demo   # a random-init demo model to try the service with

then open http://127.0.0.1:8000/ (web page), /openapi.json (schema; no /docs: Swagger UI needs a CDN) or:

    curl -F file=@chest.png http://127.0.0.1:8000/predict
    curl -F file=@chest.dcm 'http://127.0.0.1:8000/predict/annotated?conf=0.3' -o annotated.png
    curl -X POST -H "Authorization: Bearer $XRAY_SERVE_TOKEN" -H 'Content-Type: application/json' \\
        -d '{"overrides": ["debug=smoke"]}' http://127.0.0.1:8000/trigger-training

Endpoints:
    GET  /                   the viewer: drop or choose an image; window/level, zoom, findings linked to boxes
    POST /render             multipart `file` -> the decoded first frame in its own bit depth for the viewer
                             (raw little-endian pixels; X-Render-Info: JSON with size, type, window, presets,
                             pixel spacing, allow-listed DICOM tags; xray_exp/serve/viewer_routes.py)
    POST /predict            multipart `file` (PNG, JPEG or DICOM) -> {"findings": [{label, class_id,
                             confidence, box: [x1, y1, x2, y2] in original pixels}], "summary": "No findings"
                             | "<n> findings: ...", image, model {name, version}, timings_ms {decode,
                             preprocess, inference, postprocess, total}}. Query: conf, iou; include_image=true
                             adds the annotated PNG as a data URL
    POST /predict/annotated  same input -> image/png with boxes and labels drawn (X-Summary header)
    GET  /health             model loaded?, job running?, jobs queued
    GET  /config             effective settings (never the token; URI credentials stripped)
    GET  /models             registered versions from MLflow (empty list + note without tracking)
    POST /trigger-training   bearer token; fine-tune if <model>@development is registered, else from scratch
    POST /trigger-finetune   bearer token; fine-tune. Body of both: {"model": "yolo12n", "overrides": [...]}
    GET  /jobs, /jobs/{id}   job status, progress (epoch k of n, latest metrics), mlflow_run_id, metrics,
                             registered_version
    DELETE /jobs/{id}        bearer token; cancel a queued job or stop a running one
    GET  /metrics            Prometheus text format (xray_exp/serve/metrics.py; README "Running the service
                             in a hospital network")
    POST /predict/sr         multipart `file` (DICOM only; else 415) -> application/dicom: the findings as a
                             Comprehensive 3D SR (TID 1500) in the image's study (xray_exp.sr, sr_routes.py)
    POST /studies/{uid}/analyze   bearer token; fetch the study from XRAY_SERVE_DICOMWEB_URL (WADO-RS), store
                             an SR per image back (STOW-RS); 202 + record, idempotent per study and model
                             version (docs/pacs.md, dicomweb_routes.py)
    GET  /studies/{uid}/analyze   that record: status queued | running | done | failed, result or error

Training jobs run one at a time as `python -m xray_exp.train mode=train|finetune model=<name> <overrides>
run_name=<name>-job-<id>`: in a subprocess (working directory: the service's; XRAY_EXP_ROOT applies), or
as a Ray Job when XRAY_SERVE_RAY_ADDRESS (or RAY_ADDRESS) names a cluster's job address
(http://head:8265; CPUs/GPUs from the hardware preset; same paths on the cluster: docs/cluster.md).
While one runs, triggers wait in a queue (XRAY_SERVE_JOB_QUEUE_DEPTH, then 429 with the queue length).
Job records persist in <job dir>/jobs.sqlite: after a restart /jobs lists them, a running Ray job is
re-attached and a local one marked `interrupted`. Overrides must be key=value with characters
[A-Za-z0-9_.,:/@+-] and on the allow-list (xray_exp/serve/overrides.py: group choices and
hyperparameters); mode, model, paths.*, tracking.*, model.*, hydra.* and the rest get 422 naming the
key. With a tracking URI configured the job gets it (MLFLOW_TRACKING_URI
and tracking.tracking_uri), so it registers where the service looks. After a successful job a service
serving models:/... reloads the model. Without XRAY_SERVE_TOKEN the triggers answer 403 (off); a missing
token gets 401, a wrong one 403. The token is not passed on to jobs.

Uploads: 413 over the byte limit or (from the header, before decoding) the pixel or pixel-bytes limit, or
a Deflated DICOM inflating past its bound; 415 for anything but PNG/JPEG/DICOM; 422 for empty, truncated or
malformed files; 503 when workers and queue are full; 504 past the time limit (docs/security.md).
16-bit PNGs are accepted and scaled to 8 bits like training data (xray_exp.imaging). Filenames are ignored;
uploads are kept only when XRAY_SERVE_UPLOAD_DIR is set (under random names). No CORS unless
XRAY_SERVE_CORS_ORIGINS is set.

Settings (environment; see settings.py):
    XRAY_SERVE_MODEL             .onnx file, folder with model.onnx, or models:/<name>[@<alias>]; unset or
                                 not (yet) registered: no model, /predict answers 503, triggers still work
    XRAY_SERVE_MODEL_ALIAS       alias for models:/<name> without one (default: latest version)
    XRAY_SERVE_MODEL_NAME        model that training targets (yolo12n)
    XRAY_SERVE_TRACKING_URI      MLflow tracking/registry URI (default: MLFLOW_TRACKING_URI)
    XRAY_SERVE_DEVICE            auto | cpu | cuda (ONNX Runtime provider)
    XRAY_SERVE_THREADS           ONNX Runtime intra-op threads (0: its default)
    XRAY_SERVE_CONF / _IOU / _MAX_DET     0.25 / 0.7 / 300
    XRAY_SERVE_MAX_UPLOAD_BYTES  52428800 (50 MiB)
    XRAY_SERVE_MAX_PIXELS        100000000 (pixels, all frames)
    XRAY_SERVE_MAX_PIXEL_BYTES   50331648 (48 MiB: one decoded frame, width x height x samples x bytes;
                                 the largest chest X-ray plates, 4300x4300 16-bit, are 35 MiB)
    XRAY_SERVE_MAX_DECOMPRESSED_BYTES  134217728 (inflated Deflated DICOM; all frames' pixel bytes)
    XRAY_SERVE_WORKERS           4 (threads decoding + inferring; the event loop never decodes)
    XRAY_SERVE_QUEUE_SIZE        8 (requests waiting for a worker; beyond: 503 with Retry-After)
    XRAY_SERVE_LARGE_DECODE_BYTES  16777216 (16 MiB: uploads whose header announces more decoded bytes per
                                 frame are decoded in the large lane, apart from ordinary ones)
    XRAY_SERVE_LARGE_WORKERS     0 (large decodes at once; 0 = half the cores)
    XRAY_SERVE_LARGE_QUEUE_SIZE  4 (large decodes waiting; beyond: 503 with Retry-After)
    XRAY_SERVE_REQUEST_TIMEOUT_S 30 (decode + inference of one request; beyond: 504)
    XRAY_SERVE_ANNOTATE_MAX_SIDE 2048 (a decoded image larger than this, and than the model's input, is
                                 downscaled to it before inference; boxes come back in original pixels)
    XRAY_SERVE_UPLOAD_DIR        keep uploads here (off by default)
    XRAY_SERVE_TOKEN             bearer token for the trigger endpoints (off by default)
    XRAY_SERVE_JOB_COMMAND       command prefix of a job (default: <python> -m xray_exp.train)
    XRAY_SERVE_JOB_DIR           job logs (outputs/serve-jobs)
    XRAY_SERVE_JOB_TIMEOUT_S     86400
    XRAY_SERVE_JOB_QUEUE_DEPTH   4 (jobs waiting behind the running one; then 429)
    XRAY_SERVE_RAY_ADDRESS       Ray job API (http://head:8265; default RAY_ADDRESS when http(s)://): Ray Jobs
    XRAY_SERVE_CORS_ORIGINS      comma-separated allowed origins (none by default)
    XRAY_SERVE_HOST / _PORT      127.0.0.1 / 8000 (also --host/--port)
    XRAY_SERVE_METRICS           true (GET /metrics; false: off)
    XRAY_SERVE_AUDIT_LOG         JSON lines, one per request touching images or models (off by default;
                                 xray_exp/serve/audit.py): no patient data, DICOM UIDs as salted hashes
    XRAY_SERVE_AUDIT_SALT        salt of those hashes (default: a random one kept in <audit log>.salt)
    XRAY_SERVE_AUDIT_REQUIRED    false (true: refuse to start when the audit log cannot be written)
    XRAY_SERVE_AUDIT_MAX_BYTES / _BACKUPS   104857600 / 10 (rotation by size)
    XRAY_SERVE_SR_CODES          class -> finding code YAML of the SRs (default xray_exp/sr/finding_codes.yaml)
    XRAY_SERVE_DICOMWEB_URL      PACS DICOMweb root for /studies/{uid}/analyze (off by default)
    XRAY_SERVE_DICOMWEB_CREDENTIALS_FILE  `user:password` (basic) or a bearer token; never logged
    XRAY_SERVE_DICOMWEB_TIMEOUT_S / _RETRIES   30 / 3 (attempts on connection errors and 5xx)

The import path of the service (this package minus demo_model) loads no torch and no ultralytics.
Importing this package switches library telemetry off (xray_exp.offline.TELEMETRY_ENV, among them
ORT_DISABLE_TELEMETRY=1) before ONNX Runtime or MLflow is imported: the service makes no outbound connection
(but to the PACS named by XRAY_SERVE_DICOMWEB_URL, when set).
"""

from xray_exp.offline import disable_telemetry

disable_telemetry()
