"""Rust (orchestrator/languages/rust.py): Cargo.lock and cargo auditable parsing, recognition of real
static Rust binaries from the host's rustc (stripped and not, with a crafted `.dep-v0` section added by
objcopy), and the SBOM the hello-rust recipe gets from them. The toolchain image's binaries for every
platform are tests/integration/test_rust.py's."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import zlib
from pathlib import Path
from typing import Any

import pytest
from cyclonedx.validation.json import JsonStrictValidator

from orchestrator.languages import build_env_defaults
from orchestrator.languages.rust import (
    CRATES_IO,
    RUST,
    Crate,
    auditable_crates,
    crate_components,
    crates_io_directory,
    parse_auditable,
    parse_cargo_lock,
    read_cargo_lock,
    rust_version,
)
from orchestrator.outputs import sbom
from orchestrator.outputs.components import DebianPackage
from orchestrator.outputs.sbom import PlatformBinary
from orchestrator.pipeline.provenance import Provenance
from orchestrator.platforms import PLATFORMS
from orchestrator.recipe.loader import load_project
from orchestrator.verify.context import read_context
from tests.conftest import REPO_ROOT

RUSTC = shutil.which("rustc")
GCC = shutil.which("gcc")
OBJCOPY = shutil.which("objcopy")
SAMPLE = REPO_ROOT / "sources" / "hello-rust"
PROGRAM = """use std::thread;
fn main() {
    let handles: Vec<_> = (0..2u64).map(|i| thread::spawn(move || (0..10 * i).sum::<u64>())).collect();
    let sums: Vec<u64> = handles.into_iter().map(|h| h.join().unwrap()).collect();
    println!("{sums:?}");
}
"""
AUDIT_DATA = {
    "format": 1,
    "packages": [
        {"name": "hello-rust", "version": "0.1.0", "source": "local", "dependencies": [1, 2], "root": True},
        {"name": "itoa", "version": "1.0.14", "source": "crates.io"},
        {"name": "cc", "version": "1.2.0", "source": "CratesIo", "kind": "build"},
        {"name": "forked", "version": "0.3.0", "source": "git"},
    ],
}
DEBIAN_RUST = "1.85.1+dfsg1-1+deb13u1"
PACKAGES = {
    name: DebianPackage(name=name, version=version, architecture=arch, distro="debian-13")
    for name, version, arch in (
        ("rustc", DEBIAN_RUST, "amd64"),
        ("cargo", DEBIAN_RUST, "amd64"),
        ("libstd-rust-dev", DEBIAN_RUST, "amd64"),
        ("gcc-aarch64-linux-gnu", "4:14.2.0-1", "amd64"),
        ("libc6-dev-arm64-cross", "2.41-11cross1", "all"),
    )
}


def run(command: list[str], cwd: Path) -> None:
    result = subprocess.run(command, cwd=cwd, capture_output=True, text=True, check=False)
    assert result.returncode == 0, f"{' '.join(command)}:\n{result.stderr}"


@pytest.fixture(scope="module")
def rust_binaries(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Static (+crt-static) Rust programs from the host's rustc: unstripped, stripped, and stripped with a
    crafted cargo auditable section."""
    if RUSTC is None:
        pytest.skip("the host has no rustc")
    work = tmp_path_factory.mktemp("rust")
    (work / "main.rs").write_text(PROGRAM)
    static = ["-O", "-C", "target-feature=+crt-static", "--target", "x86_64-unknown-linux-gnu"]
    run([RUSTC, *static, "-o", "unstripped", "main.rs"], work)
    run([RUSTC, *static, "-C", "strip=symbols", "-o", "stripped", "main.rs"], work)
    binaries = {"unstripped": work / "unstripped", "stripped": work / "stripped"}
    if OBJCOPY is not None:
        (work / "audit.z").write_bytes(zlib.compress(json.dumps(AUDIT_DATA).encode()))
        run([OBJCOPY, "--add-section", ".dep-v0=audit.z", "stripped", "auditable"], work)
        binaries["auditable"] = work / "auditable"
    return binaries


# ---------------------------------------------------------------------------------------------------
# Cargo.lock and cargo auditable data


