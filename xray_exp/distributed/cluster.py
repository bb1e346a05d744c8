"""Connect to Ray: an existing cluster by address, or a local Ray started here (said in one log line).

    from xray_exp.distributed.cluster import connect
    cluster = connect(address=None, num_cpus=2)   # ray.address, else RAY_ADDRESS, else a new local Ray
    ...                                            # ray.tune / ray.train calls
    cluster.shutdown()

    python -m xray_exp.ray_main ray.address=10.0.0.1:6379 ...   # a cluster made by scripts/ray_start_head.sh
    RAY_ADDRESS=10.0.0.1:6379 python -m xray_exp.ray_main ...   # same
    python -m xray_exp.ray_main ray.address=auto ...            # the cluster `ray start` made on this machine

Never attaches silently: without an address a *new* local Ray is started (`ray.init(address="local")`),
even when another Ray instance runs on this machine. This is the only module that calls `ray.init`; other
tools (e.g. Hydra's Ray launcher) can reuse `plan_connection` / `connect`. Usage stats are off
(RAY_USAGE_STATS_ENABLED=0). Token authentication (Ray 2.60's default for new local clusters) needs the
cluster's token on the driver: RAY_AUTH_TOKEN, RAY_AUTH_TOKEN_PATH or ~/.ray/auth_token (see the scripts).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from xray_exp.distributed.ray_compat import reload_ray_config
from xray_exp.errors import ConfigError

log = logging.getLogger("xray_exp.ray")

RAY_ENV = {"RAY_USAGE_STATS_ENABLED": "0"}


@dataclass(frozen=True)
class ConnectionPlan:
    """`address` None means: start a new local Ray. `source` says where the address came from."""

    address: str | None
    source: str  # "ray.address" | "RAY_ADDRESS" | "local"


def plan_connection(configured: str | None, environ: Mapping[str, str] | None = None) -> ConnectionPlan:
    """The configured address wins, then RAY_ADDRESS; neither -> a new local instance (never 'auto')."""
    environ = os.environ if environ is None else environ
    if configured not in (None, ""):
        if str(configured) == "local":
            return ConnectionPlan(None, "local")
        return ConnectionPlan(str(configured), "ray.address")
    if environ.get("RAY_ADDRESS"):
        return ConnectionPlan(environ["RAY_ADDRESS"], "RAY_ADDRESS")
    return ConnectionPlan(None, "local")


@dataclass
class Cluster:
    """A connection made by `connect()`; `shutdown()` disconnects (and stops the Ray it started)."""

    address: str
    started_local: bool
    resources: dict[str, float] = field(default_factory=dict)
    nodes: int = 1
    owned: bool = True  # False when Ray was already initialised in this process (left alone on shutdown)

    def shutdown(self) -> None:
        if self.owned:
            import ray

            ray.shutdown()


def token_available(environ: Mapping[str, str] | None = None) -> bool:
    """A token for token authentication: RAY_AUTH_TOKEN, RAY_AUTH_TOKEN_PATH, or ~/.ray/auth_token."""
    environ = os.environ if environ is None else environ
    if environ.get("RAY_AUTH_TOKEN"):
        return True
    path = environ.get("RAY_AUTH_TOKEN_PATH") or os.path.join(os.path.expanduser("~"), ".ray", "auth_token")
    return os.path.isfile(path) and os.path.getsize(path) > 0


def read_token(environ: Mapping[str, str] | None = None) -> str | None:
    """The cluster token from RAY_AUTH_TOKEN, RAY_AUTH_TOKEN_PATH or ~/.ray/auth_token (None: none)."""
    environ = os.environ if environ is None else environ
    if environ.get("RAY_AUTH_TOKEN"):
        return environ["RAY_AUTH_TOKEN"].strip()
    path = environ.get("RAY_AUTH_TOKEN_PATH") or os.path.join(os.path.expanduser("~"), ".ray", "auth_token")
    try:
        with open(path, encoding="utf-8") as f:
            return f.read().strip() or None
    except OSError:
        return None


def auth_headers(environ: Mapping[str, str] | None = None) -> dict[str, str]:
    """HTTP headers for the cluster's dashboard / Job API (token authentication), {} without a token."""
    token = read_token(environ)
    return {"Authorization": f"Bearer {token}"} if token else {}


