"""Who logs at what level: liverec's own records at ``LIVEREC_LOG_LEVEL``, the libraries'
(Faust, aiokafka, uvicorn) at warning, so that an operator reads liverec's lines (a worker's
start, its partitions, its progress) without the libraries' chatter. ``LIVEREC_LOG_FORMAT=json``
writes each record as one JSON object, for a log collector."""

from __future__ import annotations

import logging
from datetime import UTC, datetime

import orjson

#: The packages whose records are liverec's own.
OWN = ("liverec", "distributed", "stream", "web", "online_models", "producers", "evaluation",
       "simulation")
FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


class JsonFormatter(logging.Formatter):
    """One JSON object per record: ``ts`` (UTC, ISO 8601), ``level``, ``logger``,
    ``message``, and ``exception`` with its traceback when there is one."""

    def format(self, record: logging.LogRecord) -> str:
        line = {"ts": datetime.fromtimestamp(record.created, UTC).isoformat(
                    timespec="milliseconds"),
                "level": record.levelname.lower(), "logger": record.name,
                "message": record.getMessage()}
        if record.exc_info:
            line["exception"] = self.formatException(record.exc_info)
        return orjson.dumps(line).decode()


def formatter(fmt: str) -> logging.Formatter:
    """The formatter of ``LIVEREC_LOG_FORMAT``: ``text`` or ``json``."""
    return JsonFormatter() if fmt == "json" else logging.Formatter(FORMAT)


def start_line(logger: str, message: str, fmt: str) -> None:
    """Print a process's start line on stdout at once (before its framework sets up logging,
    and whatever the level), in the log format: a collector reading JSON gets JSON."""
    if fmt == "json":
        record = logging.LogRecord(logger, logging.INFO, "", 0, message, None, None)
        message = JsonFormatter().format(record)
    print(message, flush=True)


def library_level(level: str) -> str:
    """The libraries' level: warning, or debug when liverec's is (to debug everything)."""
    return "debug" if level == "debug" else "warning"


def configure(level: str, fmt: str = "text") -> None:
    """Log liverec's records at ``level`` and the libraries' at :func:`library_level`, as
    ``fmt`` says (``text`` or ``json``)."""
    handler = logging.StreamHandler()
    handler.setFormatter(formatter(fmt))
    logging.basicConfig(level=library_level(level).upper(), handlers=[handler])
    own_levels(level)


def own_levels(level: str) -> None:
    """Set liverec's loggers to ``level`` (again after a framework set up the root logger)."""
    for name in OWN:
        logging.getLogger(name).setLevel(level.upper())


def dict_config(level: str, libraries: str, fmt: str = "text") -> dict[str, object]:
    """The same as :func:`configure`, as a :func:`logging.config.dictConfig` for a framework
    that sets up logging itself (Faust's worker): without it, its handler at the libraries'
    level dropped liverec's info lines, and it disabled the loggers that existed before."""
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"plain": {"()": formatter, "fmt": fmt}},
        "handlers": {"out": {"class": "logging.StreamHandler", "formatter": "plain",
                             "stream": "ext://sys.stdout"}},
        "root": {"level": libraries.upper(), "handlers": ["out"]},
        "loggers": {name: {"level": level.upper()} for name in OWN},
    }
