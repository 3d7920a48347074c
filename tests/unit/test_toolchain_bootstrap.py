"""Bootstrap machinery (orchestrator/bootstrap) and the recipe keys that drive it: files appended to a
root filesystem tarball, pinned wheels from a PEP 691 index (a local HTTP server serving a crafted
index and wheels), Debian versions requested, the spec hash, and the reader's problems."""

from __future__ import annotations

import hashlib
import http.server
import io
import json
import shutil
import subprocess
import tarfile
import threading
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from orchestrator.bootstrap import debian, rootfs, wheels
from orchestrator.bootstrap.spec import BOOTSTRAP_FORMAT, mmdebstrap_command, spec_hash, unpack_packages
from orchestrator.cli.main import main
from orchestrator.errors import RecipeError, ToolchainError
from orchestrator.recipe.loader import load_project
from orchestrator.recipe.model import Bootstrap, Toolchain, ToolchainPlatform, Wheel

# --- Root filesystem tarballs ---


def _member(
    name: str, kind: bytes = tarfile.REGTYPE, *, data: bytes = b"", mode: int = 0o644, link: str = ""
) -> tuple[tarfile.TarInfo, io.BytesIO | None]:
    info = tarfile.TarInfo(name)
    info.type, info.mode, info.linkname, info.size = kind, mode, link, len(data)
    info.uid, info.uname = 1000, "someone"
    return info, io.BytesIO(data) if kind == tarfile.REGTYPE else None


def _tarball(path: Path, *members: tuple[tarfile.TarInfo, io.BytesIO | None]) -> Path:
    with tarfile.open(path, "w") as tar:
        for info, data in members:
            tar.addfile(info, data)
    return path


def _merged_usr(path: Path) -> Path:
    """A rootfs as mmdebstrap writes it: "./" names, `lib` a symlink to `usr/lib`."""
    return _tarball(
        path,
        _member("./", tarfile.DIRTYPE, mode=0o755),
        _member("./usr/", tarfile.DIRTYPE, mode=0o755),
        _member("./usr/lib/", tarfile.DIRTYPE, mode=0o755),
        _member("./lib", tarfile.SYMTYPE, link="usr/lib"),
        _member("./usr/share/", tarfile.DIRTYPE, mode=0o755),
        _member("./usr/share/lintian/", tarfile.DIRTYPE, mode=0o755),
        _member("./usr/share/lintian/overrides", data=b"native\n"),
        _member("./opt/", tarfile.DIRTYPE, mode=0o755),
    )


def _members(path: Path) -> dict[str, tarfile.TarInfo]:
    with tarfile.open(path) as tar:
        names = [rootfs.member_path(member.name) for member in tar]
        assert len(names) == len(set(names)), "docker import refuses a path named twice"
        return {rootfs.member_path(member.name): member for member in tar}


def _package_data(*members: tuple[tarfile.TarInfo, io.BytesIO | None]) -> io.BytesIO:
    """A Debian package's data tar, as `dpkg-deb --fsys-tarfile` streams it."""
    stream = io.BytesIO()
    with tarfile.open(fileobj=stream, mode="w") as tar:
        for info, data in members:
            tar.addfile(info, data)
    stream.seek(0)
    return stream