def test_the_sample_cargo_lock_lists_its_package_and_the_vendored_crate() -> None:
    crates = read_cargo_lock(SAMPLE / "Cargo.lock")
    assert crates == [
        Crate(name="hello-rust", version="0.1.0", source=None),
        Crate(
            name="itoa",
            version="1.0.14",
            source=CRATES_IO,
            checksum="d75a2a4b1b190afb6f5425f10f6a8f959d2ea0b9c2b1d79553551850539e4674",
        ),
    ]


def test_cargo_lock_sources_and_bad_entries() -> None:
    text = """version = 3
[[package]]
name = "a"
version = "1.0.0"
source = "git+https://example.org/a.git?branch=main#0123abc"

[[package]]
name = "b"
version = "2.0.0"
source = "sparse+https://index.crates.io/"
checksum = "not-a-sha256"

[[package]]
name = "no-version"

[[package]]
name = 5
version = "1"
"""
    crates = parse_cargo_lock(text)
    assert crates == [
        Crate(name="a", version="1.0.0", source="git+https://example.org/a.git?branch=main#0123abc"),
        Crate(name="b", version="2.0.0", source="sparse+https://index.crates.io/"),
    ]
    assert parse_cargo_lock("not [toml") is None
    assert parse_cargo_lock('package = "x"') is None
    assert parse_cargo_lock("[x]\n" + "a = " + "[" * 100_000) is None


def test_cargo_lock_that_is_no_regular_file_is_not_read(tmp_path: Path) -> None:
    (tmp_path / "real.lock").write_text('[[package]]\nname = "a"\nversion = "1.0.0"\n')
    (tmp_path / "Cargo.lock").symlink_to(tmp_path / "real.lock")
    assert read_cargo_lock(tmp_path / "Cargo.lock") is None  # a link could point out of the source
    assert read_cargo_lock(tmp_path / "missing.lock") is None
    os.mkfifo(tmp_path / "fifo.lock")
    assert read_cargo_lock(tmp_path / "fifo.lock") is None  # and does not block


def test_auditable_data_lists_packages_with_their_kind_and_source() -> None:
    crates = parse_auditable(zlib.compress(json.dumps(AUDIT_DATA).encode()))
    assert crates == [
        Crate(name="hello-rust", version="0.1.0", source=None),
        Crate(name="itoa", version="1.0.14", source=CRATES_IO),
        Crate(name="cc", version="1.2.0", source=CRATES_IO, kind="build"),
        Crate(name="forked", version="0.3.0", source="git"),
    ]


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"not zlib",
        zlib.compress(b"not json"),
        zlib.compress(b'{"packages": 3}'),
        zlib.compress(b"[]"),
        zlib.compress(json.dumps(AUDIT_DATA).encode())[:-3],  # truncated stream
        zlib.compress(b" " * (9 * 1024**2)),  # inflates past the limit
    ],
)
def test_bad_auditable_data_is_none(data: bytes) -> None:
    assert parse_auditable(data) is None


# ---------------------------------------------------------------------------------------------------
# Real binaries


def test_build_env_caches_the_target_directory_per_target() -> None:
    env = RUST.build_env("/cache", "/cache/targets/svc/linux-arm64")
    assert env == {
        "CARGO_HOME": "/tmp/cargo-home",
        "CARGO_TARGET_DIR": "/cache/targets/svc/linux-arm64/cargo",
        "CARGO_NET_OFFLINE": "true",
    }
    assert env.items() <= build_env_defaults("/cache", "/cache/targets/svc/linux-arm64").items()


@pytest.mark.parametrize("variant", ["unstripped", "stripped"])
def test_static_rust_binaries_are_recognised(rust_binaries: dict[str, Path], variant: str) -> None:
    context = read_context(rust_binaries[variant])
    assert context.language is RUST
    assert context.facts.stripped is (variant == "stripped")
    assert context.contents is not None and context.contents.glibc  # C's traps apply
    version = rust_version(context.contents)
    assert version is not None and version.count(".") == 2
    (finding,) = RUST.info_findings(context)
    assert finding.id == "rust.version" and finding.message == f"Rust {version}"


def test_a_rust_binary_too_large_to_scan_is_recognised_by_its_comment(rust_binaries: dict[str, Path]) -> None:
    context = read_context(rust_binaries["stripped"], limit=1)
    assert context.contents is None and context.language is RUST


