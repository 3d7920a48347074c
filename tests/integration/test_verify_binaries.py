"""The verifier's runtime findings on binaries the toolchain images build: the shipped samples get no
warning at all, musl never gets glibc's traps, glibc 2.41 NSS needs only /etc/passwd, Go 1.24 fallback
roots need no CA bundle."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest

from orchestrator.platforms import PLATFORMS
from orchestrator.recipe.loader import load_project
from orchestrator.stages.toolchain import image_reference
from orchestrator.verify.findings import Severity, Verdict
from orchestrator.verify.policy import VerifyPolicy, verify_binary
from tests.conftest import REPO_ROOT

pytestmark = pytest.mark.integration

AMD64 = PLATFORMS["linux/amd64"]
GO_ENV = {"CGO_ENABLED": "0", "GOTOOLCHAIN": "local", "GOPROXY": "off", "HOME": "/tmp", "GOCACHE": "/tmp/c"}
MUSL_PROGRAMS = {
    "getpwnam": '#include <pwd.h>\nint main(void) { return getpwnam("root") == 0; }\n',
    "getaddrinfo": "#include <netdb.h>\nint main(void) { struct addrinfo *r; "
    'return getaddrinfo("localhost", 0, 0, &r); }\n',
    "iconv": "#include <iconv.h>\nint main(void) { "
    'return iconv_open("UTF-8", "ISO-8859-1") == (iconv_t)-1; }\n',
}
FALLBACK_GO = """package main

import (
\t"crypto/x509"
\t"fmt"
\t"net/http"
)

func main() {
\tx509.SetFallbackRoots(x509.NewCertPool())
\tfmt.Println(http.Get("https://example.com"))
}
"""


def toolchain_run(
    image: str, workdir: Path, command: Sequence[str], env: dict[str, str] | None = None
) -> None:
    """Run a command in a toolchain image with `workdir` mounted at /w, as the calling user."""
    flags = [arg for key, value in (env or {}).items() for arg in ("-e", f"{key}={value}")]
    user = f"{os.getuid()}:{os.getgid()}"
    docker = ["docker", "run", "--rm", "--user", user, "-v", f"{workdir}:/w", "-w", "/w", *flags, image]
    result = subprocess.run([*docker, *command], capture_output=True, text=True, check=False)
    assert result.returncode == 0, f"{' '.join(command)}:\n{result.stderr}"


@pytest.fixture(scope="session")
def toolchain_images(docker_client: Any) -> dict[str, str]:
    images = {name: image_reference(t) for name, t in load_project(REPO_ROOT).toolchains.items()}
    for reference in images.values():
        if not docker_client.images.list(name=reference):
            pytest.fail(f"toolchain image {reference} is missing: provision it with `osless build`")
    return images


@pytest.fixture(scope="session")
def built(toolchain_images: dict[str, str], tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """The shipped samples as their recipes build them, and small programs with musl, glibc 2.41, Go 1.24."""
    work = tmp_path_factory.mktemp("toolchain-built")
    for sample in ("hello-c", "hello-c-musl", "hello-go", "tls-go", "whoami-c"):
        for file in (REPO_ROOT / "sources" / sample).iterdir():
            (work / sample).mkdir(exist_ok=True)
            (work / sample / file.name).write_bytes(file.read_bytes())
    for name, source in MUSL_PROGRAMS.items():
        (work / f"{name}.c").write_text(source)
    (work / "fallback").mkdir()
    (work / "fallback" / "go.mod").write_text("module example.com/fallback\n\ngo 1.22\n")
    (work / "fallback" / "main.go").write_text(FALLBACK_GO)
    c_flags = "-static -Os -Wall -Werror"
    c_commands = [
        f"gcc {c_flags} -s -o hello-c.bin hello-c/hello.c",
        f"musl-gcc {c_flags} -s -o hello-c-musl.bin hello-c-musl/hello.c",
        f"gcc {c_flags} -o whoami-glibc.bin whoami-c/whoami.c",
        f"gcc {c_flags} -s -o whoami-glibc-stripped.bin whoami-c/whoami.c",
        *(f"musl-gcc -static -o musl-{name}.bin {name}.c" for name in MUSL_PROGRAMS),
    ]
    toolchain_run(toolchain_images["gcc"], work, ["sh", "-ec", "; ".join(c_commands)])
    go_build = "go build -trimpath -buildvcs=false -ldflags='-s -w -buildid='"
    go_commands = [
        f"cd /w/{name} && {go_build} -o /w/{name}.bin ." for name in ("hello-go", "tls-go", "fallback")
    ]
    toolchain_run(toolchain_images["go"], work, ["sh", "-ec", "; ".join(go_commands)], GO_ENV)
    return {path.name.removesuffix(".bin"): path for path in work.glob("*.bin")}


def problems(verdict: Verdict) -> dict[str, Severity]:
    return {f.id: f.severity for f in verdict.findings if f.severity is not Severity.INFO}


def info_ids(verdict: Verdict) -> set[str]:
    return {f.id for f in verdict.findings if f.severity is Severity.INFO}


@pytest.mark.parametrize("sample", ["hello-go", "hello-c", "hello-c-musl"])
def test_shipped_samples_get_no_warning(built: dict[str, Path], sample: str) -> None:
    verdict = verify_binary(built[sample], AMD64)
    assert problems(verdict) == {}
    assert {"linkage.static", "hardening.nx-stack", "elf.stripped", "elf.size"} <= info_ids(verdict)
    assert not any(f.id.startswith(("runtime.", "needs.")) for f in verdict.findings)


@pytest.mark.parametrize(
    ("program", "expected"),
    [
        ("musl-getpwnam", {"needs.passwd": Severity.WARNING}),  # musl reads /etc/passwd itself
        ("musl-getaddrinfo", {}),
        ("musl-iconv", {}),  # musl's iconv has its charsets built in
    ],
)
def test_musl_never_gets_glibc_traps(
    built: dict[str, Path], program: str, expected: dict[str, Severity]
) -> None:
    verdict = verify_binary(built[program], AMD64)
    assert problems(verdict) == expected
    assert not any(f.id.startswith("runtime.") for f in verdict.findings)


@pytest.mark.parametrize(
    ("program", "what"),
    [("whoami-glibc", "calls getpwuid"), ("whoami-glibc-stripped", "uses glibc's NSS (stripped")],
)
def test_glibc_241_nss_needs_only_the_user_database(built: dict[str, Path], program: str, what: str) -> None:
    """glibc 2.41 has the files service built in: with /etc/passwd the lookup works in scratch."""
    verdict = verify_binary(built[program], AMD64)
    assert problems(verdict) == {"needs.passwd": Severity.WARNING}
    nss = next(f for f in verdict.findings if f.id == "runtime.nss")
    assert nss.severity is Severity.INFO and nss.message.startswith(what)
    provided = verify_binary(built[program], AMD64, VerifyPolicy(provided=frozenset({"passwd"})))
    assert problems(provided) == {}


def test_go_tls_client_needs_the_ca_bundle(built: dict[str, Path]) -> None:
    verdict = verify_binary(built["tls-go"], AMD64)
    assert problems(verdict) == {"needs.ca-certificates": Severity.WARNING}
    need = next(f for f in verdict.findings if f.id == "needs.ca-certificates")
    assert need.message.startswith("uses crypto/x509.SystemCertPool") and need.extra == "ca-certificates"


def test_go_fallback_roots_need_no_ca_bundle(built: dict[str, Path]) -> None:
    verdict = verify_binary(built["fallback"], AMD64)
    assert problems(verdict) == {}
    assert "go.fallback-roots" in info_ids(verdict)
