"""Run the app under uvicorn with the transport settings the contract asks for.

One place owns how the server process behaves: the model is loaded before the socket
opens (so ``/ping`` is 200 from the first answer), SIGTERM stops accepting, lets in-flight
requests finish and exits within ``graceful_timeout_s`` (SageMaker and Kubernetes kill
30 s after SIGTERM), and the capture writer is flushed on the way out. ``python -m
serving`` and ``python -m pipeline serve`` both end here.
"""

from __future__ import annotations

import argparse
import gc
import logging
import os
import signal
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from serving.app import DEFAULT_MAX_BODY_BYTES, AppSettings
from serving.capture import CaptureSettings
from serving.emf import Endpoint, EmfSettings

log = logging.getLogger("serving")

SAGEMAKER_MODEL_DIR = Path("/opt/ml/model")


@dataclass(frozen=True)
class ServerOptions:
    """Everything needed to start a server: what to load, where to listen, limits."""

    model_uri: str
    tracking_uri: str | None = None
    host: str = "127.0.0.1"
    port: int = 8080
    app: AppSettings = field(default_factory=AppSettings)
    capture: CaptureSettings | None = None
    graceful_timeout_s: int = 20
    model_name: str | None = None
    model_version: str | None = None
    baseline_path: str | None = None
    fast_path: bool = True
    access_log: bool = False
    log_level: str = "info"
    emf: EmfSettings | None = None
    """CloudWatch EMF publishing; ``None`` (the local default) publishes nothing."""

    def __post_init__(self) -> None:
        if not 0 <= self.port <= 65535:
            raise ValueError(f"port must be within 0-65535, got {self.port}")
        if not 0 < self.graceful_timeout_s < 30:
            raise ValueError(f"graceful shutdown timeout must be within 1-29 s, got {self.graceful_timeout_s}")


def add_server_arguments(parser: argparse.ArgumentParser, *, default_host: str | None = None) -> None:
    """The serving flags, shared by ``python -m serving`` and ``python -m pipeline serve``."""
    env = os.environ
    source = parser.add_argument_group("model")
    source.add_argument("--model-uri", default=env.get("MODEL_URI"), help="models:/NAME@ALIAS, models:/NAME/N or a model directory")
    source.add_argument("--model-name", default=env.get("MODEL_NAME"), help="registered model name (with --alias); labels a local directory")
    source.add_argument("--alias", default=env.get("MODEL_ALIAS", "champion"), help="registry alias to serve (default: champion)")
    source.add_argument("--model-version", default=env.get("MODEL_VERSION"), help="version label for a local directory")
    source.add_argument("--tracking-uri", default=env.get("MLFLOW_TRACKING_URI"), help="MLflow tracking/registry URI")
    source.add_argument("--baseline", dest="baseline_path", default=env.get("MONITORING_BASELINE"), help="monitoring baseline parquet (default: the version's own)")
    source.add_argument("--no-fast-path", action="store_true", help="always score through the sklearn pipeline")
    net = parser.add_argument_group("transport")
    net.add_argument("--host", default=default_host or env.get("SERVING_HOST", "127.0.0.1"), help="bind address (default 127.0.0.1)")
    net.add_argument("--port", type=int, default=int(env.get("SAGEMAKER_BIND_TO_PORT", "8080")), help="port (default 8080 or $SAGEMAKER_BIND_TO_PORT)")
    net.add_argument("--max-body-bytes", type=int, default=DEFAULT_MAX_BODY_BYTES, help="request body cap (default 6 MiB)")
    net.add_argument("--request-timeout", type=float, default=20.0, help="per-request timeout, seconds")
    net.add_argument("--graceful-timeout", type=int, default=20, help="seconds to finish in-flight requests after SIGTERM")
    net.add_argument("--model-threads", type=int, default=2, help="threads that run the model")
    net.add_argument("--inline-max-rows", type=int, default=64, help="score batches up to this size on the event loop")
    net.add_argument("--access-log", action="store_true", help="log every request")
    net.add_argument("--log-level", default=env.get("LOG_LEVEL", "info"), choices=["debug", "info", "warning", "error"])
    cap = parser.add_argument_group("capture")
    cap.add_argument("--capture-dir", default=env.get("CAPTURE_DIR"), help="write sampled requests here (off when unset)")
    cap.add_argument("--capture-sample-rate", type=float, default=float(env.get("CAPTURE_SAMPLE_RATE", "1.0")))
    cap.add_argument("--capture-max-bytes", type=int, default=16 * 1024 * 1024, help="rotate capture files at this size")
    cap.add_argument("--capture-queue", type=int, default=1024, help="records buffered before dropping")
    cap.add_argument("--capture-s3-uri", default=env.get("CAPTURE_S3_URI"), help="ship closed capture files here")
    cw = parser.add_argument_group("cloudwatch (EMF through the CloudWatch agent)")
    cw.add_argument("--emf-endpoint", default=env.get("AWS_EMF_AGENT_ENDPOINT"), help="tcp://host:port or udp://host:port of the agent's EMF listener (off when unset)")
    cw.add_argument("--metrics-stack", default=env.get("MLOPS_STACK"), help="the Stack dimension (dev, prod); required with --emf-endpoint")
    cw.add_argument("--metrics-model-name", default=env.get("METRICS_MODEL_NAME"), help="the ModelName dimension (default: the served model's name)")
    cw.add_argument("--emf-interval", type=float, default=float(env.get("AWS_EMF_FLUSH_SECONDS", "60")), help="seconds per EMF record (default 60)")
    cw.add_argument("--emf-log-group", default=env.get("AWS_EMF_LOG_GROUP_NAME"), help="log group the agent writes the records to")


