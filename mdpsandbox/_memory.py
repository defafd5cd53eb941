"""Memory budget checks made before large allocations (DESIGN.md, "Errors": say how many bytes)."""
from __future__ import annotations

import os
from typing import Optional

__all__ = ["MemoryBudgetError", "available_bytes", "check_memory"]


class MemoryBudgetError(ValueError):
    """A problem that would not fit in memory; the message gives the bytes needed and available."""


def available_bytes() -> Optional[int]:
    """Memory available to this process now: ``MemAvailable`` of /proc/meminfo (Linux), else the
    physical memory; None if neither can be read."""
    try:
        with open("/proc/meminfo") as fh:
            for line in fh:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):  # pragma: no cover - non-POSIX
        return None


def check_memory(need: int, what: str, *, max_bytes: Optional[int] = None, fraction: float = 0.8) -> None:
    """Raise :class:`MemoryBudgetError` if ``need`` bytes exceed ``max_bytes`` or ``fraction`` of the
    available memory — before any work starts."""
    limit = None if max_bytes is None else int(max_bytes)
    avail = available_bytes()
    if avail is not None:
        limit = int(fraction * avail) if limit is None else min(limit, int(fraction * avail))
    if limit is not None and need > limit:
        raise MemoryBudgetError(
            f"{what} would need about {need:,} bytes ({need / 2**30:.2f} GiB) but only {limit:,} bytes "
            f"({limit / 2**30:.2f} GiB) are within budget (available memory: "
            f"{'unknown' if avail is None else f'{avail:,}'} bytes); use a smaller problem")
