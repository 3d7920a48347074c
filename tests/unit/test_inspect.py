"""`osless inspect`: images read from layouts and archives without Docker, verdicts, what images lack."""

from __future__ import annotations

import gzip
import io
import json
import os
import shutil
import socket
import subprocess
import tarfile
from pathlib import Path
from typing import IO, Any

import pytest

from orchestrator.cli.main import main
from orchestrator.engine import Engine, ImageMissing
from orchestrator.errors import UsageError
from orchestrator.image import inspect as inspection
from orchestrator.image import oci, reader
from orchestrator.image.reader import FileType, ImageContents
from orchestrator.outputs.sizes import human_size
from orchestrator.platforms import PLATFORMS, Platform
from orchestrator.verify.findings import Finding, Severity

EPOCH = 1_700_000_000
AMD64, ARM64 = PLATFORMS["linux/amd64"], PLATFORMS["linux/arm64"]
PASSWD = b"root:x:0:0:root:/root:/sbin/nologin\n"


@pytest.fixture(scope="module")
def static_binary(tmp_path_factory: pytest.TempPathFactory) -> bytes:
    """A real static x86-64 program from the host gcc."""
    if shutil.which("gcc") is None:
        pytest.skip("the host has no gcc")
    work = tmp_path_factory.mktemp("bin")
    (work / "hello.c").write_text('#include <stdio.h>\nint main(void) { puts("hi"); return 0; }\n')
    subprocess.run(["gcc", "-static", "-Os", "-o", "hello", "hello.c"], cwd=work, check=True)
    return (work / "hello").read_bytes()


def make_image(binary: bytes, platform: Platform = AMD64, entrypoint: str = "/usr/bin/hello") -> oci.Image:
    files = [
        oci.FileEntry(path="/usr/bin/hello", data=binary, mode=0o755),
        oci.FileEntry(path="/etc/passwd", data=PASSWD, mode=0o644),
        oci.FileEntry(path="/tmp", mode=0o1777, is_dir=True),
    ]
    config = oci.ImageConfig(
        platform=platform,
        entrypoint=(entrypoint,),
        cmd=("--greet", "wörld"),
        user="65534:65534",
        env={"TZ": "UTC", "A": "1"},
        labels={"org.opencontainers.image.title": "hello"},
        created=EPOCH,
    )
    return oci.build_image(files, config)


def expected_files(binary: bytes) -> dict[str, tuple[FileType, str, int, int, int]]:
    """path -> (type, permissions, uid, gid, size): the layer's entries, parent directories included."""
    return {
        "/etc": (FileType.DIRECTORY, "drwxr-xr-x", 0, 0, 0),
        "/etc/passwd": (FileType.FILE, "-rw-r--r--", 0, 0, len(PASSWD)),
        "/tmp": (FileType.DIRECTORY, "drwxrwxrwt", 0, 0, 0),
        "/usr": (FileType.DIRECTORY, "drwxr-xr-x", 0, 0, 0),
        "/usr/bin": (FileType.DIRECTORY, "drwxr-xr-x", 0, 0, 0),
        "/usr/bin/hello": (FileType.FILE, "-rwxr-xr-x", 0, 0, len(binary)),
    }


def listing(contents: ImageContents) -> dict[str, tuple[FileType, str, int, int, int]]:
    return {p: (f.type, f.permissions, f.uid, f.gid, f.size) for p, f in contents.files.items()}


