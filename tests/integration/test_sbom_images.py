"""The SBOM of every shipped image, from a real `osless build`: what it lists against the binaries and the
toolchain images' package databases, and its blob in the OCI layout."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import pytest
from cyclonedx.validation.json import JsonStrictValidator

from orchestrator.elf.goinfo import read_go_build_info
from orchestrator.image import oci
from orchestrator.outputs import sbom
from orchestrator.platforms import PLATFORMS
from orchestrator.recipe.loader import load_project
from tests.conftest import REPO_ROOT
from tests.integration.conftest import BUILT_PLATFORMS, OslessRun

pytestmark = pytest.mark.integration


def images(run: OslessRun) -> dict[str, dict[str, Any]]:
    return {image["service"]: image for image in run.report["images"]}


def document(run: OslessRun, service: str) -> dict[str, Any]:
    return dict(json.loads((run.out / service / sbom.SBOM_FILE).read_bytes()))


def depends_on(bom: dict[str, Any], ref: str) -> list[str]:
    """What `ref` depends on, but the service's source component (every binary's: tested below)."""
    (entry,) = [d for d in bom["dependencies"] if d["ref"] == ref]
    return [r for r in entry.get("dependsOn", []) if not r.startswith("source:")]


def by_ref(bom: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {c["bom-ref"]: c for c in bom["components"]}


def dpkg_query(docker_client: Any, image_id: str, *packages: str) -> dict[str, tuple[str, str]]:
    """Version and architecture of packages in a toolchain image, asked of dpkg-query directly."""
    output = docker_client.containers.run(
        image_id,
        ["dpkg-query", "-W", "-f", "${Package}\t${Version}\t${Architecture}\n", *packages],
        remove=True,
        network_mode="none",
    ).decode()
    rows = [line.split("\t") for line in output.splitlines()]
    return {name: (version, architecture) for name, version, architecture in rows}


def test_every_image_has_its_sbom_in_the_report_and_the_layout(build_all: OslessRun) -> None:
    assert build_all.returncode == 0, build_all.stderr
    assert set(images(build_all)) == set(load_project(REPO_ROOT).services)
    validator = JsonStrictValidator(sbom.SCHEMA_VERSION)
    for service, image in images(build_all).items():
        path = build_all.out / service / sbom.SBOM_FILE
        assert image["sbom"] == str(path)
        data = path.read_bytes()
        assert validator.validate_str(data.decode()) is None, service
        layout = Path(image["layout"])
        index = json.loads((layout / "index.json").read_bytes())
        annotations = index["annotations"]
        assert annotations[oci.SBOM_DIGEST_ANNOTATION] == "sha256:" + hashlib.sha256(data).hexdigest()
        assert annotations[oci.SBOM_MEDIA_TYPE_ANNOTATION] == "application/vnd.cyclonedx+json"
        blob = layout / "blobs" / "sha256" / hashlib.sha256(data).hexdigest()
        assert blob.read_bytes() == data
        assert oci.verify_layout(layout) == []
        # The index still lists exactly the platform images.
        assert [m["mediaType"] for m in index["manifests"]] == [oci.MEDIA_TYPE_MANIFEST] * len(
            image["platforms"]
        )
        assert all("platform" in m for m in index["manifests"])
        bom = json.loads(data)
        binaries = {c["bom-ref"]: c for c in bom["components"] if c["bom-ref"].startswith("binary:")}
        assert len(binaries) == len(image["platforms"])
        assert all(c["type"] == "application" for c in binaries.values())
        source = by_ref(bom)[f"source:{service}"]  # what every binary was built from
        assert all(f"source:{service}" in d["dependsOn"] for d in bom["dependencies"] if d["ref"] in binaries)
        assert {p["name"]: p["value"] for p in source["properties"]}["osless:origin"] == "service-source"
        for target in build_all.report["targets"]:
            if target["service"] == service and target["status"] == "passed":
                ref = next(r for r in binaries if r.startswith(f"binary:{target['platform']}:"))
                assert binaries[ref]["hashes"] == [{"alg": "SHA-256", "content": target["binary"]["sha256"]}]


def test_hello_go_lists_the_stdlib_of_its_go_version(build_all: OslessRun) -> None:
    bom = document(build_all, "hello-go")
    for platform in images(build_all)["hello-go"]["platforms"]:
        target = build_all.target("hello-go", platform)
        info = read_go_build_info(Path(target["binary"]["path"]).read_bytes())
        assert info is not None
        version = info.go_version.removeprefix("go")
        refs = depends_on(bom, f"binary:{platform}:/hello-go")
        assert f"pkg:golang/stdlib@{version}" in refs
        assert "pkg:golang/example.com/hello-go" in refs


def test_hello_go_modules_lists_the_fetched_module(build_all: OslessRun) -> None:
    """The module fetched before the build, as the binary's build info records it: its version, its go.sum
    hash, where it came from and on which platforms."""
    bom = document(build_all, "hello-go-modules")
    errors = by_ref(bom)["pkg:golang/github.com/pkg/errors@v0.9.1"]
    properties = {p["name"]: p["value"] for p in errors["properties"]}
    assert properties["osless:go:sum"] == "h1:FEBLx1zS214owpjy7qsBeixbURkuhQAwrK5UwLGTwt4="
    assert properties["osless:origin"] == "go-module-cache"
    assert properties["osless:platforms"] == ",".join(
        sorted(images(build_all)["hello-go-modules"]["platforms"])
    )
    for platform in images(build_all)["hello-go-modules"]["platforms"]:
        assert errors["bom-ref"] in depends_on(bom, f"binary:{platform}:/hello-go-modules")
        assert build_all.target("hello-go-modules", platform)["fetch"]["network"] is False


def test_hello_c_lists_the_libc_packages_of_the_gcc_toolchain(
    build_all: OslessRun, docker_client: Any
) -> None:
    bom = document(build_all, "hello-c")
    components = by_ref(bom)
    installed = dpkg_query(
        docker_client, build_all.report["toolchains"]["gcc"], "libc6-dev", "libc6-dev-arm64-cross", "gcc"
    )
    for platform, package in (("linux/amd64", "libc6-dev"), ("linux/arm64", "libc6-dev-arm64-cross")):
        (ref,) = depends_on(bom, f"binary:{platform}:/hello-c")
        libc = components[ref]
        version, architecture = installed[package]
        assert (libc["name"], libc["version"]) == (package, version)
        assert f"arch={architecture}" in libc["purl"] and libc["purl"].startswith(
            f"pkg:deb/debian/{package}@"
        )
    tools = {t["name"]: t["version"] for t in bom["metadata"]["tools"]["components"]}
    assert tools["gcc"] == installed["gcc"][0]


def test_hello_c_musl_lists_musl(build_all: OslessRun, docker_client: Any) -> None:
    """Each platform's musl is musl-dev of its own architecture (multiarch copies of one package)."""
    bom = document(build_all, "hello-c-musl")
    assert images(build_all)["hello-c-musl"]["platforms"] == list(BUILT_PLATFORMS)
    for platform in (PLATFORMS[name] for name in BUILT_PLATFORMS):
        package = f"musl-dev:{platform.debian_arch}"
        installed = dpkg_query(docker_client, build_all.report["toolchains"]["gcc"], package)
        assert installed["musl-dev"][1] == platform.debian_arch
        (ref,) = depends_on(bom, f"binary:{platform.name}:/hello-c-musl")
        musl = by_ref(bom)[ref]
        assert (musl["name"], musl["version"]) == ("musl-dev", installed["musl-dev"][0])
        assert f"arch={platform.debian_arch}" in musl["purl"]