def test_appended_files_are_root_owned_and_pass_through_directory_symlinks(tmp_path: Path) -> None:
    tarball = _merged_usr(tmp_path / "rootfs.tar")
    data = _package_data(
        _member("./", tarfile.DIRTYPE, mode=0o755),
        _member("./lib/", tarfile.DIRTYPE, mode=0o700),  # the symlink stays a symlink
        _member("./lib/aarch64-linux-musl/", tarfile.DIRTYPE, mode=0o755),
        _member("./lib/aarch64-linux-musl/libc.a", data=b"archive"),
        _member("./lib/aarch64-linux-musl/libm.a", tarfile.SYMTYPE, link="libc.a"),
        _member("./lib/aarch64-linux-musl/libc2.a", tarfile.LNKTYPE, link="./lib/aarch64-linux-musl/libc.a"),
        _member("./usr/bin/aarch64-linux-musl-gcc", data=b"#!/bin/sh\n", mode=0o755),
    )

    with rootfs.appending(tarball) as appender:
        added = appender.add_tar(data, "unpack musl-dev:arm64")

    members = _members(tarball)
    assert added == 5
    assert members["lib"].issym() and members["lib"].linkname == "usr/lib"
    assert "lib/aarch64-linux-musl/libc.a" not in members
    libc = members["usr/lib/aarch64-linux-musl/libc.a"]
    assert (libc.uid, libc.gid, libc.uname, libc.gname, libc.mode) == (0, 0, "root", "root", 0o644)
    assert members["usr/lib/aarch64-linux-musl/libm.a"].linkname == "libc.a"
    assert members["usr/lib/aarch64-linux-musl/libc2.a"].linkname == "usr/lib/aarch64-linux-musl/libc.a"
    assert members["usr/bin"].isdir() and members["usr/bin"].mode == 0o755  # created: it was missing
    assert members["usr/bin/aarch64-linux-musl-gcc"].mode == 0o755
    with tarfile.open(tarball) as tar:
        extracted = tar.extractfile("usr/lib/aarch64-linux-musl/libc.a")
        assert extracted is not None and extracted.read() == b"archive"


def test_a_file_already_there_is_kept_and_excluded_paths_are_left_out(tmp_path: Path) -> None:
    tarball = _merged_usr(tmp_path / "rootfs.tar")
    data = _package_data(
        _member("./usr/share/lintian/overrides", data=b"foreign\n"),  # Multi-Arch: same, shared
        _member("./usr/share/doc/musl-dev/copyright", data=b"text"),
        _member("./usr/include/stdio.h", data=b"header"),
    )

    with rootfs.appending(tarball) as appender:
        added = appender.add_tar(data, "unpack x", excludes=("/usr/share/doc/*",))
        kept = list(appender.kept)

    members = _members(tarball)
    assert (added, kept) == (1, ["usr/share/lintian/overrides"])
    assert "usr/share/doc/musl-dev/copyright" not in members and "usr/include/stdio.h" in members
    with tarfile.open(tarball) as tar:
        extracted = tar.extractfile("./usr/share/lintian/overrides")
        assert extracted is not None and extracted.read() == b"native\n"


@pytest.mark.parametrize("name", ["../etc/passwd", "./usr/../../x", "usr/lib/../../../x"])
def test_a_member_leaving_the_root_is_refused(tmp_path: Path, name: str) -> None:
    tarball = _merged_usr(tmp_path / "rootfs.tar")

    with pytest.raises(ToolchainError, match="leads outside"), rootfs.appending(tarball) as appender:
        appender.add_tar(_package_data(_member(name, data=b"x")), "unpack x")


def test_a_device_is_refused(tmp_path: Path) -> None:
    tarball = _merged_usr(tmp_path / "rootfs.tar")

    with pytest.raises(ToolchainError, match="neither a file"), rootfs.appending(tarball) as appender:
        appender.add_tar(_package_data(_member("./dev/null", tarfile.CHRTYPE)), "unpack x")


STATUS = b"""\
Package: libstd-rust-dev
Status: install ok installed
Architecture: amd64
Version: 1.85.0+dfsg1-1

Package: gone
Status: deinstall ok config-files
Architecture: amd64
Version: 1.0

Package: tzdata
Status: install ok installed
Architecture: all
Version: 2025b-4
Description: time zones
 Version: 9 (a continuation line, not a field)
"""


def test_facts_are_the_installed_packages_and_the_apt_sources(tmp_path: Path) -> None:
    tarball = _tarball(
        tmp_path / "rootfs.tar",
        _member("./var/lib/dpkg/status", data=STATUS),
        _member("./etc/apt/sources.list", data=b"deb http://mirror.example/debian trixie main\n"),
        _member("./etc/apt/sources.list.d/extra.sources", data=b"Types: deb\n"),
        _member("./etc/apt/sources.list.d/sub/nested.list", data=b"not a source part\n"),
    )

    facts = rootfs.read_facts(tarball)

    assert facts.installed == {"libstd-rust-dev:amd64": "1.85.0+dfsg1-1", "tzdata:all": "2025b-4"}
    assert set(facts.sources) == {"etc/apt/sources.list", "etc/apt/sources.list.d/extra.sources"}


