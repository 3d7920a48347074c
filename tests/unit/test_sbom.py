"""SBOMs from real binaries: a Go program (host Go, modules from a file:// module proxy) checked against
`go version -m`, static glibc and libc-less C programs from the host gcc, a given toolchain package list;
determinism, the CycloneDX schema, and the SBOM blob in the service's OCI layout."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import shutil
import subprocess
import uuid
import zipfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest
from cyclonedx.validation.json import JsonStrictValidator

from orchestrator.engine import ContainerResult, ContainerSpec
from orchestrator.errors import EngineError, ToolchainError
from orchestrator.image import oci
from orchestrator.outputs import sbom
from orchestrator.outputs.components import DebianPackage
from orchestrator.outputs.sbom import PlatformBinary
from orchestrator.pipeline.provenance import Provenance
from orchestrator.platforms import PLATFORMS
from orchestrator.recipe.loader import load_project
from orchestrator.recipe.model import Service
from orchestrator.stages import package
from orchestrator.stages.toolchain import ToolchainImage
from tests.conftest import REPO_ROOT

GO = shutil.which("go")
GCC = shutil.which("gcc")
GXX = shutil.which("g++")
AMD64, ARM64 = PLATFORMS["linux/amd64"], PLATFORMS["linux/arm64"]
PROVENANCE = Provenance(revision="0123abcd", source_date_epoch=1_700_000_000)
SERVICES = load_project(REPO_ROOT).services

# What `_PACKAGES_SCRIPT` prints in a toolchain image (trimmed), plus lines that must be ignored.
DPKG_OUTPUT = "\n".join(
    [
        "ii \tlibc6-dev\t2.41-12+deb13u5\tamd64",
        "ii \tlibc6-dev-arm64-cross\t2.41-11cross1\tall",
        "ii \tmusl-dev\t1.2.5-3.1~deb13u1\tamd64",
        "ii \tmusl-tools\t1.2.5-3.1~deb13u1\tamd64",
        "ii \tmusl-dev\t1.2.5-3.1~deb13u1\tarm64",  # multiarch: told apart as musl-dev:arm64
        "ii \tg++\t4:14.2.0-1\tamd64",
        "ii \tg++-14\t14.2.0-19\tamd64",
        "ii \tg++-aarch64-linux-gnu\t4:14.2.0-1\tamd64",
        "ii \tg++-14-aarch64-linux-gnu\t14.2.0-19cross1\tamd64",
        "ii \tlibstdc++-14-dev\t14.2.0-19\tamd64",
        "ii \tlibstdc++-13-dev-arm64-cross\t13.3.0-1cross1\tall",  # not g++'s: never chosen
        "ii \tlibstdc++-14-dev-arm64-cross\t14.2.0-19cross1\tall",
        "ii \tgcc\t4:14.2.0-1\tamd64",
        "ii \tgcc-14\t14.2.0-19\tamd64",
        "ii \tgcc-aarch64-linux-gnu\t4:14.2.0-1\tamd64",
        "ii \tgcc-14-aarch64-linux-gnu\t14.2.0-19cross1\tamd64",
        "ii \tgolang-go\t2:1.19~1\tamd64",
        "ii \tgolang-1.19-go\t1.19.8-2\tamd64",
        "ii \tca-certificates\t20250419+deb13u1\tall",
        "ii \tlibc6-dev\t2.41-12+deb13u5\ti386",  # the same name for another architecture: first wins
        "rc \told-package\t1.0\tamd64",  # removed, configuration left: not installed
        "not a package line",
        "#distro\tdebian-13",
    ]
)
PACKAGES = sbom.parse_packages(DPKG_OUTPUT)

# A module whose dependencies come from a module proxy on disk: a plain versioned one, one replaced by
# another module version, one replaced by a directory.
MAIN_GO = (
    'package main\n\nimport (\n\t"os"\n\n\t"example.com/dep"\n\t"example.com/local"\n'
    '\t"example.com/other"\n)\n\n'
    'func main() { os.Stdout.WriteString(dep.Hello() + other.Name() + local.Where() + "\\n") }\n'
)
GO_MOD = (
    "module example.com/hello\n\ngo 1.19\n\n"
    "require (\n\texample.com/dep v1.2.3\n\texample.com/local v0.0.0\n\texample.com/other v0.3.0\n)\n\n"
    "replace example.com/other => example.com/fork v0.3.1\n\n"
    "replace example.com/local => ./local\n"
)
PROXY_MODULES = {  # (path, version) -> (package name, Go source)
    ("example.com/dep", "v1.2.3"): ("dep", 'func Hello() string { return "hello" }'),
    ("example.com/fork", "v0.3.1"): ("other", 'func Name() string { return " fork" }'),
}


# ---------------------------------------------------------------------------------------------------
# Inputs: real binaries


def run(command: Sequence[str], cwd: Path, env: dict[str, str] | None = None) -> str:
    result = subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        pytest.fail(f"{' '.join(command)} failed:\n{result.stderr}")
    return result.stdout


def write_proxy(proxy: Path) -> None:
    """A GOPROXY=file:// tree: list, .info, .mod and the module zip for each module version."""
    for (path, version), (package_name, body) in PROXY_MODULES.items():
        directory = proxy / path / "@v"
        directory.mkdir(parents=True)
        go_mod = f"module {path}\n\ngo 1.19\n"
        (directory / "list").write_text(version + "\n")
        (directory / f"{version}.info").write_text(
            json.dumps({"Version": version, "Time": "2023-01-01T00:00:00Z"})
        )
        (directory / f"{version}.mod").write_text(go_mod)
        with zipfile.ZipFile(directory / f"{version}.zip", "w") as archive:
            archive.writestr(f"{path}@{version}/go.mod", go_mod)
            archive.writestr(f"{path}@{version}/{package_name}.go", f"package {package_name}\n\n{body}\n")


