"""The shared result cache against an in-process fake registry: what an entry holds, that every byte
read is checked, and that anything wrong is an InvalidEntry (a note and a rebuild), never a crash."""

from __future__ import annotations

import hashlib
import json
import socket
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from orchestrator.cli.main import main
from orchestrator.errors import UsageError
from orchestrator.image import registry
from orchestrator.outputs import summary
from orchestrator.outputs.junit import junit_xml
from orchestrator.outputs.report import BinaryInfo, ImageInfo, Status, TargetReport, report_json
from orchestrator.pipeline import remote_cache
from orchestrator.pipeline.cache import InvalidEntry
from orchestrator.platforms import PLATFORMS
from orchestrator.stages.smoke import SmokeResult
from tests.factories import true_recipe
from tests.run_reports import report, target
from tests.unit.test_registry import FakeRegistry

AMD64 = PLATFORMS["linux/amd64"]
KEY = "a" * 64
BINARY = b"\x7fELF not really a program"


class BlobServingRegistry(FakeRegistry):
    """The push fake, also answering `GET /v2/<repo>/blobs/<digest>` with what it stored."""

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        base = super()._handler()
        fake = self

        class Handler(base):  # type: ignore[valid-type,misc]
            def do_GET(self) -> None:
                parts = urlsplit(self.path).path.split("/")
                if parts[-2] == "blobs":
                    fake.requests.append(("GET", urlsplit(self.path).path))
                    data = fake.blobs.get(parts[-1])
                    self.answer(200, data) if data is not None else self.answer(404)
                else:
                    self.route()

        return Handler


@pytest.fixture
def fake() -> Iterator[BlobServingRegistry]:
    server = BlobServingRegistry()
    server.thread.start()
    yield server
    server.server.shutdown()
    server.server.server_close()


def _cache(fake: FakeRegistry) -> remote_cache.RemoteCache:
    return remote_cache.RemoteCache(registry.parse_reference(f"{fake.address}/team/cache"), timeout=5)


def _output_dir(root: Path) -> tuple[Path, TargetReport]:
    """A passed target's output directory and its report, as a build leaves them."""
    output = root / "out" / "app" / AMD64.slug
    (output / "bin").mkdir(parents=True)
    (output / "records").mkdir()
    (output / "bin" / "app").write_bytes(BINARY)
    (output / "bin" / "app").chmod(0o755)
    (output / "build.log").write_text("$ cc -o app main.c\n")
    (output / "records" / "go.sum").write_text("example.com/x v1.0.0 h1:abc\n")
    for unsent in ("image.tar", "verify.json", "result.json"):
        (output / unsent).write_text("not sent")
    smoke = SmokeResult(
        passed=True,
        emulated=False,
        exit_code=0,
        stdout="hi\n",
        stderr="",
        seconds=0.1,
        reason=None,
        diff=None,
    )
    report = TargetReport(
        service="app",
        platform=AMD64.name,
        status=Status.PASSED,
        failed_stage=None,
        reason=None,
        toolchain_image="sha256:" + "1" * 64,
        binary=BinaryInfo(
            path=str(output / "bin" / "app"),
            size=len(BINARY),
            sha256=hashlib.sha256(BINARY).hexdigest(),
            linkage="static",
            platform=AMD64.name,
        ),
        verify_findings=[],
        image=ImageInfo(
            tag="app:latest-amd64",
            image_id="sha256:" + "2" * 64,
            manifest_digest="sha256:" + "3" * 64,
            size=9,
        ),
        smoke=smoke,
        seconds={"build": 3.0},
        log=str(output / "build.log"),
    )
    return output, report


def _upload(fake: FakeRegistry, tmp_path: Path) -> TargetReport:
    output, report = _output_dir(tmp_path / "a")
    where = _cache(fake).upload(
        KEY, report=report, output_dir=output, smoke_host="linux/amd64", work=tmp_path / "a" / "work"
    )
    assert where.startswith(f"{fake.address}/team/cache@sha256:")
    return report


