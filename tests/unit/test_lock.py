"""Toolchain locks (orchestrator/bootstrap/lock.py) and what uses them: the file's text and its
reading, the lock in the spec hash, the locked mmdebstrap call, the checks after a bootstrap and of a
recipe changed since the lock, the loader reading `<name>.lock` beside the recipe, and `osless lock`'s
command line. The real archive is exercised by tests/integration/test_lock.py."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from orchestrator.bootstrap import layer
from orchestrator.bootstrap import make as bootstrap_make
from orchestrator.bootstrap.lock import (
    Lock,
    include_specs,
    mismatches,
    parse,
    recipe_changes,
    release_date,
    render,
    shown,
    suite_release_date,
    versions_not_found,
)
from orchestrator.bootstrap.lock_checks import check_installed, check_lock
from orchestrator.bootstrap.spec import mmdebstrap_command, recipe_spec_hash, spec_hash
from orchestrator.cli.commands import lock as lock_command
from orchestrator.cli.parser import build_parser
from orchestrator.errors import RecipeError, ToolchainError, UsageError
from orchestrator.recipe.loader import load_project
from orchestrator.recipe.model import Bootstrap, Toolchain, ToolchainPlatform

BOOTSTRAP = Bootstrap(suite="trixie", packages=("hello", "musl-dev:arm64"), unpack=("libstd-rust-dev:arm64",))
TOOLCHAIN = Toolchain(
    name="tiny",
    file=Path("/p/recipes/toolchains/tiny.toml"),
    image=None,
    bootstrap=BOOTSTRAP,
    env={},
    platforms={"linux/amd64": ToolchainPlatform(), "linux/arm64": ToolchainPlatform()},
)
LOCK = Lock(
    toolchain="tiny",
    spec=recipe_spec_hash(TOOLCHAIN),
    suite="trixie",
    release_date="2026-11-08T10:12:05Z",
    requested=("hello", "libstd-rust-dev:arm64", "musl-dev:arm64"),
    packages={
        "libc6:amd64": "2.41-12",
        "hello:amd64": "2.10-5",
        "tzdata:all": "2025b-4",
        "musl-dev:arm64": "1.2.5-3",
        "bsdutils:amd64": "1:2.41-5",
    },
    libraries={"libbz2-dev:riscv64": "1.0.8-6"},
    unpack={"libstd-rust-dev:arm64": "1.85.0+dfsg3-1"},
    wheels=("ziglang==0.17.1 sha256:" + "a" * 64,),
)
LOCKED = dataclasses.replace(TOOLCHAIN, lock=LOCK)


# --- The file ---


def test_the_text_is_sorted_and_deterministic_and_reads_back_the_same() -> None:
    text = render(LOCK)

    assert parse(text) == LOCK
    assert render(parse(text)) == text
    lines = text.splitlines()
    packages = lines[lines.index("packages = [") + 1 : lines.index("packages = [") + 6]
    assert packages == sorted(packages)
    assert '  "bsdutils:amd64=1:2.41-5",' in lines
    assert 'libraries = [\n  "libbz2-dev:riscv64=1.0.8-6",\n]' in text
    assert "osless lock tiny" in lines[0]


def test_the_digest_follows_the_content_not_the_layout() -> None:
    relaid = render(LOCK).replace("packages = [\n", "# a comment\npackages = [\n")

    assert parse(relaid).digest == LOCK.digest
    assert (
        dataclasses.replace(LOCK, packages={**LOCK.packages, "hello:amd64": "2.10-6"}).digest != LOCK.digest
    )


@pytest.mark.parametrize(
    ("old", "new", "expected"),
    [
        ("format = 1", "format = 2", "lock format 2"),
        ('"hello:amd64=2.10-5"', '"hello=2.10-5"', "'hello=2.10-5' is not name:arch=version"),
        ('"hello:amd64=2.10-5"', '"hello:amd64=2.10 -5"', "is not name:arch=version"),
        ('"hello:amd64=2.10-5"', '"--force:amd64=1"', "is not name:arch=version"),
        ('"hello:amd64=2.10-5"', '"libc6:amd64=2.41-12"', "libc6:amd64 is listed twice"),
        ('spec = "', 'spec = "x', "is not a spec hash"),
        ("requested = [", "requested = 3\nx = [", "requested must be an array of strings"),
        ("format = 1", "format = ", "not a lock file"),
    ],
)
def test_a_bad_lock_says_what_is_wrong(old: str, new: str, expected: str) -> None:
    text = render(LOCK)
    assert old in text
    with pytest.raises(ValueError) as raised:
        parse(text.replace(old, new, 1))
    assert expected in str(raised.value)


# --- What the lock asks apt for, and the checks ---


def test_apt_is_asked_for_every_locked_version_foreign_ones_by_architecture() -> None:
    assert include_specs(LOCK, "amd64") == [
        "bsdutils=1:2.41-5",
        "hello=2.10-5",
        "libc6=2.41-12",
        "musl-dev:arm64=1.2.5-3",
        "tzdata=2025b-4",
    ]


def test_a_locked_mmdebstrap_installs_the_locked_versions_and_keeps_lists_only_when_told() -> None:
    plain = mmdebstrap_command(TOOLCHAIN, Path("/t.tar"), "amd64")
    locked = mmdebstrap_command(LOCKED, Path("/t.tar"), "amd64")
    listing = mmdebstrap_command(TOOLCHAIN, Path("/t.tar"), "amd64", keep_lists=True)

    assert "--include=hello,musl-dev:arm64" in plain
    assert f"--include={','.join(include_specs(LOCK, 'amd64'))}" in locked
    assert "--architectures=amd64,arm64" in locked
    assert "--skip=cleanup/apt/lists" in listing and "--skip=cleanup/apt/lists" not in plain
    assert locked[-3:] == ["--", "trixie", "/t.tar"]


def test_mismatches_name_each_package() -> None:
    installed = {**LOCK.packages, "hello:amd64": "2.10-6", "extra:all": "1"}
    del installed["libc6:amd64"]

    assert mismatches(LOCK.packages, installed) == [
        "extra:all 1 installed but not locked",
        "hello:amd64 2.10-6 installed, 2.10-5 locked",
        "libc6:amd64 2.41-12 not installed",
    ]
    assert mismatches(LOCK.packages, dict(LOCK.packages)) == []
    assert shown([str(n) for n in range(10)]) == "0; 1; 2; 3; 4; 5; 6; 7; and 2 more"


def test_installed_packages_other_than_locked_are_an_error_with_the_lock_command() -> None:
    with pytest.raises(ToolchainError) as raised:
        check_installed(LOCKED, LOCK.packages, {**LOCK.packages, "hello:amd64": "2.10-6"})

    assert "hello:amd64 2.10-6 installed, 2.10-5 locked" in raised.value.message
    assert "`osless lock tiny`" in (raised.value.hint or "")
    check_installed(LOCKED, LOCK.packages, dict(LOCK.packages))


def test_versions_apt_did_not_find_are_named() -> None:
    log = (
        "E: Version '2.10-5' for 'hello' was not found\n"
        "E: Version '1.2.5-3' for 'musl-dev:arm64' was not found\n"
        "E: Version '2.10-5' for 'hello' was not found\n"
    )
    assert versions_not_found(log) == ["hello=2.10-5", "musl-dev:arm64=1.2.5-3"]
    assert versions_not_found("E: Unable to locate package hello") == []


def test_the_lock_is_part_of_the_spec_hash_and_records_the_recipe_s() -> None:
    assert recipe_spec_hash(LOCKED) == recipe_spec_hash(TOOLCHAIN) == spec_hash(TOOLCHAIN)
    assert spec_hash(LOCKED) != spec_hash(TOOLCHAIN)
    relocked = dataclasses.replace(
        LOCKED, lock=dataclasses.replace(LOCK, release_date="2026-12-01T00:00:00Z")
    )
    assert spec_hash(relocked) != spec_hash(LOCKED)


def test_a_recipe_changed_since_the_lock_names_what_changed() -> None:
    check_lock(LOCKED)
    changed = dataclasses.replace(
        LOCKED, bootstrap=dataclasses.replace(BOOTSTRAP, packages=("bc", "musl-dev:arm64"))
    )
    with pytest.raises(ToolchainError) as raised:
        check_lock(changed)
    assert "tiny.toml changed since tiny.lock was written" in raised.value.message
    assert "asks for bc now; no longer asks for hello" in raised.value.message
    assert "`osless lock tiny`" in (raised.value.hint or "")

    other_suite = dataclasses.replace(LOCKED, bootstrap=dataclasses.replace(BOOTSTRAP, suite="forky"))
    with pytest.raises(ToolchainError, match="its suite, mirror, components, variant or wheels changed"):
        check_lock(other_suite)
    assert recipe_changes(LOCK, ["hello"]) == ([], ["libstd-rust-dev:arm64", "musl-dev:arm64"])


def test_release_dates_are_iso_utc_and_the_suite_s_own_wins() -> None:
    assert release_date("Origin: Debian\nDate: Sat, 08 Nov 2026 10:12:05 UTC\n") == "2026-11-08T10:12:05Z"
    assert release_date("Date: Sat, 08 Nov 2026 11:12:05 +0100\n") == "2026-11-08T10:12:05Z"
    assert release_date("Origin: Debian\n") == release_date("Date: nonsense\n") == ""
    releases = {
        "deb.debian.org_debian_dists_trixie-updates_InRelease": "Date: Mon, 01 Dec 2026 08:00:00 UTC\n",
        "deb.debian.org_debian_dists_trixie_InRelease": "Date: Sat, 08 Nov 2026 10:12:05 UTC\n",
    }
    assert suite_release_date(releases, "trixie") == "2026-11-08T10:12:05Z"
    assert suite_release_date(releases, "forky") == "2026-12-01T08:00:00Z"
    assert suite_release_date({}, "trixie") == ""


# --- The loader and the command line ---

RECIPE = """\
[toolchain]
name = "tiny"

