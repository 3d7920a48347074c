"""`osless clean` on a second engine of its own: what osless made (as a run makes it, a toolchain image
whose tag moved too) is listed with sizes and removed; what it did not make (a foreign image, volume and
container, an image built FROM a toolchain image, tagged or not) and what it keeps (a current toolchain
image, a running osless's container and its volume, a file of the user's in out/) is left as it was."""

from __future__ import annotations

import io
import re
import socket
import subprocess
import tarfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from orchestrator.bootstrap.spec import SPEC_LABEL, TOOLCHAIN_LABEL, image_reference
from orchestrator.engine import PROJECT_LABEL, ROLE_LABEL, RUN_LABEL, Engine, Owner, project_label
from orchestrator.image import oci
from orchestrator.outputs import outdir
from orchestrator.pipeline.provenance import Provenance
from orchestrator.platforms import PLATFORMS
from orchestrator.recipe.loader import load_project
from orchestrator.stages import package
from tests.factories import MAIN_C, service_recipe
from tests.integration.conftest import SecondEngine, run_osless

pytestmark = pytest.mark.integration

SUPERSEDED = "osless-toolchain/gcc:0000000000000000"
SIZE = re.compile(r"^\d+(\.\d)? (B|KiB|MiB)")


def _import(client: Any, repository: str, tag: str, labels: dict[str, str] | None = None) -> str:
    """A one-file image, as `docker import` makes it, with these labels."""
    data = io.BytesIO()
    with tarfile.open(fileobj=data, mode="w") as tar:
        content = f"{repository}:{tag}\n".encode() * 64
        member = tarfile.TarInfo("hello.txt")
        member.size = len(content)
        tar.addfile(member, io.BytesIO(content))
    changes = [f"LABEL {key}={value}" for key, value in (labels or {}).items()]
    client.api.import_image_from_data(data.getvalue(), repository=repository, tag=tag, changes=changes)
    return f"{repository}:{tag}"


def _untagged(client: Any, labels: dict[str, str]) -> str:
    """The id of an image with these labels and no tag (its tag moved to another image)."""
    tag = _import(client, "moved", "1", labels)
    image_id = str(client.images.get(tag).id)
    _import(client, "moved", "1")  # other labels, another image: the tag moves to it
    client.images.remove(tag)
    return image_id


def _gone_owner() -> Owner:
    """An osless process of this host that has ended."""
    finished = subprocess.Popen(["true"])
    finished.wait()
    return Owner(host=socket.gethostname(), pid=finished.pid, start="1")


def _rows(output: str) -> dict[str, list[str]]:
    """The rows of the tables printed: name -> cells."""
    rows = {}
    for line in output.splitlines():
        cells = [cell.strip() for cell in line.strip("│ ").split("│")]
        if len(cells) == 4 and cells[1]:
            rows[cells[1]] = cells
    return rows


def _state(client: Any) -> dict[str, set[str]]:
    return {
        "images": {tag for image in client.images.list() for tag in image.tags},
        "volumes": {volume.name for volume in client.volumes.list()},
        "containers": {container.name for container in client.containers.list(all=True)},
    }


FOREIGN_IMAGE = "foreign:1"
DERIVED = "derived:1"  # as an image built FROM a toolchain image: its labels, another name
GONE_BUILDER = "builder-of-a-gone-run"
LIVE_BUILDER = "builder-of-this-run"
BUSY = "osless-cache-gcc-busy"


def _make_foreign(client: Any) -> str:
    """What osless did not make; the id of its untagged image with a toolchain's labels (as one built
    FROM a toolchain image, after its tag moved)."""
    _import(client, *FOREIGN_IMAGE.split(":"))
    _import(client, *DERIVED.split(":"), {TOOLCHAIN_LABEL: "gcc", SPEC_LABEL: "0" * 16})
    client.volumes.create("foreign-volume")
    client.containers.create(FOREIGN_IMAGE, ["/hello.txt"], name="foreign-container")
    return _untagged(client, {TOOLCHAIN_LABEL: "gcc", SPEC_LABEL: "2" * 16})