def _wheel(path: Path, files: dict[str, tuple[bytes, int]]) -> Path:
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr(zipfile.ZipInfo("demo/", date_time=(2024, 1, 2, 3, 4, 6)), b"")
        for name, (data, mode) in files.items():
            entry = zipfile.ZipInfo(name, date_time=(2024, 1, 2, 3, 4, 6))
            entry.external_attr = mode << 16
            archive.writestr(entry, data)
    return path


def test_wheel_files_land_under_opt_wheels_with_their_modes(tmp_path: Path) -> None:
    tarball = _merged_usr(tmp_path / "rootfs.tar")
    wheel = _wheel(
        tmp_path / "demo.whl",
        {
            "demo/bin/tool": (b"\x7fELF", 0o100755),
            "demo/lib/deep/x.h": (b"header", 0o100644),
            "demo/private": (b"x", 0o100600),
            "demo-1.0.dist-info/RECORD": (b"", 0o100644),
        },
    )

    with rootfs.appending(tarball) as appender:
        added = appender.add_wheel(wheel, "wheel demo")

    members = _members(tarball)
    assert added == 5  # demo/ and four files; the directories above them are created too
    tool = members["opt/wheels/demo/bin/tool"]
    assert (tool.mode, tool.uid, tool.uname) == (0o755, 0, "root")
    assert members["opt/wheels/demo/private"].mode == 0o600
    assert members["opt/wheels/demo/lib/deep"].isdir() and members["opt/wheels/demo/lib"].mode == 0o755
    assert members["opt/wheels"].isdir() and members["opt/wheels/demo-1.0.dist-info"].isdir()
    mtimes = {member.mtime for path, member in members.items() if path.startswith("opt/wheels/")}
    assert mtimes == {1704164646}  # 2024-01-02 03:04:06 UTC: the zip's own, whenever it is unpacked


# --- Wheels from a PEP 691 index ---

MACHINE = "x86_64"
VERSION = "1.0"
X86 = f"demo-{VERSION}-py3-none-manylinux_2_12_x86_64.manylinux2010_x86_64.musllinux_1_1_x86_64.whl"
ARM = f"demo-{VERSION}-py3-none-manylinux_2_17_aarch64.manylinux2014_aarch64.whl"
OLD = "demo-0.9-py3-none-manylinux_2_12_x86_64.whl"


@dataclass
class Index:
    """A PEP 691 index on 127.0.0.1: `files` by name, the JSON page lists them with their sha256."""

    url: str
    files: dict[str, bytes]
    listed: dict[str, dict[str, object]] = field(default_factory=dict)  # overrides of a file's entry
    requests: list[tuple[str, str]] = field(default_factory=list)  # (path, Accept)

    def sha256(self, name: str) -> str:
        return hashlib.sha256(self.files[name]).hexdigest()


@pytest.fixture
def index(tmp_path: Path) -> Iterator[Index]:
    files = {
        name: _wheel(tmp_path / name, {"demo/bin/demo": (name.encode(), 0o100755)}).read_bytes()
        for name in (X86, ARM, OLD)
    }
    files[f"demo-{VERSION}.tar.gz"] = b"sdist"
    state = Index(url="", files=files)

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            state.requests.append((self.path, self.headers.get("Accept", "")))
            if self.path == "/simple/demo/" and wheels.SIMPLE_JSON in self.headers.get("Accept", ""):
                entries = [
                    {
                        "filename": name,
                        "url": f"../../files/{name}",
                        "hashes": {"sha256": state.sha256(name)},
                        "size": len(data),
                        **state.listed.get(name, {}),
                    }
                    for name, data in state.files.items()
                ]
                self._send(json.dumps({"meta": {"api-version": "1.1"}, "files": entries}).encode())
            elif self.path.startswith("/files/") and self.path[7:] in state.files:
                self._send(state.files[self.path[7:]])
            else:
                self.send_error(404)

        def _send(self, body: bytes) -> None:
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    state.url = f"http://127.0.0.1:{server.server_address[1]}/simple/"
    yield state
    server.shutdown()
    server.server_close()
    thread.join()


