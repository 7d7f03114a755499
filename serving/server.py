"""Run the app under uvicorn: preflight checks, the model loader, the drain on SIGTERM.

One place owns how the server process behaves; ``python -m serving`` and ``python -m
pipeline serve`` both end here.

- **Preflight, before any model work** (exit 2, ``ExitCode.USAGE``): a malformed model
  URI, a ``models:/`` URI with no registry, a ``sqlite:`` registry file that does not
  exist (MLflow would silently create an empty one), a capture folder that cannot be
  written, a port already in use. The port is bound here and handed to uvicorn, so it
  cannot be taken between the check and the start.
- **The model loads in the background**: ``/livez`` answers 200 at once and ``/ping`` 503
  until the model is served. A ``models:/NAME@ALIAS`` whose model or alias does not exist
  yet (the first ``pulumi up``, before any champion), or whose registry does not answer,
  is retried with exponential backoff (1 s doubling to ``--resolve-max-interval``) for as
  long as the process runs; the server never exits for it, so Kubernetes never sees a
  crash loop. Any other load failure exits 1.
- **SIGTERM drains** within ``--drain`` seconds: ``/ping`` answers 503 and every response
  carries ``Connection: close`` while the listener stays open (for at most half the
  bound, less once nothing has arrived for 0.25 s), so requests already on their way
  are served rather than reset; then the accept backlog is taken in and the listener
  closed in one step, idle connections are closed, in-flight requests finish, and the
  process exits 0.
"""

from __future__ import annotations

import argparse
import asyncio
import errno
import gc
import logging
import os
import resource
import signal
import socket
import sys
import threading
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from serving.app import DEFAULT_MAX_BODY_BYTES, AppSettings
from serving.capture import CaptureSettings
from serving.emf import Endpoint, EmfSettings
from serving.transport import MAX_HEAD_BYTES, TransportLimits

if TYPE_CHECKING:
    from serving.registry import RegistryResolver

log = logging.getLogger("serving")

SAGEMAKER_MODEL_DIR = Path("/opt/ml/model")
EXIT_OK, EXIT_ERROR, EXIT_USAGE = 0, 1, 2
"""The process exit codes (pipeline.exit_codes.ExitCode's values, which this image lacks)."""
QUIET_S = 0.25
"""During the drain, the listener closes early once nothing has arrived for this long."""
FD_RESERVE = 64
"""Descriptors kept free of client connections (files, worker pipes, the registry)."""
ACCEPT_BURST = 128
"""The listen backlog, which is also how many connections asyncio accepts in one go
before any of them reaches the connection cap's check: the cap leaves room for it."""


class UsageError(ValueError):
    """Bad flags or configuration, found before anything is loaded (exit 2)."""