def test_c_binaries_are_not_rust(tmp_path: Path) -> None:
    if GCC is None:
        pytest.skip("the host has no gcc")
    (tmp_path / "main.c").write_text('#include <stdio.h>\nint main(void) { puts("hi"); return 0; }\n')
    run([GCC, "-static", "-o", "hello", "main.c"], tmp_path)
    assert read_context(tmp_path / "hello").language.name == "c"


def test_crafted_auditable_section_names_the_linked_crates(rust_binaries: dict[str, Path]) -> None:
    if "auditable" not in rust_binaries:
        pytest.skip("the host has no objcopy")
    context = read_context(rust_binaries["auditable"])
    assert context.language is RUST
    assert [crate.name for crate in auditable_crates(context.contents) or []] == [
        "hello-rust",
        "itoa",
        "cc",
        "forked",
    ]
    (finding,) = RUST.info_findings(context)
    assert finding.message.endswith(", cargo auditable data: 3 packages linked")  # cc is a build dependency


# ---------------------------------------------------------------------------------------------------
# SBOM


def make_sbom(binary: Path) -> Any:
    service = load_project(REPO_ROOT).services["hello-rust"]
    document = sbom.sbom_for(
        service,
        [PlatformBinary(platform=PLATFORMS["linux/amd64"], path=binary)],
        packages=PACKAGES,
        provenance=Provenance(revision="0123abcd", source_date_epoch=1_700_000_000),
    )
    errors = JsonStrictValidator(sbom.SCHEMA_VERSION).validate_str(document.decode(), all_errors=True)
    assert errors is None, [str(error) for error in errors]
    return json.loads(document)


def by_ref(document: Any) -> dict[str, Any]:
    return {c["bom-ref"]: c for c in document["components"]}


def test_sbom_lists_the_cargo_lock_crates(rust_binaries: dict[str, Path]) -> None:
    document = make_sbom(rust_binaries["stripped"])
    components = by_ref(document)
    itoa = components["pkg:cargo/itoa@1.0.14"]
    assert itoa["version"] == "1.0.14"
    assert itoa["hashes"] == [
        {"alg": "SHA-256", "content": "d75a2a4b1b190afb6f5425f10f6a8f959d2ea0b9c2b1d79553551850539e4674"}
    ]
    local = components["cargo-local:hello-rust@0.1.0"]
    assert "purl" not in local  # a workspace package is no registry's crate
    (binary,) = [d for d in document["dependencies"] if d["ref"] == "binary:linux/amd64:/hello-rust"]
    assert {"pkg:cargo/itoa@1.0.14", "cargo-local:hello-rust@0.1.0"} <= set(binary["dependsOn"])
    properties = {p["name"]: p["value"] for p in components["binary:linux/amd64:/hello-rust"]["properties"]}
    assert properties["osless:rust:version"].count(".") == 2
    tools = {t["name"] for t in document["metadata"]["tools"]["components"]}
    assert {"rustc", "cargo"} <= tools


def test_sbom_reads_the_cargo_lock_the_build_wrote_when_the_source_has_none(
    rust_binaries: dict[str, Path], tmp_path: Path
) -> None:
    """A source without Cargo.lock (a crate from Debian's registry): cargo writes one in the workspace,
    the build keeps it in out/<service>/<platform>/records, and the SBOM lists its crates."""
    project = tmp_path / "project"
    shutil.copytree(REPO_ROOT / "recipes" / "toolchains", project / "recipes" / "toolchains")
    shutil.copy(REPO_ROOT / "recipes" / "hello-rust.toml", project / "recipes")
    shutil.copytree(REPO_ROOT / "sources" / "hello-rust", project / "sources" / "hello-rust")
    lock = project / "sources" / "hello-rust" / "Cargo.lock"
    records = tmp_path / "records"
    records.mkdir()
    lock.rename(records / "Cargo.lock")
    service = load_project(project).services["hello-rust"]

    def crates(binary: PlatformBinary) -> set[str]:
        document = sbom.sbom_for(
            service,
            [binary],
            packages=PACKAGES,
            provenance=Provenance(revision="0123abcd", source_date_epoch=1_700_000_000),
        )
        refs = {c["bom-ref"] for c in json.loads(document)["components"]}
        return {ref for ref in refs if ref.startswith("pkg:cargo/")}

    amd64 = PLATFORMS["linux/amd64"]
    assert crates(PlatformBinary(platform=amd64, path=rust_binaries["stripped"])) == set()
    kept = PlatformBinary(platform=amd64, path=rust_binaries["stripped"], records=records)
    assert crates(kept) == {"pkg:cargo/itoa@1.0.14"}


