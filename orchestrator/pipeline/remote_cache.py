"""The shared result cache: a passed target's result kept in a registry as an OCI artifact, tagged by
its target key, so that CI runners sharing nothing but a registry never compile the same target twice.

It travels over the registry API that `osless push` speaks (image.registry). An entry is one OCI
manifest (artifactType ENTRY_TYPE): its config is the entry document (format, key, service, platform,
the target's report with paths relative to its output directory, and the machine platform its smoke
test ran on); its layers are the files of the output directory (the binary, build.log, fetch.log,
records/ for the SBOM), each named by its `org.opencontainers.image.title` annotation.

The image is not in the entry: on a hit it is packaged again from the binary, which is cheap and
deterministic, and must come out with the manifest and config digests the entry records. So nothing
but the binary comes from the entry, and the binary itself is verified again. Everything read is
checked before it is used (every blob's size and sha256, the document's key, service and platform,
every file name): a corrupt or mismatching entry is an InvalidEntry, which the target notes and then
builds as if there were no entry. A registry that cannot be reached is a note too, never a failed target.
"""

from __future__ import annotations

import json
import re
import shutil
import stat
import threading
from dataclasses import dataclass, replace
from pathlib import Path, PurePosixPath
from typing import Any

from orchestrator.errors import RegistryError, UsageError
from orchestrator.image import oci
from orchestrator.image import registry as registry_api
from orchestrator.outputs.report import TargetReport, to_jsonable
from orchestrator.pipeline.cache import RESULT_FILE, InvalidEntry
from orchestrator.platforms import Platform

ENTRY_FORMAT = 1  # bump when the entry document or its files change meaning
ENTRY_TYPE = "application/vnd.osless.result.v1+json"  # the artifact type and the config's media type
FILE_MEDIA_TYPE = "application/vnd.osless.result.file.v1"
TITLE = "org.opencontainers.image.title"
MODE = "dev.osless.mode"  # a file's permission bits, octal
RESULT_FROM_REMOTE = "remote-cache"

DOCUMENT_LIMIT = 1024**2  # bytes of the entry document
FILE_LIMIT = 1024**3  # bytes of one file
ENTRY_LIMIT = 2 * 1024**3  # bytes of all files of an entry
FILES_LIMIT = 10_000  # files in an entry
# Files of an output directory that are not sent: the record written last, what the hit makes again
# (image.tar, verify.json), and the traceback of a bug of ours.
NOT_SENT = frozenset({RESULT_FILE, "image.tar", "verify.json", "error.log"})
_SAFE_NAME = re.compile(r"[A-Za-z0-9._+@=,-]+")
_HINT = "e.g. --cache-to registry.example.com/team/cache (REGISTRY/REPO: entries are tagged by target key)"


def parse_cache_reference(text: str, option: str) -> registry_api.Reference:
    """`REGISTRY/REPO` for --cache-from / --cache-to: a repository, no tag (each entry's tag is its key)."""
    try:
        reference = registry_api.parse_reference(text)
    except UsageError as error:
        raise UsageError(f"{option} {text}: {error.message}", hint=_HINT) from error
    if reference.tag is not None:
        raise UsageError(f"{option} {text}: give a repository without a tag", hint=_HINT)
    return reference


def safe_name(name: str) -> bool:
    """A relative path of plain components: what an entry may name a file by (never absolute, never
    `..`, nothing a shell or a terminal would read differently)."""
    if not name or len(name) > 1024 or name.startswith("/"):
        return False
    parts = name.split("/")
    return all(_SAFE_NAME.fullmatch(part) and part not in (".", "..") for part in parts)


def entry_files(output_dir: Path) -> dict[str, Path]:
    """The files of a target's output directory an entry carries, by relative name. Anything but a
    regular file or a directory (a link, a FIFO) is an InvalidEntry: it is not sent, rather than sent
    as something else."""
    files: dict[str, Path] = {}
    for path in sorted(output_dir.rglob("*")):
        name = path.relative_to(output_dir).as_posix()
        mode = path.lstat().st_mode
        if stat.S_ISDIR(mode) or name in NOT_SENT:
            continue
        if not stat.S_ISREG(mode) or not safe_name(name):
            raise InvalidEntry(f"{name} is not a plain regular file")
        files[name] = path
    return files


def _relative(path: str | None, output_dir: Path) -> str | None:
    if path is None:
        return None
    try:
        return Path(path).relative_to(output_dir).as_posix()
    except ValueError as error:
        raise InvalidEntry(f"{path} is outside the target's output directory") from error