@dataclass(frozen=True)
class ServerOptions:
    """Everything needed to start a server: what to load, where to listen, limits."""

    model_uri: str
    tracking_uri: str | None = None
    host: str = "127.0.0.1"
    port: int = 8080
    app: AppSettings = field(default_factory=AppSettings)
    capture: CaptureSettings | None = None
    drain_s: float = 3.0
    """SIGTERM to exit, at most; must fit the pod's terminationGracePeriodSeconds (30)."""
    transport: TransportLimits = field(default_factory=TransportLimits)
    resolve_max_interval_s: float = 30.0
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
        if not 0 < self.drain_s < 30:
            raise ValueError(f"drain must be within (0, 30) s (SIGKILL follows SIGTERM after 30 s), got {self.drain_s}")
        if not self.resolve_max_interval_s >= 1:
            raise ValueError(f"resolve max interval must be at least 1 s, got {self.resolve_max_interval_s}")


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
    net.add_argument("--request-timeout", type=float, default=20.0, help="scoring timeout per request, seconds (504)")
    net.add_argument("--body-timeout", type=float, default=20.0, help="seconds for the whole body to arrive (408)")
    net.add_argument("--header-timeout", type=float, default=10.0, help="seconds for a request head to arrive")
    net.add_argument("--max-concurrency", type=int, default=32, help="invocations in flight before 503 + Retry-After")
    net.add_argument("--max-large-in-flight", type=int, default=0,
                     help="bodies over --thread-max-bytes admitted at once, past it 503 (default: 2 x workers)")
    net.add_argument("--max-connections", type=int, default=1000, help="open connections before the idlest is closed")
    net.add_argument("--drain", type=float, default=float(env.get("SERVING_DRAIN_SECONDS", "3")),
                     help="seconds from SIGTERM to exit (default 3); keep under terminationGracePeriodSeconds")
    net.add_argument("--workers", type=int, default=int(env.get("SERVING_WORKERS", "2")),
                     help="worker processes that score large bodies (default 2)")
    net.add_argument("--inline-max-bytes", type=int, default=16 * 1024, help="score bodies up to this size on the event loop")
    net.add_argument("--thread-max-bytes", type=int, default=256 * 1024,
                     help="score bodies up to this size in a thread; larger ones in a worker process")
    source.add_argument("--resolve-max-interval", type=float, default=30.0,
                        help="longest wait between tries while an alias does not resolve yet (seconds)")
    net.add_argument("--access-log", action="store_true", help="log every request")
    net.add_argument("--log-level", default=env.get("LOG_LEVEL", "info"), choices=["debug", "info", "warning", "error"])
    cap = parser.add_argument_group("capture")
    cap.add_argument("--capture-dir", default=env.get("CAPTURE_DIR"), help="write sampled requests here (off when unset)")
    cap.add_argument("--capture-sample-rate", type=float, default=float(env.get("CAPTURE_SAMPLE_RATE", "1.0")))
    cap.add_argument("--capture-max-bytes", type=int, default=16 * 1024 * 1024, help="rotate capture files at this size")
    cap.add_argument("--capture-queue", type=int, default=1024, help="records buffered before dropping")
    cap.add_argument("--capture-queue-bytes", type=int, default=64 * 1024 * 1024,
                     help="bytes of records buffered before dropping (default 64 MiB)")
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
            queue_bytes=args.capture_queue_bytes,
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
        app=AppSettings(max_body_bytes=args.max_body_bytes, request_timeout_s=args.request_timeout,
                        workers=args.workers, inline_max_bytes=args.inline_max_bytes,
                        thread_max_bytes=args.thread_max_bytes, body_timeout_s=args.body_timeout,
                        max_concurrency=args.max_concurrency, max_large_in_flight=args.max_large_in_flight),
        capture=capture,
        drain_s=args.drain,
        transport=TransportLimits(header_timeout_s=args.header_timeout, max_connections=args.max_connections),
        resolve_max_interval_s=args.resolve_max_interval,
        model_name=args.model_name if not model_uri.startswith("models:/") else None,
        model_version=args.model_version,
        baseline_path=args.baseline_path,
        fast_path=not args.no_fast_path,
        access_log=args.access_log,
        log_level=args.log_level,
    )


def _sqlite_path(uri: str) -> Path | None:
    """The database file of a ``sqlite:///path`` URI (None for other schemes)."""
    if not uri.startswith("sqlite://"):
        return None
    rest = uri[len("sqlite://"):].split("?", 1)[0]  # "/relative/path" or "//absolute/path"
    return Path(rest[1:] if rest.startswith("/") else rest)


