"""What `osless clean` decides from listings, without an engine: the repository's own project as the
scope, engine listings as the engine's usage call gives them, real out/ directories in tmp_path."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

from orchestrator.bootstrap.spec import SPEC_LABEL, TOOLCHAIN_LABEL, image_reference
from orchestrator.engine import (
    PROJECT_LABEL,
    ROLE_LABEL,
    ContainerInfo,
    EngineUsage,
    ImageInfo,
    Owner,
    VolumeInfo,
    project_label,
)
from orchestrator.host import clean
from orchestrator.outputs import outdir
from orchestrator.platforms import PLATFORMS
from orchestrator.recipe.loader import load_project
from orchestrator.stages.package import TOOLCHAIN_ANNOTATION, image_tag
from tests.conftest import REPO_ROOT

HOST = "this-host"
GONE = Owner(host=HOST, pid=4242, start="100")
RUNNING = Owner(host=HOST, pid=4343, start="200")
ELSEWHERE = Owner(host="other-host", pid=4444, start="300")
CREATED = "2026-01-02T03:04:05Z"
PROJECT = load_project(REPO_ROOT)
GCC = PROJECT.toolchains["gcc"]
HELLO_AMD64 = image_tag(PROJECT.services["hello-c"], PLATFORMS["linux/amd64"])
OURS = project_label(REPO_ROOT)


def _alive(owner: Owner) -> bool:
    return owner == RUNNING


def _scope(**options: bool) -> clean.Scope:
    return clean.project_scope(PROJECT, host=HOST, **options)


def _plan(usage: EngineUsage, out: clean.OutListing | None = None, **options: bool) -> clean.Plan:
    return clean.plan(usage, out, _scope(**options), alive=_alive)


def _usage(
    images: tuple[ImageInfo, ...] = (),
    containers: tuple[ContainerInfo, ...] = (),
    volumes: tuple[VolumeInfo, ...] = (),
) -> EngineUsage:
    return EngineUsage(images=images, containers=containers, volumes=volumes)


def _container(
    name: str, owner: Owner | None, *, image_id: str = "sha256:x", volumes: tuple[str, ...] = ()
) -> ContainerInfo:
    labels = {**owner.labels(), ROLE_LABEL: "builder"} if owner else {}
    return ContainerInfo(
        id=f"id-{name}",
        name=name,
        image_id=image_id,
        labels=labels,
        state="running",
        volumes=volumes,
        size=10,
    )


def _volume(name: str, labels: dict[str, str], size: int = 1000) -> VolumeInfo:
    return VolumeInfo(name=name, labels=labels, size=size)


def _toolchain(tag: str, name: str = "gcc", *, shared: int = 0, extra: tuple[str, ...] = ()) -> ImageInfo:
    return ImageInfo(
        id=f"sha256:{tag}",
        tags=(tag, *extra),
        labels={TOOLCHAIN_LABEL: name, SPEC_LABEL: tag.rpartition(":")[2]},
        created="2025-01-01T00:00:00Z",
        size=2000,
        shared_size=shared,
    )


def _service(*tags: str, created: str = CREATED, labelled: bool = True) -> ImageInfo:
    labels = {"org.opencontainers.image.created": CREATED, "org.opencontainers.image.title": "hello-c"}
    if labelled:
        labels[TOOLCHAIN_ANNOTATION] = "sha256:toolchain"
    return ImageInfo(id=f"sha256:{'+'.join(tags)}", tags=tags, labels=labels, created=created, size=300)


def _names(items: tuple[clean.Item, ...]) -> set[str]:
    return {item.name for item in items}


def test_containers_of_gone_runs_go_those_of_running_ones_stay_others_are_not_osless() -> None:
    plan = _plan(
        _usage(
            containers=(
                _container("gone", GONE),
                _container("running", RUNNING),
                _container("elsewhere", ELSEWHERE),
                _container("foreign", None),
            )
        )
    )
    assert _names(plan.remove) == {"gone"}
    assert plan.remove[0].ref == "id-gone" and "gone (pid 4242)" in plan.remove[0].why
    kept = {item.name: item.why for item in plan.keep}
    assert set(kept) == {"running", "elsewhere"}
    assert "pid 4343" in kept["running"] and "still running" in kept["running"]
    assert "other-host" in kept["elsewhere"]


def test_the_projects_volumes_go_unless_a_container_that_stays_uses_them() -> None:
    cache = {PROJECT_LABEL: OURS, ROLE_LABEL: "cache"}
    work = {PROJECT_LABEL: OURS, ROLE_LABEL: "workspace"}
    usage = _usage(
        containers=(
            _container("running", RUNNING, volumes=("osless-cache-busy",)),
            _container("gone", GONE, volumes=("osless-work-freed",)),
        ),
        volumes=(
            _volume("osless-cache-gcc", cache, size=5000),
            _volume("osless-work-freed", work),
            _volume("osless-cache-busy", cache),
            _volume("osless-cache-other", {PROJECT_LABEL: "0123456789abcdef", ROLE_LABEL: "cache"}),
            _volume("osless-cache-unlabelled", {}),
            _volume("scratch-of-running", {**RUNNING.labels(), PROJECT_LABEL: OURS}),
        ),
    )
    plan = _plan(usage)
    removed = {item.name: item for item in plan.remove if item.kind == "volume"}
    assert set(removed) == {"osless-cache-gcc", "osless-work-freed"}
    assert removed["osless-cache-gcc"].why == "this project's compiler cache"
    assert removed["osless-work-freed"].why == "this project's build workspaces"
    busy = [item for item in plan.keep if item.kind == "volume"]
    assert [(item.name, item.why) for item in busy] == [("osless-cache-busy", "container running uses it")]
    widened = _plan(usage, all_projects=True)
    assert "osless-cache-other" in _names(widened.remove)
    assert "osless-cache-unlabelled" not in _names(widened.remove) | _names(widened.keep)


def test_a_scratch_volume_left_by_a_gone_run_goes_without_its_container() -> None:
    plan = _plan(_usage(volumes=(_volume("0f3e", GONE.labels()), _volume("1a2b", RUNNING.labels()))))
    assert _names(plan.remove) == {"0f3e"}
    assert plan.keep == ()


def test_superseded_toolchain_images_go_current_ones_only_when_asked() -> None:
    current = image_reference(GCC)
    usage = _usage(
        images=(
            _toolchain(current),
            _toolchain("osless-toolchain/gcc:0000000000000000"),
            _toolchain(
                "osless-toolchain/gcc:1111111111111111", extra=("mine:latest",)
            ),  # also named otherwise
            _toolchain("osless-toolchain/elsewhere:2222222222222222", name="elsewhere"),
        )
    )
    plan = _plan(usage)
    assert _names(plan.remove) == {"osless-toolchain/gcc:0000000000000000"}
    assert plan.remove[0].why == f"superseded: its recipe now makes {current}"
    assert any("kept 1 current toolchain image" in note for note in plan.notes)
    everything = _plan(usage, all_toolchains=True)
    assert _names(everything.remove) == {current, "osless-toolchain/gcc:0000000000000000"}
    assert "rebuilding it takes minutes" in next(i.why for i in everything.remove if i.name == current)
    widest = _plan(usage, all_toolchains=True, all_projects=True)
    assert "osless-toolchain/elsewhere:2222222222222222" in _names(widest.remove)
    assert "osless-toolchain/gcc:1111111111111111, mine:latest" not in _names(widest.remove)


def test_an_untagged_toolchain_image_goes_when_the_projects_records_list_it() -> None:
    """Its tag moved to a newer image of the same toolchain: osless made it when the project's record
    says so; an untagged image with the label alone may be one built FROM a toolchain image."""
    recorded, unknown = (
        replace(_toolchain("osless-toolchain/gcc:0000000000000000"), id=image_id, tags=())
        for image_id in ("sha256:" + "a" * 64, "sha256:" + "b" * 64)
    )
    scope = clean.project_scope(PROJECT, host=HOST, made_images=frozenset({recorded.id}))
    plan = clean.plan(_usage(images=(recorded, unknown)), None, scope, alive=_alive)
    assert [(item.name, item.ref, item.why) for item in plan.remove] == [
        (
            "osless-toolchain/gcc (untagged aaaaaaaaaaaa)",
            recorded.id,
            "superseded: its tag moved to another image of toolchain gcc",
        )
    ]
    assert not plan.keep


def test_an_image_a_container_uses_is_kept() -> None:
    old = _toolchain("osless-toolchain/gcc:0000000000000000")
    plan = _plan(_usage(images=(old,), containers=(_container("running", RUNNING, image_id=old.id),)))
    assert [(item.name, item.why) for item in plan.keep if item.kind == "toolchain"] == [
        ("osless-toolchain/gcc:0000000000000000", "container running uses it")
    ]


def test_service_images_are_told_by_their_label_and_creation_time() -> None:
    other_project = "someone-else:v1-arm64"
    usage = _usage(
        images=(
            _service(HELLO_AMD64),
            _service("derived:1", created="2026-05-05T00:00:00Z"),  # FROM an osless image: labels inherited
            _service(HELLO_AMD64.replace("amd64", "arm64"), created="2026-05-05T00:00:00Z"),
            _service(HELLO_AMD64.replace("amd64", "riscv64"), labelled=False),
            _service(HELLO_AMD64.replace("amd64", "ppc64le"), "mine:1"),
            _service(other_project),
        )
    )
    plan = _plan(usage)
    assert _names(plan.remove) == {HELLO_AMD64}
    assert plan.remove[0].why == "image of service hello-c, loaded for its smoke tests"
    partial = [item for item in plan.keep if item.kind == "image"]
    assert len(partial) == 1 and partial[0].why == "also tagged mine:1, which osless did not name"
    assert _names(_plan(usage, all_projects=True).remove) == {HELLO_AMD64, other_project}


def test_service_images_stay_while_a_run_of_the_project_may_smoke_test_them() -> None:
    builder = _container("running", RUNNING)
    ours = replace(builder, labels={**builder.labels, PROJECT_LABEL: OURS})
    theirs = replace(builder, labels={**builder.labels, PROJECT_LABEL: "0123456789abcdef"})
    assert _names(_plan(_usage(images=(_service(HELLO_AMD64),), containers=(theirs,))).remove) == {
        HELLO_AMD64
    }
    for containers, options in (((ours,), {}), ((theirs,), {"all_projects": True})):
        plan = _plan(_usage(images=(_service(HELLO_AMD64),), containers=containers), **options)
        assert [item.why for item in plan.keep if item.kind == "image"] == [
            f"the osless run of pid {RUNNING.pid} on {HOST} may still smoke-test it"
        ]


def test_plan_size_leaves_shared_layers_and_unknown_sizes_out() -> None:
    plan = _plan(
        _usage(
            images=(_toolchain("osless-toolchain/gcc:0000000000000000", shared=1500),),
            volumes=(_volume("unknown", {PROJECT_LABEL: OURS}, size=clean.UNKNOWN_SIZE),),
        )
    )
    assert plan.size == 500


def _write(path: Path, text: str = "x") -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


@pytest.fixture
def out(tmp_path: Path) -> Path:
    root = tmp_path / "out"
    _write(root / "report.json", "{}")
    _write(root / "hello-c" / "linux-amd64" / "hello-c", "binary")
    _write(root / "retired" / "linux-arm64" / "result.json")  # a service no recipe names any more
    _write(root / ".toolchains" / "gcc.images")
    _write(root / ".report.json.abc123.partial")
    _write(root / ".gitkeep", "")
    _write(root / "notes" / "todo.txt")
    return root


def test_out_holds_osless_entries_and_others(out: Path) -> None:
    listing = clean.list_out(out, check_lock=True)
    assert listing is not None and listing.holder is None
    plan = _plan(_usage(), listing)
    (item,) = plan.remove
    assert item.kind == "out" and item.ref == str(out)
    assert item.parts == (".report.json.abc123.partial", ".toolchains", "hello-c", "report.json", "retired")
    assert item.size == len("{}") + len("binary") + 3
    assert plan.notes == (f"left in {out}: .gitkeep, notes (not written by osless)",)


def test_remove_out_leaves_what_osless_did_not_write(out: Path) -> None:
    with outdir.locked(out):
        clean.remove_out(_plan(_usage(), clean.list_out(out, check_lock=False)).remove[0])
    assert sorted(path.name for path in out.iterdir()) == [".gitkeep", "notes"]


def test_an_empty_out_goes_too(tmp_path: Path) -> None:
    _write(tmp_path / "out" / "report.json")
    _write(tmp_path / "out" / outdir.LOCK_FILE)
    with outdir.locked(tmp_path / "out"):
        clean.remove_out(_plan(_usage(), clean.list_out(tmp_path / "out", check_lock=False)).remove[0])
    assert not (tmp_path / "out").exists()


def test_an_out_a_running_osless_holds_is_kept(out: Path) -> None:
    with outdir.locked(out):
        listing = clean.list_out(out, check_lock=True)
    assert listing is not None and listing.holder is not None and listing.holder.startswith("pid ")
    plan = _plan(_usage(), listing)
    assert plan.remove == ()
    assert "a running osless holds it" in plan.keep[0].why


def test_a_directory_without_osless_marks_is_not_an_out(tmp_path: Path) -> None:
    """A directory no osless command made (--out ~, say): its service-like entries stay too."""
    _write(tmp_path / "home" / "report.json")
    _write(tmp_path / "home" / "photos" / "oci" / "cat.jpg")
    listing = clean.list_out(tmp_path / "home", check_lock=True)
    assert listing is not None
    plan = _plan(_usage(), listing)
    assert plan.remove == () and plan.keep == ()
    assert plan.notes == (
        f"{tmp_path / 'home'} is not an osless output directory (no .lock nor .toolchains "
        "in it): left as it is",
    )


def test_no_out_directory_is_nothing_to_clean(tmp_path: Path) -> None:
    assert clean.list_out(tmp_path / "missing", check_lock=True) is None
    _write(tmp_path / "file")
    assert clean.list_out(tmp_path / "file", check_lock=True) is None


def test_the_scope_names_every_toolchain_of_the_project_and_debian_slim() -> None:
    scope = _scope()
    assert scope.project == OURS
    assert scope.toolchains["gcc"] == image_reference(GCC)
    assert "debian-slim" in scope.toolchains
    assert HELLO_AMD64 in scope.service_tags
