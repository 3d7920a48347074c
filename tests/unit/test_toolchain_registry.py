"""Toolchain images from a registry, without an engine: which references are pulled, how the engine's
pull errors read, the digest check, and the OCI layout written from a `docker save` stream."""

from __future__ import annotations

import base64
import hashlib
import io
import json
import tarfile
from pathlib import Path
from typing import IO, Any

import pytest

from orchestrator.cli.parser import build_parser
from orchestrator.engine import PullRefused
from orchestrator.errors import ToolchainError, UsageError
from orchestrator.image import oci
from orchestrator.image.toolchain_registry import PullFailed, RemoteImage, provide, remote_image, write_layout
from orchestrator.recipe.convert import Invalid, as_image_reference
from orchestrator.recipe.model import Bootstrap, Toolchain
from orchestrator.stages.toolchain import _given_image, provision

DIGEST = "sha256:" + "ab" * 32
OTHER = "sha256:" + "cd" * 32


@pytest.mark.parametrize("text", ["gcc:14", "team/builder:1", "builder", "team/sub/builder@" + DIGEST])
def test_a_name_without_a_registry_host_is_local(text: str) -> None:
    assert remote_image(text) is None


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            f"127.0.0.1:5000/team/gcc@{DIGEST}",
            RemoteImage(registry="127.0.0.1:5000", repository="team/gcc", digest=DIGEST),
        ),
        (
            "registry.example.com/gcc:v1",
            RemoteImage(registry="registry.example.com", repository="gcc", tag="v1"),
        ),
        ("localhost/gcc", RemoteImage(registry="localhost", repository="gcc")),
        (
            f"registry.example.com/o/gcc:v1@{DIGEST}",
            RemoteImage(registry="registry.example.com", repository="o/gcc", tag="v1", digest=DIGEST),
        ),
    ],
)
def test_a_registry_reference_is_parsed(text: str, expected: RemoteImage) -> None:
    assert remote_image(text) == expected
    assert str(expected) == text


def test_the_engine_names_a_pinned_image_by_digest_and_another_by_tag() -> None:
    assert RemoteImage(registry="r.io", repository="a", tag="v1", digest=DIGEST).local == f"r.io/a@{DIGEST}"
    assert RemoteImage(registry="r.io", repository="a", tag="v1").local == "r.io/a:v1"
    assert RemoteImage(registry="r.io", repository="a").local == "r.io/a:latest"


@pytest.mark.parametrize(
    "text",
    [
        "r.io/team/gcc@sha512:" + "a" * 128,
        "r.io/team/gcc@sha256:" + "A" * 64,
        "r.io/team/gcc@sha256:abc",
        "r.io/Team/gcc:v1",
        "r.io/team/gcc:-v1",
    ],
)
def test_a_bad_registry_reference_is_refused_in_the_recipe(text: str) -> None:
    with pytest.raises(UsageError):
        remote_image(text)
    with pytest.raises(Invalid) as error:
        as_image_reference(text)
    assert error.value.hint


def test_the_parser_knows_toolchain_push() -> None:
    args = build_parser().parse_args(["toolchain", "push", "gcc", "--to", "127.0.0.1:5000/t/gcc"])
    assert (args.name, args.to, args.insecure) == ("gcc", "127.0.0.1:5000/t/gcc", False)


class FakeEngine:
    """The engine calls provide() makes: local images by name, a pull that does what the test says."""

    def __init__(self, *, images: dict[str, str], digests: list[str], pull_error: str | None = None) -> None:
        self.images = images
        self.digests = digests
        self.pull_error = pull_error
        self.pulls: list[tuple[str, str, Any]] = []
        self.after_pull: dict[str, str] = {}

    def image_id(self, reference: str) -> str | None:
        return self.images.get(reference)

    def pull_image(self, repository: str, tag: str, *, credentials: Any, progress: Any) -> None:
        self.pulls.append((repository, tag, credentials))
        if self.pull_error is not None:
            raise PullRefused(f"cannot pull {repository}: {self.pull_error}", reason=self.pull_error)
        self.images.update(self.after_pull)

    def repo_digests(self, reference: str) -> list[str]:
        return self.digests