def _fetch(index: Index, downloads: Path, sha256: str, messages: list[str] | None = None) -> Path:
    wheel = Wheel(name="Demo", version=VERSION, sha256=sha256)
    return wheels.fetch(
        wheel, downloads, (messages if messages is not None else []).append, index.url, MACHINE
    )


def test_the_pinned_wheel_is_fetched_once_and_kept_by_its_sha256(index: Index, tmp_path: Path) -> None:
    messages: list[str] = []

    path = _fetch(index, tmp_path / "downloads", index.sha256(X86), messages)
    again = _fetch(index, tmp_path / "downloads", index.sha256(X86), messages)

    assert path == again == tmp_path / "downloads" / index.sha256(X86) / X86
    assert path.read_bytes() == index.files[X86]
    assert index.requests == [("/simple/demo/", wheels.SIMPLE_JSON), (f"/files/{X86}", "")]  # once
    assert any("downloading" in message for message in messages)
    assert "kept download" in messages[-1]
    assert [p.name for p in (tmp_path / "downloads").rglob("*")] == [index.sha256(X86), X86]


def test_a_wheel_for_another_machine_is_refused_naming_the_file_to_pin(index: Index, tmp_path: Path) -> None:
    with pytest.raises(ToolchainError) as caught:
        _fetch(index, tmp_path / "downloads", index.sha256(ARM))

    assert f"the pinned file {ARM} is not a Linux x86_64 wheel of version 1.0" in caught.value.message
    assert caught.value.hint == f"pin sha256 = {index.sha256(X86)!r} ({X86})"
    assert not (tmp_path / "downloads").exists()


@pytest.mark.parametrize("pinned", [OLD, "demo-1.0.tar.gz"])
def test_another_version_or_an_sdist_is_refused(index: Index, tmp_path: Path, pinned: str) -> None:
    with pytest.raises(ToolchainError, match=f"the pinned file {pinned} is not") as caught:
        _fetch(index, tmp_path / "downloads", index.sha256(pinned))

    assert caught.value.hint is not None and X86 in caught.value.hint


def test_a_sha256_no_file_has_names_the_file_to_pin(index: Index, tmp_path: Path) -> None:
    with pytest.raises(ToolchainError, match="no file of the index has sha256 0000") as caught:
        _fetch(index, tmp_path / "downloads", "0" * 64)

    assert caught.value.hint == f"pin sha256 = {index.sha256(X86)!r} ({X86})"


def test_bytes_that_do_not_hash_to_the_pin_are_not_kept(index: Index, tmp_path: Path) -> None:
    pinned = index.sha256(X86)
    index.files[X86] = index.files[X86][:-1] + b"!"  # altered on the way; the index still lists the pin
    index.listed[X86] = {"hashes": {"sha256": pinned}}

    with pytest.raises(ToolchainError, match=f"has sha256 {index.sha256(X86)}, not the pinned {pinned}"):
        _fetch(index, tmp_path / "downloads", pinned)

    assert list((tmp_path / "downloads").rglob("*.whl*")) == []


def test_a_download_larger_than_listed_is_cut_off(index: Index, tmp_path: Path) -> None:
    index.listed[X86] = {"size": 10}

    with pytest.raises(ToolchainError, match="sends more than 10 bytes"):
        _fetch(index, tmp_path / "downloads", index.sha256(X86))

    assert list((tmp_path / "downloads").rglob("*.whl*")) == []