def _fetch(fake: FakeRegistry, tmp_path: Path, key: str = KEY) -> remote_cache.Entry | None:
    output = tmp_path / "b" / "out" / "app" / AMD64.slug
    return _cache(fake).fetch(
        key, service="app", platform=AMD64, staging=tmp_path / "b" / "staging", output_dir=output
    )


def test_an_entry_round_trips_with_paths_in_the_new_out(fake: BlobServingRegistry, tmp_path: Path) -> None:
    sent = _upload(fake, tmp_path)
    entry = _fetch(fake, tmp_path)
    assert entry is not None
    staging = tmp_path / "b" / "staging"
    assert sorted(p.relative_to(staging).as_posix() for p in staging.rglob("*") if p.is_file()) == [
        "bin/app",
        "build.log",
        "records/go.sum",
    ]
    assert (staging / "bin" / "app").read_bytes() == BINARY
    assert (staging / "bin" / "app").stat().st_mode & 0o777 == 0o755
    output = tmp_path / "b" / "out" / "app" / AMD64.slug
    assert entry.report.binary is not None and sent.binary is not None
    assert entry.report.binary.path == str(output / "bin" / "app")
    assert entry.report.binary.sha256 == sent.binary.sha256
    assert entry.report.log == str(output / "build.log")
    assert entry.report.result_from == "remote-cache" and entry.report.cached
    assert entry.smoke_host == "linux/amd64"
    assert entry.source.startswith(f"{fake.address}/team/cache@sha256:")
    assert _cache(fake).has(KEY) and not _cache(fake).has("b" * 64)


def test_a_missing_entry_is_a_miss(fake: BlobServingRegistry, tmp_path: Path) -> None:
    assert _fetch(fake, tmp_path) is None


def test_a_blob_with_other_bytes_is_an_invalid_entry(fake: BlobServingRegistry, tmp_path: Path) -> None:
    _upload(fake, tmp_path)
    digest = "sha256:" + hashlib.sha256(BINARY).hexdigest()
    fake.blobs[digest] = BINARY[:-1] + b"X"
    with pytest.raises(InvalidEntry, match="holds other bytes"):
        _fetch(fake, tmp_path)


def test_an_entry_under_another_key_is_an_invalid_entry(fake: BlobServingRegistry, tmp_path: Path) -> None:
    _upload(fake, tmp_path)
    fake.manifests["b" * 64] = fake.manifests[KEY]
    with pytest.raises(InvalidEntry, match="key"):
        _fetch(fake, tmp_path, key="b" * 64)


def _tampered(fake: FakeRegistry, change: Callable[[dict[str, object]], None]) -> None:
    media_type, data = fake.manifests[KEY]
    manifest = json.loads(data)
    change(manifest)
    fake.manifests[KEY] = (media_type, json.dumps(manifest).encode())


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (
            lambda m: m["layers"][0]["annotations"].update({remote_cache.TITLE: "../../etc/passwd"}),
            "names a file",
        ),
        (lambda m: m["layers"][0]["annotations"].update({remote_cache.TITLE: "/abs"}), "names a file"),
        (lambda m: m["layers"][1]["annotations"].update({remote_cache.TITLE: "bin/app"}), "twice"),
        (lambda m: m["layers"][0].update({"size": 2 * 1024**3}), "size"),
        (lambda m: m["config"].update({"mediaType": "application/json"}), "not an osless result entry"),
        (lambda m: m["layers"][0].update({"digest": "md5:00"}), "sha256"),
        (lambda m: m["layers"][0]["annotations"].update({remote_cache.MODE: "4755"}), "mode"),
    ],
)
def test_a_manifest_that_breaks_the_rules_is_an_invalid_entry(
    fake: BlobServingRegistry, tmp_path: Path, change: Callable[[dict[str, object]], None], message: str
) -> None:
    _upload(fake, tmp_path)
    _tampered(fake, change)
    with pytest.raises(InvalidEntry, match=message):
        _fetch(fake, tmp_path)