def entry_document(
    key: str, report: TargetReport, output_dir: Path, smoke_host: str | None
) -> dict[str, Any]:
    """The entry's config: the report with its paths relative to the output directory."""
    if report.binary is None or report.image is None:
        raise InvalidEntry("the report records no binary or image")
    relative = replace(
        report,
        binary=replace(report.binary, path=_relative(report.binary.path, output_dir) or ""),
        log=_relative(report.log, output_dir),
        fetch=replace(report.fetch, log=_relative(report.fetch.log, output_dir) or "")
        if report.fetch
        else None,
        seconds={},
        notes=[],
    )
    return {
        "format": ENTRY_FORMAT,
        "key": key,
        "service": report.service,
        "platform": report.platform,
        "report": to_jsonable(relative),
        "smoke_host": smoke_host,
    }


@dataclass(frozen=True, kw_only=True)
class Entry:
    """A downloaded entry whose bytes were checked: its report (paths in output_dir), the machine
    platform its smoke test ran on, and where it came from (REGISTRY/REPO@manifest digest)."""

    report: TargetReport
    smoke_host: str | None
    source: str


def read_document(
    data: bytes, *, key: str, service: str, platform: Platform, names: set[str], output_dir: Path
) -> tuple[TargetReport, str | None]:
    """The entry document checked against the target it is meant for, its paths moved to output_dir;
    every path it names must be one of the entry's files (`names`)."""
    try:
        document = json.loads(data)
        if not isinstance(document, dict):
            raise InvalidEntry("its document is not a JSON object")
        expected = {"format": ENTRY_FORMAT, "key": key, "service": service, "platform": platform.name}
        for field, value in expected.items():
            if document.get(field) != value:
                raise InvalidEntry(f"its document's {field} is {document.get(field)!r}, not {value!r}")
        report = TargetReport.from_json(document["report"])
        smoke_host = document.get("smoke_host")
        if smoke_host is not None and not isinstance(smoke_host, str):
            raise InvalidEntry("its smoke_host is not a platform name")
    except InvalidEntry:
        raise
    except (ValueError, KeyError, TypeError, AttributeError) as error:
        raise InvalidEntry(f"its document is malformed ({type(error).__name__}: {error})") from error
    if (report.service, report.platform) != (service, platform.name) or report.binary is None:
        raise InvalidEntry("its report is for another target, or records no binary")
    if report.image is None or report.smoke is None:
        raise InvalidEntry("its report records no image or no smoke test")

    def moved(name: str | None, what: str) -> str | None:
        if name is None:
            return None
        if name not in names:
            raise InvalidEntry(f"its report names the {what} {name!r}, which it does not hold")
        return str(output_dir / name)

    relocated = replace(
        report,
        binary=replace(report.binary, path=moved(report.binary.path, "binary") or ""),
        log=moved(report.log, "build log"),
        fetch=replace(report.fetch, log=moved(report.fetch.log, "fetch log") or "") if report.fetch else None,
        result_from=RESULT_FROM_REMOTE,
        notes=[],
    )
    return relocated, smoke_host


def check_manifest(data: bytes) -> tuple[dict[str, Any], list[tuple[str, dict[str, Any]]]]:
    """The config descriptor and the (name, descriptor) of each file of an entry's manifest, checked:
    media types, sha256 digests, sizes within the limits, names safe and unique."""
    try:
        manifest = json.loads(data)
        config = manifest["config"]
        layers = manifest["layers"]
        if manifest.get("mediaType") != oci.MEDIA_TYPE_MANIFEST or config.get("mediaType") != ENTRY_TYPE:
            raise InvalidEntry("it is not an osless result entry (media types)")
        if not isinstance(layers, list) or len(layers) > FILES_LIMIT:
            raise InvalidEntry("its manifest lists no files, or too many")
        _check_descriptor(config, DOCUMENT_LIMIT)
        files = []
        for layer in layers:
            _check_descriptor(layer, FILE_LIMIT)
            name = (layer.get("annotations") or {}).get(TITLE)
            if not isinstance(name, str) or not safe_name(name) or name in NOT_SENT:
                raise InvalidEntry(f"it names a file {name!r}")
            files.append((name, layer))
    except InvalidEntry:
        raise
    except (ValueError, KeyError, TypeError, AttributeError) as error:
        raise InvalidEntry(f"its manifest is malformed ({type(error).__name__})") from error
    names = [name for name, _ in files]
    parents = {str(parent) for name in names for parent in PurePosixPath(name).parents}
    if len(set(names)) != len(names) or parents & set(names):
        raise InvalidEntry("it names a file twice, or a file inside another")
    if sum(int(layer["size"]) for _, layer in files) > ENTRY_LIMIT:
        raise InvalidEntry(f"its files are bigger than {ENTRY_LIMIT} bytes")
    return config, files


