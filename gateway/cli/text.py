"""Figures in words, the same in every command: sizes, ages, local times."""

from __future__ import annotations

import time


def size(n: float) -> str:
    """1234567 -> '1.2 MB' (decimal units, as disks are sold)."""
    if n < 1000:
        return f"{n:.0f} bytes"
    if n < 1000**2:
        return f"{n / 1000:.1f} kB"
    if n < 1000**3:
        return f"{n / 1000**2:.1f} MB"
    return f"{n / 1000**3:.2f} GB"


def age(seconds: float | None, none: str = "-") -> str:
    """90 -> '90s', 5400 -> '90m', 7200 -> '2.0h', 3 days -> '3.0d'; `none` for no age."""
    if seconds is None:
        return none
    seconds = max(0.0, seconds)
    if seconds < 120:
        return f"{seconds:.0f}s"
    if seconds < 7200:
        return f"{seconds / 60:.0f}m"
    if seconds < 2 * 86400:
        return f"{seconds / 3600:.1f}h"
    return f"{seconds / 86400:.1f}d"


def local_time(ts: float) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(ts))