def _enable_token_auth_for_cluster() -> None:
    """Connecting drivers stay in auth mode 'disabled' unless told: use the token when there is one
    (what `ray start` does for joining nodes). RAY_AUTH_MODE set by the user is left alone."""
    if "RAY_AUTH_MODE" in os.environ or not token_available():
        return
    os.environ["RAY_AUTH_MODE"] = "token"
    reload_ray_config()  # Ray already imported: it reads the variable again


def _reason(exc: BaseException) -> str:
    """The first line of the error and of its cause (Ray hides an auth failure behind ConnectionError)."""
    parts: list[str] = []
    current: BaseException | None = exc
    while current is not None and len(parts) < 2:
        line = str(current).splitlines()[0] if str(current) else type(current).__name__
        parts.append(line[:240])
        current = current.__cause__
    return " <- ".join(parts)


def _describe(resources: dict[str, float], nodes: int) -> str:
    def count(n: float, unit: str) -> str:
        return f"{n:g} {unit}{'' if n == 1 else 's'}"

    return f"{count(nodes, 'node')}, {count(resources.get('CPU', 0), 'CPU')}, {count(resources.get('GPU', 0), 'GPU')}"


def connect(
    address: str | None = None,
    *,
    num_cpus: int | None = None,
    num_gpus: int | None = None,
    include_dashboard: bool | None = None,
    namespace: str | None = "xray_exp",
    runtime_env: dict[str, Any] | None = None,
) -> Cluster:
    """Connect to the cluster at `address` / RAY_ADDRESS, or start a local Ray; log which, once."""
    os.environ.update(RAY_ENV)
    plan = plan_connection(address)
    if plan.address is not None:
        _enable_token_auth_for_cluster()
    import ray

    if ray.is_initialized():  # e.g. inside a Ray job or launcher that connected already
        ctx = ray.get_runtime_context()
        resources = ray.cluster_resources()
        log.info("Ray: using this process's existing connection (%s)", _describe(resources, len(ray.nodes())))
        return Cluster(
            address=ctx.gcs_address, started_local=False, resources=resources, nodes=len(ray.nodes()), owned=False
        )
    env = {"env_vars": dict(RAY_ENV)}
    if runtime_env:
        env = {**runtime_env, "env_vars": {**RAY_ENV, **runtime_env.get("env_vars", {})}}
    if plan.address is not None:
        if num_cpus is not None or num_gpus is not None:
            log.warning(
                "Ray: ray.num_cpus/num_gpus size a local Ray only; the cluster at %s keeps its own", plan.address
            )
        try:
            ray.init(address=plan.address, namespace=namespace, runtime_env=env, logging_level=logging.WARNING)
        except (ConnectionError, RuntimeError, ValueError) as exc:
            raise ConfigError(
                f"{plan.source}: cannot connect to the Ray cluster at {plan.address!r}: {_reason(exc)}. Fix: start it "
                "(scripts/ray_start_head.sh), check host:port (the head's GCS port, 6379 by default), and "
                "give this machine the cluster's token (RAY_AUTH_TOKEN or ~/.ray/auth_token)."
            ) from exc
        resources, nodes = ray.cluster_resources(), len([n for n in ray.nodes() if n.get("Alive")])
        log.info(
            "Ray: connected to the cluster at %s (from %s): %s", plan.address, plan.source, _describe(resources, nodes)
        )
        return Cluster(address=plan.address, started_local=False, resources=resources, nodes=nodes)
    ray.init(
        address="local",
        num_cpus=num_cpus,
        num_gpus=num_gpus,
        include_dashboard=include_dashboard,
        namespace=namespace,
        runtime_env=env,
        logging_level=logging.WARNING,
    )
    resources = ray.cluster_resources()
    address = ray.get_runtime_context().gcs_address
    log.info(
        "Ray: no cluster address (ray.address or RAY_ADDRESS): started a local Ray on this machine at %s "
        "(%s); it stops when this command ends",
        address,
        _describe(resources, 1),
    )
    return Cluster(address=address, started_local=True, resources=resources, nodes=1)