@pytest.fixture(scope="module")
def go_binary(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    """A Go program with module dependencies, and what `go version -m` says about it."""
    if GO is None:
        pytest.skip("go is not installed (apt-get install -y golang-go)")
    directory = tmp_path_factory.mktemp("gosbom")
    write_proxy(directory / "proxy")
    source = directory / "src"
    (source / "local").mkdir(parents=True)
    (source / "main.go").write_text(MAIN_GO)
    (source / "go.mod").write_text(GO_MOD)
    (source / "local" / "go.mod").write_text("module example.com/local\n\ngo 1.19\n")
    (source / "local" / "local.go").write_text('package local\n\nfunc Where() string { return " here" }\n')
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith(("GO", "CGO_"))},
        "HOME": str(directory),
        "GOCACHE": str(directory / "cache"),
        "GOPATH": str(directory / "gopath"),
        "GOPROXY": f"file://{directory / 'proxy'}",
        "GOSUMDB": "off",
        "GOFLAGS": "-mod=mod -modcacherw",
        "CGO_ENABLED": "0",
        "GOTOOLCHAIN": "local",
    }
    binary = directory / "hello"
    run([GO, "build", "-trimpath", "-o", str(binary), "."], source, env)
    return binary, run([GO, "version", "-m", str(binary)], source, env)


def c_program(tmp_path_factory: pytest.TempPathFactory, name: str, source: str, *flags: str) -> Path:
    if GCC is None:
        pytest.skip("the host has no gcc")
    work = tmp_path_factory.mktemp(name)
    (work / "main.c").write_text(source)
    run([GCC, *flags, "-o", name, "main.c"], work)
    return work / name


