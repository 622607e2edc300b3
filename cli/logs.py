"""Logging for ``gridctl run`` and ``demo``: events worth reading at INFO, noise at DEBUG.

- Library chatter is demoted: websockets' per-connection lines (``connection open``,
  ``HTTP response sent``), the ocpp library's per-frame ``receive message`` / ``send``,
  APScheduler's per-run job lines (the OpenADR 2.0b VEN polls every 10 s). At ``DEBUG``
  everything is shown again.
- A traceback the ocpp library attaches to a CallError (``Error while handling request``,
  the whole payload and stack: ~25 lines each) becomes one line: the message, cut to
  300 characters, and the exception's type and text. The stack is kept at DEBUG.
- ``--log-format json`` writes one JSON object per line: ``ts``, ``level``, ``logger``,
  ``msg`` and any ``station_id`` / ``signal_id`` the record carries (``extra=``).
"""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime
from typing import Literal

LogFormat = Literal["text", "json"]
TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s %(message)s"
#: loggers whose INFO lines are per-frame or per-connection chatter
CHATTY = ("websockets", "ocpp", "apscheduler", "uvicorn.access", "aiohttp.access")
#: record attributes copied into JSON lines when present
EXTRA_FIELDS = ("station_id", "signal_id", "zone_id")
MAX_MESSAGE = 300


class OneLineErrors(logging.Filter):
    """Fold a library's exception record into one line (the stack only at DEBUG)."""

    def __init__(self, keep_stack: bool) -> None:
        super().__init__()
        self.keep_stack = keep_stack

    def filter(self, record: logging.LogRecord) -> bool:
        if record.exc_info and not self.keep_stack:
            exc = record.exc_info[1]
            text = record.getMessage()
            if len(text) > MAX_MESSAGE:
                text = text[:MAX_MESSAGE] + "…"
            detail = f"{type(exc).__name__}: {exc}" if exc is not None else ""
            record.msg = f"{text} ({detail.splitlines()[0] if detail else 'error'})"
            record.args = None
            record.exc_info = None
            record.exc_text = None
        return True


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        doc = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "msg": record.getMessage(),
        }
        for name in EXTRA_FIELDS:
            value = getattr(record, name, None)
            if value is not None:
                doc[name] = value
        if record.exc_info:
            doc["exc"] = self.formatException(record.exc_info)
        return json.dumps(doc, ensure_ascii=False)


def setup_logging(level: str = "INFO", fmt: LogFormat = "text") -> None:
    """Configure the root logger once for this process (replacing earlier handlers)."""
    numeric = logging.getLevelName(level.upper())
    if not isinstance(numeric, int):
        raise ValueError(f"unknown log level {level!r} (DEBUG, INFO, WARNING, ERROR)")
    handler = logging.StreamHandler()
    handler.setFormatter(JsonFormatter() if fmt == "json" else logging.Formatter(TEXT_FORMAT))
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(numeric)
    debug = numeric <= logging.DEBUG
    for name in CHATTY:
        logging.getLogger(name).setLevel(logging.NOTSET if debug else logging.WARNING)
    ocpp = logging.getLogger("ocpp")
    for f in [f for f in ocpp.filters if isinstance(f, OneLineErrors)]:
        ocpp.removeFilter(f)
    ocpp.addFilter(OneLineErrors(keep_stack=debug))