def preflight(options: ServerOptions) -> socket.socket:
    """Every check that needs no model, in the order a user fixes them; returns the bound
    (not yet listening) socket. Raises :class:`UsageError` naming the problem."""
    from serving.model import model_uri_problem

    problem = model_uri_problem(options.model_uri)
    if problem:
        raise UsageError(problem)
    if options.model_uri.startswith("models:/"):
        if not options.tracking_uri:
            raise UsageError(f"{options.model_uri} needs a registry: pass --tracking-uri or set MLFLOW_TRACKING_URI")
        database = _sqlite_path(options.tracking_uri)
        if database is not None and not database.is_file():
            raise UsageError(f"registry database {str(database)!r} (from --tracking-uri {options.tracking_uri}) does not "
                             "exist; it would be created empty. Run the pipeline first or fix the URI")
    if options.capture is not None:
        folder = options.capture.directory
        try:
            folder.mkdir(parents=True, exist_ok=True)
            probe = folder / f".write-probe-{os.getpid()}"
            probe.write_bytes(b"")
            probe.unlink()
        except OSError as exc:
            raise UsageError(f"capture folder {str(folder)!r} is not usable: {exc.strerror or exc}") from None
    family = socket.AF_INET6 if ":" in options.host else socket.AF_INET
    # IPPROTO_TCP, not 0: asyncio switches Nagle off (TCP_NODELAY) only on sockets whose
    # proto says TCP, and with Nagle on a response written as head + body waits for the
    # client's delayed ACK, 40 ms per request.
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    try:
        sock.bind((options.host, options.port))
    except OSError as exc:
        sock.close()
        what = "is already in use" if exc.errno == errno.EADDRINUSE else f"cannot be bound: {exc.strerror}"
        raise UsageError(f"port {options.port} on {options.host} {what}") from None
    sock.set_inheritable(False)
    return sock


