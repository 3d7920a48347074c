"""Byte counts as people read them, the one formatter for every size osless prints."""

from __future__ import annotations


def human_size(size: int) -> str:
    """512 B, 17.4 KiB, 1.4 MiB (MiB is the largest unit: a GiB file shows as 1024.0 MiB)."""
    if size < 1024:
        return f"{size} B"
    if size < 1024**2:
        return f"{size / 1024:.1f} KiB"
    return f"{size / 1024**2:.1f} MiB"