def test_a_report_naming_a_file_the_entry_lacks_is_an_invalid_entry(tmp_path: Path) -> None:
    output, report = _output_dir(tmp_path)
    document = json.dumps(remote_cache.entry_document(KEY, report, output, None)).encode()
    with pytest.raises(InvalidEntry, match="does not hold"):
        remote_cache.read_document(
            document, key=KEY, service="app", platform=AMD64, names={"build.log"}, output_dir=tmp_path / "b"
        )
    with pytest.raises(InvalidEntry, match="platform"):
        remote_cache.read_document(
            document,
            key=KEY,
            service="app",
            platform=PLATFORMS["linux/arm64"],
            names={"bin/app", "build.log"},
            output_dir=tmp_path / "b",
        )


def test_an_unreachable_registry_is_tried_once(tmp_path: Path) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    cache = remote_cache.RemoteCache(registry.parse_reference(f"127.0.0.1:{port}/team/cache"), timeout=2)
    first = cache.unusable()
    assert first is not None and "cannot reach" in first
    assert cache.unusable() == first


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("127.0.0.1:5000/team/cache:v1", "without a tag"),
        ("cache", "names no registry"),
        ("a/b@sha256:00", "digest"),
    ],
)
def test_cache_references_are_repositories(text: str, message: str) -> None:
    with pytest.raises(UsageError, match=message):
        remote_cache.parse_cache_reference(text, "--cache-to")
    assert str(remote_cache.parse_cache_reference("127.0.0.1:5000/team/cache", "--cache-to")) == (
        "127.0.0.1:5000/team/cache"
    )


@pytest.mark.parametrize(
    ("name", "safe"),
    [
        ("bin/app", True),
        ("records/go.sum", True),
        ("a/../b", False),
        ("", False),
        ("/x", False),
        ("a//b", False),
        ("a b", False),
    ],
)
def test_safe_names(name: str, safe: bool) -> None:
    assert remote_cache.safe_name(name) is safe


def test_entry_files_leave_out_what_a_hit_makes_again(tmp_path: Path) -> None:
    output, _ = _output_dir(tmp_path)
    assert sorted(remote_cache.entry_files(output)) == ["bin/app", "build.log", "records/go.sum"]
    (output / "records" / "link").symlink_to("go.sum")
    with pytest.raises(InvalidEntry, match="records/link"):
        remote_cache.entry_files(output)


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        (["--trust-cache-smoke"], "--trust-cache-smoke needs --cache-from"),
        (["--check-reproducible", "--cache-to", "127.0.0.1:5000/c"], "does not combine"),
        (["--cache-from", "127.0.0.1:5000/c:v1"], "without a tag"),
    ],
)
def test_cache_options_are_checked_before_the_engine(
    make_project: Callable[[dict[str, str]], Path],
    capsys: pytest.CaptureFixture[str],
    arguments: list[str],
    message: str,
) -> None:
    project = make_project({"recipes/ok.toml": true_recipe("ok"), "sources/ok/.keep": ""})
    assert main(["-C", str(project), "build", *arguments]) == 2
    assert message in capsys.readouterr().err


def test_reports_say_where_a_result_comes_from() -> None:
    remote = target("good", "linux/arm64", cached=True, result_from="remote-cache", notes=["from r@sha256:1"])
    run = report(target("good"), target("good", "linux/386", cached=True, result_from="local-cache"), remote)
    table = summary.markdown(run)
    assert "| good | linux/arm64 | ✅ passed (remote cache) |" in table
    assert "| good | linux/386 | ✅ passed (cached) |" in table
    assert "3 passed (2 cached, 1 from a remote cache), 0 failed" in table
    document = json.loads(report_json(run))
    assert [t["result_from"] for t in document["targets"]] == ["built", "local-cache", "remote-cache"]
    xml = junit_xml(run).decode()
    assert "remote cache: inputs unchanged" in xml and "from r@sha256:1" in xml
