"""`osless lock` and locked bootstraps against the real Debian archive, with a tiny toolchain (variant
apt plus one package): the lock names every installed package in its exact version and the suite's
Release date; a bootstrap from it installs exactly those (read back from the image's dpkg status); a
version the archive does not have, and a recipe changed since the lock, are clear errors naming the
packages and the command that updates the lock. The images made here are removed afterwards."""

from __future__ import annotations

import io
import re
import tarfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from orchestrator.bootstrap.lock import parse, render
from orchestrator.bootstrap.make import native_architecture
from orchestrator.bootstrap.rootfs import installed_packages
from orchestrator.bootstrap.spec import TOOLCHAIN_LABEL, recipe_spec_hash, spec_hash
from orchestrator.engine import Engine
from orchestrator.errors import ToolchainError
from orchestrator.recipe.loader import load_project
from orchestrator.recipe.model import Toolchain
from orchestrator.stages.toolchain import provision
from tests.factories import service_recipe
from tests.integration.conftest import run_osless

pytestmark = pytest.mark.integration

NAME = "osless-lock-test"
TOOLCHAIN = f"""\
[toolchain]
name = "{NAME}"

[toolchain.bootstrap]
suite = "trixie"
packages = [{{packages}}]

[toolchain.platforms."linux/amd64"]
[toolchain.platforms."linux/arm64"]
"""
DERIVED = f"""\
[toolchain]
name = "{NAME}-more"
extends = "{NAME}"

[toolchain.bootstrap]
packages = ["bc"]
"""
SERVICE = service_recipe(
    "lock-hello",
    ["true"],
    source="sources/hello",
    toolchain=NAME,
    more='[image]\nentrypoint = ["/lock-hello"]\nuser = "65534:65534"\n',
)


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory, docker_client: Any) -> Iterator[Path]:
    """A project with the tiny toolchain; every image made for it removed afterwards."""
    root = tmp_path_factory.mktemp("lock") / "project"
    for relative, text in {
        f"recipes/toolchains/{NAME}.toml": TOOLCHAIN.format(packages='"hello"'),
        f"recipes/toolchains/{NAME}-more.toml": DERIVED,
        "recipes/lock-hello.toml": SERVICE,
        "sources/hello/README": "nothing to build\n",
    }.items():
        (root / relative).parent.mkdir(parents=True, exist_ok=True)
        (root / relative).write_text(text)
    yield root
    for name in (f"{NAME}-more", NAME):
        for image in docker_client.images.list(filters={"label": f"{TOOLCHAIN_LABEL}={name}"}):
            docker_client.images.remove(image.id, force=True)


def _toolchain(root: Path, name: str = NAME) -> Toolchain:
    return load_project(root).toolchains[name]


def _installed(engine: Engine, reference: str) -> dict[str, str]:
    with tarfile.open(fileobj=io.BytesIO(engine.read_from_image(reference, "/var/lib/dpkg/status"))) as tar:
        member = tar.extractfile("status")
        assert member is not None
        return installed_packages(member.read().decode())


def test_lock_then_a_locked_bootstrap_installs_exactly_the_locked_versions(project: Path) -> None:
    locked = run_osless(project, "lock", NAME, out=None)
    assert locked.returncode == 0, locked.stdout + locked.stderr
    path = project / "recipes" / "toolchains" / f"{NAME}.lock"
    text = path.read_text()
    lock = parse(text)
    assert render(lock) == text  # deterministic text, read back the same
    native = native_architecture()
    assert lock.toolchain == NAME and lock.suite == "trixie"
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", lock.release_date)
    assert f"hello:{native}" in lock.packages and f"libc6:{native}" in lock.packages
    assert f'"hello:{native}={lock.packages[f"hello:{native}"]}",' in text
    assert lock.requested == ("hello",)

    toolchain = _toolchain(project)
    assert toolchain.lock == lock
    assert lock.spec == recipe_spec_hash(toolchain) != spec_hash(toolchain)  # the lock is in the identity
    engine = Engine.connect()
    image = provision(engine, toolchain, project / "out" / ".toolchains", print)
    assert image.bootstrapped and image.reference.endswith(spec_hash(toolchain))
    assert _installed(engine, image.reference) == lock.packages


def test_a_version_the_archive_lacks_names_the_package_and_the_lock_command(project: Path) -> None:
    path = project / "recipes" / "toolchains" / f"{NAME}.lock"
    lock = parse(path.read_text())
    native = native_architecture()
    packages = {**lock.packages, f"hello:{native}": "0.0.1-0osless1"}
    path.write_text(render(type(lock)(**{**lock.__dict__, "packages": packages})))
    try:
        with pytest.raises(ToolchainError) as raised:
            provision(Engine.connect(), _toolchain(project), project / "out" / ".toolchains", print)
    finally:
        path.write_text(render(lock))
    assert "hello=0.0.1-0osless1" in raised.value.message, raised.value.message
    assert f"osless lock {NAME}" in (raised.value.hint or "")


def test_a_recipe_changed_since_the_lock_is_an_error_with_the_lock_command(project: Path) -> None:
    recipe = project / "recipes" / "toolchains" / f"{NAME}.toml"
    recipe.write_text(TOOLCHAIN.format(packages='"hello", "bc"'))
    try:
        with pytest.raises(ToolchainError) as raised:
            provision(Engine.connect(), _toolchain(project), project / "out" / ".toolchains", print)
    finally:
        recipe.write_text(TOOLCHAIN.format(packages='"hello"'))
    assert "asks for bc now" in raised.value.message, raised.value.message
    assert f"osless lock {NAME}" in (raised.value.hint or "")


def test_a_derived_toolchain_s_lock_pins_what_its_layer_installs(project: Path) -> None:
    locked = run_osless(project, "lock", f"{NAME}-more", out=None)
    assert locked.returncode == 0, locked.stdout + locked.stderr
    lock = parse((project / "recipes" / "toolchains" / f"{NAME}-more.lock").read_text())
    native = native_architecture()
    assert f"bc:{native}" in lock.packages and f"libc6:{native}" not in lock.packages  # the base has it
    assert lock.requested == ("bc",) and lock.suite == "trixie"

    toolchain = _toolchain(project, f"{NAME}-more")
    assert toolchain.lock == lock
    engine = Engine.connect()
    image = provision(engine, toolchain, project / "out" / ".toolchains", print)
    installed = _installed(engine, image.reference)
    assert {package: installed.get(package) for package in lock.packages} == lock.packages