def connection_cap(requested: int) -> int:
    """Raise the soft descriptor limit to the hard one and return how many client
    connections fit under it with :data:`FD_RESERVE` and one :data:`ACCEPT_BURST` to spare."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY or hard > soft:
        target = hard if hard != resource.RLIM_INFINITY else max(soft, 65536)
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
            soft = target
        except (ValueError, OSError):
            pass
    return max(1, min(requested, soft - FD_RESERVE - ACCEPT_BURST))


class ServingServer:
    """uvicorn's server with the background model loader and the SIGTERM drain."""

    def __init__(self, options: ServerOptions, app: Any, sock: socket.socket, resolver: RegistryResolver) -> None:
        import uvicorn

        from serving.transport import guarded_protocol

        self.options = options
        self.app = app
        self.sock = sock
        self.resolver = resolver
        self.exit_code = EXIT_OK
        self._stop_loading = threading.Event()
        # The loop keeps only weak references to tasks: one nobody holds can be collected mid-run.
        self._accepting: set[asyncio.Task[Any]] = set()
        limits = replace(options.transport, max_connections=connection_cap(options.transport.max_connections))
        config = uvicorn.Config(
            app,
            lifespan="on",
            log_config=None,
            log_level=options.log_level,
            access_log=options.access_log,
            server_header=False,
            http=guarded_protocol(limits),
            h11_max_incomplete_event_size=MAX_HEAD_BYTES,
            backlog=ACCEPT_BURST,
            timeout_keep_alive=75,  # above the 60 s idle timeout of AWS load balancers
        )
        outer = self

        class _Server(uvicorn.Server):
            async def startup(self, sockets: list[socket.socket] | None = None) -> None:
                await super().startup(sockets=sockets)
                outer._start_loader(asyncio.get_running_loop())

            async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
                await outer._drain(self)

            def handle_exit(self, sig: int, frame: Any) -> None:
                # In the signal handler itself: uvicorn's main loop notices the exit flag
                # only at its next 0.1 s tick, and /ping must say 503 from the signal on.
                outer.app.drain()
                super().handle_exit(sig, frame)

        self.server = _Server(config)

    def run(self) -> int:
        self.server.run(sockets=[self.sock])
        return self.exit_code

    # -- loading ------------------------------------------------------------------------------

    def _start_loader(self, loop: asyncio.AbstractEventLoop) -> None:
        threading.Thread(target=self._load, args=(loop,), name="model-loader", daemon=True).start()

    def _fail(self, loop: asyncio.AbstractEventLoop, message: str) -> None:
        log.error("cannot serve: %s", message)
        self.exit_code = EXIT_ERROR
        loop.call_soon_threadsafe(setattr, self.server, "should_exit", True)

    def _load(self, loop: asyncio.AbstractEventLoop) -> None:
        from pipeline import metric_names as mn
        from serving.emf import EmfPublisher
        from serving.model import load_model
        from serving.workers import ScoringPool

        options = self.options
        # The registry is asked from a helper process (started by run(), serving.registry)
        # while this one imports the model's libraries; the helper stays for the retries,
        # and is gone before the workers fork.
        try:
            model = self._load_until_ready(loop, self.resolver, load_model)
        finally:
            self.resolver.close()
            # The collector was off while the libraries loaded (run()): on again, in this
            # process and, from their initializer, in the workers.
            gc.freeze()
            gc.enable()
        if model is None:
            return
        # gc.freeze() above, right before the workers fork, as its documentation
        # recommends: the loaded libraries leave ~10^6 long-lived objects, which the
        # collector then never rescans on the request path (a p99 spike otherwise), and
        # the workers' copies of them stay shared.
        pool = ScoringPool(model, options.app.workers)
        pool.start()
        emf = None
        if options.emf is not None:
            # The ModelName dimension is the registered name the alarms watch.
            emf = EmfPublisher(options.emf, model_name=model.name, model_version=model.version)
            emf.start()
            log.info("publishing %s for %s to CloudWatch through %s every %gs", mn.SERVING_NAMESPACE,
                     emf.model_name, options.emf.endpoint, options.emf.flush_interval_s)
        loop.call_soon_threadsafe(self.app.serve_model, model, emf, pool)
        log.info(
            "serving %s version %s (%s path, drift gauge %s, %d workers) on http://%s:%d",
            model.name, model.version, "fast" if model.fast_path else "pipeline",
            "on" if model.baseline_predictions is not None else "off", options.app.workers,
            options.host, options.port,
        )

    def _load_until_ready(self, loop: asyncio.AbstractEventLoop, resolver: Any, load_model: Any) -> Any:
        """The loaded model, retrying a model that does not exist yet; None when loading
        failed (the server is told to exit 1) or the server is stopping."""
        from serving.model import ModelLoadError, ModelNotYetAvailable

        options = self.options
        delay, last_reason = 1.0, ""
        while not self._stop_loading.is_set():
            try:
                return load_model(
                    options.model_uri,
                    tracking_uri=options.tracking_uri,
                    name=options.model_name,
                    version=options.model_version,
                    baseline_path=options.baseline_path,
                    use_fast_path=options.fast_path,
                    resolver=resolver,
                )
            except ModelNotYetAvailable as exc:
                if not gc.isenabled():
                    # Waiting may last hours (the first deploy, before any champion): the
                    # collector goes back on, with what was loaded so far frozen.
                    gc.freeze()
                    gc.enable()
                self.app.waiting_for = f"waiting for {options.model_uri}: {exc}"
                if str(exc) != last_reason:
                    log.warning("%s; /ping answers 503 and the server retries (backoff up to %g s)",
                                exc, options.resolve_max_interval_s)
                    last_reason = str(exc)
                self._stop_loading.wait(delay)
                delay = min(delay * 2, options.resolve_max_interval_s)
            except ModelLoadError as exc:
                self._fail(loop, str(exc))
                return None
            except Exception as exc:  # a bug in loading: say so and exit 1, never serve half a model
                log.exception("model load failed")
                self._fail(loop, f"{type(exc).__name__}: {exc}")
                return None
        return None

    # -- draining -----------------------------------------------------------------------------

    async def _drain(self, server: Any) -> None:
        """SIGTERM (or a fatal load error): see the module docstring."""
        loop = asyncio.get_running_loop()
        started = loop.time()
        deadline = started + self.options.drain_s
        self._stop_loading.set()
        self.app.drain()
        state = server.server_state
        if self.app.model is not None:
            log.info("SIGTERM: draining (/ping 503, Connection: close) for at most %g s", self.options.drain_s)
            seen = state.total_requests + len(state.tasks)
            quiet_since = loop.time()
            while loop.time() < started + self.options.drain_s / 2:
                await asyncio.sleep(0.05)
                now_seen = state.total_requests + len(state.tasks)
                if now_seen != seen or state.tasks:
                    seen, quiet_since = now_seen, loop.time()
                elif loop.time() - quiet_since >= QUIET_S:
                    break
        accepted = self._take_backlog(server)
        for listener in server.servers:
            listener.close()
        if accepted:
            log.info("took %d connection(s) from the backlog before closing the listener", accepted)
        await asyncio.sleep(0.05)  # let what just arrived be read
        while loop.time() < deadline:
            for connection in list(state.connections):
                idle = getattr(connection, "idle", None)
                buffered = getattr(connection, "buffered", None)
                if idle is not None and idle() and not (buffered is not None and buffered()):
                    connection.shutdown()
            if not state.tasks and not state.connections:
                break
            await asyncio.sleep(0.05)
        if state.tasks:
            log.error("drain bound of %g s reached: cancelling %d request(s)", self.options.drain_s, len(state.tasks))
            for task in state.tasks:
                task.cancel()
        for connection in list(state.connections):
            connection.transport.close()
        await server.lifespan.shutdown()
        log.info("stopped after %.2f s", loop.time() - started)

    def _take_backlog(self, server: Any) -> int:
        """Accept every connection waiting in the kernel's backlog (closing the listener
        would reset them); no await happens between this and the close."""
        loop = asyncio.get_running_loop()
        config, state = server.config, server.server_state
        count = 0

        def protocol() -> Any:
            return config.http_protocol_class(config=config, server_state=state, app_state=server.lifespan.state)

        if not server.servers or self.sock.fileno() < 0:
            return 0
        while True:
            try:
                conn, _ = self.sock.accept()  # the listener is non-blocking under asyncio
            except OSError:  # EAGAIN: the backlog is empty
                break
            conn.setblocking(False)
            task = loop.create_task(loop.connect_accepted_socket(protocol, conn))
            self._accepting.add(task)
            task.add_done_callback(self._accepting.discard)
            count += 1
        return count


