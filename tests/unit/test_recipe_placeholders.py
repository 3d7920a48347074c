"""Platform placeholders ({GOARCH}, {GNU_TRIPLE}...): filled per platform in toolchain packages and env,
service build env and build commands; the shipped toolchains use them without changing a thing."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from orchestrator.bootstrap.spec import bootstrap_packages, image_reference
from orchestrator.errors import RecipeError
from orchestrator.platforms import PLATFORMS
from orchestrator.recipe.loader import load_project
from orchestrator.recipe.placeholders import FACTS, build_env
from orchestrator.stages.build import build_command
from tests.conftest import REPO_ROOT
from tests.factories import MAIN_C, service_recipe

MakeProject = Callable[[dict[str, str]], Path]

# Pinned from the recipes before they used placeholders: the same images must be reused, and every
# build must see the same environment (so the binaries stay byte for byte the same). The gcc image
# changed on purpose since: C++ (g++, g++-<triple>) and musl on every platform (musl-dev:<arch>); build
# tools (make, autotools, cmake, ninja, meson) and pkg-config per platform (pkgconf:<arch>). Both tags
# changed again with BOOTSTRAP_FORMAT 2 (images written by osless: the same id on every machine).
GCC_IMAGE = "osless-toolchain/gcc:a28e9948dfbedb4f"
GO_IMAGE = "osless-toolchain/go:53bafadbd17f2956"
GCC_PACKAGES = sorted(
    [
        *("ca-certificates", "ccache", "g++", "g++-aarch64-linux-gnu", "g++-arm-linux-gnueabihf"),
        *("g++-i686-linux-gnu", "g++-powerpc64le-linux-gnu", "g++-riscv64-linux-gnu", "g++-s390x-linux-gnu"),
        *("gcc", "gcc-aarch64-linux-gnu", "gcc-arm-linux-gnueabihf"),
        *("gcc-i686-linux-gnu", "gcc-powerpc64le-linux-gnu", "gcc-riscv64-linux-gnu", "gcc-s390x-linux-gnu"),
        *("libc6-dev", "libc6-dev-arm64-cross", "libc6-dev-armhf-cross", "libc6-dev-i386-cross"),
        *("libc6-dev-ppc64el-cross", "libc6-dev-riscv64-cross", "libc6-dev-s390x-cross"),
        *("musl-dev", "musl-dev:arm64", "musl-dev:armhf", "musl-dev:i386", "musl-dev:ppc64el"),
        *("musl-dev:riscv64", "musl-dev:s390x", "musl-tools", "tzdata"),
        *("autoconf", "automake", "cmake", "libtool", "libtool-bin", "make", "meson", "ninja-build"),
        *("pkgconf", "pkgconf:arm64", "pkgconf:armhf", "pkgconf:i386", "pkgconf:ppc64el"),
        *("pkgconf:riscv64", "pkgconf:s390x"),
    ]
)
GO_PACKAGES = ["ca-certificates", "golang-go", "tzdata"]
GCC_PATH = "/usr/lib/ccache:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
GCC_TOOLS = {"AR": "ar", "RANLIB": "ranlib", "STRIP": "strip", "PKG_CONFIG": "pkg-config"}
GO_ENV = {
    "CGO_ENABLED": "0",
    "GOTOOLCHAIN": "local",
    "GOPROXY": "off",
    "GOFLAGS": "-trimpath -buildvcs=false",
}
GCC_ENVS = {  # the gcc toolchain's, by platform: C, C++ and musl C compilers, binutils, pkg-config
    "linux/amd64": {
        "PATH": GCC_PATH,
        **{name: f"x86_64-linux-gnu-{tool}" for name, tool in GCC_TOOLS.items()},
        "CC": "gcc",
        "CXX": "g++",
        "MUSL_CC": "x86_64-linux-musl-gcc",
    },
    **{
        platform: {
            "PATH": GCC_PATH,
            **{name: f"{gnu}-{tool}" for name, tool in GCC_TOOLS.items()},
            "CC": f"{gnu}-gcc",
            "CXX": f"{gnu}-g++",
            "MUSL_CC": f"{musl}-gcc",
        }
        for platform, gnu, musl in [
            ("linux/arm64", "aarch64-linux-gnu", "aarch64-linux-musl"),
            ("linux/arm/v7", "arm-linux-gnueabihf", "arm-linux-musleabihf"),
            ("linux/riscv64", "riscv64-linux-gnu", "riscv64-linux-musl"),
            ("linux/386", "i686-linux-gnu", "i386-linux-musl"),
            ("linux/ppc64le", "powerpc64le-linux-gnu", "powerpc64le-linux-musl"),
            ("linux/s390x", "s390x-linux-gnu", "s390x-linux-musl"),
        ]
    },
}
BUILD_ENVS = {
    **{
        (service, p): env
        for service in ("hello-c", "hello-c-musl", "hello-cxx")
        for p, env in GCC_ENVS.items()
    },
    ("whoami-c-musl", "linux/amd64"): GCC_ENVS["linux/amd64"],
    ("hello-go", "linux/amd64"): {**GO_ENV, "GOARCH": "amd64"},
    ("hello-go", "linux/arm64"): {**GO_ENV, "GOARCH": "arm64"},
    ("hello-go", "linux/arm/v7"): {**GO_ENV, "GOARCH": "arm", "GOARM": "7"},
    ("hello-go", "linux/riscv64"): {**GO_ENV, "GOARCH": "riscv64"},
    ("hello-go", "linux/386"): {**GO_ENV, "GOARCH": "386"},
    ("hello-go", "linux/ppc64le"): {**GO_ENV, "GOARCH": "ppc64le"},
    ("hello-go", "linux/s390x"): {**GO_ENV, "GOARCH": "s390x"},
    **{  # [fetch] adds to the environment at build time only (stages/fetch.py)
        ("hello-go-modules", platform.name): {
            **GO_ENV,
            "GOARCH": platform.goarch,
            **({"GOARM": platform.goarm} if platform.goarm else {}),
        }
        for platform in PLATFORMS.values()
    },
    ("tls-go", "linux/amd64"): {**GO_ENV, "GOARCH": "amd64"},
    ("tls-go", "linux/arm64"): {**GO_ENV, "GOARCH": "arm64"},
    **{
        (service, platform.name): {
            "PATH": "/opt/wheels/ziglang:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
            "ZIG_TARGET": platform.zig_target,
        }
        for service in ("hello-zig", "hello-c-zig")
        for platform in PLATFORMS.values()
    },
    **{
        ("hello-rust", platform.name): {
            "CARGO_BUILD_TARGET": platform.rust_target,
            "RUSTFLAGS": "-C target-feature=+crt-static",
            "CARGO_NET_OFFLINE": "true",
            "CARGO_TERM_COLOR": "never",
            f"CARGO_TARGET_{platform.rust_target.upper().replace('-', '_')}_LINKER": (
                f"{platform.gnu_triple}-gcc"
            ),
        }
        for platform in PLATFORMS.values()
    },
}


def test_shipped_toolchains_keep_their_images_and_packages() -> None:
    toolchains = load_project(REPO_ROOT).toolchains
    assert (image_reference(toolchains["gcc"]), image_reference(toolchains["go"])) == (GCC_IMAGE, GO_IMAGE)
    assert bootstrap_packages(toolchains["gcc"]) == GCC_PACKAGES
    assert bootstrap_packages(toolchains["go"]) == GO_PACKAGES


def test_shipped_build_environments_are_unchanged() -> None:
    project = load_project(REPO_ROOT)
    envs = {
        (service.name, platform): build_env(
            project.toolchains[service.toolchain], platform, service.build.env
        )
        for service in project.services.values()
        for platform in service.platforms
    }
    assert envs == BUILD_ENVS
    assert all(list(envs[target]) == list(BUILD_ENVS[target]) for target in envs)  # and in the same order


def test_shipped_toolchains_use_placeholders_instead_of_the_table() -> None:
    """The cross platforms' packages and compiler are derived from the platform table, not restated."""
    for name in ("gcc", "go"):
        text = (REPO_ROOT / "recipes" / "toolchains" / f"{name}.toml").read_text()
        for platform in PLATFORMS.values():
            assert f'"{platform.gnu_triple}' not in text and f"-{platform.debian_arch}-cross" not in text
            assert f'GOARCH = "{platform.goarch}"' not in text


