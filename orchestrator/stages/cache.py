"""Skip what has not changed: a target whose inputs hash to the key of a passed result is not rebuilt.

The key covers everything that shapes the target: the service recipe, the toolchain recipe, the
toolchain image id, the platform, the source tree's content, its provenance (which ends up in image
labels) and osless's own version. The result record is written last, only when every stage passed,
and removed before a target is rebuilt, so a failed or interrupted target never looks valid.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from orchestrator import __version__
from orchestrator.platforms import Platform
from orchestrator.provenance import Provenance
from orchestrator.stages.recipe import Service, Toolchain
from orchestrator.stages.report import TargetReport, to_jsonable, write_json

# Bump when the meaning of a cached result changes.
CACHE_FORMAT = 1
RESULT_FILE = "result.json"


def osless_fingerprint() -> str:
    """osless's version plus a hash of its own code: a development change also invalidates results."""
    package = Path(__file__).resolve().parent.parent
    digest = hashlib.sha256()
    for path in sorted(package.rglob("*.py")):
        digest.update(path.relative_to(package).as_posix().encode() + b"\0" + path.read_bytes())
    return f"{__version__}+{digest.hexdigest()[:16]}"


OSLESS_FINGERPRINT = osless_fingerprint()


@dataclass(frozen=True, kw_only=True)
class KeyInputs:
    """Everything a target's key is made of, named so that tests can vary each part."""

    service: Service
    toolchain: Toolchain
    toolchain_image_id: str
    platform: Platform
    source_digest: str
    provenance: Provenance
    osless_version: str = OSLESS_FINGERPRINT


def source_digest(source: Path) -> str:
    """The content of a source tree: every file's relative path, executable bit and bytes; links' targets."""
    digest = hashlib.sha256()
    for directory, subdirectories, files in os.walk(source):
        subdirectories.sort()
        for name in sorted(files):
            path = Path(directory, name)
            relative = path.relative_to(source).as_posix()
            if path.is_symlink():
                digest.update(f"L {relative} -> {os.readlink(path)}\0".encode())
                continue
            executable = "x" if os.access(path, os.X_OK) else "-"
            digest.update(f"F {relative} {executable} {path.stat().st_size}\0".encode())
            digest.update(path.read_bytes())
    return digest.hexdigest()


def target_key(inputs: KeyInputs) -> str:
    """The hash of a target's inputs; recipe file locations are left out, their content is in."""
    document = {
        "format": CACHE_FORMAT,
        "osless": inputs.osless_version,
        "service": _without(to_jsonable(inputs.service), "file", "source", "unsupported"),
        "toolchain": _without(to_jsonable(inputs.toolchain), "file"),
        "toolchain_image": inputs.toolchain_image_id,
        "platform": inputs.platform.name,
        "source": inputs.source_digest,
        "provenance": to_jsonable(inputs.provenance),
    }
    return hashlib.sha256(json.dumps(document, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


def _without(document: dict[str, Any], *keys: str) -> dict[str, Any]:
    return {key: value for key, value in document.items() if key not in keys}


def load(output_dir: Path, key: str) -> TargetReport | None:
    """The passed result recorded for this key, when it and its files are still there."""
    try:
        record = json.loads((output_dir / RESULT_FILE).read_text())
        if record.get("key") != key:
            return None
        report = TargetReport.from_json(record["report"])
    except (OSError, ValueError, KeyError, TypeError):
        return None
    files = [output_dir / "image.tar", Path(report.binary.path) if report.binary else None]
    if not all(path is not None and path.is_file() for path in files):
        return None
    return report


def save(output_dir: Path, key: str, report: TargetReport) -> None:
    """Record a passed target; called only after every stage passed."""
    write_json(output_dir / RESULT_FILE, {"key": key, "report": report})
