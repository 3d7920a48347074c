"""Toolchain extension and target libraries, without an engine: `extends` read and resolved (merged
env, languages and platforms; unknown bases, cycles), the derived spec hash (its base's identity plus its
own additions), package names checked when recipes load (Debian architectures, with did-you-mean), the
`libraries` closure over `-dev` packages, archive gaps said plainly, and the static-archive check on real
.deb files built with dpkg-deb."""

from __future__ import annotations

import dataclasses
import io
import subprocess
import tarfile
from pathlib import Path

import pytest

from orchestrator.bootstrap import layer, rootfs
from orchestrator.bootstrap.spec import (
    base_identity,
    bootstrap_packages,
    image_reference,
    library_packages,
    spec_hash,
)
from orchestrator.cli.main import main
from orchestrator.errors import RecipeError, ToolchainError
from orchestrator.recipe.loader import load_project
from orchestrator.recipe.placeholders import build_env
from tests.conftest import REPO_ROOT

DERIVED = """\
[toolchain]
name = "gcc-libs"
extends = "gcc"
env = { CFLAGS = "-O2", PATH = "/opt/bin:/usr/bin:/bin" }

[toolchain.bootstrap]
packages = ["bison", "flex"]
libraries = ["libbz2-dev"]

[toolchain.platforms."linux/arm64"]
packages = ["qemu-user:{DEBIAN_ARCH}"]
libraries = ["liblz4-dev"]
env = { CC = "{GNU_TRIPLE}-gcc-14" }
"""
FILE = "recipes/toolchains/gcc-libs.toml"
SERVICE = """\
[service]
name = "s"
source = "."
toolchain = "gcc-libs"
platforms = ["linux/amd64", "linux/arm64"]

[build]
command = ["{CC}", "-static", "-o", "{output}", "main.c"]
"""


def _project(root: Path, files: dict[str, str]) -> Path:
    (root / "recipes" / "toolchains").mkdir(parents=True)
    (root / "recipes" / "toolchains" / "gcc.toml").write_text(
        (REPO_ROOT / "recipes" / "toolchains" / "gcc.toml").read_text()
    )
    for relative, text in {"recipes/s.toml": SERVICE, **files}.items():
        (root / relative).write_text(text)
    return root


def _problems(root: Path, files: dict[str, str]) -> list[str]:
    with pytest.raises(RecipeError) as caught:
        load_project(_project(root, files))
    return [str(problem) for problem in caught.value.problems]


def test_a_derived_toolchain_inherits_and_adds(tmp_path: Path) -> None:
    project = load_project(_project(tmp_path, {FILE: DERIVED}))
    gcc, derived = project.toolchains["gcc"], project.toolchains["gcc-libs"]

    assert derived.base == gcc and derived.extends == "gcc"
    assert derived.image is None and derived.bootstrap is None
    assert derived.languages == gcc.languages == ("c", "c++")
    assert set(derived.platforms) == set(gcc.platforms)
    # Its own env wins; the base's is inherited, per platform too.
    arm64 = build_env(derived, "linux/arm64", {})
    assert arm64["PATH"] == "/opt/bin:/usr/bin:/bin" and arm64["CFLAGS"] == "-O2"
    assert arm64["CC"] == "aarch64-linux-gnu-gcc-14" and arm64["CXX"] == "aarch64-linux-gnu-g++"
    assert arm64["PKG_CONFIG"] == "aarch64-linux-gnu-pkg-config"
    assert build_env(derived, "linux/s390x", {})["CC"] == "s390x-linux-gnu-gcc"
    # Its packages are its own additions only, installed on the base's image.
    assert bootstrap_packages(derived) == ["bison", "flex", "qemu-user:arm64"]
    assert library_packages(derived) == [
        *("libbz2-dev:amd64", "libbz2-dev:arm64", "libbz2-dev:armhf", "libbz2-dev:i386"),
        *("libbz2-dev:ppc64el", "libbz2-dev:riscv64", "libbz2-dev:s390x", "liblz4-dev:arm64"),
    ]
    # The base is unchanged: the same image as the shipped gcc's.
    assert image_reference(gcc) == image_reference(load_project(REPO_ROOT).toolchains["gcc"])
    assert image_reference(derived).startswith("osless-toolchain/gcc-libs:")


