"""End to end: recipes → toolchain containers → verified static ELF → scratch image → smoke test."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from orchestrator.engine import PROJECT_LABEL, project_label
from orchestrator.image import oci
from orchestrator.outputs.profile import PHASES
from orchestrator.platforms import PLATFORMS
from tests.conftest import REPO_ROOT
from tests.factories import smoked_c_recipe
from tests.integration.conftest import BUILT_PLATFORMS, OslessRun, run_osless

pytestmark = pytest.mark.integration

GO_GREETING = "Hello from OS-less container (Go edition)\n"
C_GREETING = "Hello from OS-less container (C edition)\n"
TLS_GREETING = "TLS client ready (minimum TLS 1.2, system CA pool loaded)\n"
RUST_GREETING = (
    "Hello from OS-less container (Rust edition)\n"
    + "".join(
        f"worker-{n}: 250000 values, sum {s}\n"
        for n, s in enumerate((124896890314, 125051359526, 125050109520, 124899140314))
    )
    + 'total 499897499674 |    1.4142 | 0xbeef | "ok"\n'
)
CXX_GREETING = (
    "Hello from OS-less container (C++ edition)\n"
    "threads: 4 workers summed 1..1000 = 500500\n"
    'exceptions: 8080 is fine; "not-a-port" is not a number; port 70000 out of range\n'
    "allocation: 1000 strings, 64000 bytes; binary=1 scratch=3 static=2\n"
    "formatting: 3.142 0xff  right|left  |\n"
)
ZIG_GREETING = (
    "Hello from OS-less container (Zig edition)\n"
    "threads: 4 workers, sum of squares 1..1000000 = 333333833333500000 (0x4a03d5af7766860)\n"
    "heap: 10 squares [0,1,4,9,16,25,36,49,64,81]\n"
    "fmt: 3.142 1.2345e3 | right|left  | 10100101\n"
)
C_ZIG_GREETING = (
    "Hello from OS-less container (C via zig cc edition)\n"
    "threads: 4 workers, sum of squares 1..1000000 = 333333833333500000 (0x4a03d5af7766860)\n"
    "heap: 25 bytes [0,1,4,9,16,25,36,49,64,81]\n"
    "printf: 3.142 1.234500e+03 | right|left  | 00000245\n"
)
GO_MODULES_GREETING = "hello-go-modules: saving report.txt: permission denied\ncause: permission denied\n"
SEVEN = list(PLATFORMS)
ON_EVERY_PLATFORM = {
    "hello-go": GO_GREETING,
    "hello-c": C_GREETING,
    "hello-rust": RUST_GREETING,
    "hello-c-musl": C_GREETING,
    "hello-cxx": CXX_GREETING,
    "hello-zig": ZIG_GREETING,
    "hello-c-zig": C_ZIG_GREETING,
    "hello-go-modules": GO_MODULES_GREETING,
}
ON_SOME_PLATFORMS = {
    ("tls-go", "linux/amd64"): TLS_GREETING,
    ("tls-go", "linux/arm64"): TLS_GREETING,
    ("whoami-c-musl", "linux/amd64"): "running as nobody (uid 65534)\n",
}
SHIPPED = {  # what build_all builds: the shipped targets on BUILT_PLATFORMS
    **{(s, platform): greeting for s, greeting in ON_EVERY_PLATFORM.items() for platform in BUILT_PLATFORMS},
    **{key: greeting for key, greeting in ON_SOME_PLATFORMS.items() if key[1] in BUILT_PLATFORMS},
}
NATIVE = {"linux/amd64", "linux/386"}


def test_build_all_passes_every_shipped_target(build_all: OslessRun) -> None:
    assert build_all.returncode == 0, build_all.stdout + build_all.stderr
    targets = build_all.report["targets"]
    assert {(t["service"], t["platform"]) for t in targets} == set(SHIPPED)
    for target in targets:
        key = (target["service"], target["platform"])
        assert target["status"] == "passed", target
        assert target["smoke"]["stdout"] == SHIPPED[key]
        assert target["smoke"]["emulated"] == (target["platform"] not in NATIVE)
        assert target["binary"]["linkage"] in {"static", "static-pie"}
        assert target["binary"]["platform"] == target["platform"]
        assert target["image"]["on_debian_slim"] > 50 * 2**20 + target["binary"]["size"]


def test_images_cost_the_binary_and_extras_plus_a_few_kilobytes(build_all: OslessRun) -> None:
    extras = {"tls-go": 256 * 1024, "whoami-c-musl": 1024}  # the CA bundle; /etc/passwd and /etc/group
    for target in build_all.report["targets"]:
        overhead = target["image"]["size"] - target["binary"]["size"] - extras.get(target["service"], 0)
        assert overhead <= 16 * 1024, target


def test_shipped_samples_build_on_every_platform_they_name(build_all: OslessRun) -> None:
    """Every sample builds on each platform it names; a requested platform a sample does not name (tls-go
    and whoami-c-musl name some) is reported with that reason, not built."""
    built_on_some = {service for service, _ in ON_SOME_PLATFORMS}
    expected = {
        (service, platform)
        for service in built_on_some
        for platform in BUILT_PLATFORMS
        if (service, platform) not in ON_SOME_PLATFORMS
    }
    unsupported = {(u["service"], u["platform"]): u["reason"] for u in build_all.report["unsupported"]}
    assert set(unsupported) == expected
    assert all("not among its platforms" in reason for reason in unsupported.values()), unsupported


def test_platforms_a_toolchain_cannot_build_are_named_with_the_reason(
    make_project: Callable[[dict[str, str]], Path], tmp_path: Path
) -> None:
    """A service calling a compiler the toolchain defines for amd64 only ({NATIVE_CC}, added to the
    shipped gcc recipe's env: the same image) is built there; each other platform is reported with the
    reason, and not built."""
    gcc = (REPO_ROOT / "recipes" / "toolchains" / "gcc.toml").read_text()
    amd64 = '[toolchain.platforms."linux/amd64"]\nenv = { '
    assert amd64 in gcc
    project = make_project(
        {
            "recipes/toolchains/gcc.toml": gcc.replace(amd64, f'{amd64}NATIVE_CC = "gcc", '),
            "sources/c/hello.c": (REPO_ROOT / "sources" / "hello-c" / "hello.c").read_text(),
            "recipes/native.toml": '[service]\nname = "native"\nsource = "sources/c"\ntoolchain = "gcc"\n'
            'platforms = ["all"]\n[build]\ncommand = ["{NATIVE_CC}", "-static", "-s", "-o", "{output}", '
            '"hello.c"]\n[smoke]\nstdout = "Hello from OS-less container (C edition)\\n"\n',
        }
    )
    run = run_osless(project, "build", out=tmp_path / "out")
    assert run.returncode == 0, run.stdout + run.stderr
    assert [(t["service"], t["platform"], t["status"]) for t in run.report["targets"]] == [
        ("native", "linux/amd64", "passed")
    ]
    unsupported = {(u["service"], u["platform"]): u["reason"] for u in run.report["unsupported"]}
    assert set(unsupported) == {("native", p) for p in SEVEN if p != "linux/amd64"}
    assert unsupported["native", "linux/riscv64"] == "toolchain gcc defines no {NATIVE_CC} for linux/riscv64"


def test_each_target_keeps_its_binary_log_and_verdict(build_all: OslessRun) -> None:
    for service, platform in SHIPPED:
        directory = build_all.out / service / platform.replace("/", "-")
        assert (directory / "bin" / service).is_file()
        assert "[osless] exit code 0" in (directory / "build.log").read_text()
        assert (directory / "verify.json").is_file()


def test_osless_verify_names_each_samples_language(build_all: OslessRun) -> None:
    """Every shipped binary of every language, on each built platform (64-bit x86 and ARM and 32-bit ARM
    by default), as `osless verify --json` names it: hello-c-zig is C (zig cc), tls-go Go."""
    expected = {
        "hello-go": "go", "tls-go": "go", "hello-c": "c", "hello-c-musl": "c", "whoami-c-musl": "c",
        "hello-cxx": "c++", "hello-rust": "rust", "hello-zig": "zig", "hello-c-zig": "c",
        "hello-go-modules": "go",
    }  # fmt: skip
    for platform in BUILT_PLATFORMS:
        binaries = [
            build_all.out / service / platform.replace("/", "-") / "bin" / service
            for service, built_for in SHIPPED
            if built_for == platform
        ]
        result = run_osless(REPO_ROOT, "verify", "--json", "--platform", platform, *map(str, binaries))
        assert result.returncode == 0, result.stdout + result.stderr
        named = {Path(v["path"]).name: v["language"] for v in json.loads(result.stdout)}
        assert named == {b.name: expected[b.name] for b in binaries}, platform


def test_one_oci_layout_per_service_lists_its_platforms(build_all: OslessRun) -> None:
    for service in {s for s, _ in SHIPPED}:
        layout = build_all.out / service / "oci"
        assert oci.verify_layout(layout) == []
        index = json.loads((layout / "index.json").read_text())
        platforms = sorted(
            "/".join(
                filter(
                    None, (m["platform"]["os"], m["platform"]["architecture"], m["platform"].get("variant"))
                )
            )
            for m in index["manifests"]
        )
        assert platforms == sorted(p for s, p in SHIPPED if s == service)


def test_images_are_loaded_with_per_platform_tags(build_all: OslessRun, docker_client: Any) -> None:
    for (service, platform), _ in SHIPPED.items():
        target = build_all.target(service, platform)
        image = docker_client.images.get(target["image"]["tag"])
        assert image.id == target["image"]["image_id"]
        assert image.attrs["Architecture"] == PLATFORMS[platform].architecture
        assert image.attrs.get("Variant") == PLATFORMS[platform].variant
        assert image.attrs["Config"]["User"] == "65534:65534"
        labels = image.attrs["Config"]["Labels"]
        assert labels["org.opencontainers.image.title"] == service
        assert labels["org.opencontainers.image.base.name"] == "scratch"
        assert labels["org.opencontainers.image.version"] == "latest"
        assert labels["dev.osless.toolchain.image"] == target["toolchain_image"]


def test_verify_cli_rejects_wrong_architecture_with_one_line(build_all: OslessRun) -> None:
    arm64_binary = build_all.out / "hello-c" / "linux-arm64" / "bin" / "hello-c"
    result = run_osless(REPO_ROOT, "verify", "--platform", "linux/amd64", str(arm64_binary))
    assert result.returncode == 7
    assert "built for AArch64, recipe says linux/amd64" in result.stdout
    accepted = run_osless(REPO_ROOT, "verify", "--platform", "linux/arm64", str(arm64_binary))
    assert accepted.returncode == 0, accepted.stdout
    assert "linux/arm64" in accepted.stdout


def test_run_command_runs_a_foreign_image(build_all: OslessRun) -> None:
    result = run_osless(REPO_ROOT, "run", "hello-go", "--platform", "linux/s390x")
    assert (result.returncode, result.stdout) == (0, GO_GREETING)


ARM_START = 'void _start(void) { __asm__ volatile("mov r7, #1\\n mov r0, #0\\n svc #0"); }\n'
WRONG_ARCH = {
    # service: (platform, toolchain, command, env, expected reason)
    "amd64-as-arm64": (
        "linux/arm64",
        "gcc",
        '["gcc", "-static", "-o", "{output}", "hello.c"]',
        "{}",
        "built for x86-64, recipe says linux/arm64",
    ),
    "armv6-as-armv7": (
        "linux/arm/v7",
        "gcc",
        '["{CC}", "-march=armv6+fp", "-marm", "-nostdlib", "-static", "-o", "{output}", "start.c"]',
        "{}",
        "ARMv6",
    ),
    "softfloat-as-armv7": (
        "linux/arm/v7",
        "gcc",
        '["{CC}", "-mfloat-abi=soft", "-marm", "-nostdlib", "-static", "-o", "{output}", "start.c"]',
        "{}",
        "soft-float",
    ),
    "go-goarm6-as-armv7": (
        "linux/arm/v7",
        "go",
        '["go", "build", "-o", "{output}", "."]',
        '{ GOARM = "6" }',
        "GOARM=6",
    ),
}


def test_wrong_architecture_binaries_are_caught_by_verification(
    make_project: Callable[[dict[str, str]], Path], tmp_path: Path
) -> None:
    files = {
        "sources/c/hello.c": "int main(void) { return 0; }\n",
        "sources/c/start.c": ARM_START,
        "sources/go/go.mod": "module example.com/arm\n\ngo 1.22\n",
        "sources/go/main.go": "package main\n\nfunc main() {}\n",
    }
    for name, (platform, toolchain, command, env, _) in WRONG_ARCH.items():
        source = "go" if toolchain == "go" else "c"
        files[f"recipes/{name}.toml"] = (
            f'[service]\nname = "{name}"\nsource = "sources/{source}"\ntoolchain = "{toolchain}"\n'
            f'platforms = ["{platform}"]\n[build]\ncommand = {command}\nenv = {env}\n'
        )
    run = run_osless(make_project(files), "build", out=tmp_path / "out")
    assert run.returncode == 11, run.stdout + run.stderr  # verify
    for name, (platform, *_, reason) in WRONG_ARCH.items():
        target = run.target(name, platform)
        assert target["failed_stage"] == "verify", target
        assert reason in target["reason"], target["reason"]


def test_a_missing_emulator_is_reported_as_such_with_its_fix(riscv64_disabled: Path, tmp_path: Path) -> None:
    run = run_osless(REPO_ROOT, "build", "hello-c", "--platform", "linux/riscv64", out=tmp_path / "out")
    assert run.returncode == 12  # smoke
    target = run.target("hello-c", "linux/riscv64")
    assert target["failed_stage"] == "smoke"
    assert "handler qemu-riscv64 is disabled" in target["reason"]
    assert f"echo 1 > {riscv64_disabled}" in target["reason"]


def test_unchanged_targets_are_cached_and_changed_or_failed_ones_rebuilt(
    make_project: Callable[[dict[str, str]], Path], tmp_path: Path
) -> None:
    hello = '#include <stdio.h>\nint main(void) {{ puts("{}"); return 0; }}\n'
    project = make_project(
        {
            "sources/a/hello.c": hello.format("a"),
            "sources/b/hello.c": hello.format("b"),
            "recipes/a.toml": smoked_c_recipe("a", "a", stdout="a\\n", exit_code=0),
            "recipes/b.toml": smoked_c_recipe("b", "b", stdout="not b\\n", exit_code=0),
        }
    )
    out = tmp_path / "out"
    runs: list[OslessRun] = []

    def build(*extra: str) -> dict[str, tuple[str, bool]]:
        runs.append(run := run_osless(project, "build", "--profile", *extra, out=out))
        return {t["service"]: (t["status"], t["cached"]) for t in run.report["targets"]}

    assert build() == {"a": ("passed", False), "b": ("failed", False)}
    _assert_timed(runs[-1], built={"a", "b"})
    assert build() == {"a": ("passed", True), "b": ("failed", False)}  # a failure is never reused
    _assert_timed(runs[-1], built={"b"})
    (project / "sources" / "a" / "hello.c").write_text(hello.format("a") + "/* changed */\n")
    assert build("a") == {"a": ("passed", False)}
    assert build("a") == {"a": ("passed", True)}
    assert build("a", "--rebuild") == {"a": ("passed", False)}


def _assert_timed(run: OslessRun, *, built: set[str]) -> None:
    """Every part of each target's time is in its report: a built one's every stage, its build step and
    its {JOBS}; a cached one's wait and lookup only. The profile adds them up; --profile prints it."""
    report = run.report
    for target in report["targets"]:
        seconds = target["seconds"]
        assert all(0 <= s < 120 for s in seconds.values()), seconds
        if target["service"] in built:
            stages = {"queued", "cache", "builder", "workspace", "build", "copy-out", "verify", "package"}
            assert stages | {"load", "smoke-queued", "smoke"} == set(seconds), seconds
            assert [(s["label"], s["exit_code"]) for s in target["steps"]] == [("the build command (gcc)", 0)]
            assert target["steps"][0]["seconds"] == pytest.approx(seconds["build"], abs=0.05)
            assert 1 <= target["jobs"] <= (os.cpu_count() or 1)
        else:
            assert set(seconds) <= {"queued", "cache", "load"} and "cache" in seconds, seconds
            assert (target["steps"], target["jobs"]) == ([], None)
    profile = report["profile"]
    assert set(profile["phases"]) == set(PHASES)
    assert 0 < profile["phases"]["startup"] < 30
    assert profile["wall"] == pytest.approx(sum(profile["phases"].values()), abs=0.05)
    assert profile["wall"] == pytest.approx(profile["phases"]["startup"] + report["seconds"], abs=0.05)
    assert (profile["targets"], profile["built"]) == (2, len(built))
    assert profile["compile"] > 0 and profile["native_smoke"] > 0 and profile["emulated_smoke"] == 0
    assert 0 < profile["osless_per_target_ms"] < 10_000
    assert 10 * 2**20 < profile["peak_rss_bytes"] < 2**30
    assert "where the" in run.stdout and "slowest targets" in run.stdout  # printed by --profile
    assert run.stdout.index("osless build") < run.stdout.index("where the")  # after the summary


def test_a_failing_target_does_not_stop_the_others(
    make_project: Callable[[dict[str, str]], Path], tmp_path: Path
) -> None:
    hello = '#include <stdio.h>\nint main(void) { puts("hi"); return 3; }\n'
    project = make_project(
        {
            "sources/c/hello.c": hello,
            "sources/broken/hello.c": "int main(void) { return missing; }\n",
            "recipes/good.toml": smoked_c_recipe("good", "c", stdout="hi\\n", exit_code=3),
            "recipes/mismatch.toml": smoked_c_recipe("mismatch", "c", stdout="hello\\n", exit_code=0),
            "recipes/broken.toml": smoked_c_recipe("broken", "broken", stdout="hi\\n", exit_code=0),
        }
    )
    run = run_osless(project, "build", out=tmp_path / "out")
    assert run.returncode == 10, run.stdout + run.stderr  # build: the earliest failing stage
    assert run.target("good", "linux/amd64")["status"] == "passed"
    mismatch = run.target("mismatch", "linux/amd64")
    assert (mismatch["status"], mismatch["failed_stage"]) == ("failed", "smoke")
    assert "exit code 3, expected 0" in mismatch["reason"]
    assert "-hello" in mismatch["smoke"]["diff"] and "+hi" in mismatch["smoke"]["diff"]
    broken = run.target("broken", "linux/amd64")
    assert (broken["status"], broken["failed_stage"]) == ("failed", "build")
    assert "missing" in broken["reason"]
    assert "-hello" in run.stdout  # the diff is shown to the user too


def test_dynamic_binary_fails_verification(
    make_project: Callable[[dict[str, str]], Path], tmp_path: Path
) -> None:
    project = make_project(
        {
            "sources/c/hello.c": '#include <stdio.h>\nint main(void) { puts("hi"); return 0; }\n',
            "recipes/dynamic.toml": smoked_c_recipe(
                "dynamic", "c", stdout="hi\\n", exit_code=0, static=False
            ),
        }
    )
    run = run_osless(project, "build", out=tmp_path / "out")
    assert run.returncode == 11  # verify
    target = run.target("dynamic", "linux/amd64")
    assert target["failed_stage"] == "verify"
    assert "libc.so.6" in target["reason"] and "-static" in target["reason"]


def test_ctrl_c_leaves_no_container(
    make_project: Callable[[dict[str, str]], Path], tmp_path: Path, docker_client: Any
) -> None:
    project = make_project(
        {
            "sources/c/hello.c": "int main(void) { return 0; }\n",
            "recipes/slow.toml": smoked_c_recipe(
                "slow", "c", stdout="", exit_code=0, command=["sh", "-c", "sleep 120"]
            ),
        }
    )
    ours = {"label": f"{PROJECT_LABEL}={project_label(project)}"}  # this run's builder is the project's
    process = subprocess.Popen(
        [sys.executable, "-m", "orchestrator", "-C", str(project), "build", "--out", str(tmp_path / "out")],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 300
        while not docker_client.containers.list(filters=ours):
            assert process.poll() is None, process.communicate()
            assert time.monotonic() < deadline, "the build container never started"
            time.sleep(0.2)
        process.send_signal(signal.SIGINT)
        process.wait(timeout=60)
    finally:
        process.kill()
    assert process.returncode == 130
    assert docker_client.containers.list(all=True, filters=ours) == []
    assert list((tmp_path / "out").rglob("result.json")) == [], "an interrupted target must not look valid"


TLS_BARE = """
[service]
name = "tls-bare"
source = "sources/tls"
toolchain = "go"
platforms = ["linux/amd64"]

[build]
command = ["go", "build", "-trimpath", "-o", "{output}", "."]

[smoke]
stdout = "no trusted CA certificates: HTTPS requests would fail\\n"
exit_code = 1
"""


def test_runtime_traps_and_needs_follow_the_recipe(
    make_project: Callable[[dict[str, str]], Path], tmp_path: Path
) -> None:
    """getpwuid needs /etc/passwd (a warning until the passwd extra is there); so does the CA bundle."""
    whoami = (REPO_ROOT / "sources" / "whoami-c" / "whoami.c").read_text()
    tls = {
        f"sources/tls/{name}": (REPO_ROOT / "sources" / "tls-go" / name).read_text()
        for name in ("go.mod", "main.go")
    }
    recipe = (REPO_ROOT / "recipes" / "tls-go.toml").read_text().replace("sources/tls-go", "sources/tls")
    project = make_project(
        {
            "sources/whoami/whoami.c": whoami,
            "recipes/whoami-glibc.toml": smoked_c_recipe(
                "whoami-glibc", "whoami", stdout="", exit_code=0
            ).replace("hello.c", "whoami.c"),
            "recipes/whoami-musl.toml": (REPO_ROOT / "recipes" / "whoami-c-musl.toml")
            .read_text()
            .replace("sources/whoami-c", "sources/whoami")
            .replace('name = "whoami-c-musl"', 'name = "whoami-musl"'),
            **tls,
            "recipes/tls-bare.toml": TLS_BARE,
            "recipes/tls-extra.toml": recipe.replace('name = "tls-go"', 'name = "tls-extra"').replace(
                'platforms = ["linux/amd64", "linux/arm64"]', 'platforms = ["linux/amd64"]'
            ),
        }
    )
    run = run_osless(project, "build", out=tmp_path / "out")
    glibc = run.target("whoami-glibc", "linux/amd64")
    assert glibc["failed_stage"] == "smoke", glibc  # no /etc/passwd in its image: "unknown user"

    def severity(service: str, finding: str) -> str:
        target = run.target(service, "linux/amd64")
        return str(next(f["severity"] for f in target["verify_findings"] if f["id"] == finding))

    assert severity("whoami-glibc", "needs.passwd") == "warning"
    assert run.target("whoami-musl", "linux/amd64")["status"] == "passed"
    assert severity("whoami-musl", "needs.passwd") == "info"

    assert severity("tls-bare", "needs.ca-certificates") == "warning"
    assert severity("tls-extra", "needs.ca-certificates") == "info"
