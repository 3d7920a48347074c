"""Zig through the real zig toolchain image (zig 0.17.1 from the pinned ziglang wheel), on binaries built
as the builder builds them: same user, no network, read-only root and source, the toolchain's cache
volume at /cache and the build environment osless gives (ZIG_GLOBAL_CACHE_DIR in the volume).

- Static C++ from `zig c++` (libc++, musl) passes verification on all seven platforms, unstripped (-g)
  and stripped (-s); hello-zig (stripped and not) and hello-c-zig pass too, with no warning.
- `osless verify` names the language: "zig" for Zig programs (with and without musl), "c" for `zig cc`,
  "c++" for `zig c++`, on amd64, arm64 and arm/v7.
- The SBOM takes zig's version from the image's ziglang wheel (the tool, and the std component) and names
  that wheel as the musl of `zig cc` binaries.
- zig's global cache persists in the cache volume: a second build of an unchanged sample writes nothing
  there (musl's libc.a and compiler_rt are reused).
"""

from __future__ import annotations

import json
import os
import shlex
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from orchestrator.bootstrap.spec import image_reference
from orchestrator.engine import PROJECT_LABEL, Engine, project_label
from orchestrator.outputs import sbom
from orchestrator.outputs.sbom import PlatformBinary
from orchestrator.pipeline.provenance import Provenance
from orchestrator.platforms import PLATFORMS
from orchestrator.recipe.loader import load_project
from orchestrator.stages.build import Builders, build_command, container_env
from orchestrator.stages.toolchain import ToolchainImage
from orchestrator.verify.findings import Severity, Verdict
from orchestrator.verify.policy import verify_binary
from tests.conftest import REPO_ROOT
from tests.integration.conftest import BUILT_PLATFORMS, run_osless

pytestmark = pytest.mark.integration

PROJECT = load_project(REPO_ROOT)
TOOLCHAIN = PROJECT.toolchains["zig"]
LANGUAGE_PLATFORMS = tuple(  # 64-bit x86 and ARM, 32-bit ARM: those of them the session builds
    name for name in ("linux/amd64", "linux/arm64", "linux/arm/v7") if name in BUILT_PLATFORMS
)
CXX_PROGRAM = """#include <iostream>
#include <stdexcept>
#include <thread>
#include <vector>

int main() {
    std::vector<unsigned long long> sums(4);
    std::vector<std::thread> threads;
    for (unsigned i = 0; i < 4; i++)
        threads.emplace_back([&sums, i] {
            for (unsigned long long n = i * 1000ULL + 1; n <= (i + 1) * 1000ULL; n++) sums[i] += n * n;
        });
    for (auto &thread : threads) thread.join();
    try {
        throw std::runtime_error("caught");
    } catch (const std::exception &error) {
        std::cout << error.what() << " " << sums[0] + sums[1] + sums[2] + sums[3] << std::endl;
    }
}
"""
# What each kind of binary is: its language, whether it has a symbol table, and what zig.std says.
KINDS = {
    "zig": ("zig", False),  # hello-zig as its recipe builds it (ReleaseSmall, -fstrip)
    "zig-unstripped": ("zig", True),  # the same with -fno-strip
    "zig-lc": ("zig", False),  # the same linked with musl (-lc): LANGUAGE_PLATFORMS only
    "c": ("c", False),  # hello-c-zig as its recipe builds it (zig cc -Os -s)
    "cxx": ("c++", True),  # CXX_PROGRAM by zig c++ -Os -g
    "cxx-stripped": ("c++", False),  # the same with -s
}


def problems(verdict: Verdict) -> dict[str, Severity]:
    return {f.id: f.severity for f in verdict.findings if f.severity is not Severity.INFO}


@pytest.fixture(scope="session")
def zig_image(docker_client: Any) -> str:
    reference = image_reference(TOOLCHAIN)
    if not docker_client.images.list(name=reference):
        pytest.fail(f"toolchain image {reference} is missing: provision it with `osless build hello-zig`")
    return reference


@pytest.fixture(scope="session")
def zig_cache(docker_client: Any, zig_image: str) -> str:
    """The project's cache volume for the zig toolchain image, as `osless build` names and labels it
    (created when missing: the session then removes it), writable by the build user."""
    engine = Engine(docker_client)
    name = Builders(engine, REPO_ROOT, REPO_ROOT / "out").cache_volume(TOOLCHAIN, zig_image)
    engine.ensure_volume(name, labels={PROJECT_LABEL: project_label(REPO_ROOT)})
    docker = ["docker", "run", "--rm", "--network", "none", "-v", f"{name}:/cache", zig_image]
    subprocess.run([*docker, "chmod", "1777", "/cache"], check=True, capture_output=True)
    return name


