"""Toolchains from a registry, against the real engine, a second dockerd and a loopback registry: a tiny
toolchain (variant apt plus one package) bootstrapped and pushed with `osless toolchain push`; a recipe
naming it `REGISTRY/REPO@sha256:...` pulls it on a second engine as the same image id (and a `:tag`
resolves to that digest); a digest the registry does not have is a clear error. The images made on the
default engine are removed afterwards; the second engine is stopped with all it holds."""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from orchestrator.bootstrap.spec import image_reference
from orchestrator.engine import Engine
from orchestrator.errors import ToolchainError
from orchestrator.image import oci
from orchestrator.recipe.loader import load_project
from orchestrator.stages.toolchain import provision
from tests.factories import service_recipe
from tests.integration.conftest import SecondEngine, run_osless

pytestmark = pytest.mark.integration

NAME = "osless-registry-test"
BOOTSTRAP = """
[toolchain.bootstrap]
suite = "trixie"
packages = ["hello"]
"""
TOOLCHAIN = f"""\
[toolchain]
name = "{NAME}"
{{image}}
{{bootstrap}}
[toolchain.platforms."linux/amd64"]
"""
SERVICE = service_recipe(
    "registry-hello",
    ["true"],
    source="sources/hello",
    toolchain=NAME,
    more='[image]\nentrypoint = ["/registry-hello"]\nuser = "65534:65534"\n',
)
PINNED = re.compile(r'image = "([^"]+@sha256:[0-9a-f]{64})"')


def _project(root: Path, *, image: str | None, bootstrap: bool) -> Path:
    (root / "recipes" / "toolchains").mkdir(parents=True, exist_ok=True)
    (root / "sources" / "hello").mkdir(parents=True, exist_ok=True)
    (root / "recipes" / "toolchains" / f"{NAME}.toml").write_text(
        TOOLCHAIN.format(
            image=f'image = "{image}"' if image else "", bootstrap=BOOTSTRAP if bootstrap else ""
        )
    )
    (root / "recipes" / "registry-hello.toml").write_text(SERVICE)
    return root


@pytest.fixture(scope="module")
def pushed(
    docker_client: Any, registry_address: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[str, str]]:
    """The tiny toolchain bootstrapped on the default engine and pushed: (pinned reference, image id)."""
    root = _project(tmp_path_factory.mktemp("pushing"), image=None, bootstrap=True)
    reference = image_reference(load_project(root).toolchains[NAME])
    try:
        run = run_osless(
            root, "toolchain", "push", NAME, "--to", f"{registry_address}/team/tiny:v1", timeout=900
        )
        assert run.returncode == 0, run.stdout + run.stderr
        match = PINNED.search(run.stdout)
        assert match, run.stdout
        yield match.group(1), docker_client.images.get(reference).id
    finally:
        docker_client.images.remove(reference, force=True)


def test_the_printed_digest_is_the_registrys(pushed: tuple[str, str], registry_address: str) -> None:
    pinned, _ = pushed
    response = requests.get(
        f"http://{registry_address}/v2/team/tiny/manifests/v1",
        headers={"Accept": oci.MEDIA_TYPE_INDEX},
        timeout=10,
    )
    assert response.status_code == 200
    assert pinned == f"{registry_address}/team/tiny@sha256:{hashlib.sha256(response.content).hexdigest()}"
    assert response.headers["Docker-Content-Digest"] == pinned.split("@")[1]


def test_a_second_engine_pulls_the_same_image(
    pushed: tuple[str, str], registry_address: str, second_engine: SecondEngine, tmp_path: Path
) -> None:
    pinned, image_id = pushed
    client = second_engine.start()
    engine = Engine(client)
    root = _project(tmp_path / "pinned", image=pinned, bootstrap=False)
    steps: list[str] = []
    toolchain = load_project(root).toolchains[NAME]
    image = provision(engine, toolchain, tmp_path / "work", steps.append)
    assert (image.image_id, image.repo_digest, image.bootstrapped) == (image_id, pinned, False)
    assert any(step.startswith("pulling") for step in steps), steps
    assert client.containers.run(image.reference, ["hello"], remove=True).startswith(b"Hello, world!")
    again = provision(engine, toolchain, tmp_path / "work", steps.append)  # present now: no pull
    assert again.image_id == image_id and steps.count(next(s for s in steps if s.startswith("pulling"))) == 1
    tagged = load_project(
        _project(tmp_path / "tagged", image=f"{registry_address}/team/tiny:v1", bootstrap=False)
    )
    by_tag = provision(engine, tagged.toolchains[NAME], tmp_path / "work", steps.append)
    assert (by_tag.image_id, by_tag.repo_digest) == (image_id, pinned)


def test_a_digest_the_registry_lacks_is_a_clear_error(registry_address: str, tmp_path: Path) -> None:
    wrong = f"{registry_address}/team/tiny@sha256:{'0' * 64}"
    root = _project(tmp_path, image=wrong, bootstrap=False)
    with pytest.raises(ToolchainError) as error:
        provision(Engine.connect(), load_project(root).toolchains[NAME], tmp_path / "work", lambda _: None)
    repository = f"{registry_address}/team/tiny"
    assert (
        error.value.message
        == f"toolchain {NAME}: {repository} has no digest {wrong.split('@')[1]} in {registry_address}"
    )
    assert "osless toolchain push" in (error.value.hint or "")
    run = run_osless(
        root, "toolchain", "push", NAME, "--to", f"{registry_address}/team/other:v1", timeout=300
    )
    assert run.returncode == ToolchainError.exit_code
    assert "has no digest" in run.stdout + run.stderr
