"""Per-service layouts and SBOMs, without an engine: a service whose SBOM or layout cannot be written
fails its targets at package (its result.json gone); the other services go on and save theirs."""

from __future__ import annotations

import errno
import io
import json
from collections.abc import Callable, Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from rich.console import Console

from orchestrator.errors import EngineError
from orchestrator.outputs import sbom as sbom_stage
from orchestrator.outputs.progress import ProgressView
from orchestrator.outputs.report import BinaryInfo, Status, TargetReport
from orchestrator.pipeline import cache
from orchestrator.pipeline.services import ServiceLayouts
from orchestrator.pipeline.targets import Target, select_targets
from orchestrator.recipe.loader import load_project
from orchestrator.stages import package as package_stage
from tests.factories import service_recipe


@pytest.fixture
def view() -> Iterator[ProgressView]:
    with ProgressView(Console(file=io.StringIO(), force_terminal=False), groups=False) as view:
        yield view


@pytest.fixture
def targets(make_project: Callable[[dict[str, str]], Path]) -> list[Target]:
    files = {}
    for name in ("good", "bad"):
        files[f"recipes/{name}.toml"] = service_recipe(name, ["{CC}", "-o", "{output}", "main.c"])
        files[f"sources/{name}/main.c"] = "int main(void) { return 0; }\n"
    root = make_project(files)
    return select_targets(load_project(root), ["good", "bad"], [])


def _passed(target: Target, out: Path) -> TargetReport:
    binary = target.output_dir(out) / "bin" / "app"
    return TargetReport(
        service=target.service.name,
        platform=target.platform.name,
        status=Status.PASSED,
        failed_stage=None,
        reason=None,
        toolchain_image=None,
        binary=BinaryInfo(path=str(binary), size=1, sha256="0" * 64, linkage="static", platform=None),
        verify_findings=[],
        image=None,
        smoke=None,
        seconds={},
        log=None,
    )


@pytest.mark.parametrize(
    ("error", "reason"),
    [
        (OSError(errno.ENOSPC, "No space left on device", "sbom.cdx.json"), "No space left on device"),
        (EngineError("the engine stopped answering"), "the engine stopped answering"),
        (ValueError("a bug of ours"), "internal error: ValueError: a bug of ours (traceback: "),
    ],
    ids=["disk full", "engine gone", "bug"],
)
def test_a_service_whose_sbom_fails_fails_at_package_and_the_others_go_on(
    targets: list[Target],
    tmp_path: Path,
    view: ProgressView,
    monkeypatch: pytest.MonkeyPatch,
    *,
    error: Exception,
    reason: str,
) -> None:
    out = tmp_path / "out"
    for target in targets:
        target.output_dir(out).mkdir(parents=True)
        (target.output_dir(out) / cache.RESULT_FILE).write_text("{}")  # an older record
    sboms: list[str] = []

    def write_service_sbom(engine: Any, service: Any, **kwargs: Any) -> tuple[Path, Any]:
        if service.name == "bad":
            raise error
        sboms.append(service.name)
        return out / service.name / "sbom.cdx.json", SimpleNamespace()

    monkeypatch.setattr(sbom_stage, "write_service_sbom", write_service_sbom)
    monkeypatch.setattr(package_stage, "write_service_layout", lambda *args, **kwargs: "sha256:index")
    names = [t.name for t in targets]
    layouts = ServiceLayouts(
        targets,
        images={name: SimpleNamespace(digest=f"sha256:{name}") for name in names},  # type: ignore[misc]
        keys=dict.fromkeys(names, "key"),
        unsaved={t.name: (t.output_dir(out), "key") for t in targets},
        engine_for=lambda target: None,  # type: ignore[arg-type,return-value]
        toolchain_for=lambda target: EngineError("unused"),
        provenance=dict.fromkeys(("good", "bad"), None),  # type: ignore[arg-type]
        out_root=out,
        view=view,
    )
    images, reports = layouts.finish([_passed(t, out) for t in targets])
    by_service = {r.service: r for r in reports}
    assert [i.service for i in images] == ["good"] and sboms == ["good"]
    assert by_service["good"].status is Status.PASSED
    assert (by_service["bad"].status, by_service["bad"].failed_stage) == (Status.FAILED, "package")
    assert by_service["bad"].reason is not None and reason in by_service["bad"].reason
    assert by_service["bad"].reason.startswith("cannot write the OCI layout")
    good, bad = (t.output_dir(out) / cache.RESULT_FILE for t in targets)
    assert json.loads(good.read_text())["key"] == "key"  # saved once its layout was written
    assert not bad.exists()  # nothing that looks reusable is left


def test_a_service_layout_is_written_once_its_last_target_is_done_and_its_images_are_dropped(
    targets: list[Target], tmp_path: Path, view: ProgressView, monkeypatch: pytest.MonkeyPatch
) -> None:
    out = tmp_path / "out"
    written: list[str] = []
    monkeypatch.setattr(
        sbom_stage, "write_service_sbom", lambda *args, **kwargs: (out / "sbom.cdx.json", SimpleNamespace())
    )
    monkeypatch.setattr(
        package_stage, "write_service_layout", lambda service, *args, **kwargs: written.append(service.name)
    )
    images = {t.name: SimpleNamespace(digest=f"sha256:{t.name}") for t in targets}
    layouts = ServiceLayouts(
        targets,
        images=images,  # type: ignore[arg-type]
        keys=dict.fromkeys(images, "key"),
        unsaved={},
        engine_for=lambda target: None,  # type: ignore[arg-type,return-value]
        toolchain_for=lambda target: EngineError("unused"),
        provenance=dict.fromkeys(("good", "bad"), None),  # type: ignore[arg-type]
        out_root=out,
        view=view,
    )
    good = [t for t in targets if t.service.name == "good"]
    for target in good:
        assert written == []  # not before the service's last target is done
        layouts.outcome(target.name, _passed(target, out))
    layouts.wait()
    assert written == ["good"]
    assert sorted(images) == sorted(t.name for t in targets if t.service.name == "bad")  # good's dropped
    images_written, reports = layouts.finish([_passed(t, out) for t in targets])
    assert written == ["good", "bad"] and len(images_written) == 2 and not images
    assert [r.service for r in reports] == [t.service.name for t in targets]