def test_facts_are_the_platform_tables_placeholders() -> None:
    assert FACTS == (
        "GOARCH",
        "GOARM",
        "GNU_TRIPLE",
        "DEBIAN_ARCH",
        "RUST_TARGET",
        "MUSL_TRIPLE",
        "ZIG_TARGET",
        "MESON_CPU_FAMILY",
        "MESON_CPU",
        "ENDIAN",
    )
    assert all(tuple(platform.placeholders()) == FACTS for platform in PLATFORMS.values())


TOOLCHAIN = """\
[toolchain]
name = "cross"
env = { TRIPLE = "{GNU_TRIPLE}", BRACES = "{{literal}}" }

[toolchain.bootstrap]
suite = "trixie"
packages = ["gcc"]

[toolchain.platforms."linux/arm/v7"]
packages = ["gcc-{GNU_TRIPLE}", "libc6-dev-{DEBIAN_ARCH}-cross"]
env = { CC = "{GNU_TRIPLE}-gcc", GOARM = "{GOARM}" }

[toolchain.platforms."linux/riscv64"]
"""


def _project(make_project: MakeProject, toolchain: str = TOOLCHAIN, **service: str) -> Path:
    """A project with the toolchain `cross` (arm/v7, riscv64) and a service `s` using it."""
    root = make_project(
        {
            "sources/s/main.c": MAIN_C,
            "recipes/s.toml": service_recipe(
                "s",
                service.get("command", "{TRIPLE}-gcc -o {output} main.c").split(),
                toolchain="cross",
                platforms=["linux/arm/v7", "linux/riscv64"],
                more=service.get("more", ""),
            ),
        }
    )
    (root / "recipes" / "toolchains" / "cross.toml").write_text(toolchain)
    return root


