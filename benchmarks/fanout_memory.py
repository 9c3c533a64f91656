"""Where a web process's connections keep their memory: ``benchmarks/fanout.py
--trace-memory`` snapshots the server's ``tracemalloc`` before and after they open, and this
prints the growth by component (ours or a library's) and by source line."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path


def snapshot(pid: int, trace: Path, n: int) -> Path:
    os.kill(pid, signal.SIGUSR1)
    done = Path(f"{trace}.{n}.done")
    deadline = time.monotonic() + 300
    while not done.exists():
        if time.monotonic() > deadline:
            raise TimeoutError("no tracemalloc snapshot")
        time.sleep(0.2)
    return Path(f"{trace}.{n}")


def component(filename: str) -> str:
    """What a source file belongs to: a package, a module of ours, or Python's library."""
    if "site-packages/" in filename:
        return filename.split("site-packages/")[1].split("/")[0]
    for ours in ("web/", "liverec/", "stream/", "online_models/"):
        if f"/{ours}" in filename:
            return ours + filename.split(f"/{ours}")[1]
    return "python:" + filename.rsplit("/", 1)[-1]


def traced_growth(before: Path, after: Path, connections: int, top: int = 20) -> list[str]:
    """The memory allocated between two snapshots and still held, per connection: by the
    outermost frame outside Python's own library and asyncio (who asked for it), and by
    allocating source line."""
    import tracemalloc

    old = tracemalloc.Snapshot.load(str(before))
    new = tracemalloc.Snapshot.load(str(after))
    by_trace = [d for d in new.compare_to(old, "traceback") if d.size_diff > 0]
    total = sum(d.size_diff for d in by_trace)
    owners: dict[str, int] = {}
    for d in by_trace:
        names = [component(f.filename) for f in reversed(d.traceback)]  # innermost first
        owner = next((n for n in names if not n.startswith("python:")), names[0])
        owners[owner] = owners.get(owner, 0) + d.size_diff
    lines = [f"tracemalloc: {total / connections:,.0f} B per connection allocated and still "
             "held; by the innermost caller that is not Python's library:"]
    for name, size in sorted(owners.items(), key=lambda kv: -kv[1])[:top]:
        lines.append(f"  {size / connections:8,.0f} B  {name}")
    lines.append("by allocating line:")
    by_line = [d for d in new.compare_to(old, "lineno") if d.size_diff > 0]
    for d in by_line[:top]:
        frame = d.traceback[0]
        lines.append(f"  {d.size_diff / connections:8,.0f} B  {d.count_diff / connections:6.2f} "
                     f"blocks  {frame.filename.split('site-packages/')[-1]}:{frame.lineno}")
    return lines