@pytest.fixture(scope="module")
def glibc_binary(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A static glibc program from the host gcc."""
    return c_program(
        tmp_path_factory, "hello", '#include <stdio.h>\nint main(void) { puts("hi"); return 0; }\n', "-static"
    )


@pytest.fixture(scope="module")
def libc_free_binary(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A static C program without glibc's marks: what a musl-gcc binary looks like to the verifier."""
    exit_syscall = 'void _start(void) { __asm__ volatile("mov $60, %eax\\n xor %edi, %edi\\n syscall"); }\n'
    return c_program(tmp_path_factory, "bare", exit_syscall, "-static", "-nostdlib", "-s")


@pytest.fixture(scope="module")
def cxx_binary(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A static C++ program (iostream, an exception) from the host g++: libstdc++ linked in."""
    if GXX is None:
        pytest.skip("the host has no g++")
    work = tmp_path_factory.mktemp("cxx")
    (work / "main.cpp").write_text(
        '#include <iostream>\n#include <stdexcept>\nint main() { try { throw std::runtime_error("x"); }'
        " catch (const std::exception& e) { std::cout << e.what() << '\\n'; } }\n"
    )
    run([GXX, "-static", "-s", "-o", "hello", "main.cpp"], work)
    return work / "hello"


def service(name: str, **image: Any) -> Service:
    chosen = SERVICES[name]
    return dataclasses.replace(chosen, image=dataclasses.replace(chosen.image, **image)) if image else chosen


def make_sbom(
    name: str,
    binaries: Sequence[tuple[Path, str]],
    packages: dict[str, DebianPackage] = PACKAGES,
    provenance: Provenance = PROVENANCE,
    **image: Any,
) -> bytes:
    return sbom.sbom_for(
        service(name, **image),
        [
            PlatformBinary(platform=PLATFORMS[platform], path=path, image_digest=f"sha256:{n:064x}")
            for n, (path, platform) in enumerate(binaries)
        ],
        packages=packages,
        provenance=provenance,
    )


def components(document: bytes) -> dict[str, dict[str, Any]]:
    """Components by bom-ref."""
    return {c["bom-ref"]: c for c in json.loads(document)["components"]}


def depends_on(document: bytes, ref: str, *, source: bool = False) -> list[str]:
    """What `ref` depends on; without the service's source component (every binary's) unless `source`."""
    (entry,) = [d for d in json.loads(document)["dependencies"] if d["ref"] == ref]
    return [r for r in entry.get("dependsOn", []) if source or not r.startswith("source:")]


def properties(component: dict[str, Any]) -> dict[str, str]:
    return {p["name"].removeprefix("osless:"): p["value"] for p in component.get("properties", [])}


def tools(document: bytes) -> dict[str, str]:
    return {t["name"]: t["version"] for t in json.loads(document)["metadata"]["tools"]["components"]}


def assert_valid(document: bytes) -> None:
    errors = JsonStrictValidator(sbom.SCHEMA_VERSION).validate_str(document.decode(), all_errors=True)
    assert errors is None, [str(error) for error in errors]


# ---------------------------------------------------------------------------------------------------
# The package list


def test_parse_packages_keeps_installed_packages_with_the_distro() -> None:
    assert PACKAGES["libc6-dev"] == DebianPackage(
        name="libc6-dev", version="2.41-12+deb13u5", architecture="amd64", distro="debian-13"
    )
    assert PACKAGES["libc6-dev-arm64-cross"].architecture == "all"
    # Each package also by name:architecture: multiarch copies of one name stay apart.
    assert PACKAGES["musl-dev"] == PACKAGES["musl-dev:amd64"] != PACKAGES["musl-dev:arm64"]
    assert PACKAGES["musl-dev:arm64"].architecture == "arm64"
    assert PACKAGES["libc6-dev:i386"].architecture == "i386" and PACKAGES["libc6-dev"].architecture == "amd64"
    assert "old-package" not in PACKAGES and "not a package line" not in PACKAGES
    assert PACKAGES["gcc"].purl.to_string() == "pkg:deb/debian/gcc@4:14.2.0-1?arch=amd64&distro=debian-13"
    assert sbom.parse_packages("ii \tgcc\t1\tamd64\n#distro\tdebian-\n")["gcc"].distro is None


class FakeEngine:
    """Answers `Engine.run` with a canned dpkg-query output, counting the containers it was asked for."""

    def __init__(self, stdout: str, exit_code: int = 0, error: bool = False) -> None:
        self.specs: list[ContainerSpec] = []
        self.stdout, self.exit_code, self.error = stdout, exit_code, error

    def run(self, spec: ContainerSpec) -> ContainerResult:
        self.specs.append(spec)
        if self.error:
            raise EngineError("run cancelled")
        return ContainerResult(
            exit_code=self.exit_code, stdout=self.stdout.encode(), stderr=b"", timed_out=False
        )


def toolchain_image(image_id: str) -> ToolchainImage:
    return ToolchainImage(
        name="gcc", reference="osless-toolchain/gcc:test", image_id=image_id, bootstrapped=False
    )


def test_toolchain_packages_are_read_once_per_image() -> None:
    engine = FakeEngine(DPKG_OUTPUT)
    image = toolchain_image(f"sha256:{uuid.uuid4().hex}")
    first = sbom.toolchain_packages(engine, image)  # type: ignore[arg-type]
    second = sbom.toolchain_packages(engine, image)  # type: ignore[arg-type]
    assert first == second == PACKAGES
    (spec,) = engine.specs
    assert spec.image == "osless-toolchain/gcc:test" and spec.command[:2] == ["sh", "-c"]


def test_a_kept_package_listing_saves_the_next_runs_container(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    image = toolchain_image(f"sha256:{uuid.uuid4().hex}")
    assert sbom.toolchain_packages(FakeEngine(DPKG_OUTPUT), image, tmp_path) == PACKAGES  # type: ignore[arg-type]
    monkeypatch.setattr(sbom, "_cache", {})  # the next run: nothing in memory
    unused = FakeEngine("", error=True)
    assert sbom.toolchain_packages(unused, image, tmp_path) == PACKAGES  # type: ignore[arg-type]
    assert unused.specs == []  # read from the listing kept under the image id, no container


@pytest.mark.parametrize("engine", [FakeEngine("", exit_code=127), FakeEngine("", error=True)])
def test_toolchain_packages_without_dpkg_are_empty(engine: FakeEngine) -> None:
    assert sbom.toolchain_packages(engine, toolchain_image(f"sha256:{uuid.uuid4().hex}")) == {}  # type: ignore[arg-type]


# ---------------------------------------------------------------------------------------------------
# Go


def go_version_m(text: str) -> tuple[str, set[tuple[str, str]]]:
    """The Go version and the (path, version) of every module linked in, as `go version -m` prints them:
    a module replaced by another counts as that one, a module replaced by a directory keeps its path."""
    lines = text.splitlines()
    go_version = lines[0].split(": ", 1)[1]
    modules: list[tuple[str, str]] = []
    for line in lines[1:]:
        fields = line.strip().split("\t")
        if fields[0] in ("mod", "dep"):
            modules.append((fields[1], fields[2]))
        elif fields[0] == "=>":
            directory = fields[1].startswith(("./", "../", "/"))
            modules[-1] = (modules[-1][0] if directory else fields[1], fields[2])
    return go_version, set(modules)


def test_go_modules_match_go_version_m(go_binary: tuple[Path, str]) -> None:
    binary, printed = go_binary
    document = make_sbom("hello-go", [(binary, "linux/amd64")])
    go_version, expected = go_version_m(printed)
    found = components(document)
    listed = {
        (c["name"], c["version"]) for c in found.values() if properties(c).get("go:module") in ("main", "dep")
    }
    assert listed == expected
    assert ("example.com/dep", "v1.2.3") in listed  # a real versioned module from the proxy
    stdlib = found[f"pkg:golang/stdlib@{go_version.removeprefix('go')}"]
    assert stdlib["version"] == go_version.removeprefix("go")
    binary_ref = "binary:linux/amd64:/hello-go"
    assert set(depends_on(document, binary_ref, source=True)) == {ref for ref in found if ref != binary_ref}
    assert properties(found[binary_ref]) | {"image:manifest-digest": ""} == {
        "platform": "linux/amd64",
        "linkage": "static",
        "libc": "none",
        "image:path": "/hello-go",
        "image:manifest-digest": "",
        "go:version": go_version,
    }
    assert tools(document) == {"golang-go": "2:1.19~1", "golang-1.19-go": "1.19.8-2", "osless": "0.1.0"}
    assert_valid(document)


def test_go_replacements_name_the_code_that_was_linked(go_binary: tuple[Path, str]) -> None:
    found = components(make_sbom("hello-go", [(go_binary[0], "linux/amd64")]))
    fork = found["pkg:golang/example.com/fork@v0.3.1"]
    assert properties(fork)["go:replaces"] == "example.com/other v0.3.0"
    assert properties(fork)["go:sum"].startswith("h1:")
    local = found["pkg:golang/example.com/local"]  # a directory is no version of the module
    assert properties(local)["go:replaced-by"] == "./local"
    main = found["pkg:golang/example.com/hello"]
    assert (main["version"], properties(main)["go:module"]) == ("(devel)", "main")
    dep = found["pkg:golang/example.com/dep@v1.2.3"]
    assert dep["purl"] == "pkg:golang/example.com/dep@v1.2.3" and dep["type"] == "library"


def test_go_modules_shared_by_platforms_are_listed_once(go_binary: tuple[Path, str]) -> None:
    document = make_sbom("hello-go", [(go_binary[0], "linux/amd64"), (go_binary[0], "linux/arm64")])
    refs = [c["bom-ref"] for c in json.loads(document)["components"]]
    assert len(refs) == len(set(refs))
    assert depends_on(document, "binary:linux/amd64:/hello-go") == depends_on(
        document, "binary:linux/arm64:/hello-go"
    )
    assert depends_on(document, "image:hello-go:latest") == [
        "binary:linux/amd64:/hello-go",
        "binary:linux/arm64:/hello-go",
    ]


# ---------------------------------------------------------------------------------------------------
# C


def test_glibc_binary_lists_the_native_libc_package(glibc_binary: Path) -> None:
    document = make_sbom("hello-c", [(glibc_binary, "linux/amd64")])
    found = components(document)
    purl = "pkg:deb/debian/libc6-dev@2.41-12%2Bdeb13u5?arch=amd64&distro=debian-13"
    libc = found[purl]
    assert (libc["name"], libc["version"], libc["type"]) == ("libc6-dev", "2.41-12+deb13u5", "library")
    binary = found["binary:linux/amd64:/hello-c"]
    assert binary["hashes"] == [
        {"alg": "SHA-256", "content": hashlib.sha256(glibc_binary.read_bytes()).hexdigest()}
    ]
    assert properties(binary)["libc"] == "glibc" and properties(binary)["linkage"] == "static"
    assert depends_on(document, "binary:linux/amd64:/hello-c") == [purl]
    assert tools(document) == {"gcc": "4:14.2.0-1", "gcc-14": "14.2.0-19", "osless": "0.1.0"}
    assert_valid(document)


def test_cross_platforms_list_the_cross_libc_and_compiler(glibc_binary: Path) -> None:
    # The ELF is amd64; what is under test is the package chosen for the platform the pipeline names.
    document = make_sbom("hello-c", [(glibc_binary, "linux/amd64"), (glibc_binary, "linux/arm64")])
    (cross,) = depends_on(document, "binary:linux/arm64:/hello-c")
    assert cross == "pkg:deb/debian/libc6-dev-arm64-cross@2.41-11cross1?arch=all&distro=debian-13"
    assert components(document)[cross]["version"] == PACKAGES["libc6-dev-arm64-cross"].version
    assert tools(document) == {
        "gcc": "4:14.2.0-1",
        "gcc-14": "14.2.0-19",
        "gcc-aarch64-linux-gnu": "4:14.2.0-1",
        "gcc-14-aarch64-linux-gnu": "14.2.0-19cross1",
        "osless": "0.1.0",
    }
    assert_valid(document)


def test_a_c_binary_without_glibc_is_musl_when_the_toolchain_has_it(libc_free_binary: Path) -> None:
    document = make_sbom("hello-c-musl", [(libc_free_binary, "linux/amd64")])
    (musl,) = depends_on(document, "binary:linux/amd64:/hello-c-musl")
    assert musl == "pkg:deb/debian/musl-dev@1.2.5-3.1~deb13u1?arch=amd64&distro=debian-13"
    assert components(document)[musl]["version"] == "1.2.5-3.1~deb13u1"
    assert set(tools(document)) == {"gcc", "gcc-14", "osless"}  # musl-dev's wrapper over gcc
    assert_valid(document)

    without_musl = {name: p for name, p in PACKAGES.items() if p.name != "musl-dev"}
    unknown = make_sbom("hello-c-musl", [(libc_free_binary, "linux/amd64")], without_musl)
    binary = components(unknown)["binary:linux/amd64:/hello-c-musl"]
    assert properties(binary)["libc"] == "unknown"
    assert depends_on(unknown, binary["bom-ref"]) == []


def test_foreign_musl_is_the_multiarch_package_of_the_platform(libc_free_binary: Path) -> None:
    """musl-dev:arm64 (installed through multiarch beside musl-dev:amd64), built by the cross gcc."""
    document = make_sbom("hello-c-musl", [(libc_free_binary, "linux/arm64")])
    (musl,) = depends_on(document, "binary:linux/arm64:/hello-c-musl")
    assert musl == "pkg:deb/debian/musl-dev@1.2.5-3.1~deb13u1?arch=arm64&distro=debian-13"
    assert tools(document) == {
        "gcc-aarch64-linux-gnu": "4:14.2.0-1",
        "gcc-14-aarch64-linux-gnu": "14.2.0-19cross1",
        "osless": "0.1.0",
    }
    assert_valid(document)


def test_cxx_binary_lists_libstdcxx_with_its_version(cxx_binary: Path) -> None:
    document = make_sbom("hello-cxx", [(cxx_binary, "linux/amd64")])
    binary = components(document)["binary:linux/amd64:/hello-cxx"]
    assert properties(binary)["libc"] == "glibc" and properties(binary)["cxx:stdlib"] == "libstdc++"
    libstdcxx = "pkg:deb/debian/libstdc%2B%2B-14-dev@14.2.0-19?arch=amd64&distro=debian-13"
    libc = "pkg:deb/debian/libc6-dev@2.41-12%2Bdeb13u5?arch=amd64&distro=debian-13"
    assert depends_on(document, binary["bom-ref"]) == sorted([libc, libstdcxx])
    found = components(document)[libstdcxx]
    assert (found["name"], found["version"], found["type"]) == ("libstdc++-14-dev", "14.2.0-19", "library")
    assert tools(document) == {"g++": "4:14.2.0-1", "g++-14": "14.2.0-19", "osless": "0.1.0"}
    assert_valid(document)


def test_cross_cxx_binary_lists_the_cross_libstdcxx_of_gxx_version(cxx_binary: Path) -> None:
    document = make_sbom("hello-cxx", [(cxx_binary, "linux/arm64")])
    refs = depends_on(document, "binary:linux/arm64:/hello-cxx")
    libstdcxx = "pkg:deb/debian/libstdc%2B%2B-14-dev-arm64-cross@14.2.0-19cross1?arch=all&distro=debian-13"
    assert libstdcxx in refs and len(refs) == 2
    assert components(document)[libstdcxx]["version"] == "14.2.0-19cross1"
    assert tools(document) == {
        "g++-aarch64-linux-gnu": "4:14.2.0-1",
        "g++-14-aarch64-linux-gnu": "14.2.0-19cross1",
        "osless": "0.1.0",
    }
    assert_valid(document)


def test_without_a_package_list_libstdcxx_is_named_without_a_version(cxx_binary: Path) -> None:
    document = make_sbom("hello-cxx", [(cxx_binary, "linux/amd64")], packages={})
    names = {
        components(document)[ref]["name"] for ref in depends_on(document, "binary:linux/amd64:/hello-cxx")
    }
    assert names == {"glibc", "libstdc++"}
    assert tools(document) == {"osless": "0.1.0"}
    assert_valid(document)


def test_without_a_package_list_the_libc_is_named_without_a_version(glibc_binary: Path) -> None:
    document = make_sbom("hello-c", [(glibc_binary, "linux/amd64")], packages={})
    (ref,) = depends_on(document, "binary:linux/amd64:/hello-c")
    libc = components(document)[ref]
    assert libc["name"] == "glibc" and "version" not in libc and "purl" not in libc
    assert tools(document) == {"osless": "0.1.0"}
    assert_valid(document)


def test_image_extras_from_debian_packages_are_data_components(go_binary: tuple[Path, str]) -> None:
    document = make_sbom("tls-go", [(go_binary[0], "linux/amd64")])
    ref = "pkg:deb/debian/ca-certificates@20250419%2Bdeb13u1?arch=all&distro=debian-13"
    extra = components(document)[ref]
    assert extra["type"] == "data" and properties(extra)["image:extra"] == "ca-certificates"
    assert ref in depends_on(document, "image:tls-go:latest")
    assert_valid(document)


# ---------------------------------------------------------------------------------------------------
# The document


def test_metadata_names_the_image(glibc_binary: Path) -> None:
    document = json.loads(make_sbom("hello-c", [(glibc_binary, "linux/amd64")], tag="1.2.0"))
    component = document["metadata"]["component"]
    assert (component["type"], component["name"], component["version"]) == ("container", "hello-c", "1.2.0")
    assert "purl" not in component  # the index digest depends on the SBOM: it cannot be named in it
    assert properties(component) == {"image:repository": "hello-c", "source:revision": "0123abcd"}
    assert document["metadata"]["timestamp"] == "2023-11-14T22:13:20+00:00"  # SOURCE_DATE_EPOCH
    assert document["specVersion"] == "1.5" and document["bomFormat"] == "CycloneDX"


def test_a_known_index_digest_gives_the_image_an_oci_purl(glibc_binary: Path) -> None:
    document = sbom.sbom_for(
        service("hello-c"),
        [PlatformBinary(platform=AMD64, path=glibc_binary)],
        packages=PACKAGES,
        provenance=PROVENANCE,
        index_digest="sha256:" + "a" * 64,
    )
    purl = json.loads(document)["metadata"]["component"]["purl"]
    assert purl == f"pkg:oci/hello-c@sha256:{'a' * 64}?tag=latest"
    assert_valid(document)


def test_same_inputs_give_byte_identical_documents(
    go_binary: tuple[Path, str], glibc_binary: Path, tmp_path: Path
) -> None:
    elsewhere = tmp_path / "other" / "place"
    elsewhere.mkdir(parents=True)
    shutil.copy(glibc_binary, elsewhere / "hello")
    first = make_sbom("hello-c", [(glibc_binary, "linux/amd64"), (glibc_binary, "linux/arm64")])
    second = make_sbom("hello-c", [(elsewhere / "hello", "linux/amd64"), (glibc_binary, "linux/arm64")])
    assert first == second  # no host path goes in
    go_first = make_sbom("hello-go", [(go_binary[0], "linux/amd64")])
    assert go_first == make_sbom("hello-go", [(go_binary[0], "linux/amd64")])


def test_the_serial_number_is_derived_from_the_content(glibc_binary: Path) -> None:
    first = json.loads(make_sbom("hello-c", [(glibc_binary, "linux/amd64")]))
    later = Provenance(revision=PROVENANCE.revision, source_date_epoch=PROVENANCE.source_date_epoch + 1)
    second = json.loads(make_sbom("hello-c", [(glibc_binary, "linux/amd64")], provenance=later))
    assert first["serialNumber"] != second["serialNumber"]
    serial = uuid.UUID(first["serialNumber"].removeprefix("urn:uuid:"))
    assert serial.version == 5
    first["serialNumber"] = f"urn:uuid:{uuid.UUID(int=0)}"
    draft = (json.dumps(first, indent=2, sort_keys=True, ensure_ascii=False) + "\n").encode()
    assert serial == uuid.uuid5(sbom.SERIAL_NAMESPACE, hashlib.sha256(draft).hexdigest())


# ---------------------------------------------------------------------------------------------------
# Output: the file and the layout


def image_for(binary: Path, platform_name: str) -> oci.Image:
    platform = PLATFORMS[platform_name]
    config = oci.ImageConfig(
        platform=platform, entrypoint=("/hello-c",), created=PROVENANCE.source_date_epoch
    )
    return oci.build_image([oci.FileEntry(path="/hello-c", data=binary.read_bytes())], config)


def test_write_service_sbom_writes_the_file_and_returns_the_blob(glibc_binary: Path, tmp_path: Path) -> None:
    engine = FakeEngine(DPKG_OUTPUT)
    path, blob = sbom.write_service_sbom(
        engine,  # type: ignore[arg-type]
        service("hello-c"),
        toolchain=toolchain_image(f"sha256:{uuid.uuid4().hex}"),
        binaries=[PlatformBinary(platform=AMD64, path=glibc_binary)],
        provenance=PROVENANCE,
        out_root=tmp_path,
        inputs_key="k1",
    )
    assert path == tmp_path / "hello-c" / "sbom.cdx.json"
    assert path.read_bytes() == blob.data and blob.media_type == "application/vnd.cyclonedx+json"
    assert "libc6-dev" in {c["name"] for c in components(blob.data).values()}
    # A toolchain that failed to provision gives no package list (never reached when a target passed).
    _, bare = sbom.write_service_sbom(
        engine,  # type: ignore[arg-type]
        service("hello-c"),
        toolchain=ToolchainError("no image"),
        binaries=[PlatformBinary(platform=AMD64, path=glibc_binary)],
        provenance=PROVENANCE,
        out_root=tmp_path,
        inputs_key="k2",
    )
    assert "libc6-dev" not in {c["name"] for c in components(bare.data).values()}


def test_an_sbom_made_from_the_same_inputs_is_reused(glibc_binary: Path, tmp_path: Path) -> None:
    def write(key: str, engine: FakeEngine) -> bytes:
        _, blob = sbom.write_service_sbom(
            engine,  # type: ignore[arg-type]
            service("hello-c"),
            toolchain=toolchain_image(f"sha256:{uuid.uuid4().hex}"),
            binaries=[PlatformBinary(platform=AMD64, path=glibc_binary)],
            provenance=PROVENANCE,
            out_root=tmp_path,
            inputs_key=key,
        )
        return blob.data

    first = write("same", FakeEngine(DPKG_OUTPUT))
    assert write("same", FakeEngine("")) == first  # not asked again: the package list is not needed
    assert write("other", FakeEngine("")) != first  # made anew, here without package versions


def test_the_layout_names_the_sbom_blob_from_its_index(glibc_binary: Path, tmp_path: Path) -> None:
    images = [image_for(glibc_binary, "linux/amd64"), image_for(glibc_binary, "linux/arm64")]
    document = make_sbom("hello-c", [(glibc_binary, "linux/amd64"), (glibc_binary, "linux/arm64")])
    blob = oci.Blob(media_type=sbom.MEDIA_TYPE, data=document)
    plain = package.write_service_layout(service("hello-c"), images, tmp_path / "plain", PROVENANCE)
    with_sbom = package.write_service_layout(service("hello-c"), images, tmp_path, PROVENANCE, sbom=blob)
    layout = tmp_path / "hello-c" / "oci"
    index = json.loads((layout / "index.json").read_bytes())
    assert index["annotations"]["dev.osless.sbom.digest"] == "sha256:" + hashlib.sha256(document).hexdigest()
    assert index["annotations"]["dev.osless.sbom.mediaType"] == "application/vnd.cyclonedx+json"
    assert (layout / blob.path).read_bytes() == document
    plain_index = json.loads((tmp_path / "plain" / "hello-c" / "oci" / "index.json").read_bytes())
    assert index["manifests"] == plain_index["manifests"]  # Docker 20.10 still pulls per platform
    assert plain != with_sbom
    assert oci.verify_layout(layout) == []

    # Rewriting without the SBOM removes its blob, like any stale blob.
    package.write_service_layout(service("hello-c"), images, tmp_path, PROVENANCE)
    assert not (layout / blob.path).exists() and oci.verify_layout(layout) == []


def test_verify_layout_wants_the_annotated_blob_and_its_media_type(
    glibc_binary: Path, tmp_path: Path
) -> None:
    images = [image_for(glibc_binary, "linux/amd64")]
    blob = oci.Blob(media_type=sbom.MEDIA_TYPE, data=b'{"bomFormat": "CycloneDX"}\n')
    annotations = {oci.SBOM_DIGEST_ANNOTATION: blob.digest}
    oci.write_layout(tmp_path, images, annotations, blobs=[blob])
    (problem,) = oci.verify_layout(tmp_path)
    assert "no dev.osless.sbom.mediaType annotation" in problem

    annotations[oci.SBOM_MEDIA_TYPE_ANNOTATION] = sbom.MEDIA_TYPE
    oci.write_layout(tmp_path, images, annotations, blobs=[blob])
    assert oci.verify_layout(tmp_path) == []
    (tmp_path / blob.path).unlink()
    (problem,) = oci.verify_layout(tmp_path)
    assert f"blob {blob.digest} is missing" in problem

    oci.write_layout(tmp_path, images, annotations, blobs=[blob])
    (tmp_path / blob.path).write_bytes(b"tampered")
    (problem,) = oci.verify_layout(tmp_path)
    assert "content does not match its digest" in problem


# ---------------------------------------------------------------------------------------------------
# What each binary was made of, and from where (docs/report.md, "The SBOM of each image")

# A toolchain image with per-platform libraries: zlib1g-dev for arm64 (multiarch) and amd64 (native),
# libpng-dev:arm64, which ships no static archive, and the C runtime's own -dev packages.
LIBRARY_OUTPUT = "\n".join(
    [
        DPKG_OUTPUT,
        "ii \tzlib1g-dev\t1:1.3.dfsg+really1.3.1-1+b1\tarm64",
        "ii \tzlib1g-dev\t1:1.3.dfsg+really1.3.1-1+b1\tamd64",
        "ii \tlibpng-dev\t1.6.48-1\tarm64",
        "ii \tlibcrypt-dev\t1:4.4.38-1\tamd64",
        "ii \tlibgcc-14-dev\t14.2.0-19\tamd64",
        "ii \tlibfoo-dev\t1.0-1\tamd64",  # its .list has no ":amd64": an older dpkg's name
        "#static\tzlib1g-dev:arm64",
        "#static\tzlib1g-dev:amd64",
        "#static\tlibc6-dev:amd64",
        "#static\tlibcrypt-dev:amd64",
        "#static\tlibgcc-14-dev:amd64",
        "#static\tlibstdc++-14-dev:amd64",
        "#static\tmusl-dev:arm64",
        "#static\tlibfoo-dev",
    ]
)


def test_packages_shipping_a_static_archive_are_marked() -> None:
    packages = sbom.parse_packages(LIBRARY_OUTPUT)
    assert packages["zlib1g-dev:arm64"].static_archive and packages["zlib1g-dev:amd64"].static_archive
    assert packages["libfoo-dev"].static_archive and packages["libfoo-dev:amd64"].static_archive
    assert not packages["libpng-dev:arm64"].static_archive and not packages["gcc"].static_archive


def test_platform_libraries_are_components_of_that_platforms_binary(glibc_binary: Path) -> None:
    """Every -dev package of a platform's architecture with a static archive, but the C runtime's, is a
    library of the binary of that platform (and of no other), with its version and architecture."""
    packages = sbom.parse_packages(LIBRARY_OUTPUT)
    document = make_sbom("hello-c", [(glibc_binary, "linux/arm64"), (glibc_binary, "linux/amd64")], packages)
    arm64 = "pkg:deb/debian/zlib1g-dev@1:1.3.dfsg%2Breally1.3.1-1%2Bb1?arch=arm64&distro=debian-13"
    amd64 = "pkg:deb/debian/zlib1g-dev@1:1.3.dfsg%2Breally1.3.1-1%2Bb1?arch=amd64&distro=debian-13"
    foo = "pkg:deb/debian/libfoo-dev@1.0-1?arch=amd64&distro=debian-13"
    on_arm64 = set(depends_on(document, "binary:linux/arm64:/hello-c"))
    on_amd64 = set(depends_on(document, "binary:linux/amd64:/hello-c"))
    assert arm64 in on_arm64 and arm64 not in on_amd64
    assert {amd64, foo} <= on_amd64 and amd64 not in on_arm64
    found = components(document)
    names = {found[ref]["name"] for ref in on_arm64 | on_amd64}
    assert not names & {"libpng-dev", "libcrypt-dev", "libgcc-14-dev", "libstdc++-14-dev", "musl-dev"}
    assert properties(found[arm64]) == {"origin": "debian-package", "platforms": "linux/arm64"}
    assert found[arm64]["version"] == "1:1.3.dfsg+really1.3.1-1+b1"
    assert_valid(document)


def test_a_binary_without_libc_links_no_platform_library(go_binary: tuple[Path, str]) -> None:
    document = make_sbom("hello-go", [(go_binary[0], "linux/amd64")], sbom.parse_packages(LIBRARY_OUTPUT))
    assert not any("zlib1g-dev" in ref for ref in components(document))


def test_the_service_source_is_a_component_of_every_binary(glibc_binary: Path) -> None:
    document = make_sbom("hello-c", [(glibc_binary, "linux/arm64"), (glibc_binary, "linux/amd64")])
    source = components(document)["source:hello-c"]
    assert source["type"] == "file" and source["name"] == "hello-c source"
    assert source["version"] == "0123abcd"
    assert properties(source) == {
        "origin": "service-source",
        "source:revision": "0123abcd",
        "platforms": "linux/amd64,linux/arm64",
    }
    for platform in ("linux/amd64", "linux/arm64"):
        assert "source:hello-c" in depends_on(document, f"binary:{platform}:/hello-c", source=True)
    assert_valid(document)


def test_go_modules_say_where_their_code_came_from(go_binary: tuple[Path, str]) -> None:
    """The main module and a module replaced by a directory of the source are the service's source; a
    module with a go.sum hash came from the module cache; the standard library from the toolchain."""
    document = make_sbom("hello-go", [(go_binary[0], "linux/amd64")])
    origins = {c["name"]: properties(c).get("origin") for c in components(document).values()}
    assert origins["example.com/hello"] == "service-source"
    assert origins["example.com/local"] == "service-source"
    assert origins["example.com/dep"] == "go-module-cache"
    assert origins["example.com/fork"] == "go-module-cache"
    assert origins["stdlib"] == "toolchain"
    assert properties(components(document)["pkg:golang/example.com/dep@v1.2.3"])["platforms"] == "linux/amd64"


def test_a_vendored_go_module_is_the_services_source() -> None:
    """A vendor/ build records its modules without go.sum hashes; an absolute directory replacement
    is whatever the builder had there."""
    from orchestrator.elf.goinfo import Module
    from orchestrator.languages.go import _origin

    vendored = Module(path="example.com/dep", version="v1.2.3", sum=None)
    assert _origin(vendored, "dep", False) == "service-source"
    directory = Module(path="/opt/x", version="", sum=None)
    replaced = Module(path="x", version="v1.0.0", sum=None, replace=directory)
    assert _origin(replaced, "dep", True) == "directory"
