"""`--check-reproducible`: compare two clean builds of the same targets, and say where they differ.

"Digest differs" helps nobody: the first differing ELF section (for binaries) or tar entry (for image
layers) points at the cause — an embedded path, a timestamp, a build id.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from elftools.common.exceptions import ELFError
from elftools.elf.elffile import ELFFile

from orchestrator.engine import Engine
from orchestrator.image import oci, reader
from orchestrator.outputs.progress import ProgressView
from orchestrator.outputs.report import RunReport, TargetReport, write_json
from orchestrator.pipeline.runner import BuildOptions, Runner
from orchestrator.pipeline.targets import Target
from orchestrator.recipe.model import Project


@dataclass(frozen=True, kw_only=True)
class Comparison:
    """Whether one target came out the same twice, and if not, the first difference found."""

    service: str
    platform: str
    same: bool
    difference: str | None


@dataclass(frozen=True, kw_only=True)
class ReproducibilityReport:
    """Two clean builds of the same targets compared: targets and service indexes."""

    targets: list[Comparison]
    indexes: dict[str, tuple[str, str]]  # service -> (first, second) index digests

    @property
    def reproducible(self) -> bool:
        return all(c.same for c in self.targets) and all(a == b for a, b in self.indexes.values())


def check_reproducible(
    project: Project,
    options: BuildOptions,
    engine: Engine,
    view: ProgressView,
    targets: Sequence[Target],
    *,
    platform_engines: Mapping[str, Engine] | None = None,
) -> tuple[RunReport, ReproducibilityReport]:
    """Build every target twice, each time from clean state (no cached result, empty compiler caches)."""
    namespace = f"-check-{engine.run_id}"
    runs = []
    try:
        for label, out_root in (("a", options.out_root), ("b", options.out_root / ".reproducible")):
            clean = replace(options, rebuild=True, out_root=out_root, cache_namespace=f"{namespace}-{label}")
            view.step("reproducibility", f"clean build {label} of 2")
            runs.append(Runner(project, clean, engine, view, platform_engines).run(targets))
    finally:
        engine.remove_volumes(containing=namespace)
    first, second = runs
    comparison = ReproducibilityReport(
        targets=[
            compare_targets(
                a, b, t.output_dir(options.out_root), t.output_dir(options.out_root / ".reproducible")
            )
            for a, b, t in zip(first.targets, second.targets, targets, strict=True)
        ],
        indexes={
            a.service: (a.index_digest, b.index_digest)
            for a, b in zip(first.images, second.images, strict=False)
            if a.service == b.service
        },
    )
    write_json(options.out_root / "reproducible.json", comparison)
    view.step("reproducibility", "same" if comparison.reproducible else "DIFFERENT", done=True)
    return first, comparison


def compare_targets(
    first: TargetReport, second: TargetReport, first_dir: Path, second_dir: Path
) -> Comparison:
    """Binary bytes, then image digest; the difference is located in the binary or the image tar."""
    where = Comparison(service=first.service, platform=first.platform, same=True, difference=None)
    if first.binary is None or second.binary is None or first.image is None or second.image is None:
        return _differs(where, "the target did not pass both builds")
    if first.binary.sha256 != second.binary.sha256:
        difference = first_elf_difference(Path(first.binary.path), Path(second.binary.path))
        return _differs(where, f"binary differs: {difference}")
    if first.image.manifest_digest != second.image.manifest_digest:
        difference = first_image_difference(first_dir / "image.tar", second_dir / "image.tar")
        return _differs(
            where,
            f"image differs ({first.image.manifest_digest} vs {second.image.manifest_digest}): {difference}",
        )
    return where


def _differs(comparison: Comparison, difference: str) -> Comparison:
    return Comparison(
        service=comparison.service, platform=comparison.platform, same=False, difference=difference
    )


def first_elf_difference(first: Path, second: Path) -> str:
    """The first section (in file order) whose bytes differ, or the header when no section does."""
    try:
        with first.open("rb") as a, second.open("rb") as b:
            sections_a = {s.name: s for s in ELFFile(a).iter_sections()}
            sections_b = {s.name: s for s in ELFFile(b).iter_sections()}
            for name, section in sections_a.items():
                other = sections_b.get(name)
                if other is None:
                    return f"section {name} exists only in the first build"
                if section.data() != other.data():
                    return (
                        f"section {name or '(null)'} differs ({section.data_size} vs {other.data_size} bytes)"
                    )
            extra = sorted(sections_b.keys() - sections_a.keys())
            if extra:
                return f"section {extra[0]} exists only in the second build"
    except (ELFError, OSError, ValueError) as error:
        return f"cannot compare sections ({error})"
    return "the ELF headers or the bytes outside sections differ"


def first_image_difference(first: Path, second: Path) -> str:
    """Where two image archives differ: the first differing layer entry, else config key, else manifest."""
    image_a, image_b = oci.read_archive(first.read_bytes()), oci.read_archive(second.read_bytes())
    for number, (layer_a, layer_b) in enumerate(zip(image_a.layers, image_b.layers, strict=False)):
        if layer_a.digest != layer_b.digest:
            return f"layer {number}: {_tar_difference(layer_a.data, layer_b.data)}"
    if len(image_a.layers) != len(image_b.layers):
        return f"{len(image_a.layers)} vs {len(image_b.layers)} layers"
    if image_a.config.digest != image_b.config.digest:
        return f"image config: {_json_difference(image_a.config, image_b.config)}"
    return f"manifest: {_json_difference(image_a.manifest, image_b.manifest)}"


def _json_difference(first: oci.Blob, second: oci.Blob) -> str:
    return _value_difference(json.loads(first.data), json.loads(second.data), "")


def _value_difference(first: Any, second: Any, path: str) -> str:
    """The first key path at which two JSON values differ."""
    if isinstance(first, dict) and isinstance(second, dict):
        for key in sorted(first.keys() | second.keys()):
            if first.get(key) != second.get(key):
                return _value_difference(first.get(key), second.get(key), f"{path}.{key}")
    return f"{path or '.'} is {json.dumps(first)} vs {json.dumps(second)}"


def _tar_difference(first: bytes, second: bytes) -> str:
    entries_a, entries_b = reader.read_layer(first), reader.read_layer(second)
    for path in sorted(entries_a.keys() | entries_b.keys()):
        a, b = entries_a.get(path), entries_b.get(path)
        name = path.lstrip("/")
        if a is None or b is None:
            return f"tar entry {name} exists only in the {'second' if a is None else 'first'} build"
        if _header(a) != _header(b):
            return f"tar entry {name}: header differs ({_header(a)} vs {_header(b)})"
        if a.digest != b.digest:
            return f"tar entry {name}: content differs"
    return "the tars differ outside their entries"


def _header(entry: reader.FileInfo) -> str:
    return f"mode {entry.mode:o} uid {entry.uid}:{entry.gid} mtime {entry.mtime} size {entry.size}"