@pytest.fixture(scope="session")
def zig_built(
    zig_image: str, zig_cache: str, tmp_path_factory: pytest.TempPathFactory
) -> dict[tuple[str, str], Path]:
    """The KINDS of binary for BUILT_PLATFORMS (zig-lc: LANGUAGE_PLATFORMS), by (kind, platform), built in
    the zig image as the builder runs builds; zig's local cache in /tmp (the sources are read-only)."""
    work = tmp_path_factory.mktemp("zig-built")
    sources, out = work / "sources", work / "bin"
    for sample in ("hello-zig", "hello-c-zig"):
        shutil.copytree(REPO_ROOT / "sources" / sample, sources / sample)
    (sources / "cxx").mkdir()
    (sources / "cxx" / "hello.cpp").write_text(CXX_PROGRAM)
    out.mkdir()
    os.chmod(out, 0o777)
    zig, c = PROJECT.services["hello-zig"], PROJECT.services["hello-c-zig"]
    built: dict[tuple[str, str], Path] = {}
    for name in BUILT_PLATFORMS:
        platform = PLATFORMS[name]
        env = container_env(zig, TOOLCHAIN, platform, 0)
        env["ZIG_LOCAL_CACHE_DIR"] = "/tmp/zig-local"
        recipe = build_command(zig, platform, env, f"/out/zig-{platform.slug}")
        unstripped = ["-fno-strip" if arg == "-fstrip" else arg for arg in recipe]  # ReleaseSmall strips
        unstripped[unstripped.index(f"-femit-bin=/out/zig-{platform.slug}")] = (
            f"-femit-bin=/out/zig-unstripped-{platform.slug}"
        )
        cxx = ["zig", "c++", "-target", env["ZIG_TARGET"], "-static", "-Os", "-Wall", "-Werror", "hello.cpp"]
        c_recipe = build_command(c, platform, env, f"/out/c-{platform.slug}")
        commands = [
            f"cd /project/sources/hello-zig && {shlex.join(recipe)} && {shlex.join(unstripped)}",
            f"cd /project/sources/hello-c-zig && {shlex.join(c_recipe)}",
            "cd /project/sources/cxx",
            shlex.join([*cxx, "-s", "-o", f"/out/cxx-stripped-{platform.slug}"]),
            shlex.join([*cxx, "-g", "-o", f"/out/cxx-{platform.slug}"]),
        ]
        kinds = [kind for kind in KINDS if kind != "zig-lc"]
        if name in LANGUAGE_PLATFORMS:
            with_libc = [*recipe[:-1], "-lc", recipe[-1]]
            with_libc[with_libc.index(f"-femit-bin=/out/zig-{platform.slug}")] = (
                f"-femit-bin=/out/zig-lc-{platform.slug}"
            )
            commands.append(f"cd /project/sources/hello-zig && {shlex.join(with_libc)}")
            kinds.append("zig-lc")
        flags = [arg for key, value in env.items() for arg in ("-e", f"{key}={value}")]
        command = [
            "docker", "run", "--rm", "--network", "none", "--read-only", "--user", "65532:65532",
            "--tmpfs", "/tmp:exec", "-v", f"{zig_cache}:/cache", "-v", f"{sources}:/project/sources:ro",
            "-v", f"{out}:/out", "-w", "/", *flags, zig_image, "sh", "-ec", " && ".join(commands),
        ]  # fmt: skip
        result = subprocess.run(command, capture_output=True, text=True, check=False)
        assert result.returncode == 0, f"{name}:\n{result.stderr}"
        for kind in kinds:
            built[kind, name] = out / f"{kind}-{platform.slug}"
    return built


@pytest.mark.parametrize("platform", BUILT_PLATFORMS)
@pytest.mark.parametrize("kind", ["cxx", "cxx-stripped", "zig", "zig-unstripped", "c"])
def test_zig_binaries_pass_on_every_platform(
    zig_built: dict[tuple[str, str], Path], kind: str, platform: str
) -> None:
    """Static against zig's musl (libc++ in for C++), for the platform built for: no ERROR, no WARNING
    (the platform's ABI rules, riscv64's double-float and arm's EABI5 hard-float v7, accept them)."""
    verdict = verify_binary(zig_built[kind, platform], PLATFORMS[platform])
    assert verdict.ok, verdict.reason
    assert problems(verdict) == {}
    language, symbols = KINDS[kind]
    assert verdict.language == language
    assert verdict.facts is not None and verdict.facts.platform == platform
    assert verdict.facts.linkage.value == "static"
    assert verdict.facts.stripped is not symbols
    if language == "c++":
        (runtime,) = [f for f in verdict.findings if f.id == "cxx.runtime"]
        assert "libc++" in runtime.message


