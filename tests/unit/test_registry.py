"""`osless push` against a tiny in-process fake registry: what is sent, skipped, checked and refused."""

from __future__ import annotations

import base64
import hashlib
import json
import socket
import threading
import uuid
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest

from orchestrator.cli.main import main
from orchestrator.errors import RegistryError, UsageError
from orchestrator.image import oci, registry
from orchestrator.platforms import PLATFORMS
from tests.factories import service_recipe

SERVICE = "app"
RECIPE = service_recipe(
    SERVICE,
    ["true"],
    source="sources/app",
    platforms=["linux/amd64", "linux/arm64"],
    more='[image]\ntag = "1.2"\n',
)


def _digest(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


class FakeRegistry:
    """Just enough of the distribution API v2 for a monolithic push; records every request."""

    def __init__(self) -> None:
        self.blobs: dict[str, bytes] = {}
        self.manifests: dict[str, tuple[str, bytes]] = {}  # digest or tag -> (media type, bytes)
        self.requests: list[tuple[str, str]] = []
        self.lie_about_tags = False  # answer a tag PUT with a wrong Docker-Content-Digest
        self.basic_auth: str | None = None  # "user:password" required when set
        self.bearer = False  # ask for a Bearer token from /token first
        self.tokens: list[dict[str, list[str]]] = []  # token requests' query parameters
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.thread = threading.Thread(target=self.server.serve_forever, args=(0.05,), daemon=True)

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.server.server_address[1]}"

    def uploads(self) -> list[str]:
        return [path for method, path in self.requests if method == "PUT" and "/blobs/uploads/" in path]

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: object) -> None:
                pass

            def answer(self, status: int, body: bytes = b"", headers: dict[str, str] | None = None) -> None:
                self.send_response(status)
                for key, value in (headers or {}).items():
                    self.send_header(key, value)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(body)

            def body(self) -> bytes:
                return self.rfile.read(int(self.headers.get("Content-Length") or 0))

            def authorized(self) -> bool:
                given = self.headers.get("Authorization") or ""
                if fake.bearer and given != "Bearer secret-token":
                    realm = f"http://{fake.address}/token"
                    challenge = f'Bearer realm="{realm}",service="fake"'
                    self.answer(401, b"{}", {"WWW-Authenticate": challenge})
                    return False
                if (
                    fake.basic_auth
                    and given != "Basic " + base64.b64encode(fake.basic_auth.encode()).decode()
                ):
                    self.answer(401, b"{}", {"WWW-Authenticate": 'Basic realm="fake"'})
                    return False
                return True

            def route(self) -> None:
                url = urlsplit(self.path)
                fake.requests.append((self.command, url.path))
                if url.path == "/token":
                    fake.tokens.append(parse_qs(url.query))
                    self.answer(200, json.dumps({"token": "secret-token"}).encode())
                    return
                if not self.authorized():
                    return
                if url.path == "/v2/":
                    self.answer(200, b"{}")
                    return
                parts = url.path.split("/")
                kind, reference = parts[-2], parts[-1]
                if self.command == "POST" and url.path.endswith("/blobs/uploads/"):
                    location = f"{url.path}{uuid.uuid4()}?_state=abc"
                    self.answer(202, headers={"Location": location})
                elif self.command == "PUT" and kind == "uploads":
                    digest = parse_qs(url.query)["digest"][0]
                    data = self.body()
                    if _digest(data) != digest:
                        self.answer(
                            400, b'{"errors":[{"code":"DIGEST_INVALID","message":"digest mismatch"}]}'
                        )
                        return
                    fake.blobs[digest] = data
                    self.answer(201, headers={"Docker-Content-Digest": digest})
                elif self.command == "HEAD" and kind == "blobs":
                    self.answer(200 if reference in fake.blobs else 404)
                elif self.command == "PUT" and kind == "manifests":
                    data = self.body()
                    fake.manifests[reference] = (self.headers["Content-Type"], data)
                    fake.manifests[_digest(data)] = fake.manifests[reference]
                    lie = fake.lie_about_tags and not reference.startswith("sha256:")
                    digest = _digest(data + b"tampered") if lie else _digest(data)
                    self.answer(201, headers={"Docker-Content-Digest": digest})
                elif self.command in ("HEAD", "GET") and kind == "manifests":
                    if reference not in fake.manifests:
                        self.answer(404, b'{"errors":[{"code":"MANIFEST_UNKNOWN","message":"unknown"}]}')
                        return
                    media_type, data = fake.manifests[reference]
                    headers = {"Content-Type": media_type, "Docker-Content-Digest": _digest(data)}
                    self.answer(200, data, headers)
                else:
                    self.answer(405)

            do_GET = do_HEAD = do_POST = do_PUT = route

        return Handler