def test_the_derived_identity_is_the_base_s_plus_its_own(tmp_path: Path) -> None:
    derived = load_project(_project(tmp_path, {FILE: DERIVED})).toolchains["gcc-libs"]
    assert derived.base is not None and derived.layer is not None

    other_packages = dataclasses.replace(
        derived, layer=dataclasses.replace(derived.layer, packages=("bison",))
    )
    base = derived.base
    assert base.bootstrap is not None
    other_base = dataclasses.replace(
        base, bootstrap=dataclasses.replace(base.bootstrap, packages=(*base.bootstrap.packages, "gdb"))
    )
    on_other_base = dataclasses.replace(derived, base=other_base)

    assert spec_hash(other_packages) != spec_hash(derived)
    assert spec_hash(other_packages.base) == spec_hash(base)  # type: ignore[arg-type]
    assert spec_hash(on_other_base) != spec_hash(derived)
    assert base_identity(base) == image_reference(base)
    # Env is build-time only: it does not make another image.
    assert spec_hash(dataclasses.replace(derived, env={})) == spec_hash(derived)
    # A base used as is (an existing image) is identified by its reference.
    as_is = dataclasses.replace(base, image="my/builder:1", bootstrap=None)
    assert base_identity(as_is) == "my/builder:1"


def test_a_derived_toolchain_can_be_extended_again(tmp_path: Path) -> None:
    again = (
        '[toolchain]\nname = "gcc-more"\nextends = "gcc-libs"\n[toolchain.bootstrap]\npackages = ["gdb"]\n'
    )
    project = load_project(_project(tmp_path, {FILE: DERIVED, "recipes/toolchains/more.toml": again}))

    more = project.toolchains["gcc-more"]
    assert more.base == project.toolchains["gcc-libs"]
    assert build_env(more, "linux/arm64", {})["CFLAGS"] == "-O2"
    assert bootstrap_packages(more) == ["gdb"] and library_packages(more) == []


@pytest.mark.parametrize(
    ("files", "expected"),
    [
        (
            {FILE: DERIVED.replace('extends = "gcc"', 'extends = "gc"')},
            f"{FILE}:3: toolchain.extends: unknown toolchain 'gc' (did you mean 'gcc'?",
        ),
        (
            {
                FILE: DERIVED.replace('extends = "gcc"', 'extends = "b"'),
                "recipes/toolchains/b.toml": '[toolchain]\nname = "b"\nextends = "gcc-libs"\n',
            },
            f"{FILE}:3: toolchain.extends: toolchains extend each other in a cycle: ",
        ),
        (
            {"recipes/toolchains/b.toml": '[toolchain]\nname = "b"\nextends = "b"\n'},
            "recipes/toolchains/b.toml:3: toolchain.extends: toolchains extend each other in a cycle: b -> b",
        ),
        (
            {FILE: DERIVED.replace('extends = "gcc"', 'extends = "gcc"\nimage = "gcc:14"')},
            f"{FILE}:4: toolchain.image: a toolchain that extends another is layered on its image",
        ),
        (
            {FILE: DERIVED.replace('packages = ["bison"', 'suite = "sid"\npackages = ["bison"')},
            f"{FILE}:7: toolchain.bootstrap.suite: comes from the base toolchain 'gcc'",
        ),
        (
            {FILE: DERIVED.replace('"linux/arm64"', '"linux/mips"', 1)},
            f"{FILE}:10: toolchain.platforms.\"linux/mips\": unknown platform 'linux/mips'",
        ),
        (
            {
                "recipes/toolchains/mini.toml": '[toolchain]\nname = "mini"\nimage = "gcc:14"\n'
                '[toolchain.platforms."linux/amd64"]\n',
                FILE: DERIVED.replace('extends = "gcc"', 'extends = "mini"'),
            },
            f'{FILE}:10: toolchain.platforms."linux/arm64": linux/arm64 is not a platform of the base '
            "toolchain 'mini' (it targets: linux/amd64)",
        ),
        (
            {FILE: DERIVED.replace('"qemu-user:{DEBIAN_ARCH}"', '"libz-dev:aarch64"')},
            f"{FILE}:11: toolchain.platforms.\"linux/arm64\".packages: 'libz-dev:aarch64': 'aarch64' is not "
            "a Debian architecture (did you mean 'libz-dev:arm64'?",
        ),
        (
            {FILE: DERIVED.replace('["bison", "flex"]', '["bison:amd46"]')},
            f"{FILE}:7: toolchain.bootstrap.packages: 'bison:amd46': 'amd46' is not a Debian architecture "
            "(did you mean 'bison:amd64'?",
        ),
        (
            {FILE: DERIVED.replace('["libbz2-dev"]', '["libbz2-dev:arm64"]')},
            f"{FILE}:8: toolchain.bootstrap.libraries: 'libbz2-dev:arm64': libraries are installed for each "
            "platform's architecture (leave ':arm64' out",
        ),
        (
            {FILE: DERIVED.replace('["liblz4-dev"]', '["liblz4-1"]')},
            f"{FILE}:12: toolchain.platforms.\"linux/arm64\".libraries: 'liblz4-1' is not a -dev package",
        ),
        (
            {FILE: DERIVED.replace('["bison", "flex"]', '["Bison"]')},
            f"{FILE}:7: toolchain.bootstrap.packages: 'Bison' is not a Debian package name",
        ),
    ],
)
def test_toolchain_problems_are_located(tmp_path: Path, files: dict[str, str], expected: str) -> None:
    found = _problems(tmp_path, files)

    assert any(text.startswith(expected) or expected in text for text in found), "\n".join(found)