@pytest.mark.parametrize("platform", LANGUAGE_PLATFORMS)
def test_osless_verify_names_zig(zig_built: dict[tuple[str, str], Path], platform: str) -> None:
    kinds = list(KINDS)
    command = [sys.executable, "-m", "orchestrator", "verify", "--json", "--platform", platform]
    command += [str(zig_built[kind, platform]) for kind in kinds]
    result = subprocess.run(command, capture_output=True, text=True, cwd=REPO_ROOT, check=False)
    assert result.returncode == 0, result.stdout + result.stderr
    verdicts = dict(zip(kinds, json.loads(result.stdout), strict=True))
    assert {kind: v["language"] for kind, v in verdicts.items()} == {k: KINDS[k][0] for k in kinds}
    for kind in ("zig", "zig-unstripped", "zig-lc"):
        (std,) = [f["message"] for f in verdicts[kind]["findings"] if f["id"] == "zig.std"]
        assert ("with musl" if kind == "zig-lc" else "without libc") in std, std
    text = run_osless(REPO_ROOT, "verify", "--platform", platform, str(zig_built["zig", platform]))
    assert f"{zig_built['zig', platform]}: ok ({platform}, static, zig)" in text.stdout, text.stdout


def test_sboms_name_the_ziglang_wheel(
    docker_client: Any, zig_image: str, zig_built: dict[tuple[str, str], Path]
) -> None:
    """The image's wheel (its version: what `zig version` says) is the tool of every binary, the std
    version of Zig binaries, and the musl of `zig cc` and `-lc` ones."""
    zig_version = subprocess.run(
        ["docker", "run", "--rm", "--network", "none", zig_image, "/opt/wheels/ziglang/zig", "version"],
        capture_output=True, text=True, check=True,
    ).stdout.strip()  # fmt: skip
    assert zig_version == "0.17.1" == TOOLCHAIN.bootstrap.wheels[0].version  # type: ignore[union-attr]
    image = ToolchainImage(name="zig", reference=zig_image, image_id=zig_image, bootstrapped=False)
    packages = sbom.toolchain_packages(Engine(docker_client), image)
    assert packages["pypi/ziglang"].version == zig_version
    provenance = Provenance(revision="0123abcd", source_date_epoch=1_700_000_000)
    wheel = f"pkg:pypi/ziglang@{zig_version}"
    for service, kind, libc in (
        ("hello-zig", "zig", "none"),
        ("hello-zig", "zig-lc", "musl"),
        ("hello-c-zig", "c", "musl"),
    ):
        binaries = [
            PlatformBinary(platform=PLATFORMS[p], path=zig_built[kind, p]) for p in LANGUAGE_PLATFORMS
        ]
        document = json.loads(
            sbom.sbom_for(PROJECT.services[service], binaries, packages=packages, provenance=provenance)
        )
        tools = {c.get("purl") for c in document["metadata"]["tools"]["components"]}
        assert wheel in tools, (kind, tools)
        parts = {c["bom-ref"]: c for c in document["components"]}
        for ref, part in parts.items():
            if part["type"] == "application":
                assert {"name": "osless:libc", "value": libc} in part["properties"], (kind, part)
                depends = next(d["dependsOn"] for d in document["dependencies"] if d["ref"] == ref)
                expected = (
                    ({f"zig:std:{zig_version}"} if kind.startswith("zig") else set())
                    | ({wheel} if libc == "musl" else set())
                    | {f"source:{service}"}
                )
                assert set(depends) == expected, (kind, depends)
        if libc == "musl":
            assert {"name": "osless:libc", "value": "musl"} in parts[wheel]["properties"]


def zig_cache_files(image: str, volume: str) -> dict[str, str]:
    """The files of zig's global cache in the volume, each with its modification time and size: the
    compiled libraries and objects (its o/ directory), and h/timestamp, which zig rewrites each time it
    looks up its cache."""
    find = ["find", "/cache/zig/o", "/cache/zig/h/timestamp", "-type", "f", "-printf", "%p %T@ %s\\n"]
    listing = subprocess.run(
        ["docker", "run", "--rm", "--network", "none", "-v", f"{volume}:/cache:ro", image, *find],
        capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    return dict(line.split(" ", 1) for line in listing.splitlines())


def test_a_second_build_reuses_zigs_global_cache(
    zig_image: str, zig_cache: str, tmp_path_factory: pytest.TempPathFactory
) -> None:
    """musl and compiler_rt, compiled by a build, are in the cache volume (not in the builder's /tmp);
    the second build of the unchanged sample, from scratch (--rebuild), looks them up there (zig rewrites
    its h/timestamp) and compiles nothing: no file of o/ is written."""
    binaries, snapshots = [], []
    for attempt in ("first", "second"):
        out = tmp_path_factory.mktemp(f"zig-{attempt}")
        run = run_osless(REPO_ROOT, "build", "--rebuild", "hello-c-zig", "--platform", "linux/amd64", out=out)
        assert run.returncode == 0, run.stdout + run.stderr
        binaries.append((out / "hello-c-zig" / "linux-amd64" / "bin" / "hello-c-zig").read_bytes())
        snapshots.append(zig_cache_files(zig_image, zig_cache))
    first, second = ({k: v for k, v in files.items() if k.startswith("/cache/zig/o/")} for files in snapshots)
    assert {"libc.a", "libcompiler_rt.a"} <= {Path(path).name for path in first}
    assert second == first
    stamp = "/cache/zig/h/timestamp"
    assert float(snapshots[1][stamp].split()[0]) > float(snapshots[0][stamp].split()[0])
    assert binaries[0] == binaries[1]