def test_hello_cxx_lists_libstdcxx_with_its_version(build_all: OslessRun, docker_client: Any) -> None:
    """Beside the libc, the static libstdc++ as the Debian package g++ took it from (native:
    libstdc++-<N>-dev, cross: libstdc++-<N>-dev-<arch>-cross, N = g++'s major version), with its
    version; g++ and g++-<triple> as tools."""
    bom = document(build_all, "hello-cxx")
    components = by_ref(bom)
    image = build_all.report["toolchains"]["gcc"]
    gxx, native = dpkg_query(docker_client, image, "g++")["g++"]
    major = gxx.partition(":")[2].split(".")[0]
    tools = {t["name"]: t["version"] for t in bom["metadata"]["tools"]["components"]}
    assert tools["g++"] == gxx
    for platform in (PLATFORMS[name] for name in BUILT_PLATFORMS):
        cross = platform.debian_arch != native
        package = f"libstdc++-{major}-dev" + (f"-{platform.debian_arch}-cross" if cross else "")
        libc = f"libc6-dev-{platform.debian_arch}-cross" if cross else "libc6-dev"
        installed = dpkg_query(docker_client, image, package, libc)
        binary = components[f"binary:{platform.name}:/hello-cxx"]
        properties = {p["name"]: p["value"] for p in binary["properties"]}
        assert (properties["osless:libc"], properties["osless:cxx:stdlib"]) == ("glibc", "libstdc++")
        parts = {components[ref]["name"]: components[ref] for ref in depends_on(bom, binary["bom-ref"])}
        assert set(parts) == {libc, package}
        assert parts[package]["version"] == installed[package][0]
        assert parts[package]["purl"].startswith(f"pkg:deb/debian/libstdc%2B%2B-{major}-dev")
        assert parts[libc]["version"] == installed[libc][0]
        if cross:
            assert tools[f"g++-{platform.gnu_triple}"] == gxx
            assert f"g++-{major}-{platform.gnu_triple}" in tools


def test_hello_rust_lists_its_crates_and_the_std_of_each_platform(
    build_all: OslessRun, docker_client: Any
) -> None:
    """Crates with versions from the sample's Cargo.lock, Debian's std for each platform's architecture
    at the version of the toolchain's libstd-rust-dev, and rustc and cargo as tools."""
    bom = document(build_all, "hello-rust")
    components = by_ref(bom)
    installed = dpkg_query(docker_client, build_all.report["toolchains"]["rust"], "libstd-rust-dev", "rustc")
    std_version = installed["libstd-rust-dev"][0]
    itoa = components["pkg:cargo/itoa@1.0.14"]
    assert (itoa["name"], itoa["version"]) == ("itoa", "1.0.14")
    for platform in images(build_all)["hello-rust"]["platforms"]:
        refs = depends_on(bom, f"binary:{platform}:/hello-rust")
        assert "pkg:cargo/itoa@1.0.14" in refs and "cargo-local:hello-rust@0.1.0" in refs
        (std,) = [components[r] for r in refs if components[r]["name"] == "libstd-rust-dev"]
        assert std["version"] == std_version
        assert f"arch={PLATFORMS[platform].debian_arch}" in std["purl"]
    tools = {t["name"]: t["version"] for t in bom["metadata"]["tools"]["components"]}
    assert tools["rustc"] == installed["rustc"][0]