def test_an_unknown_project_is_named(index: Index, tmp_path: Path) -> None:
    wheel = Wheel(name="nothere", version="1", sha256="0" * 64)

    with pytest.raises(ToolchainError, match="the index has no project 'nothere'"):
        wheels.fetch(wheel, tmp_path, lambda _: None, index.url, MACHINE)


def test_an_unreachable_index_says_what_to_do(tmp_path: Path) -> None:
    wheel = Wheel(name="demo", version="1", sha256="0" * 64)

    with pytest.raises(ToolchainError, match=r"cannot fetch http://127\.0\.0\.1:9/simple/demo/") as caught:
        wheels.fetch(wheel, tmp_path, lambda _: None, "http://127.0.0.1:9/simple/", MACHINE)

    assert caught.value.hint is not None and "network" in caught.value.hint


@pytest.mark.parametrize(
    ("filename", "machine", "fits"),
    [
        (X86, "x86_64", True),
        (X86, "aarch64", False),
        (ARM, "aarch64", True),
        ("demo-1.0-1-py3-none-linux_armv7l.whl", "armv7l", True),  # with a build tag
        ("demo-1.0-py3-none-macosx_11_0_x86_64.whl", "x86_64", False),
        ("demo-1.0-py3-none-win_amd64.whl", "x86_64", False),
        ("demo-1.0-py3-none-any.whl", "x86_64", False),
        ("demo-1.0.tar.gz", "x86_64", False),
        ("demo-1.1-py3-none-manylinux1_x86_64.whl", "x86_64", False),
    ],
)
def test_wheel_fits(filename: str, machine: str, fits: bool) -> None:
    assert wheels.wheel_fits(filename, "1.0", machine) is fits


def test_project_names_are_normalized_as_the_index_spells_them() -> None:
    assert wheels.normalized_name("Zig_Lang.x") == "zig-lang-x"


# --- Debian packages ---


def test_a_package_the_image_has_natively_is_requested_in_that_version() -> None:
    installed = {"libstd-rust-dev:amd64": "1.85.0+dfsg1-1", "musl:arm64": "1.2.5-3"}

    assert (
        debian.requested("libstd-rust-dev:arm64", installed, "amd64")
        == "libstd-rust-dev:arm64=1.85.0+dfsg1-1"
    )
    assert debian.requested("musl-dev:arm64", installed, "amd64") == "musl-dev:arm64"
    with pytest.raises(ToolchainError, match="malformed version"):
        debian.requested("x:arm64", {"x:amd64": "-o Dir=/"}, "amd64")


def test_apt_and_dpkg_deb_take_what_follows_double_dash_as_operands(tmp_path: Path) -> None:
    """The host's apt-get and dpkg-deb end their options at `--`: an operand that looks like an option
    is a package or a file name, never an option."""
    if shutil.which("apt-get") is None or shutil.which("dpkg-deb") is None:
        pytest.skip("apt-get and dpkg-deb are not installed")
    apt = debian.Apt(tmp_path / "state", "amd64", [], tmp_path / "log")
    apt.prepare({})

    with pytest.raises(ToolchainError, match="Unable to locate package --version"):
        apt.run("download", "--print-uris", "--", "--version", what="looking up")
    dpkg = subprocess.run(
        ["dpkg-deb", "--fsys-tarfile", "--", "--version"], capture_output=True, text=True, check=False
    )
    assert "failed to read archive '--version'" in dpkg.stderr


# --- Spec hash ---


def _toolchain(bootstrap: Bootstrap, platform_unpack: tuple[str, ...] = ()) -> Toolchain:
    return Toolchain(
        name="t",
        file=Path("t.toml"),
        image=None,
        bootstrap=bootstrap,
        env={},
        platforms={"linux/arm64": ToolchainPlatform(unpack=platform_unpack)},
    )


PLAIN = Bootstrap(suite="trixie", packages=("rustc", "gcc"))
ZIG = Wheel(
    name="ziglang",
    version="0.17.1",
    sha256="ea6cc5d87b033cf0aedfbc8f9549a908cae6c50ac31f1698188fa48a74524b54",
)