def _make_osless(client: Any, root: Path, work_dir: Path) -> tuple[set[str], str]:
    """What osless makes, made as a run makes it; the names of what clean removes of it (a current
    toolchain image, a running osless's container and the volume it uses stay), and the id of the
    toolchain image osless made whose tag moved (the project's record lists it)."""
    engine = Engine(client)
    project = load_project(root)
    label = {PROJECT_LABEL: project_label(root)}
    current = image_reference(project.toolchains["gcc"])
    _import(client, *current.split(":"), {TOOLCHAIN_LABEL: "gcc", SPEC_LABEL: current.split(":")[1]})
    _import(client, *SUPERSEDED.split(":"), {TOOLCHAIN_LABEL: "gcc", SPEC_LABEL: "0" * 16})
    moved = _untagged(client, {TOOLCHAIN_LABEL: "gcc", SPEC_LABEL: "1" * 16})
    service, platform = project.services["tidy"], PLATFORMS["linux/amd64"]
    (work_dir / "tidy").write_bytes(b"\x7fELF" + b"\0" * 4096)
    image = package.build_image(
        service,
        platform,
        work_dir / "tidy",
        Provenance(revision=None, source_date_epoch=1_700_000_000),
        toolchain_image_id="sha256:" + "1" * 64,
    )
    service_tag = package.image_tag(service, platform)
    engine.load_image(oci.docker_archive(image, [service_tag]))
    cache = engine.ensure_volume("osless-cache-gcc-tidy", labels=label)
    work = engine.ensure_volume("osless-work-gcc-tidy", labels={**label, ROLE_LABEL: "workspace"})
    engine.ensure_volume(BUSY, labels=label)
    run_labels = {RUN_LABEL: "cleantest", ROLE_LABEL: "builder", **label}
    client.containers.create(
        FOREIGN_IMAGE, ["/hello.txt"], name=GONE_BUILDER, labels={**_gone_owner().labels(), **run_labels}
    )
    client.containers.create(
        FOREIGN_IMAGE,
        ["/hello.txt"],
        name=LIVE_BUILDER,
        # another project's run: one of this project's would keep its service images (it may smoke-test them)
        labels={**Owner.current().labels(), **run_labels, PROJECT_LABEL: "0123456789abcdef"},
        volumes={BUSY: {"bind": "/cache", "mode": "rw"}},
    )
    moved_name = f"osless-toolchain/gcc (untagged {moved.removeprefix('sha256:')[:12]})"
    return {SUPERSEDED, moved_name, service_tag, cache, work, GONE_BUILDER}, moved


def test_clean_removes_exactly_what_osless_made(
    second_engine: SecondEngine, make_project: Callable[[dict[str, str]], Path], tmp_path: Path
) -> None:
    client = second_engine.start()
    root = make_project({"sources/tidy/main.c": MAIN_C, "recipes/tidy.toml": service_recipe("tidy")})
    foreign_untagged = _make_foreign(client)
    removed, moved = _make_osless(client, root, tmp_path)
    out = tmp_path / "out"
    for relative in ("report.json", "tidy/linux-amd64/tidy", ".toolchains/gcc.images", "notes.txt"):
        (out / relative).parent.mkdir(parents=True, exist_ok=True)
        (out / relative).write_text(relative * 100)
    (out / ".toolchains" / "gcc.images").write_text(f"{moved}\n")

    before = _state(client)
    env = {"DOCKER_HOST": second_engine.host, "COLUMNS": "250"}  # a row a line
    dry = run_osless(root, "clean", "--dry-run", out=out, env=env)
    assert dry.returncode == 0, dry.stdout + dry.stderr
    rows = _rows(dry.stdout)
    listed = {name for name, cells in rows.items() if cells[0] not in ("kind", "total")}
    kept = {name: cells[3] for name, cells in rows.items() if name in (LIVE_BUILDER, BUSY)}
    assert listed - set(kept) == removed | {str(out)}, dry.stdout
    for name in listed:
        assert SIZE.match(rows[name][2]), rows[name]
    assert kept[LIVE_BUILDER].startswith(f"its osless run (pid {Owner.current().pid}) is still running")
    assert kept[BUSY] == f"container {LIVE_BUILDER} uses it"
    assert "kept 1 current toolchain image" in dry.stdout
    assert f"left in {out}: notes.txt (not written by osless)" in dry.stdout
    total = next(cells for cells in rows.values() if cells[0] == "total")
    quiet = run_osless(root, "-q", "clean", "--dry-run", out=out, env=env)  # the total alone
    assert quiet.stdout == f"osless clean would remove {total[1]}, {total[2]} at least\n", quiet.stdout
    assert _state(client) == before, "--dry-run removed something"
    assert (out / "report.json").exists()

    wet = run_osless(root, "clean", out=out, env=env)
    assert wet.returncode == 0, wet.stdout + wet.stderr
    assert "reclaimed" in wet.stdout
    after = _state(client)
    assert after["images"] == before["images"] - removed
    assert after["volumes"] == before["volumes"] - removed
    assert after["containers"] == before["containers"] - removed
    assert {FOREIGN_IMAGE, DERIVED} <= after["images"] and "foreign-container" in after["containers"]
    ids = {image.id for image in client.images.list()}
    assert moved not in ids and foreign_untagged in ids
    assert sorted(path.name for path in out.iterdir()) == ["notes.txt"]

    again = run_osless(root, "clean", "--dry-run", out=out, env=env)
    assert again.returncode == 0 and "nothing of osless's to remove" in again.stdout, again.stdout


def test_clean_refuses_an_out_a_running_osless_holds(
    second_engine: SecondEngine, make_project: Callable[[dict[str, str]], Path], tmp_path: Path
) -> None:
    second_engine.start()
    root = make_project({"sources/tidy/main.c": MAIN_C, "recipes/tidy.toml": service_recipe("tidy")})
    out = tmp_path / "out"
    (out / "report.json").parent.mkdir(parents=True)
    (out / "report.json").write_text("{}")
    env = {"DOCKER_HOST": second_engine.host}
    with outdir.locked(out):
        dry = run_osless(root, "clean", "--dry-run", out=out, env=env)
        wet = run_osless(root, "clean", out=out, env=env)
    assert dry.returncode == 0 and "osless clean would refuse" in dry.stdout, dry.stdout + dry.stderr
    assert wet.returncode == 2, wet.stdout + wet.stderr
    assert "is in use by another osless run" in wet.stderr
    assert (out / "report.json").exists()