def run(options: ServerOptions) -> int:
    """Preflight (exit 2), then serve until SIGTERM/SIGINT (exit 0) or until the model
    fails to load (exit 1)."""
    from serving.registry import RegistryResolver

    logging.basicConfig(
        level=options.log_level.upper(), stream=sys.stderr, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    try:
        sock = preflight(options)
    except UsageError as exc:
        log.error("serve: %s", exc)
        return EXIT_USAGE
    # Until the model is loaded this process only imports and reads files: the cyclic
    # collector, which would rescan every imported object again and again, is off until
    # the loader turns it back on (ServingServer._load; pipeline/gc_tuning.py says why).
    gc.disable()
    resolver = RegistryResolver()
    if options.model_uri.startswith("models:/"):
        # The helper's MLflow import is the longest part of the start: begin it first.
        resolver.start()
    import prometheus_client

    from serving.app import ServingApp
    from serving.capture import CaptureWriter

    # The *_created series double the exposition and no reader here uses them.
    prometheus_client.disable_created_metrics()
    capture = CaptureWriter(options.capture) if options.capture else None
    app = ServingApp(None, options.app, capture)
    server = ServingServer(options, app, sock, resolver)
    log.info("listening on http://%s:%d (/livez 200; /ping 503 until %s is loaded)", options.host, options.port,
             options.model_uri)
    # uvicorn re-raises the stop signal after its shutdown, through the handler that was
    # installed before it; this one turns that into a clean exit status 0.
    for stop_signal in (signal.SIGTERM, signal.SIGINT):
        signal.signal(stop_signal, _exit_cleanly)
    code = server.run()
    log.info("stopped")
    return code


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
