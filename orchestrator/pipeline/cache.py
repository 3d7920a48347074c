"""Skip what has not changed: a target whose inputs hash to the key of a passed result is not rebuilt.

The key covers everything that shapes the target: the service recipe, the toolchain recipe, the
toolchain image id, the platform, the source tree's content, its provenance (which ends up in image
labels) and osless's own version. The result record is written last, only when every stage passed,
and removed before a target is rebuilt, so a failed or interrupted target never looks valid.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from orchestrator import __version__
from orchestrator.errors import RecipeError, RecipeProblem
from orchestrator.image import oci
from orchestrator.outputs.report import TargetReport, to_jsonable, write_json
from orchestrator.pipeline.provenance import Provenance
from orchestrator.platforms import Platform
from orchestrator.recipe.model import Service, SmokeSpec, Toolchain
from orchestrator.stages.smoke import read_project_file
from orchestrator.stages.workspace import read_source

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
    """The content of a source tree, for target keys: every file's relative path, executable bit and
    bytes, links' targets (`stages.workspace.read_source`, the walk that also gives its manifest)."""
    return read_source(source).digest


def target_key(inputs: KeyInputs) -> str:
    """The hash of a target's inputs; recipe file locations are left out, their content is in."""
    document = {
        "format": CACHE_FORMAT,
        "osless": inputs.osless_version,
        "service": {
            **_without(to_jsonable(inputs.service), "file", "source", "unsupported", "unbuildable"),
            "smoke": _smoke_document(inputs.service.smoke),
        },
        "toolchain": _toolchain_document(to_jsonable(inputs.toolchain)),
        "toolchain_image": inputs.toolchain_image_id,
        "platform": inputs.platform.name,
        "source": inputs.source_digest,
        "provenance": to_jsonable(inputs.provenance),
    }
    return hashlib.sha256(json.dumps(document, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


def _smoke_document(smoke: SmokeSpec) -> dict[str, Any]:
    """The smoke checks as the key sees them: the files they bring from the project by content, not by
    where the project is."""
    document: dict[str, Any] = to_jsonable(smoke)
    for check, entry in zip(smoke.checks, document["checks"], strict=True):
        entry["stdin_file"] = None if check.stdin_file is None else _content_digest(check.stdin_file)
        entry["files"] = {target: _content_digest(path) for target, path in check.files.items()}
    return document


def _content_digest(path: Path) -> str:
    try:
        return "sha256:" + hashlib.sha256(read_project_file(path)).hexdigest()
    except OSError as exc:
        problem = RecipeProblem(file=str(path), message=f"cannot read it: {exc.strerror or exc}")
        raise RecipeError([problem]) from exc


def _toolchain_document(document: dict[str, Any]) -> dict[str, Any]:
    """A toolchain without its file location, nor that of the base it extends (and its base's...)."""
    base = document.get("base")
    return _without(document, "file") | ({"base": _toolchain_document(base)} if base else {})


def _without(document: dict[str, Any], *keys: str) -> dict[str, Any]:
    return {key: value for key, value in document.items() if key not in keys}


class InvalidEntry(Exception):
    """A result recorded for the key whose files are not what it recorded: the target is rebuilt."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True, kw_only=True)
class Cached:
    """A passed result whose files were checked against it: the report, image.tar's bytes and image."""

    report: TargetReport
    archive: bytes
    image: oci.Image


def recorded_key(output_dir: Path) -> str | None:
    """The key out/'s result for a target was recorded with (nothing checked: a guess at whether the
    target will be reused, never a reason to reuse it)."""
    try:
        record = json.loads((output_dir / RESULT_FILE).read_text())
    except (OSError, ValueError):
        return None
    key = record.get("key") if isinstance(record, dict) else None
    return key if isinstance(key, str) else None


def load(output_dir: Path, key: str, platform: Platform | None = None) -> Cached | None:
    """The passed result recorded for this key, with its files checked against what it recorded.

    None when there is no result for this key (nothing to reuse). When there is one but its binary's
    sha256 or image.tar's manifest and config digests (or platform) differ from the record, or a file
    is missing, truncated or unreadable, InvalidEntry says which: never a crash, never a substitute.
    """
    try:
        record = json.loads((output_dir / RESULT_FILE).read_text())
        if not isinstance(record, dict) or record.get("key") != key:
            return None
        report = TargetReport.from_json(record["report"])
    except (OSError, ValueError, KeyError, TypeError):
        return None
    if report.binary is None or report.image is None:
        raise InvalidEntry(f"{RESULT_FILE} records no binary or image")
    binary = Path(report.binary.path)
    try:
        binary_digest = oci.file_digest(binary)[0].removeprefix("sha256:")
    except OSError as error:
        raise InvalidEntry(f"the binary {binary} cannot be read ({error.strerror or error})") from error
    if binary_digest != report.binary.sha256:
        raise InvalidEntry(f"the binary {binary.name} does not match {RESULT_FILE}")
    archive_path = output_dir / "image.tar"
    try:
        archive = archive_path.read_bytes()
    except OSError as error:
        raise InvalidEntry(f"image.tar cannot be read ({error.strerror or error})") from error
    try:
        image = oci.read_archive(archive)
    except Exception as error:  # truncated or foreign: any parse failure means "not what we wrote"
        raise InvalidEntry(f"image.tar is unreadable ({type(error).__name__})") from error
    same = (
        image.digest == report.image.manifest_digest
        and image.image_id == report.image.image_id
        and _blobs_match_manifest(image)
    )
    if not same or (platform is not None and image.platform != platform):
        raise InvalidEntry(f"image.tar does not match {RESULT_FILE}")
    return Cached(report=report, archive=archive, image=image)


def _blobs_match_manifest(image: oci.Image) -> bool:
    """Every blob's bytes hash to the digest the manifest names it by (a layer swapped under its
    name changes no digest that the manifest's own digest covers)."""
    try:
        manifest = json.loads(image.manifest.data)
        named = [manifest["config"]["digest"], *(layer["digest"] for layer in manifest["layers"])]
    except (ValueError, KeyError, TypeError):
        return False
    return named == [blob.digest for blob in (image.config, *image.layers)]


def save(output_dir: Path, key: str, report: TargetReport) -> None:
    """Record a passed target; called only after every stage passed and its service's layout is
    written (atomically: a result.json is whole or absent)."""
    write_json(output_dir / RESULT_FILE, {"key": key, "report": report})