[toolchain.bootstrap]
suite = "trixie"
packages = ["hello", "musl-dev:arm64"]
unpack = ["libstd-rust-dev:arm64"]

[toolchain.platforms."linux/amd64"]
[toolchain.platforms."linux/arm64"]
"""
SERVICE = """\
[service]
name = "s"
source = "src"
toolchain = "tiny"
platforms = ["linux/amd64"]

[build]
command = ["true"]
"""


def _project(root: Path, lock: str | None) -> Path:
    (root / "recipes" / "toolchains").mkdir(parents=True)
    (root / "src").mkdir()
    (root / "recipes" / "toolchains" / "tiny.toml").write_text(RECIPE)
    (root / "recipes" / "s.toml").write_text(SERVICE)
    if lock is not None:
        (root / "recipes" / "toolchains" / "tiny.lock").write_text(lock)
    return root


def test_the_loader_reads_the_lock_beside_the_recipe(tmp_path: Path) -> None:
    unlocked = load_project(_project(tmp_path / "a", None)).toolchains["tiny"]
    lock = dataclasses.replace(LOCK, spec=recipe_spec_hash(unlocked))
    toolchain = load_project(_project(tmp_path / "b", render(lock))).toolchains["tiny"]

    assert unlocked.lock is None
    assert toolchain.lock == lock
    check_lock(toolchain)


@pytest.mark.parametrize(
    ("lock", "expected"),
    [
        ("format = 1\n", "recipes/toolchains/tiny.lock: spec must be a string (run `osless lock tiny`"),
        (
            render(dataclasses.replace(LOCK, toolchain="other")),
            "is the lock of toolchain 'other', not of 'tiny'",
        ),
    ],
)
def test_a_lock_that_cannot_be_used_is_a_recipe_problem(tmp_path: Path, lock: str, expected: str) -> None:
    with pytest.raises(RecipeError) as raised:
        load_project(_project(tmp_path, lock))
    assert any(expected in str(problem) for problem in raised.value.problems), raised.value.problems


def test_the_lock_command_takes_toolchain_names() -> None:
    args = build_parser().parse_args(["lock", "gcc", "go"])
    assert args.toolchains == ["gcc", "go"]
    assert build_parser().parse_args(["lock"]).toolchains == []


def test_bases_are_locked_before_the_toolchains_that_extend_them(tmp_path: Path) -> None:
    root = _project(tmp_path, None)
    (root / "recipes" / "toolchains" / "a-more.toml").write_text(
        '[toolchain]\nname = "a-more"\nextends = "tiny"\n\n[toolchain.bootstrap]\npackages = ["bc"]\n'
    )
    (root / "recipes" / "toolchains" / "image.toml").write_text(
        '[toolchain]\nname = "image"\nimage = "debian:13"\n\n[toolchain.platforms."linux/amd64"]\n'
    )
    project = load_project(root)

    assert lock_command._selected(project, []) == ["tiny", "a-more"]
    assert lock_command._selected(project, ["a-more", "tiny", "a-more"]) == ["tiny", "a-more"]
    with pytest.raises(UsageError, match="uses the image debian:13 as is: nothing to lock"):
        lock_command._selected(project, ["image"])
    with pytest.raises(UsageError, match="unknown toolchain 'tinny'") as raised:
        lock_command._selected(project, ["tinny"])
    assert raised.value.hint == "did you mean 'tiny'?"


class _Apt:
    """apt-get as layer._install calls it: records the arguments, prints one file to download."""

    def __init__(self, state: Path) -> None:
        self.state = state
        self.calls: list[tuple[str, ...]] = []

    def run(self, *arguments: str, what: str, cwd: Path | None = None) -> str:
        self.calls.append(arguments)
        url = "http://deb.debian.org/debian/pool/main/b/bc/bc_1.07.1-4_amd64.deb"
        return f"'{url}' bc_1.07.1-4_amd64.deb 100 x\n"


def test_a_locked_layer_asks_apt_for_the_locked_versions(tmp_path: Path) -> None:
    apt = _Apt(tmp_path)
    files = layer._install(apt, ["bc"], "amd64", print, requests=["bc=1.07.1-4"])  # type: ignore[arg-type]

    assert files == [tmp_path / "archives" / "bc_1.07.1-4_amd64.deb"]
    assert all(call[-1] == "bc=1.07.1-4" for call in apt.calls) and len(apt.calls) == 2
    assert layer._install(apt, ["bc"], "amd64", print, requests=[]) == []  # type: ignore[arg-type]
    assert len(apt.calls) == 2


@pytest.mark.parametrize(
    ("output", "message"),
    [
        (
            "E: Version '2.10-5' for 'hello' was not found",
            "the archive no longer has the locked hello=2.10-5",
        ),
        (
            "E: Packages were downgraded and -y was used without --allow-downgrades.",
            "without --allow-downgrades",
        ),
    ],
)
def test_a_locked_bootstrap_apt_refused_ends_with_the_lock_command(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, output: str, message: str
) -> None:
    def failing(*args: object, **kwargs: object) -> list[str]:
        return ["sh", "-c", 'echo "$0"; exit 100', output]

    monkeypatch.setattr(bootstrap_make, "mmdebstrap_command", failing)
    with pytest.raises(ToolchainError) as raised:
        bootstrap_make.run_mmdebstrap(LOCKED, tmp_path / "t.tar", tmp_path / "log", "amd64", print)

    assert message in raised.value.message
    assert "`osless lock tiny`" in (raised.value.hint or "")
