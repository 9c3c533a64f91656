"""The serving commands' event loop: uvloop where installed, asyncio on request."""

from __future__ import annotations

import asyncio
import sys

import pytest

from liverec import eventloop


async def loop_module() -> str:
    return type(asyncio.get_running_loop()).__module__


def test_asyncio_on_request() -> None:
    assert eventloop.loop_factory("asyncio") is None
    assert eventloop.run(loop_module(), "asyncio").startswith("asyncio")


@pytest.mark.skipif(sys.platform == "win32", reason="uvloop has no Windows build")
def test_auto_takes_uvloop_where_installed() -> None:
    assert eventloop.run(loop_module(), "auto").startswith("uvloop")


def test_auto_falls_back_and_naming_a_missing_uvloop_is_an_error(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "uvloop", None)  # import fails as if not installed
    assert eventloop.loop_factory("auto") is None
    with pytest.raises(ValueError, match="uvloop is not installed"):
        eventloop.loop_factory("uvloop")