def test_platform_values_are_filled_per_platform(make_project: MakeProject) -> None:
    project = load_project(_project(make_project, more='env = { TARGET = "{RUST_TARGET}" }\n'))
    cross = project.toolchains["cross"]
    assert cross.platforms["linux/arm/v7"].packages == ("gcc-arm-linux-gnueabihf", "libc6-dev-armhf-cross")
    assert cross.platforms["linux/arm/v7"].env == {"CC": "arm-linux-gnueabihf-gcc", "GOARM": "7"}
    service = project.services["s"]
    assert build_env(cross, "linux/riscv64", service.build.env) == {
        "TRIPLE": "riscv64-linux-gnu",
        "BRACES": "{literal}",
        "TARGET": "riscv64gc-unknown-linux-gnu",
    }


def test_build_commands_can_use_platform_facts(make_project: MakeProject) -> None:
    """A fact need not be in the environment: `{DEBIAN_ARCH}` is filled in the command all the same."""
    root = _project(make_project, command="{CC} -o {output} --arch={DEBIAN_ARCH} main.c")
    with pytest.raises(RecipeError) as raised:  # no {CC} on riscv64
        load_project(root)
    [problem] = raised.value.problems
    assert problem.message == "placeholder {CC} is not defined for linux/riscv64 by toolchain cross"

    recipe = root / "recipes" / "s.toml"
    recipe.write_text(recipe.read_text().replace('"{CC}"', '"{TRIPLE}-gcc"'))
    project = load_project(root)
    service, cross, arm = project.services["s"], project.toolchains["cross"], PLATFORMS["linux/arm/v7"]
    env = build_env(cross, arm.name, service.build.env)
    assert build_command(service, arm, env, "/out/s") == [
        "arm-linux-gnueabihf-gcc",
        "-o",
        "/out/s",
        "--arch=armhf",
        "main.c",
    ]
    assert "DEBIAN_ARCH" not in env  # facts are placeholders, not variables, unless a recipe sets one


@pytest.mark.parametrize(
    ("old", "new", "expected"),
    [
        (
            '"gcc-{GNU_TRIPLE}"',
            '"gcc-{GNU_TRIPEL}"',
            "toolchain.platforms.\"linux/arm/v7\".packages: 'gcc-{GNU_TRIPEL}': {GNU_TRIPEL} is not a "
            "platform placeholder (did you mean 'GNU_TRIPLE'? known: GOARCH, GOARM, GNU_TRIPLE, "
            "DEBIAN_ARCH, RUST_TARGET, MUSL_TRIPLE, ZIG_TARGET, MESON_CPU_FAMILY, MESON_CPU, ENDIAN)",
        ),
        (
            '"gcc-{GNU_TRIPLE}"',
            '"gcc-{GNU_TRIPLE"',
            "toolchain.platforms.\"linux/arm/v7\".packages: 'gcc-{GNU_TRIPLE': expected '}' before end "
            "of string (write a literal brace as {{ or }})",
        ),
        (
            'TRIPLE = "{GNU_TRIPLE}"',
            'TRIPLE = "{GNU_TRIPLE!r}"',
            "toolchain.env: '{GNU_TRIPLE!r}': {GNU_TRIPLE!r} is not a placeholder (use a platform "
            "placeholder such as {GOARCH}; write a literal brace as {{ or }})",
        ),
        (
            'packages = ["gcc"]',
            'packages = ["gcc-{GNU_TRIPLE}"]',
            "toolchain.bootstrap.packages: 'gcc-{GNU_TRIPLE}' is not a Debian package name",
        ),
        (
            '"libc6-dev-{DEBIAN_ARCH}-cross"',
            '"libc6-dev-{DEBIAN_ARCH}_cross"',
            "toolchain.platforms.\"linux/arm/v7\".packages: 'libc6-dev-armhf_cross' is not a Debian package",
        ),
    ],
)
def test_bad_placeholders_are_problems(make_project: MakeProject, old: str, new: str, expected: str) -> None:
    assert old in TOOLCHAIN
    with pytest.raises(RecipeError) as raised:
        load_project(_project(make_project, toolchain=TOOLCHAIN.replace(old, new, 1)))
    found = [f"{problem.key}: {problem.message} ({problem.hint})" for problem in raised.value.problems]
    assert any(text.startswith(expected) for text in found), found


def test_service_build_env_takes_facts_only(make_project: MakeProject) -> None:
    with pytest.raises(RecipeError) as raised:
        load_project(_project(make_project, more='env = { X = "{TRIPLE}" }\n'))
    [problem] = raised.value.problems
    assert (problem.key, problem.message) == (
        "build.env",
        "'{TRIPLE}': {TRIPLE} is not a platform placeholder",
    )