def test_a_service_of_an_unresolved_toolchain_says_which_file(tmp_path: Path) -> None:
    found = _problems(tmp_path, {FILE: DERIVED.replace('extends = "gcc"', 'extends = "nope"')})

    service = [text for text in found if text.startswith("recipes/s.toml")]
    assert service and "unknown toolchain 'gcc-libs'" in service[0] and FILE in service[0], "\n".join(found)


def test_a_cycle_is_reported_on_every_member(tmp_path: Path) -> None:
    files = {
        FILE: DERIVED.replace('extends = "gcc"', 'extends = "b"'),
        "recipes/toolchains/b.toml": '[toolchain]\nname = "b"\nextends = "gcc-libs"\n',
    }
    found = [text for text in _problems(tmp_path, files) if "cycle" in text]

    assert len(found) == 2, found
    assert all("gcc-libs -> b -> gcc-libs" in text or "b -> gcc-libs -> b" in text for text in found)


# --- The libraries closure ---

CANDIDATES = {
    "libfoo-dev:s390x": {
        "Version": "1.0-1",
        "Architecture": "s390x",
        "Depends": "libfoo1 (= 1.0-1), libbar-dev (>= 2), libc6-dev | libc-dev, libheaders-dev",
    },
    "libbar-dev:s390x": {
        "Version": "2.1",
        "Architecture": "s390x",
        "Depends": "libbar2, zlib1g-dev | libz-dev",
    },
    "zlib1g-dev:s390x": {
        "Version": "1:1.3",
        "Architecture": "s390x",
        "Depends": "zlib1g, libc6-dev | libc-dev",
    },
    "libheaders-dev:s390x": {"Version": "3", "Architecture": "all", "Depends": "libstdc++-14-dev"},
}


def _show(packages: list[str]) -> dict[str, dict[str, str]]:
    return {package: CANDIDATES[package] for package in packages if package in CANDIDATES}


def test_a_library_brings_the_dev_packages_it_needs_and_no_runtime_package() -> None:
    closure = layer.library_closure(["libfoo-dev:s390x"], _show)

    assert closure == {
        "libfoo-dev:s390x": "1.0-1",
        "libbar-dev:s390x": "2.1",
        "libheaders-dev:s390x": "3",
        "zlib1g-dev:s390x": "1:1.3",
    }


def test_a_missing_dependency_names_who_needs_it() -> None:
    candidates = {**CANDIDATES, "libbar-dev:s390x": {"Version": "2", "Depends": "libgone-dev"}}

    with pytest.raises(ToolchainError) as caught:
        layer.library_closure(
            ["libfoo-dev:s390x"], lambda ps: {p: candidates[p] for p in ps if p in candidates}
        )

    assert caught.value.message == (
        "library libgone-dev:s390x (needed by libbar-dev:s390x): the archive has no libgone-dev for s390x "
        "(linux/s390x)"
    )