def tar_of(entries: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        for name, data in entries.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


def legacy_save(image: oci.Image, extra_layers: tuple[bytes, ...] = ()) -> bytes:
    """What Docker 20.10 `docker save` writes: <config hex>.json, <id>/layer.tar, manifest.json."""
    config_name = image.config.digest.removeprefix("sha256:") + ".json"
    files = {config_name: image.config.data, "repositories": b"{}"}
    layers = []
    for number, layer in enumerate((image.layers[0].data, *extra_layers)):
        directory = f"{number:064x}"
        files |= {f"{directory}/VERSION": b"1.0", f"{directory}/json": b"{}", f"{directory}/layer.tar": layer}
        layers.append(f"{directory}/layer.tar")
    manifest = [{"Config": config_name, "RepoTags": ["hello:latest"], "Layers": layers}]
    return tar_of({**files, "manifest.json": json.dumps(manifest).encode()})


@pytest.fixture
def layout(tmp_path: Path, static_binary: bytes) -> Path:
    """An OCI layout with an amd64 and an arm64 image (the arm64 one holds the same x86-64 binary)."""
    directory = tmp_path / "oci"
    oci.write_layout(directory, [make_image(static_binary, AMD64), make_image(static_binary, ARM64)])
    return directory


# Reading layouts and archives


def test_a_layout_lists_exactly_the_layer_entries(layout: Path, static_binary: bytes) -> None:
    contents = reader.read_image_path(layout, "linux/amd64")
    assert listing(contents) == expected_files(static_binary)
    assert contents.files["/usr/bin/hello"].data == static_binary
    assert contents.total_size == len(static_binary) + len(PASSWD)
    assert (contents.layers, contents.platforms) == (1, ("linux/amd64", "linux/arm64"))
    assert contents.image_id == make_image(static_binary).image_id


def test_the_config_is_read(layout: Path) -> None:
    settings = reader.read_image_path(layout, "linux/arm64").settings
    assert (settings.os, settings.architecture, settings.variant, settings.platform) == (
        "linux",
        "arm64",
        None,
        "linux/arm64",
    )
    assert (settings.entrypoint, settings.cmd) == (("/usr/bin/hello",), ("--greet", "wörld"))
    assert (settings.user, settings.working_dir, settings.env) == ("65534:65534", "/", ("A=1", "TZ=UTC"))
    assert settings.labels == {"org.opencontainers.image.title": "hello"}
    assert settings.created == "2023-11-14T22:13:20Z"


def test_without_platform_the_host_platform_is_chosen(layout: Path) -> None:
    assert reader.read_image_path(layout).settings.platform == "linux/amd64"


def test_a_missing_platform_names_the_available_ones(layout: Path) -> None:
    with pytest.raises(UsageError) as error:
        reader.read_image_path(layout, "linux/s390x")
    assert "no image for linux/s390x" in error.value.message
    assert "linux/amd64, linux/arm64" in (error.value.hint or "")


def test_a_docker_archive_reads_like_the_layout(tmp_path: Path, static_binary: bytes) -> None:
    image = make_image(static_binary)
    archive = tmp_path / "image.tar"
    archive.write_bytes(oci.docker_archive(image, ["hello:latest-amd64"]))
    contents = reader.read_image_path(archive)
    assert listing(contents) == expected_files(static_binary)
    assert (contents.image_id, contents.settings.platform) == (image.image_id, "linux/amd64")


def test_a_legacy_docker_save_with_gzip_layers_and_whiteouts(tmp_path: Path, static_binary: bytes) -> None:
    """Docker 20.10's save format; the second layer deletes with whiteouts and adds a symlink."""
    second = io.BytesIO()
    with tarfile.open(fileobj=second, mode="w") as tar:
        for name in ("etc/.wh.passwd", "usr/bin/.wh..wh..opq"):
            tar.addfile(tarfile.TarInfo(name))
        info = tarfile.TarInfo("usr/bin/new")
        info.size, info.mode, info.uid, info.gid = 3, 0o700, 1000, 1001
        tar.addfile(info, io.BytesIO(b"new"))
        link = tarfile.TarInfo("bin")
        link.type, link.linkname = tarfile.SYMTYPE, "usr/bin"
        tar.addfile(link)
    archive = tmp_path / "saved.tar.gz"
    archive.write_bytes(
        gzip.compress(legacy_save(make_image(static_binary), (gzip.compress(second.getvalue()),)))
    )
    contents = reader.read_image_path(archive)
    assert listing(contents) == {
        "/bin": (FileType.SYMLINK, "lrw-r--r--", 0, 0, 0),
        "/etc": (FileType.DIRECTORY, "drwxr-xr-x", 0, 0, 0),
        "/tmp": (FileType.DIRECTORY, "drwxrwxrwt", 0, 0, 0),
        "/usr": (FileType.DIRECTORY, "drwxr-xr-x", 0, 0, 0),
        "/usr/bin": (FileType.DIRECTORY, "drwxr-xr-x", 0, 0, 0),
        "/usr/bin/new": (FileType.FILE, "-rwx------", 1000, 1001, 3),
    }
    assert contents.files["/bin"].link == "usr/bin"
    assert contents.resolve("/bin/new") == contents.files["/usr/bin/new"]
    assert contents.layers == 2


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda p: p.mkdir(), "not an OCI image layout"),
        (lambda p: p.write_bytes(tar_of({"manifest.json": b"not json"})), "manifest.json is not JSON"),
        (
            lambda p: p.write_bytes(tar_of({"manifest.json": b'[{"Config": "c.json", "Layers": []}]'})),
            "missing",
        ),
    ],
)
def test_unreadable_images_are_usage_errors(tmp_path: Path, make: Any, message: str) -> None:
    path = tmp_path / "image"
    make(path)
    with pytest.raises(UsageError) as error:
        reader.read_image_path(path)
    assert message in error.value.message and error.value.hint