def test_without_unpack_and_wheels_the_tags_of_existing_images_stay_valid() -> None:
    spec = {
        "format": BOOTSTRAP_FORMAT,
        "suite": "trixie",
        "mirror": None,
        "components": ["main"],
        "packages": ["gcc", "rustc"],
    }
    canonical = json.dumps(spec, sort_keys=True, separators=(",", ":")).encode()

    assert spec_hash(_toolchain(PLAIN)) == hashlib.sha256(canonical).hexdigest()[:16]


def test_unpack_and_wheels_shape_the_image_tag() -> None:
    def tag(bootstrap: Bootstrap, platform_unpack: tuple[str, ...] = ()) -> str:
        return spec_hash(_toolchain(bootstrap, platform_unpack))

    unpack = Bootstrap(suite="trixie", packages=PLAIN.packages, unpack=("a:arm64", "b:arm64"))
    reordered = Bootstrap(suite="trixie", packages=PLAIN.packages, unpack=("b:arm64", "a:arm64"))
    zig = Bootstrap(suite="trixie", packages=PLAIN.packages, wheels=(ZIG,))
    other = Wheel(name=ZIG.name, version=ZIG.version, sha256="0" * 64)
    repinned = Bootstrap(suite="trixie", packages=PLAIN.packages, wheels=(other,))

    tags = [tag(PLAIN), tag(unpack), tag(PLAIN, ("a:arm64",)), tag(zig), tag(repinned)]
    assert len(set(tags)) == len(tags)
    assert tag(unpack) == tag(reordered) == tag(PLAIN, ("b:arm64", "a:arm64", "a:arm64"))


def test_unpack_architectures_are_not_installed_by_mmdebstrap() -> None:
    """Only `packages` reach mmdebstrap: an unpacked package's architecture is apt's business on the host."""
    toolchain = _toolchain(Bootstrap(suite="trixie", packages=("gcc",), unpack=("musl-dev:arm64",)))

    command = mmdebstrap_command(toolchain, Path("/tmp/o.tar"), "amd64")

    assert not any(argument.startswith("--architectures") for argument in command)
    assert "--include=gcc" in command and unpack_packages(toolchain) == ["musl-dev:arm64"]


# --- Recipe keys ---

TOOLCHAIN = """\
[toolchain]
name = "t"
languages = ["rust", "c"]

[toolchain.bootstrap]
suite = "trixie"
packages = ["rustc"]
unpack = ["musl-dev:arm64"]
wheels = { ziglang = { version = "0.17.1", sha256 = "%s" } }

[toolchain.platforms."linux/amd64"]

[toolchain.platforms."linux/arm64"]
unpack = ["libstd-rust-dev:{DEBIAN_ARCH}"]
""".replace("%s", ZIG.sha256)
FILE = "recipes/toolchains/t.toml"
SERVICE = '[service]\nname = "s"\nsource = "."\ntoolchain = "t"\nplatforms = ["linux/arm64"]\n'
SERVICE += '[build]\ncommand = ["true"]\n'


def _project(root: Path, toolchain: str) -> Path:
    (root / "recipes" / "toolchains").mkdir(parents=True)
    (root / FILE).write_text(toolchain)
    (root / "recipes" / "s.toml").write_text(SERVICE)
    return root


def test_unpack_wheels_and_languages_are_read(tmp_path: Path) -> None:
    toolchain = load_project(_project(tmp_path, TOOLCHAIN)).toolchains["t"]

    assert toolchain.languages == ("rust", "c")
    assert toolchain.bootstrap is not None
    assert toolchain.bootstrap.unpack == ("musl-dev:arm64",)
    assert toolchain.bootstrap.wheels == (ZIG,)
    assert toolchain.platforms["linux/arm64"].unpack == ("libstd-rust-dev:arm64",)
    assert toolchain.platforms["linux/amd64"].unpack == ()


def _problems(root: Path, toolchain: str) -> list[str]:
    with pytest.raises(RecipeError) as caught:
        load_project(_project(root, toolchain))
    return [str(problem) for problem in caught.value.problems]


