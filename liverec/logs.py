"""Who logs at what level: liverec's own records at ``LIVEREC_LOG_LEVEL``, the libraries'
(Faust, aiokafka, uvicorn) at warning, so that an operator reads liverec's lines (a worker's
start, its partitions, its progress) without the libraries' chatter."""

from __future__ import annotations

import logging

#: The packages whose records are liverec's own.
OWN = ("liverec", "distributed", "stream", "web", "online_models", "producers", "evaluation",
       "simulation")
FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


def library_level(level: str) -> str:
    """The libraries' level: warning, or debug when liverec's is (to debug everything)."""
    return "debug" if level == "debug" else "warning"


def configure(level: str) -> None:
    """Log liverec's records at ``level`` and the libraries' at :func:`library_level`."""
    logging.basicConfig(level=library_level(level).upper(), format=FORMAT)
    own_levels(level)


def own_levels(level: str) -> None:
    """Set liverec's loggers to ``level`` (again after a framework set up the root logger)."""
    for name in OWN:
        logging.getLogger(name).setLevel(level.upper())


def dict_config(level: str, libraries: str) -> dict[str, object]:
    """The same as :func:`configure`, as a :func:`logging.config.dictConfig` for a framework
    that sets up logging itself (Faust's worker): without it, its handler at the libraries'
    level dropped liverec's info lines, and it disabled the loggers that existed before."""
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"plain": {"format": FORMAT}},
        "handlers": {"out": {"class": "logging.StreamHandler", "formatter": "plain",
                             "stream": "ext://sys.stdout"}},
        "root": {"level": libraries.upper(), "handlers": ["out"]},
        "loggers": {name: {"level": level.upper()} for name in OWN},
    }