# Verdicts and needs


def test_every_elf_gets_a_verdict_for_the_config_platform(layout: Path) -> None:
    native = inspection.inspect_image(reader.read_image_path(layout, "linux/amd64"))
    assert native.ok and native.problems == ()
    [binary] = native.binaries
    assert binary.path == "/usr/bin/hello" and binary.ok
    assert binary.verdict.facts is not None and binary.verdict.facts.platform == "linux/amd64"
    foreign = inspection.inspect_image(reader.read_image_path(layout, "linux/arm64"))
    assert not foreign.ok
    assert "/usr/bin/hello: built for x86-64, recipe says linux/arm64" in foreign.problems[0]


def test_a_missing_entrypoint_is_a_problem(tmp_path: Path, static_binary: bytes) -> None:
    oci.write_layout(tmp_path, [make_image(static_binary, entrypoint="/app")])
    report = inspection.inspect_image(reader.read_image_path(tmp_path))
    assert report.problems == ("the entrypoint /app is not a file in the image",)


def need(extra: str, severity: Severity = Severity.WARNING) -> Finding:
    return Finding(id=f"needs.{extra}", severity=severity, message=f"uses {extra}", extra=extra)


def test_needs_are_checked_against_the_image(layout: Path) -> None:
    contents = reader.read_image_path(layout)
    findings = [need(extra) for extra in ("ca-certificates", "tzdata", "passwd", "tmp")]
    findings.append(Finding(id="linkage.static", severity=Severity.INFO, message="statically linked"))
    checks = inspection.check_needs(contents, [("/usr/bin/hello", f) for f in findings])
    assert {c.extra: c.provided for c in checks} == {
        "ca-certificates": False,
        "tzdata": False,
        "passwd": True,
        "tmp": True,
    }
    assert checks[0].message == (
        'missing: CA bundle (/etc/ssl/certs/ca-certificates.crt) — add extras = ["ca-certificates"] '
        "to [image] (needed by /usr/bin/hello)"
    )
    assert checks[2].message == "provided: user database (/etc/passwd)"


def test_an_image_with_the_extras_provides_them(tmp_path: Path, static_binary: bytes) -> None:
    files = [
        oci.FileEntry(path="/hello", data=static_binary),
        oci.FileEntry(path="/etc/ssl/certs/ca-certificates.crt", data=b"PEM", mode=0o644),
        oci.FileEntry(path="/usr/share/zoneinfo/UTC", data=b"TZif", mode=0o644),
    ]
    image = oci.build_image(files, oci.ImageConfig(platform=AMD64, entrypoint=("/hello",)))
    (tmp_path / "image.tar").write_bytes(oci.docker_archive(image, []))
    contents = reader.read_image_path(tmp_path / "image.tar")
    checks = inspection.check_needs(
        contents, [("/hello", need("ca-certificates")), ("/hello", need("tzdata"))]
    )
    assert [c.provided for c in checks] == [True, True]


