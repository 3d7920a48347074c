"""The verifier's runtime findings on binaries the toolchain images build: the shipped samples get no
warning at all, musl never gets glibc's traps, glibc 2.41 NSS needs only /etc/passwd, Go 1.24 fallback
roots need no CA bundle; static C++ from g++ and musl C pass on every platform, and `osless verify`
names their language."""

from __future__ import annotations

import json
import os
import shlex
import shutil
import subprocess
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest

from orchestrator.bootstrap.spec import image_reference
from orchestrator.platforms import PLATFORMS, Platform
from orchestrator.recipe.loader import load_project
from orchestrator.recipe.model import Service
from orchestrator.recipe.placeholders import build_env
from orchestrator.stages.build import build_command
from orchestrator.verify.findings import Severity, Verdict
from orchestrator.verify.policy import VerifyPolicy, verify_binary
from tests.conftest import REPO_ROOT
from tests.integration.conftest import run_osless

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


# ---------------------------------------------------------------------------------------------------
# The gcc toolchain's C++ and musl C on every platform (Debian g++ 14, glibc 2.41, musl 1.2.5)

LANGUAGE_PLATFORMS = ("linux/amd64", "linux/arm64", "linux/arm/v7")  # 64-bit x86 and ARM, 32-bit ARM
ICONV_C = '#include <iconv.h>\nint main(void) { return iconv_open("UTF-8", "ISO-8859-1") == (iconv_t)-1; }\n'
TZDB_CXX = (  # std::chrono's time zone database (GCC 14): reads tzdata.zi under /usr/share/zoneinfo
    "#include <chrono>\n#include <iostream>\n"
    'int main() { std::cout << std::chrono::locate_zone("Europe/Paris")->name() << "\\n"; }\n'
)
LOCALTIME_C = (
    "#include <stdio.h>\n#include <time.h>\nint main(void) { time_t t = 0; puts(asctime(localtime(&t))); }\n"
)


def slug(platform: str) -> str:
    return platform.replace("/", "-")


def recipe(
    service: Service, platform: Platform, env: dict[str, str], output: str, *, unstripped: bool = False
) -> str:
    """The service recipe's build command for `platform` as a shell line run in its source directory
    (copied to /w/<service>), writing /w/<output>; without `-s` when `unstripped`."""
    command = build_command(service, platform, env, f"/w/{output}")
    kept = [argument for argument in command if not (unstripped and argument == "-s")]
    return f"cd /w/{service.name} && {shlex.join(kept)}"