# apt-get's words when the mirror lacks files, as this machine's mirror answered for zlib1g-dev.
APT_FAILURE = (
    "downloading the libraries packages failed (apt-get exit 100): E: Failed to fetch "
    "http://security.debian.org/debian-security/pool/updates/main/z/zlib/"
    "zlib1g-dev_1.3.dfsg%2breally1.3.1-1%2bdeb13u1_ppc64el.deb  404  Not Found [IP: 203.0.113.80 80] / "
    "E: Failed to fetch http://security.debian.org/debian-security/pool/updates/main/z/zlib/"
    "zlib1g-dev_1.3.dfsg%2breally1.3.1-1%2bdeb13u1_s390x.deb  404  Not Found [IP: 203.0.113.80 80]"
)
PRINTED = "\n".join(
    f"'http://deb.debian.org/debian/pool/main/z/zlib/zlib1g-dev_1.3.dfsg%2breally1.3.1-1%2bdeb13u1_{arch}.deb'"
    f" zlib1g-dev_1%3a1.3.dfsg+really1.3.1-1+deb13u1_{arch}.deb 917476 SHA256:2c0e"
    for arch in ("arm64", "ppc64el", "s390x")
)


def test_an_archive_gap_names_the_package_version_and_platforms() -> None:
    error = layer._fetch_error(
        ToolchainError(APT_FAILURE),
        layer._uris(PRINTED),
        ["zlib1g-dev:arm64", "zlib1g-dev:ppc64el", "zlib1g-dev:s390x"],
    )

    assert error.message == (
        "the archive lacks zlib1g-dev 1:1.3.dfsg+really1.3.1-1+deb13u1 for ppc64el (linux/ppc64le): 404 Not "
        "Found; zlib1g-dev 1:1.3.dfsg+really1.3.1-1+deb13u1 for s390x (linux/s390x): 404 Not Found (needed "
        "by zlib1g-dev:ppc64el, zlib1g-dev:s390x)"
    )
    assert error.hint is not None and "mirror is incomplete for ppc64el, s390x" in error.hint


def test_the_base_image_facts_leave_out_earlier_libraries() -> None:
    status = (
        "Package: zlib1g-dev\nStatus: install ok installed\nArchitecture: s390x\nVersion: 1\n\n"
        "Package: gcc\nStatus: install ok installed\nArchitecture: amd64\nVersion: 14\n"
    )
    facts = layer.image_facts(
        _tar({"status": status.encode()}),
        _tar({"apt/sources.list": b"deb http://deb.debian.org/debian trixie main\n", "apt/apt.conf": b""}),
        ["zlib1g-dev:s390x"],
    )

    assert facts.installed == {"gcc:amd64": "14"}
    assert facts.sources == {"etc/apt/sources.list": b"deb http://deb.debian.org/debian trixie main\n"}
    assert b"zlib1g-dev" not in facts.status