def test_sbom_prefers_the_binarys_auditable_data(rust_binaries: dict[str, Path]) -> None:
    if "auditable" not in rust_binaries:
        pytest.skip("the host has no objcopy")
    components = by_ref(make_sbom(rust_binaries["auditable"]))
    assert components["cargo-git:forked@0.3.0"].get("purl") is None  # the data names no repository
    assert "pkg:cargo/itoa@1.0.14" in components and "pkg:cargo/cc@1.2.0" not in components
    names = {c["name"] for c in components.values() if "cargo:package" in json.dumps(c)}
    assert names == {"hello-rust", "itoa", "forked"}  # from .dep-v0, the build dependency left out


def test_sbom_names_the_std_of_the_platform_at_rustcs_package_version(tmp_path: Path) -> None:
    """The std component is Debian's libstd-rust-dev for the binary's architecture when the toolchain's
    rustc is the binary's version (the host rustc is not 1.85.1: then a bare `std`)."""
    from orchestrator.languages.rust import _std_components

    (std,) = _std_components("1.85.1", PLATFORMS["linux/arm64"], PACKAGES)
    assert (
        str(std.purl)
        == "pkg:deb/debian/libstd-rust-dev@1.85.1%2Bdfsg1-1%2Bdeb13u1?arch=arm64&distro=debian-13"
    )
    (other,) = _std_components("1.95.0", PLATFORMS["linux/arm64"], PACKAGES)
    assert other.name == "std" and other.version == "1.95.0" and other.purl is None
    assert _std_components(None, PLATFORMS["linux/arm64"], PACKAGES) == []


# ---------------------------------------------------------------------------------------------------
# Where crates came from (the service's .cargo/config.toml)


def crate_origins(source: Path) -> dict[str, dict[str, str]]:
    crates = read_cargo_lock(source / "Cargo.lock") or []
    return {
        str(c.name): {p.name.removeprefix("osless:"): p.value for p in c.properties}
        for c in crate_components(crates, crates_io_directory(source))
    }


def test_vendored_crates_are_the_services_source() -> None:
    assert crates_io_directory(SAMPLE) == "vendor"
    origins = crate_origins(SAMPLE)
    assert origins["itoa"]["origin"] == "service-source" and origins["itoa"]["cargo:directory"] == "vendor"
    assert origins["hello-rust"]["origin"] == "service-source"  # the workspace's own package


def test_crates_from_debians_registry_are_debian_packages(tmp_path: Path) -> None:
    shutil.copy(SAMPLE / "Cargo.lock", tmp_path / "Cargo.lock")
    (tmp_path / ".cargo").mkdir()
    (tmp_path / ".cargo" / "config.toml").write_text(
        '[source.crates-io]\nreplace-with = "debian"\n[source.debian]\nreplace-with = "packages"\n'
        '[source.packages]\ndirectory = "/usr/share/cargo/registry/"\n'
    )
    assert crate_origins(tmp_path)["itoa"]["origin"] == "debian-package"
    (tmp_path / ".cargo" / "config.toml").write_text(
        '[source.crates-io]\nreplace-with = "x"\n[source.x]\nregistry = "y"\n'
    )
    assert crates_io_directory(tmp_path) is None and "origin" not in crate_origins(tmp_path)["itoa"]
    (tmp_path / ".cargo" / "config.toml").write_text("not toml [")
    assert crates_io_directory(tmp_path) is None
    (tmp_path / ".cargo" / "config.toml").unlink()
    (tmp_path / ".cargo" / "config.toml").symlink_to(SAMPLE / ".cargo" / "config.toml")
    assert crates_io_directory(tmp_path) is None  # not followed