@pytest.fixture(scope="session")
def gcc_built(docker_client: Any, tmp_path_factory: pytest.TempPathFactory) -> dict[tuple[str, str], Path]:
    """Binaries from the real gcc toolchain image, by (kind, platform), each built with the compilers
    the toolchain recipe sets for that platform ({CXX}, {MUSL_CC}, {CC}): "cxx" is hello-cxx as its
    recipe builds it but unstripped, "cxx-stripped" the same through the platform's strip, "musl"
    hello-c-musl and "c" hello-c exactly as their recipes build them; "iconv-c" a C program calling
    iconv_open (gcc) and "iconv-c-gxx" the same linked by g++ (libstdc++ in, its iconv user not);
    "tzdb" a C++ program asking std::chrono for a zone by name, "localtime" a C program calling
    localtime."""
    project = load_project(REPO_ROOT)
    services, gcc = project.services, project.toolchains["gcc"]
    image = image_reference(gcc)
    if not docker_client.images.list(name=image):
        pytest.fail(f"toolchain image {image} is missing: provision it with `osless build`")
    work = tmp_path_factory.mktemp("gcc-built")
    for sample in ("hello-cxx", "hello-c-musl", "hello-c"):
        shutil.copytree(REPO_ROOT / "sources" / sample, work / sample)
    (work / "iconv.c").write_text(ICONV_C)
    (work / "tzdb.cpp").write_text(TZDB_CXX)
    (work / "localtime.c").write_text(LOCALTIME_C)
    commands: list[str] = []
    for platform in PLATFORMS.values():
        env = build_env(gcc, platform.name, {})
        name = slug(platform.name)
        strip = "strip" if env["CC"] == "gcc" else f"{platform.gnu_triple}-strip"
        commands += [
            recipe(services["hello-cxx"], platform, env, f"cxx-{name}.bin", unstripped=True),
            shlex.join([strip, "-o", f"/w/cxx-stripped-{name}.bin", f"/w/cxx-{name}.bin"]),
            recipe(services["hello-c-musl"], platform, env, f"musl-{name}.bin"),
        ]
        if platform.name in LANGUAGE_PLATFORMS:
            commands += [
                recipe(services["hello-c"], platform, env, f"c-{name}.bin"),
                shlex.join([env["CC"], "-static", "-o", f"/w/iconv-c-{name}.bin", "/w/iconv.c"]),
                shlex.join(
                    [env["CXX"], "-static", "-o", f"/w/iconv-c-gxx-{name}.bin", "-x", "c", "/w/iconv.c"]
                ),
                shlex.join(
                    [env["CXX"], "-std=c++20", "-static", "-s", "-o", f"/w/tzdb-{name}.bin", "/w/tzdb.cpp"]
                ),
                shlex.join([env["CC"], "-static", "-s", "-o", f"/w/localtime-{name}.bin", "/w/localtime.c"]),
            ]
    toolchain_run(image, work, ["sh", "-ec", "; ".join(commands)], {"CCACHE_DISABLE": "1"})
    built: dict[tuple[str, str], Path] = {}
    for path in work.glob("*.bin"):
        kind, _, platform = path.stem.partition("-linux-")
        built[kind, f"linux/{platform}".replace("linux/arm-v7", "linux/arm/v7")] = path
    return built


@pytest.mark.parametrize("platform", list(PLATFORMS))
@pytest.mark.parametrize("kind", ["cxx", "cxx-stripped", "musl"])
def test_gcc_toolchain_binaries_pass_on_every_platform(
    gcc_built: dict[tuple[str, str], Path], kind: str, platform: str
) -> None:
    """Static C++ (libstdc++ in: its locale code links iconv_open and glibc's tzset) and musl C, from
    Debian's compilers, unstripped and stripped: no ERROR, no WARNING, for the platform built for."""
    verdict = verify_binary(gcc_built[kind, platform], PLATFORMS[platform])
    assert verdict.ok, verdict.reason
    assert problems(verdict) == {}
    assert verdict.facts is not None and verdict.facts.platform == platform
    assert verdict.facts.linkage.value == "static"
    assert verdict.language == ("c" if kind == "musl" else "c++")
    if kind == "cxx":  # unstripped: the symbols show libstdc++'s iconv_open, which is explained
        gconv = next(f for f in verdict.findings if f.id == "runtime.gconv")
        assert gconv.severity is Severity.INFO and "libstdc++'s locale code" in gconv.message
    if kind.startswith("cxx"):
        tzdata = next(f for f in verdict.findings if f.id == "needs.tzdata")
        assert tzdata.severity is Severity.INFO and "libstdc++'s time facets" in tzdata.message
        assert "cxx.runtime" in info_ids(verdict)
    else:
        assert not any(f.id.startswith(("runtime.", "needs.")) for f in verdict.findings)


@pytest.mark.parametrize("platform", LANGUAGE_PLATFORMS)
@pytest.mark.parametrize("kind", ["iconv-c", "iconv-c-gxx"])
def test_a_c_program_calling_iconv_open_still_fails(
    gcc_built: dict[tuple[str, str], Path], kind: str, platform: str
) -> None:
    verdict = verify_binary(gcc_built[kind, platform], PLATFORMS[platform])
    assert not verdict.ok
    assert problems(verdict) == {"runtime.gconv": Severity.ERROR}
    assert verdict.reason is not None and verdict.reason.startswith("uses iconv_open")


