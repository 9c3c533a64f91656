"""Logs an operator (or a log collector) can read: liverec's lines at its level, the
libraries' warnings only, and JSON lines with ``LIVEREC_LOG_FORMAT=json``."""

from __future__ import annotations

import io
import json
import logging
import logging.config
import os
import subprocess
import sys

import pytest

from liverec import logs


@pytest.fixture
def captured() -> io.StringIO:
    """The root logger and liverec's, as a Faust worker sets them up, writing here."""
    saved = (logging.root.handlers[:], logging.root.level,
             {name: logging.getLogger(name).level for name in logs.OWN})
    stream = io.StringIO()
    config = logs.dict_config("info", "warning", "json")
    config["handlers"]["out"]["stream"] = stream  # type: ignore[index]
    logging.config.dictConfig(config)
    yield stream
    logging.root.handlers[:], logging.root.level = saved[0], saved[1]
    for name, level in saved[2].items():
        logging.getLogger(name).setLevel(level)


def test_json_lines_carry_time_level_logger_message_and_traceback(
        captured: io.StringIO) -> None:
    logging.getLogger("liverec.worker").info("partitions %s assigned", [0, 1])
    logging.getLogger("aiokafka").info("chatter an operator never sees")
    logging.getLogger("aiokafka").warning('a "quoted"\nmulti-line warning')
    try:
        raise RuntimeError("boom")
    except RuntimeError:
        logging.getLogger("distributed.batch_loop").exception("a batch failed")
    lines = [json.loads(line) for line in captured.getvalue().splitlines()]
    assert [(x["level"], x["logger"]) for x in lines] == [
        ("info", "liverec.worker"), ("warning", "aiokafka"), ("error", "distributed.batch_loop")]
    assert lines[0]["message"] == "partitions [0, 1] assigned"
    assert lines[0]["ts"].endswith("+00:00") and "T" in lines[0]["ts"]
    assert lines[1]["message"] == 'a "quoted"\nmulti-line warning'  # one line, still JSON
    assert "RuntimeError: boom" in lines[2]["exception"]


def test_a_command_logs_json_when_asked_and_refuses_an_unknown_format() -> None:
    env = {**os.environ, "LIVEREC_LOG_FORMAT": "json"}
    done = subprocess.run([sys.executable, "-m", "liverec", "export", "--from",
                           "kafka://127.0.0.1:9", "--out", os.devnull, "-q"],
                          capture_output=True, text=True, timeout=60, env=env)
    assert done.returncode == 2
    records = [json.loads(line) for line in done.stderr.splitlines() if line.startswith("{")]
    assert records and all({"ts", "level", "logger", "message"} <= set(r) for r in records)
    env["LIVEREC_LOG_FORMAT"] = "xml"
    done = subprocess.run([sys.executable, "-m", "liverec", "stats", __file__],
                          capture_output=True, text=True, timeout=60, env=env)
    assert done.returncode == 2 and "log_format" in done.stderr