@pytest.mark.parametrize(
    ("old", "new", "expected"),
    [
        ('"rust", "c"', '"rsut"', ":3: toolchain.languages: unknown language 'rsut' (did you mean 'rust'?"),
        ('"rust", "c"', '"cobol"', ":3: toolchain.languages: unknown language 'cobol' (known: go, rust"),
        ('["musl-dev:arm64"]', '["-o"]', ":8: toolchain.bootstrap.unpack: '-o' is not a Debian package name"),
        (
            '["musl-dev:arm64"]',
            '["musl-dev:{DEBIAN_ARCH}"]',
            ":8: toolchain.bootstrap.unpack: 'musl-dev:{DEBIAN_ARCH}' is not a Debian package name",
        ),
        (
            '"libstd-rust-dev:{DEBIAN_ARCH}"',
            '"x:{DEBIAN_ARC}"',
            ":14: toolchain.platforms.\"linux/arm64\".unpack: 'x:{DEBIAN_ARC}': {DEBIAN_ARC} is not a "
            "platform placeholder (did you mean 'DEBIAN_ARCH'?",
        ),
        (
            ', sha256 = "ea6c',
            ', sha = "ea6c',
            ":9: toolchain.bootstrap.wheels.ziglang.sha: unknown key (did you",
        ),
        (
            ', sha256 = "ea6c',
            ', sha = "ea6c',
            ":9: toolchain.bootstrap.wheels.ziglang.sha256: required but missing (the sha256 of the wheel",
        ),
        (
            'sha256 = "ea6c',
            'sha256 = "EA6C',
            ":9: toolchain.bootstrap.wheels.ziglang.sha256: 'EA6Cc5d87b033c",
        ),
        (
            'version = "0.17.1"',
            'version = "latest"',
            ":9: toolchain.bootstrap.wheels.ziglang.version: 'latest'",
        ),
        (
            "{ ziglang = { version",
            '{ "-zig" = { version',
            ":9: toolchain.bootstrap.wheels.-zig: '-zig' is not a Python project name",
        ),
        ("wheels = {", 'wheels = "ziglang"\nx = {', ":9: toolchain.bootstrap.wheels: expected a table"),
    ],
)
def test_bad_keys_are_located(tmp_path: Path, old: str, new: str, expected: str) -> None:
    assert old in TOOLCHAIN

    found = _problems(tmp_path, TOOLCHAIN.replace(old, new, 1))

    assert any(text.startswith(FILE + expected) for text in found), "\n".join(found)


def test_every_problem_of_the_new_keys_at_once(tmp_path: Path) -> None:
    toolchain = (
        TOOLCHAIN.replace('"rust", "c"', '"rsut"')
        .replace('["musl-dev:arm64"]', '["-o"]')
        .replace('version = "0.17.1", sha256', "sha256")
        .replace("{DEBIAN_ARCH}", "{NOPE}")
    )

    found = _problems(tmp_path, toolchain)

    keys = ["toolchain.languages", "toolchain.bootstrap.unpack", "wheels.ziglang.version", 'arm64".unpack']
    assert all(any(key in text for text in found) for key in keys), "\n".join(found)


def test_a_wheel_that_is_not_a_table_is_located(tmp_path: Path) -> None:
    old = '{ ziglang = { version = "0.17.1", sha256 = "ea6c'
    found = _problems(tmp_path, TOOLCHAIN.replace(old, '{ ziglang = "1", z = { sha256 = "ea6c'))

    expected = f"{FILE}:9: toolchain.bootstrap.wheels.ziglang: expected a table"
    assert any(text.startswith(expected) for text in found), "\n".join(found)


def test_the_list_shows_each_service_s_languages(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("COLUMNS", "200")

    assert main(["-C", str(_project(tmp_path, TOOLCHAIN)), "list"]) == 0

    lines = capsys.readouterr().out.splitlines()
    assert "languages" in lines[1]
    [row] = [line for line in lines if line.startswith("│ s ")]
    assert row.split("│")[3].strip() == "rust c"