@pytest.mark.parametrize("platform", LANGUAGE_PLATFORMS)
@pytest.mark.parametrize(("kind", "language"), [("tzdb", "c++"), ("localtime", "c")])
def test_programs_reading_time_zones_still_need_the_zone_database(
    gcc_built: dict[tuple[str, str], Path], kind: str, language: str, platform: str
) -> None:
    """libstdc++'s time facets explain /usr/share/zoneinfo only in a C++ binary without std::chrono's
    zone database; a C program's localtime keeps C's WARNING."""
    verdict = verify_binary(gcc_built[kind, platform], PLATFORMS[platform])
    assert verdict.language == language
    assert problems(verdict).get("needs.tzdata") is Severity.WARNING
    provided = verify_binary(
        gcc_built[kind, platform], PLATFORMS[platform], VerifyPolicy(provided=frozenset({"tzdata"}))
    )
    assert "needs.tzdata" not in problems(provided)


@pytest.mark.parametrize("platform", LANGUAGE_PLATFORMS)
def test_osless_verify_names_the_language(gcc_built: dict[tuple[str, str], Path], platform: str) -> None:
    files = {kind: gcc_built[kind, platform] for kind in ("cxx", "cxx-stripped", "c", "musl")}
    result = run_osless(REPO_ROOT, "verify", "--platform", platform, *map(str, files.values()))
    assert result.returncode == 0, result.stdout + result.stderr
    expected = {"cxx": "c++", "cxx-stripped": "c++", "c": "c", "musl": "c"}
    for kind, path in files.items():
        assert f"{path}: ok ({platform}, static, {expected[kind]})" in result.stdout, result.stdout
    as_json = run_osless(REPO_ROOT, "verify", "--json", str(files["cxx"]), str(files["c"]))
    assert [v["language"] for v in json.loads(as_json.stdout)] == ["c++", "c"]


# ---------------------------------------------------------------------------------------------------
# Linker string merging: "/tmp" stored as the end of "/var/tmp" (GNU ld -O2, glibc 2.41)

TMP_MERGED_C = (
    "#include <stdio.h>\nint main(int argc, char **argv) {\n"
    '    printf("%d\\n", fopen(argc > 1 ? "/var/tmp" : "/tmp", "r") != 0);\n    return 0;\n}\n'
)


@pytest.fixture(scope="session")
def tmp_merged(docker_client: Any, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A program using "/tmp" and "/var/tmp", built with gcc -O2 by the gcc toolchain for every platform."""
    gcc = load_project(REPO_ROOT).toolchains["gcc"]
    image = image_reference(gcc)
    if not docker_client.images.list(name=image):
        pytest.fail(f"toolchain image {image} is missing: provision it with `osless build`")
    work = tmp_path_factory.mktemp("tmp-merged")
    (work / "merged.c").write_text(TMP_MERGED_C)
    compilers = {name: build_env(gcc, name, {})["CC"] for name in PLATFORMS}
    commands = [
        shlex.join([cc, "-O2", "-static", "-s", "-o", f"/w/{slug(name)}.bin", "/w/merged.c"])
        for name, cc in compilers.items()
    ]
    toolchain_run(image, work, ["sh", "-ec", "; ".join(commands)], {"CCACHE_DISABLE": "1"})
    return {name: work / f"{slug(name)}.bin" for name in PLATFORMS}


def test_linkers_merge_tmp_into_var_tmp(tmp_merged: dict[str, Path]) -> None:
    """Measured: amd64, arm/v7, 386 and s390x keep no "/tmp" string of its own (the issue saw riscv64)."""
    merged = {name for name, path in tmp_merged.items() if b"\0/tmp\0" not in path.read_bytes()}
    assert {"linux/amd64", "linux/arm/v7", "linux/386", "linux/s390x"} <= merged


@pytest.mark.parametrize("platform", list(PLATFORMS))
def test_tmp_needed_on_every_platform_merged_or_not(tmp_merged: dict[str, Path], platform: str) -> None:
    verdict = verify_binary(tmp_merged[platform], PLATFORMS[platform])
    assert problems(verdict) == {"needs.tmp": Severity.WARNING}