@pytest.fixture
def fake() -> Iterator[FakeRegistry]:
    server = FakeRegistry()
    server.thread.start()
    yield server
    server.server.shutdown()
    server.server.server_close()


def _image(platform: str, text: str) -> oci.Image:
    config = oci.ImageConfig(platform=PLATFORMS[platform], entrypoint=("/app",), created=1700000000)
    return oci.build_image([oci.FileEntry(path="/app", data=text.encode())], config)


@pytest.fixture
def project(make_project: Callable[[dict[str, str]], Path]) -> Path:
    """A project whose out/app/oci holds a two-platform layout (written directly, no engine)."""
    root = make_project({"recipes/app.toml": RECIPE, "sources/app/main.c": "int main(void) { return 0; }\n"})
    images = [_image("linux/amd64", "amd64 binary"), _image("linux/arm64", "arm64 binary")]
    oci.write_layout(root / "out" / SERVICE / "oci", images)
    return root


def _layout(project: Path) -> Path:
    return project / "out" / SERVICE / "oci"


def _local_digest(project: Path) -> str:
    return _digest((_layout(project) / "index.json").read_bytes())


def _push(project: Path, to: str, capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    code = main(["-C", str(project), "push", SERVICE, "--to", to])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_push_sends_the_layout_unchanged_under_the_recipe_tag(
    fake: FakeRegistry, project: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = _push(project, f"{fake.address}/team/app", capsys)
    assert code == 0, err
    digest = _local_digest(project)
    media_type, stored = fake.manifests["1.2"]  # the recipe's image.tag
    assert media_type == oci.MEDIA_TYPE_INDEX
    assert stored == (_layout(project) / "index.json").read_bytes()
    assert f"@{digest}" in out and "4 blobs uploaded" in out
    for name in ("config", "layer"):
        assert sum("uploaded blob" in line and name in line for line in out.splitlines()) == 2
    # Every blob and manifest went in, byte for byte, before the index.
    for path in (_layout(project) / oci.BLOBS_DIR).iterdir():
        data = path.read_bytes()
        assert data in (fake.blobs.get(_digest(data)), fake.manifests.get(_digest(data), ("", b""))[1])
    order = [path for method, path in fake.requests if method == "PUT"]
    assert order[-1].endswith("/manifests/1.2")


def test_a_second_push_skips_what_the_registry_has(
    fake: FakeRegistry, project: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    target = registry.parse_reference(f"{fake.address}/team/app:v1")
    first = registry.push(_layout(project), target)
    assert (first.blobs_uploaded, first.blobs_skipped, first.manifests_uploaded) == (4, 0, 2)
    uploads = len(fake.uploads())
    seen: list[registry.Transfer] = []
    second = registry.push(_layout(project), target, progress=seen.append)
    assert len(fake.uploads()) == uploads, "nothing is uploaded again"
    assert (second.blobs_uploaded, second.bytes_uploaded, second.manifests_uploaded) == (0, 0, 0)
    assert second.blobs_skipped == 4 and second.bytes_skipped == first.bytes_uploaded
    assert second.digest == first.digest == _local_digest(project)
    assert len(seen) == 6 and not any(transfer.uploaded for transfer in seen)


def test_a_digest_the_registry_changed_is_a_clean_error(
    fake: FakeRegistry, project: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    fake.lie_about_tags = True
    code, _, err = _push(project, f"{fake.address}/team/app:v1", capsys)
    assert code == RegistryError.exit_code == 8
    assert "Traceback" not in err
    assert f"but its local digest is {_local_digest(project)}" in err
    assert "hint:" in err


def test_an_unreachable_registry_is_a_clean_error_with_a_hint(
    project: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # closed again below: nothing listens there
    code, _, err = _push(project, f"127.0.0.1:{port}/team/app:v1", capsys)
    assert code == 8
    lines = err.strip().splitlines()
    assert len(lines) == 2, err
    assert f"cannot reach the registry at http://127.0.0.1:{port}: Connection refused" in lines[0]
    assert lines[1].strip().startswith("hint: is the registry running")


@pytest.mark.parametrize(
    ("to", "problem"),
    [
        ("team/app:v1", "not a registry host"),
        ("app", "names no registry and repository"),
        ("127.0.0.1:5000/", "names no registry and repository"),
        ("127.0.0.1:5000/Team/App", "not a valid repository name"),
        ("127.0.0.1:5000/team/app:-bad", "not a valid tag"),
        ("127.0.0.1:5000/team/app@sha256:" + "0" * 64, "cannot push to a digest reference"),
        ("127.0.0.1:99999/team/app", "not a registry host"),
    ],
)
def test_bad_to_syntax_is_a_usage_error(
    project: Path, capsys: pytest.CaptureFixture[str], to: str, problem: str
) -> None:
    with pytest.raises(UsageError, match=problem):
        registry.parse_reference(to)
    code, _, err = _push(project, to, capsys)
    assert code == UsageError.exit_code == 2
    assert problem in err and "hint:" in err


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("127.0.0.1:5000/team/app:v1", ("127.0.0.1:5000", "team/app", "v1")),
        ("localhost/app", ("localhost", "app", None)),
        ("[::1]:5000/a/b/c:1.0", ("[::1]:5000", "a/b/c", "1.0")),
        ("registry.example.com/team/my_app-x", ("registry.example.com", "team/my_app-x", None)),
    ],
)
def test_good_references_parse(text: str, expected: tuple[str, str, str | None]) -> None:
    reference = registry.parse_reference(text)
    assert (reference.registry, reference.repository, reference.tag) == expected
    assert str(reference) == text


def test_a_broken_layout_is_refused_before_contacting_the_registry(
    fake: FakeRegistry, project: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    layer = next(p for p in (_layout(project) / oci.BLOBS_DIR).iterdir() if p.stat().st_size > 1024)
    layer.write_bytes(layer.read_bytes()[:-1] + b"x")
    code, _, err = _push(project, f"{fake.address}/team/app:v1", capsys)
    assert code == 8 and "refusing to push the broken layout" in err
    assert fake.requests == []


def test_a_missing_layout_says_to_build_first(
    fake: FakeRegistry, project: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(["-C", str(project), "push", SERVICE, "--to", f"{fake.address}/a", "--out", "/nonexistent"])
    assert code == 2 and "osless build app" in capsys.readouterr().err
    assert fake.requests == []


def test_basic_auth_from_the_docker_config(
    fake: FakeRegistry, project: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    fake.basic_auth = "alice:s3cret"
    target = registry.parse_reference(f"{fake.address}/team/app:v1")
    monkeypatch.setenv("DOCKER_CONFIG", str(tmp_path / "empty"))
    with pytest.raises(RegistryError, match="requires a login and no credentials were found"):
        registry.push(_layout(project), target)
    config = tmp_path / "docker"
    config.mkdir()
    auth = base64.b64encode(b"alice:s3cret").decode()
    (config / "config.json").write_text(json.dumps({"auths": {f"http://{fake.address}/v1/": {"auth": auth}}}))
    monkeypatch.setenv("DOCKER_CONFIG", str(config))
    result = registry.push(_layout(project), target)
    assert result.digest == _local_digest(project) and result.blobs_uploaded == 4


def test_bearer_token_from_the_challenge(fake: FakeRegistry, project: Path) -> None:
    fake.bearer = True
    target = registry.parse_reference(f"{fake.address}/team/app:v1")
    result = registry.push(
        _layout(project), target, credentials=registry.Credentials(username="u", password="p")
    )
    assert result.digest == _local_digest(project)
    assert fake.tokens == [{"scope": ["repository:team/app:pull,push"], "service": ["fake"]}]