def test_a_present_pinned_image_is_not_pulled() -> None:
    engine = FakeEngine(images={f"r.io/a@{DIGEST}": "sha256:1"}, digests=[f"r.io/a@{DIGEST}"])
    pulled = provide(engine, RemoteImage(registry="r.io", repository="a", digest=DIGEST), print)  # type: ignore[arg-type]
    assert (pulled.image_id, pulled.repo_digest) == ("sha256:1", f"r.io/a@{DIGEST}")
    assert engine.pulls == []


def test_a_pull_passes_the_docker_login_credentials(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    auth = base64.b64encode(b"ci:secret").decode()
    (tmp_path / "config.json").write_text(json.dumps({"auths": {"r.io": {"auth": auth}}}))
    monkeypatch.setenv("DOCKER_CONFIG", str(tmp_path))
    engine = FakeEngine(images={}, digests=["r.io/a@" + DIGEST, "other.io/a@" + OTHER])
    engine.after_pull = {"r.io/a:v1": "sha256:2"}
    pulled = provide(engine, RemoteImage(registry="r.io", repository="a", tag="v1"), print)  # type: ignore[arg-type]
    assert engine.pulls == [("r.io/a", "v1", {"username": "ci", "password": "secret"})]
    assert (pulled.image_id, pulled.repo_digest) == ("sha256:2", f"r.io/a@{DIGEST}")


def test_an_image_without_the_pinned_digest_is_refused() -> None:
    engine = FakeEngine(images={}, digests=[f"r.io/a@{OTHER}"])
    engine.after_pull = {f"r.io/a@{DIGEST}": "sha256:3"}
    with pytest.raises(PullFailed) as error:
        provide(engine, RemoteImage(registry="r.io", repository="a", digest=DIGEST), print)  # type: ignore[arg-type]
    assert error.value.problem == "digest"
    assert OTHER in error.value.message


@pytest.mark.parametrize(
    ("reason", "problem", "hinted"),
    [
        (
            'Get "http://127.0.0.1:40401/v2/": dial tcp 127.0.0.1:40401: connect: connection refused',
            "unreachable",
            "reachable",
        ),
        ("Get https://r.io/v2/: http: server gave HTTP response to HTTPS client", "unreachable", "insecure"),
        ("Head https://r.io/v2/a/manifests/v1: no basic auth credentials", "unauthorized", "docker login"),
        (
            "pull access denied for r.io/a, repository does not exist or may require 'docker login'",
            "unauthorized",
            "docker login",
        ),
        (
            "manifest for r.io/a:v1 not found: manifest unknown: manifest unknown",
            "not found",
            "osless toolchain push",
        ),
    ],
)
def test_the_engines_pull_errors_are_sorted_with_a_hint(reason: str, problem: str, hinted: str) -> None:
    engine = FakeEngine(images={}, digests=[], pull_error=reason)
    with pytest.raises(PullFailed) as error:
        provide(engine, RemoteImage(registry="r.io", repository="a", tag="v1"), print)  # type: ignore[arg-type]
    assert error.value.problem == problem
    assert hinted in (error.value.hint or "")


def test_a_registry_toolchain_that_cannot_be_pulled_names_the_toolchain(tmp_path: Path) -> None:
    toolchain = Toolchain(
        name="tiny", file=Path("tiny.toml"), image=f"r.io/a@{DIGEST}", bootstrap=None, env={}, platforms={}
    )
    engine = FakeEngine(images={}, digests=[], pull_error="manifest unknown")
    with pytest.raises(ToolchainError) as error:
        provision(engine, toolchain, tmp_path, print)  # type: ignore[arg-type]
    assert error.value.message.startswith("toolchain tiny: r.io/a has no digest")


@pytest.mark.parametrize(
    ("reason", "falls_back"),
    [("dial tcp 10.0.0.9:443: i/o timeout", True), ("manifest unknown", False), ("unauthorized", False)],
)
def test_only_an_unreachable_registry_lets_a_bootstrap_section_take_over(
    reason: str, falls_back: bool
) -> None:
    toolchain = Toolchain(
        name="tiny",
        file=Path("tiny.toml"),
        image=f"r.io/a@{DIGEST}",
        bootstrap=Bootstrap(suite="trixie", packages=("hello",)),
        env={},
        platforms={},
    )
    steps: list[str] = []
    engine = FakeEngine(images={}, digests=[], pull_error=reason)
    if falls_back:
        assert _given_image(engine, toolchain, steps.append) is None  # type: ignore[arg-type]
        assert steps[-1].endswith(": bootstrapping instead")
    else:
        with pytest.raises(ToolchainError, match=r"^toolchain tiny: "):
            _given_image(engine, toolchain, steps.append)  # type: ignore[arg-type]


# --- the layout written from `docker save` -------------------------------------------------------


def _tar_bytes(files: dict[str, bytes]) -> bytes:
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w") as tar:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return out.getvalue()


def _sha(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


class SavingEngine:
    """`docker save` of one image with two layers, the second saved as a symbolic link to the first
    (Docker 20.10 links a layer it already wrote)."""

    def __init__(self, *, image_id: str | None = None, diff_ids: list[str] | None = None) -> None:
        self.layer = _tar_bytes({"etc/hello": b"hello\n"})
        diff_ids = diff_ids or [_sha(self.layer), _sha(self.layer)]
        self.config = oci.canonical_json(
            {
                "architecture": "arm64",
                "variant": "v8",
                "os": "linux",
                "rootfs": {"type": "layers", "diff_ids": diff_ids},
            }
        )
        self.id = image_id or _sha(self.config)

    def image_id(self, reference: str) -> str | None:
        return self.id

    def save_image(self, reference: str, into: IO[bytes]) -> None:
        config_name = f"{_sha(self.config)[7:]}.json"
        manifest = [
            {"Config": config_name, "RepoTags": [reference], "Layers": ["a/layer.tar", "b/layer.tar"]}
        ]
        out = io.BytesIO()
        with tarfile.open(fileobj=out, mode="w") as tar:
            for name, data in (
                ("a/VERSION", b"1.0"),
                ("a/layer.tar", self.layer),
                (config_name, self.config),
            ):
                info = tarfile.TarInfo(name)
                info.size = len(data)
                tar.addfile(info, io.BytesIO(data))
            link = tarfile.TarInfo("b/layer.tar")
            link.type = tarfile.SYMTYPE
            link.linkname = "../a/layer.tar"
            tar.addfile(link)
            data = json.dumps(manifest).encode()
            info = tarfile.TarInfo("manifest.json")
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
        for start in range(0, len(out.getvalue()), 4096):  # in chunks, as the engine streams it
            into.write(out.getvalue()[start : start + 4096])


def test_the_layout_keeps_the_config_and_layers_byte_for_byte(tmp_path: Path) -> None:
    engine = SavingEngine()
    digest = write_layout(engine, "osless-toolchain/tiny:1", tmp_path / "layout")  # type: ignore[arg-type]
    layout = tmp_path / "layout"
    assert oci.verify_layout(layout) == []
    index = (layout / "index.json").read_bytes()
    assert digest == _sha(index)
    (entry,) = json.loads(index)["manifests"]
    assert entry["platform"] == {"architecture": "arm64", "os": "linux", "variant": "v8"}
    manifest = json.loads((layout / oci.BLOBS_DIR / entry["digest"][7:]).read_bytes())
    assert manifest["config"]["digest"] == engine.id
    assert [layer["digest"] for layer in manifest["layers"]] == [_sha(engine.layer)] * 2
    assert {layer["mediaType"] for layer in manifest["layers"]} == {oci.MEDIA_TYPE_LAYER}
    blobs = sorted(path.name for path in (layout / oci.BLOBS_DIR).iterdir())
    assert blobs == sorted({engine.id[7:], _sha(engine.layer)[7:], entry["digest"][7:]})


def test_the_same_image_gives_the_same_layout_digest(tmp_path: Path) -> None:
    first = write_layout(SavingEngine(), "a:1", tmp_path / "one")  # type: ignore[arg-type]
    assert write_layout(SavingEngine(), "b:2", tmp_path / "two") == first  # type: ignore[arg-type]


def test_a_save_whose_layers_are_not_the_diff_ids_is_refused(tmp_path: Path) -> None:
    engine = SavingEngine(diff_ids=[OTHER, OTHER])
    with pytest.raises(ToolchainError, match="diff ids"):
        write_layout(engine, "a:1", tmp_path / "layout")  # type: ignore[arg-type]


def test_a_save_whose_config_is_not_the_image_id_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ToolchainError, match="not sha256:cdcd"):
        write_layout(SavingEngine(image_id=OTHER), "a:1", tmp_path / "layout")  # type: ignore[arg-type]