def _tar(files: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


# --- The static archive check, on .deb files dpkg-deb builds ---


def _deb(root: Path, name: str, files: list[str], links: dict[str, str] | None = None) -> Path:
    tree = root / name
    (tree / "DEBIAN").mkdir(parents=True)
    (tree / "DEBIAN" / "control").write_text(
        f"Package: {name}\nVersion: 1\nArchitecture: arm64\nMaintainer: t <t@t>\nDescription: t\n"
    )
    for relative in files:
        (tree / relative).parent.mkdir(parents=True, exist_ok=True)
        (tree / relative).write_bytes(b"x")
    for relative, target in (links or {}).items():
        (tree / relative).parent.mkdir(parents=True, exist_ok=True)
        (tree / relative).symlink_to(target)
    deb = root / f"{name}.deb"
    subprocess.run(
        ["dpkg-deb", "--build", "--root-owner-group", str(tree), str(deb)], check=True, capture_output=True
    )
    return deb


def test_a_dev_package_without_a_static_archive_is_refused(tmp_path: Path) -> None:
    lib = "usr/lib/aarch64-linux-gnu"
    shared_only = _deb(
        tmp_path, "libonig-dev", ["usr/include/oniguruma.h"], {f"{lib}/libonig.so": "libonig.so.5"}
    )
    both = _deb(
        tmp_path, "libbz2-dev", [f"{lib}/libbz2.a", "usr/include/bzlib.h"], {f"{lib}/libbz2.so": "x.so.1"}
    )
    headers = _deb(tmp_path, "libeigen3-dev", ["usr/include/eigen3/Eigen/Core"])

    with pytest.raises(ToolchainError) as caught:
        layer.check_static("libonig-dev:arm64", shared_only)

    assert caught.value.message == (
        "libonig-dev:arm64 ships no static archive (.a): a static binary cannot link it (linux/arm64)"
    )
    layer.check_static("libbz2-dev:arm64", both)
    layer.check_static("libeigen3-dev:arm64", headers)  # header-only: nothing to link


def test_the_layer_archive_holds_the_script_the_lists_and_the_files(tmp_path: Path) -> None:
    deb = _deb(tmp_path, "libbz2-dev", ["usr/lib/aarch64-linux-gnu/libbz2.a"])
    plan = layer.LayerPlan(
        install=[deb],
        libraries=[layer.Deb(package="libbz2-dev:arm64", version="1", path=deb)],
        architectures=["arm64", "s390x"],
    )

    with tarfile.open(fileobj=io.BytesIO(layer.archive(plan, ("/usr/share/doc/*",)))) as tar:
        names = tar.getnames()
        architectures = tar.extractfile("osless-layer/architectures")
        excludes = tar.extractfile("osless-layer/excludes")
        assert architectures is not None and excludes is not None
        assert architectures.read() == b"arm64\ns390x\n" and excludes.read() == b"./usr/share/doc/*\n"
        assert all(member.uid == 0 for member in tar.getmembers())

    assert {"osless-layer/run.sh", "osless-layer/install/libbz2-dev.deb"} <= set(names)
    assert "osless-layer/libraries/libbz2-dev.deb" in names and "osless-layer/unpack" in names


def test_the_list_shows_what_a_toolchain_extends(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("COLUMNS", "250")

    assert main(["-C", str(_project(tmp_path, {FILE: DERIVED})), "list"]) == 0

    [row] = [line for line in capsys.readouterr().out.splitlines() if line.startswith("│ s ")]
    assert row.split("│")[2].strip() == "gcc-libs (extends gcc)"


MMDEBSTRAP_LOG = """\
I: running apt-get update...
Get:1 http://deb.debian.org/debian trixie InRelease [140 kB]
E: Failed to fetch http://deb.debian.org/debian/pool/main/g/glibc/libc6_2.41-12%2bdeb13u5_s390x.deb  404  \
Not Found [IP: 203.0.113.80 80]
E: Unable to fetch some archives, maybe run apt-get update or try with --fix-missing?
E: apt-get --yes -oApt::Get::Download-Only=true install failed
"""


def test_a_bootstrap_failure_is_said_once_and_plainly() -> None:
    gap = layer.apt_failure(MMDEBSTRAP_LOG, ["gcc", "zlib1g-dev:s390x", "zlib1g-dev:arm64"])
    unknown = layer.apt_failure("E: Unable to locate package libfoo-dev:arm64\n", ["libfoo-dev:arm64"])

    assert gap is not None and gap.message == (
        "the archive lacks libc6 2.41-12+deb13u5 for s390x (linux/s390x): 404 Not Found (needed by "
        "zlib1g-dev:s390x)"
    )
    assert unknown is not None and unknown.message == "the archive has no package libfoo-dev:arm64"
    assert layer.apt_failure("E: something else\n", ["gcc"]) is None


def test_a_bootstrap_checks_the_target_libraries_it_installed(tmp_path: Path) -> None:
    tarball = tmp_path / "rootfs.tar"
    tarball.write_bytes(
        _tar(
            {
                "./var/lib/dpkg/info/libonig-dev:arm64.list": b"/usr/include/oniguruma.h\n"
                b"/usr/lib/aarch64-linux-gnu/libonig.so\n",
                "./var/lib/dpkg/info/libbz2-dev:arm64.list": b"/usr/lib/aarch64-linux-gnu/libbz2.a\n"
                b"/usr/lib/aarch64-linux-gnu/libbz2.so\n",
            }
        )
    )
    packages = ["gcc", "musl-dev:arm64", "libbz2-dev:arm64", "libonig-dev:arm64", "libfoo-dev:amd64"]

    targets = layer.target_libraries(packages, "amd64")
    files = rootfs.package_files(tarball, targets)

    assert targets == ["libbz2-dev:arm64", "libonig-dev:arm64"]
    layer.check_static_paths("libbz2-dev:arm64", files["libbz2-dev:arm64"])
    with pytest.raises(ToolchainError, match=r"libonig-dev:arm64 ships no static archive \(\.a\)"):
        layer.check_static_paths("libonig-dev:arm64", files["libonig-dev:arm64"])