def test_an_error_need_the_image_provides_does_not_fail_it(layout: Path) -> None:
    contents = reader.read_image_path(layout)
    assert inspection.check_needs(contents, [("/x", need("passwd", Severity.ERROR))])[0].provided


# The command


def test_inspect_a_layout(layout: Path, static_binary: bytes, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["inspect", str(layout), "--platform", "linux/amd64"]) == 0
    out = capsys.readouterr().out
    for path, (_, permissions, uid, gid, size) in expected_files(static_binary).items():
        assert any(
            permissions in line
            and f"{uid}:{gid}" in line
            and str(size) in line
            and line.rstrip(" │").endswith(path)
            for line in out.splitlines()
        ), (path, out)
    assert '["/usr/bin/hello"]' in out and "65534:65534" in out and "linux/amd64" in out


def test_inspect_json(layout: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["inspect", str(layout), "--platform", "linux/amd64", "--json"]) == 0
    document = json.loads(capsys.readouterr().out)
    assert (document["kind"], document["ok"], document["platform"]) == ("image", True, "linux/amd64")
    assert [f["path"] for f in document["files"]] == list(expected_files(b""))
    assert document["files"][-1]["mode"] == "0755"
    assert document["binaries"][0]["verdict"]["facts"]["linkage"] in {"static", "static-pie"}


def test_inspect_a_foreign_platform_fails_with_7(layout: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["inspect", str(layout), "--platform", "linux/arm64"]) == 7
    assert "built for x86-64" in capsys.readouterr().err