def options_from_args(args: argparse.Namespace) -> ServerOptions:
    """Turn parsed flags into :class:`ServerOptions`; raises ValueError naming the flag."""
    if args.model_uri:
        model_uri = args.model_uri
    elif args.model_name:
        model_uri = f"models:/{args.model_name}@{args.alias}"
    elif (SAGEMAKER_MODEL_DIR / "MLmodel").is_file():
        model_uri = str(SAGEMAKER_MODEL_DIR)
    else:
        raise ValueError("no model: pass --model-uri, or --model-name [--alias], or mount a model at /opt/ml/model")
    capture = None
    if args.capture_dir:
        capture = CaptureSettings(
            Path(args.capture_dir),
            sample_rate=args.capture_sample_rate,
            max_file_bytes=args.capture_max_bytes,
            queue_size=args.capture_queue,
            s3_uri=args.capture_s3_uri,
        )
    emf = None
    if args.emf_endpoint:
        emf = EmfSettings(Endpoint.parse(args.emf_endpoint), stack=args.metrics_stack or "",
                          model_name=args.metrics_model_name, flush_interval_s=args.emf_interval,
                          log_group_name=args.emf_log_group)
    return ServerOptions(
        emf=emf,
        model_uri=model_uri,
        tracking_uri=args.tracking_uri,
        host=args.host,
        port=args.port,
        app=AppSettings(args.max_body_bytes, args.request_timeout, args.model_threads, args.inline_max_rows),
        capture=capture,
        graceful_timeout_s=args.graceful_timeout,
        model_name=args.model_name if not model_uri.startswith("models:/") else None,
        model_version=args.model_version,
        baseline_path=args.baseline_path,
        fast_path=not args.no_fast_path,
        access_log=args.access_log,
        log_level=args.log_level,
    )


def run(options: ServerOptions) -> int:
    """Load the model, serve until SIGTERM/SIGINT, return 0 (or 1 if the model will not load)."""
    import prometheus_client
    import uvicorn

    from serving.app import ServingApp
    from pipeline import metric_names as mn
    from serving.capture import CaptureWriter
    from serving.emf import EmfPublisher
    from serving.model import ModelLoadError, load_model

    logging.basicConfig(
        level=options.log_level.upper(), stream=sys.stderr, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    try:
        model = load_model(
            options.model_uri,
            tracking_uri=options.tracking_uri,
            name=options.model_name,
            version=options.model_version,
            baseline_path=options.baseline_path,
            use_fast_path=options.fast_path,
        )
    except ModelLoadError as exc:
        log.error("cannot serve: %s", exc)
        return 1
    log.info(
        "serving %s version %s (%s path, drift gauge %s) on http://%s:%d",
        model.name, model.version, "fast" if model.fast_path else "pipeline",
        "on" if model.baseline_predictions is not None else "off", options.host, options.port,
    )
    # The *_created series double the exposition and no reader here uses them.
    prometheus_client.disable_created_metrics()
    # The loaded libraries leave ~10^6 long-lived objects; freezing them keeps the
    # collector from rescanning them on the request path (a p99 spike otherwise).
    gc.collect()
    gc.freeze()
    capture = CaptureWriter(options.capture) if options.capture else None
    emf = None
    if options.emf is not None:
        # The ModelName dimension is the registered name the alarms watch.
        emf = EmfPublisher(options.emf, model_name=model.name, model_version=model.version)
        log.info("publishing %s for %s to CloudWatch through %s every %gs", mn.SERVING_NAMESPACE,
                 emf.model_name, options.emf.endpoint, options.emf.flush_interval_s)
    app = ServingApp(model, options.app, capture, emf)
    config = uvicorn.Config(
        app,
        host=options.host,
        port=options.port,
        lifespan="on",
        log_config=None,
        log_level=options.log_level,
        access_log=options.access_log,
        server_header=False,
        timeout_graceful_shutdown=options.graceful_timeout_s,
        timeout_keep_alive=75,  # above the 60 s idle timeout of AWS load balancers
    )
    # uvicorn re-raises the stop signal after its graceful shutdown, through the handler
    # that was installed before it; this one turns that into a clean exit status 0.
    for stop_signal in (signal.SIGTERM, signal.SIGINT):
        signal.signal(stop_signal, _exit_cleanly)
    uvicorn.Server(config).run()
    log.info("stopped")
    return 0


def _exit_cleanly(signum: int, frame: object) -> None:
    raise SystemExit(0)


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m serving`` / ``serve``: parse flags and run; exit 2 on bad usage."""
    parser = argparse.ArgumentParser(
        prog="serve", description="Serve an MLflow sklearn model over SageMaker's container contract."
    )
    parser.add_argument("mode", nargs="?", choices=["serve"], help="SageMaker starts containers with 'serve'")
    add_server_arguments(parser)
    args = parser.parse_args(argv)
    try:
        options = options_from_args(args)
    except ValueError as exc:
        parser.error(str(exc))
    return run(options)