def _check_descriptor(descriptor: Any, limit: int) -> None:
    if not isinstance(descriptor, dict) or not re.fullmatch(
        r"sha256:[0-9a-f]{64}", str(descriptor.get("digest"))
    ):
        raise InvalidEntry("a descriptor has no sha256 digest")
    size = descriptor.get("size")
    if not isinstance(size, int) or isinstance(size, bool) or not 0 <= size <= limit:
        raise InvalidEntry(f"a descriptor's size is {size!r} (at most {limit})")


def _mode(layer: dict[str, Any]) -> int:
    text = (layer.get("annotations") or {}).get(MODE, "644")
    if not isinstance(text, str) or not re.fullmatch(r"[0-7]{3}", text):
        raise InvalidEntry(f"a file's mode is {text!r}")
    return int(text, 8) & 0o755  # never set-id nor writable by others


class RemoteCache:
    """One registry repository used as a result cache by every target of a run (thread-safe: each
    operation opens its own connection). The first connection that fails marks the cache unusable for
    the rest of the run, so an unreachable registry costs one timeout, not one per target."""

    def __init__(
        self, reference: registry_api.Reference, *, timeout: float = registry_api.DEFAULT_TIMEOUT
    ) -> None:
        self.reference = reference
        self.timeout = timeout
        self._lock = threading.Lock()
        self._checked = False
        self._unusable: str | None = None

    def __str__(self) -> str:
        return str(self.reference)

    def unusable(self) -> str | None:
        """Why this cache cannot be used in this run (checked once: `GET /v2/`), or None."""
        with self._lock:
            if not self._checked:
                self._checked = True
                try:
                    with self._repository() as repository:
                        repository.login()
                except RegistryError as error:
                    self._unusable = error.message
            return self._unusable

    def _repository(self) -> registry_api.Repository:
        return registry_api.Repository(self.reference, timeout=self.timeout)

    def fetch(
        self, key: str, *, service: str, platform: Platform, staging: Path, output_dir: Path
    ) -> Entry | None:
        """The entry for `key` downloaded into `staging` (a new directory, to become output_dir), every
        digest checked; None when the repository has none. InvalidEntry for a corrupt or mismatching
        entry, RegistryError when the registry fails."""
        with self._repository() as repository:
            found = repository.manifest(key)
            if found is None:
                return None
            manifest, digest = found
            config, files = check_manifest(manifest)
            staging.mkdir(parents=True)
            document = staging.parent / f"{staging.name}.document"
            document.unlink(missing_ok=True)
            try:
                repository.blob(config["digest"], config["size"], document)
                data = document.read_bytes()
            except RegistryError as error:
                raise InvalidEntry(error.message) from error
            finally:
                document.unlink(missing_ok=True)
            report, smoke_host = read_document(
                data,
                key=key,
                service=service,
                platform=platform,
                names={name for name, _ in files},
                output_dir=output_dir,
            )
            for name, layer in files:
                path = staging / PurePosixPath(name)
                path.parent.mkdir(parents=True, exist_ok=True)
                try:
                    repository.blob(layer["digest"], layer["size"], path)
                except RegistryError as error:
                    raise InvalidEntry(error.message) from error
                path.chmod(_mode(layer))
        return Entry(report=report, smoke_host=smoke_host, source=f"{self.reference}@{digest}")

    def has(self, key: str) -> bool:
        with self._repository() as repository:
            return repository.has_manifest(key)

    def upload(
        self, key: str, *, report: TargetReport, output_dir: Path, smoke_host: str | None, work: Path
    ) -> str:
        """The target's entry pushed under `key` (its document written into `work`, a scratch directory);
        returns `REGISTRY/REPO@digest`."""
        files = entry_files(output_dir)
        document = oci.canonical_json(entry_document(key, report, output_dir, smoke_host))
        work.mkdir(parents=True, exist_ok=True)
        config_path = work / f"{key}.json"
        config_path.write_bytes(document)
        try:
            layers = [
                registry_api.ArtifactFile(
                    path=path,
                    media_type=FILE_MEDIA_TYPE,
                    annotations={TITLE: name, MODE: f"{path.stat().st_mode & 0o777:03o}"},
                )
                for name, path in files.items()
            ]
            config = registry_api.ArtifactFile(path=config_path, media_type=ENTRY_TYPE, annotations={})
            with self._repository() as repository:
                digest = repository.push_artifact(key, artifact_type=ENTRY_TYPE, config=config, layers=layers)
        finally:
            config_path.unlink(missing_ok=True)
        return f"{self.reference}@{digest}"


def discard(path: Path) -> None:
    """A staging directory (or a half-moved output directory) removed, whatever is in it."""
    shutil.rmtree(path, ignore_errors=True)