def test_inspect_a_binary(static_binary: bytes, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "hello"
    path.write_bytes(static_binary)
    assert main(["inspect", str(path)]) == 0
    out = capsys.readouterr().out
    assert "linux/amd64" in out and "linkage: static" in out and "arch.identified" not in out
    assert main(["inspect", "-v", str(path)]) == 0
    assert "  info arch.identified: built for linux/amd64" in capsys.readouterr().out
    assert main(["inspect", str(path), "--platform", "linux/arm64"]) == 7
    assert "arch.machine" in capsys.readouterr().out


def test_inspect_a_non_elf_fails_with_7(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "script.sh"
    path.write_text("#!/bin/sh\n")
    assert main(["inspect", str(path)]) == 7
    assert "not an ELF file" in capsys.readouterr().err


@pytest.mark.parametrize("target", ["./no/such/file", "/no/such/image.tar"])
def test_a_missing_path_is_a_usage_error(target: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["inspect", target]) == 2
    err = capsys.readouterr().err
    assert f"{target}: no such file or directory" in err and "hint:" in err and "Traceback" not in err


class EngineWithImages:
    """The engine interface inspect uses (`save_image`), holding archives as Docker 20.10 saves them; the
    real engine's side is tests/integration/test_inspect_images.py."""

    def __init__(self, images: dict[str, bytes]) -> None:
        self._images = images

    def save_image(self, reference: str, into: IO[bytes]) -> None:
        if reference not in self._images:
            raise ImageMissing(f"no image {reference} in the engine")
        into.write(self._images[reference])


@pytest.fixture
def engine(monkeypatch: pytest.MonkeyPatch, static_binary: bytes) -> EngineWithImages:
    engine = EngineWithImages({"hello:latest-amd64": legacy_save(make_image(static_binary))})
    monkeypatch.setattr(Engine, "connect", staticmethod(lambda: engine))
    return engine


def test_inspect_an_engine_image(
    engine: EngineWithImages, static_binary: bytes, capsys: pytest.CaptureFixture[str]
) -> None:
    contents = reader.read_engine_image("hello:latest-amd64")
    assert listing(contents) == expected_files(static_binary)
    assert contents.image_id == make_image(static_binary).image_id
    assert main(["inspect", "hello:latest-amd64"]) == 0
    assert "/usr/bin/hello" in capsys.readouterr().out


def test_an_unknown_reference_is_a_usage_error(
    engine: EngineWithImages, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["inspect", "nosuch:latest"]) == 2
    err = capsys.readouterr().err
    assert "no image nosuch:latest in the engine" in err and "hint:" in err and "Traceback" not in err


def test_a_reference_without_an_engine_is_an_engine_error(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("DOCKER_HOST", "unix:///nonexistent/docker.sock")
    assert main(["inspect", "hello:latest"]) == 4
    err = capsys.readouterr().err
    assert "hello:latest is no file or directory, and no Docker engine answers" in err
    assert "Traceback" not in err


NEEDS_C = """#include <stdio.h>
#include <stdlib.h>
int main(void) {
    char path[] = "/tmp/xXXXXXX";
    FILE *ca = fopen("/etc/ssl/certs/ca-certificates.crt", "r");
    printf("%d %p\\n", mkstemp(path), (void *)ca);
    return 0;
}
"""


def test_an_image_says_which_needs_it_lacks(
    tmp_path: Path, static_binary: bytes, capsys: pytest.CaptureFixture[str]
) -> None:
    """A real binary needing a CA bundle and /tmp, in an image with /tmp only: the CA bundle is missing
    (a warning, so the image still passes), /tmp is provided (the finding becomes INFO, as in a build)."""
    (tmp_path / "needs.c").write_text(NEEDS_C)
    subprocess.run(["gcc", "-static", "-Os", "-o", "needs", "needs.c"], cwd=tmp_path, check=True)
    oci.write_layout(tmp_path / "oci", [make_image((tmp_path / "needs").read_bytes())])
    report = inspection.inspect_image(reader.read_image_path(tmp_path / "oci"))
    assert {(n.extra, n.provided) for n in report.needs} == {("ca-certificates", False), ("tmp", True)}
    severities = {f.id: f.severity for f in report.binaries[0].verdict.findings}
    assert severities["needs.ca-certificates"] is Severity.WARNING
    assert severities["needs.tmp"] is Severity.INFO
    assert report.ok
    assert main(["inspect", str(tmp_path / "oci")]) == 0
    out = capsys.readouterr().out
    missing = "missing: CA bundle (/etc/ssl/certs/ca-certificates.crt) — "
    assert missing + 'add extras = ["ca-certificates"] to [image]' in out
    assert "provided: temporary directory (/tmp)" in out


# User text is never markup; special files are never opened; only ELF bytes are kept, within limits

MARKUP = ("[/x]", "[bold]", "[/]", "[red]x[/red]", "[link=file:///etc]y")


def test_image_text_is_printed_as_written(
    tmp_path: Path, static_binary: bytes, capsys: pytest.CaptureFixture[str]
) -> None:
    """File names, links, config values and labels from the image hold markup-like text: shown as is."""
    files = [
        oci.FileEntry(path="/usr/bin/hello", data=static_binary, mode=0o755),
        *(
            oci.FileEntry(path=f"/data/{text.replace('/', '_')}{n}", data=b"x")
            for n, text in enumerate(MARKUP)
        ),
        oci.FileEntry(path="/[bold]/[/x]", data=b"x"),
    ]
    config = oci.ImageConfig(
        platform=AMD64,
        entrypoint=("/[/x]-missing", "[bold]"),
        cmd=("[/]",),
        user="[red]",
        env={"A": "[/x]"},
        labels={"[/x]": "[bold]v[/bold]", "l": "[/]"},
    )
    directory = tmp_path / "oci"
    oci.write_layout(directory, [oci.build_image(files, config)])
    assert main(["inspect", str(directory)]) == 7  # the entrypoint is missing
    captured = capsys.readouterr()
    out = captured.out
    assert "Traceback" not in captured.err
    for shown in ("/[bold]/[/x]", '"/[/x]-missing"', "[red]", "A=[/x]", "[/x]=[bold]v[/bold]", "l=[/]"):
        assert shown in out, (shown, out)
    assert "the entrypoint /[/x]-missing is not a file in the image" in out + captured.err


@pytest.mark.parametrize("text", ["[/x] hello", "[bold]unclosed", "[/]", "\\[/x]"])
def test_a_text_file_starting_with_markup_is_shown_as_written(
    tmp_path: Path, text: str, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "notes.txt"
    path.write_text(text + "\n")
    assert main(["inspect", str(path)]) == 7
    captured = capsys.readouterr()
    assert f"not an ELF file (starts with '{text}')" in captured.out, captured.out
    assert "Traceback" not in captured.err


def test_a_binary_whose_name_is_markup_is_shown_as_written(
    tmp_path: Path, static_binary: bytes, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "[bold]x[/b]"  # a directory "[bold]x[" holding "b]"
    path.parent.mkdir()
    path.write_bytes(static_binary)
    assert main(["inspect", str(path)]) == 0
    assert f"{path}: ok" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("kind", "message"),
    [
        ("char-device", "is a character device, not a regular file"),
        ("fifo", "is a FIFO (named pipe), not a regular file"),
        ("socket", "is a socket, not a regular file"),
    ],
)
def test_special_files_are_usage_errors(
    tmp_path: Path, kind: str, message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """Like a missing path (exit 2), never opened: a FIFO would block, /dev/zero never end."""
    path, server = Path("/dev/zero"), None
    if kind == "fifo":
        path = tmp_path / "fifo"
        os.mkfifo(path)
    elif kind == "socket":
        path = tmp_path / "socket"
        server = socket.socket(socket.AF_UNIX)
        server.bind(str(path))
    try:
        code = main(["inspect", str(path)])
    finally:
        if server is not None:
            server.close()
    assert code == 2
    assert f"{path} {message}" in capsys.readouterr().err


def test_only_elf_bytes_are_kept_from_an_image(layout: Path, static_binary: bytes) -> None:
    contents = reader.read_image_path(layout, "linux/amd64")
    assert contents.files["/usr/bin/hello"].data == static_binary
    passwd = contents.files["/etc/passwd"]
    assert (passwd.data, passwd.size) == (None, len(PASSWD))


def test_elf_files_beyond_the_read_budget_are_a_problem(
    tmp_path: Path, static_binary: bytes, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The image's ELF files are kept in memory up to a budget; the rest are named, never skipped silently."""
    files = [
        oci.FileEntry(path="/usr/bin/hello", data=static_binary, mode=0o755),
        oci.FileEntry(path="/usr/bin/second", data=static_binary, mode=0o755),
    ]
    directory = tmp_path / "oci"
    config = oci.ImageConfig(platform=AMD64, entrypoint=("/usr/bin/hello",))
    oci.write_layout(directory, [oci.build_image(files, config)])
    monkeypatch.setattr(reader, "MAX_ELF_BYTES", len(static_binary) + 1)
    report = inspection.inspect_image(reader.read_image_path(directory))
    assert [b.path for b in report.binaries] == ["/usr/bin/hello"]
    assert report.problems == (
        "/usr/bin/second: not verified: the image's ELF files hold more than the "
        f"{human_size(len(static_binary) + 1)} osless reads",
    )


def test_a_config_platform_holding_markup_is_shown_as_written(
    tmp_path: Path, static_binary: bytes, capsys: pytest.CaptureFixture[str]
) -> None:
    """The title line shows the config's os/architecture/variant, which the image's author chose."""
    image = make_image(static_binary)
    config = json.loads(image.config.data)
    config["variant"] = "[/x]"
    config_name = "config.json"
    manifest = [{"Config": config_name, "RepoTags": ["hello:latest"], "Layers": ["layer.tar"]}]
    archive = tmp_path / "image.tar"
    archive.write_bytes(
        tar_of(
            {
                config_name: json.dumps(config).encode(),
                "layer.tar": image.layers[0].data,
                "manifest.json": json.dumps(manifest).encode(),
            }
        )
    )
    assert main(["inspect", str(archive)]) == 7  # linux/amd64/[/x] is no platform osless knows
    captured = capsys.readouterr()
    assert f"{archive} (linux/amd64/[/x]): FAIL" in captured.out
    assert "platform linux/amd64/[/x] is not one osless knows" in captured.out + captured.err
