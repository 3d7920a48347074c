"""Smoke tests for real programs, for real: stdin through the engine, and a C filter program smoke-tested
with several checks (stdin inline and from a file, a test file from outside its source, an expectation
per platform on the native and an emulated platform, stderr), whose test file never reaches the
shipped image."""

from __future__ import annotations

import hashlib
import io
import json
import tarfile
import time
import xml.etree.ElementTree as ET
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import docker.errors
import pytest

from orchestrator.engine import RUN_LABEL, ContainerSpec, Engine
from orchestrator.image import oci
from orchestrator.stages.smoke import SMOKE_REPOSITORY
from tests.factories import service_recipe
from tests.integration.conftest import OslessRun, run_osless

pytestmark = pytest.mark.integration

MiB = 1024**2


# --- stdin through the engine ------------------------------------------------------------------------


@pytest.fixture(scope="module")
def engine() -> Iterator[Engine]:
    connected = Engine.connect()
    yield connected
    connected.remove_run_containers()
    assert (
        connected.client.containers.list(all=True, filters={"label": f"{RUN_LABEL}={connected.run_id}"}) == []
    )


@pytest.fixture(scope="module")
def shell_image(docker_client: Any) -> str:
    """An image with a shell and coreutils: the gcc toolchain's (whatever its tag)."""
    tags = [tag for image in docker_client.images.list("osless-toolchain/gcc") for tag in image.tags]
    if not tags:
        pytest.fail("no gcc toolchain image: build a C sample first (osless build hello-c)")
    return str(tags[0])


def run(engine: Engine, image: str, script: str, stdin: bytes | None, **changes: Any) -> Any:
    spec = ContainerSpec(image=image, command=["sh", "-c", script], role="smoke", timeout=60, stdin=stdin)
    return engine.run(ContainerSpec(**{**spec.__dict__, **changes}))


def test_stdin_reaches_the_program_whole(engine: Engine, shell_image: str) -> None:
    data = bytes(range(256)) * (8 * MiB // 256)  # every byte value, 8 MiB
    result = run(engine, shell_image, "cat; echo done >&2", data, output_limit=16 * MiB)
    assert (result.exit_code, result.timed_out, result.stderr) == (0, False, b"done\n")
    assert hashlib.sha256(result.stdout).hexdigest() == hashlib.sha256(data).hexdigest()


def test_stdin_ends_so_a_reader_sees_end_of_file(engine: Engine, shell_image: str) -> None:
    assert run(engine, shell_image, "wc -c", b"").stdout.strip() == b"0"
    assert run(engine, shell_image, "wc -c", b"abc").stdout.strip() == b"3"


def test_a_program_that_does_not_read_its_large_stdin_still_ends(engine: Engine, shell_image: str) -> None:
    """20 MiB nobody reads: the write blocks, the program exits, the run ends with its output."""
    started = time.monotonic()
    result = run(engine, shell_image, "echo ignored", b"x" * (20 * MiB))
    assert (result.exit_code, result.stdout, result.timed_out) == (0, b"ignored\n", False)
    result = run(engine, shell_image, "head -c 5; exit 7", b"y" * (20 * MiB))
    assert (result.exit_code, result.stdout) == (7, b"yyyyy")
    assert time.monotonic() - started < 50


def test_a_program_that_writes_much_before_reading_does_not_deadlock(
    engine: Engine, shell_image: str
) -> None:
    """Output is read while stdin is written: neither pipe can stall the other."""
    result = run(
        engine, shell_image, "head -c 8000000 /dev/zero; wc -c", b"z" * (8 * MiB), output_limit=16 * MiB
    )
    assert result.exit_code == 0 and not result.timed_out
    assert len(result.stdout) == 8_000_000 + len(f"{8 * MiB}\n") and result.stdout.endswith(
        f"{8 * MiB}\n".encode()
    )


def test_without_stdin_the_program_reads_end_of_file(engine: Engine, shell_image: str) -> None:
    assert run(engine, shell_image, "wc -c", None).stdout.strip() == b"0"


def test_a_timeout_with_stdin_still_kills_and_returns(engine: Engine, shell_image: str) -> None:
    result = run(engine, shell_image, "sleep 60", b"x" * MiB, timeout=2)
    assert result.timed_out


# --- a filter program, smoke-tested for real ---------------------------------------------------------

FILTER_C = r"""
#include <ctype.h>
#include <stdio.h>
#include <string.h>

int main(int argc, char **argv) {
    if (argc > 1 && strcmp(argv[1], "--word-size") == 0) {
        printf("%u\n", (unsigned) (sizeof(void *) * 8));
        return 0;
    }
    if (argc > 2 && strcmp(argv[1], "--cat") == 0) {
        FILE *file = fopen(argv[2], "r");
        if (!file) { perror(argv[2]); return 3; }
        int c;
        while ((c = fgetc(file)) != EOF) putchar(c);
        return 0;
    }
    if (argc > 1 && strcmp(argv[1], "--upper") == 0) {
        long count = 0;
        int c;
        while ((c = getchar()) != EOF) { putchar(toupper(c)); count++; }
        fprintf(stderr, "read %ld bytes\n", count);
        return 0;
    }
    fprintf(stderr, "usage: filter --upper | --cat FILE | --word-size\n");
    return 2;
}
"""
COMMAND = ("{CC}", "-static", "-Os", "-o", "{output}", "main.c")
FILTER_SMOKE = r"""
[[smoke]]
name = "upper inline"
args = ["--upper"]
stdin = "hello\n"
stdout = "HELLO\n"
stderr = "read 6 bytes\n"

[[smoke]]
name = "upper from a file"
args = ["--upper"]
stdin_file = "tests/data/words.txt"
stdout_matches = '\AALPHA\nBETA\n\Z'
stderr_matches = '^read 11 bytes$'

[[smoke]]
name = "a test file from outside the source"
args = ["--cat", "/smoke/input.json"]
files = { "/smoke/input.json" = "tests/data/input.json" }
stdout = '{"k": 1}' # no newline at the end

[[smoke]]
name = "word size"
args = ["--word-size"]
stdout = "not this\n"
[smoke.platforms."linux/amd64"]
stdout = "64\n"
[smoke.platforms."linux/arm64"]
stdout_matches = '^64$'

[[smoke]]
name = "usage"
stderr_matches = "(?m)^usage: filter"
exit_code = 2
"""
MISMATCH_SMOKE = r"""
[[smoke]]
name = "passes"
args = ["--upper"]
stdin = "a"
stdout = "A"

[[smoke]]
name = "wrong stderr"
args = ["--upper"]
stdin = "abc"
stderr = "read 4 bytes\n"

[[smoke]]
name = "no match"
args = ["--word-size"]
stdout_matches = '^16$'
"""
PLATFORMS = ("linux/amd64", "linux/arm64")


@pytest.fixture
def filter_project(make_project: Callable[[dict[str, str]], Path]) -> Path:
    return make_project(
        {
            "sources/filter/main.c": FILTER_C,
            "recipes/filter.toml": service_recipe("filter", COMMAND, platforms=PLATFORMS, more=FILTER_SMOKE),
            "recipes/mismatch.toml": service_recipe(
                "mismatch", COMMAND, source="sources/filter", more=MISMATCH_SMOKE
            ),
            "tests/data/words.txt": "alpha\nbeta\n",
            "tests/data/input.json": '{"k": 1}',
        }
    )


def _layer_names(image: oci.Image) -> list[list[str]]:
    names = []
    for layer in image.layers:
        with tarfile.open(fileobj=io.BytesIO(layer.data)) as tar:
            names.append(tar.getnames())
    return names


def _no_smoke_images_of(docker_client: Any, service: str) -> None:
    service_id = hashlib.sha256(service.encode()).hexdigest()[:12]
    tags = [tag for image in docker_client.images.list(SMOKE_REPOSITORY) for tag in image.tags]
    assert not [tag for tag in tags if f"-{service_id}-" in tag], tags


def test_a_filter_program_passes_several_checks_on_two_platforms(
    filter_project: Path, tmp_path: Path, docker_client: Any
) -> None:
    out = tmp_path / "out"
    run = run_osless(filter_project, "build", *(f"--platform={p}" for p in PLATFORMS), out=out)
    assert run.returncode == 12, run.stdout + run.stderr  # the mismatch service fails its smoke test

    for platform in PLATFORMS:
        target = run.target("filter", platform)
        assert target["status"] == "passed", target
        checks = target["smoke"]["checks"]
        assert [check["name"] for check in checks] == [
            "upper inline",
            "upper from a file",
            "a test file from outside the source",
            "word size",
            "usage",
        ]
        assert all(check["passed"] for check in checks), checks
        assert checks[1]["stdout"] == "ALPHA\nBETA\n" and checks[1]["stderr"] == "read 11 bytes\n"
        assert checks[2]["stdout"] == '{"k": 1}'
        assert checks[3]["stdout"] == "64\n"
        assert checks[4]["exit_code"] == 2
        assert target["smoke"]["emulated"] == (platform == "linux/arm64")

    # The test file is in no shipped image: not in the engine's, not in the archive, not in the layout.
    for platform, suffix in (("linux/amd64", "amd64"), ("linux/arm64", "arm64")):
        shipped = docker_client.images.get(f"filter:latest-{suffix}")
        assert len(shipped.attrs["RootFS"]["Layers"]) == 1
        container = docker_client.containers.create(f"filter:latest-{suffix}", platform=platform)
        try:
            with pytest.raises(docker.errors.NotFound):
                container.get_archive("/smoke/input.json")
        finally:
            container.remove(force=True)
        archive = oci.read_archive((out / "filter" / platform.replace("/", "-") / "image.tar").read_bytes())
        assert _layer_names(archive) == [["filter"]]
    index = json.loads((out / "filter" / "oci" / "index.json").read_text())
    for descriptor in index["manifests"]:
        manifest = json.loads(
            (out / "filter" / "oci" / "blobs" / "sha256" / descriptor["digest"][7:]).read_text()
        )
        assert len(manifest["layers"]) == 1
    _no_smoke_images_of(docker_client, "filter")
    _no_smoke_images_of(docker_client, "mismatch")

    # The failing service: every check ran, each failure is reported by name, in report, JUnit, summary.
    mismatch = run.target("mismatch", "linux/amd64")
    assert (mismatch["status"], mismatch["failed_stage"]) == ("failed", "smoke")
    assert mismatch["reason"] == (
        "2 of 3 checks failed: 'wrong stderr': stderr differs from the recipe; "
        "'no match': stdout does not match '^16$'"
    )
    assert [check["passed"] for check in mismatch["smoke"]["checks"]] == [True, False, False]
    assert "check 'wrong stderr':" in mismatch["smoke"]["diff"]
    assert "-read 4 bytes" in mismatch["smoke"]["diff"] and "+read 3 bytes" in mismatch["smoke"]["diff"]
    junit = ET.parse(out / "junit.xml").getroot()
    cases = {c.get("name"): c for c in junit.iter("testcase") if c.get("classname") == "mismatch.linux/amd64"}
    assert cases["smoke: passes"].find("failure") is None
    assert cases["smoke: no match"].find("failure") is not None
    assert cases["smoke"].find("failure") is not None
    summary = (out / "summary.md").read_text()
    assert "- mismatch linux/amd64: ✅ passes, ❌ wrong stderr (stderr differs from the recipe)" in summary

    _a_changed_test_file_reruns_the_smoke_test(filter_project, out)


def _a_changed_test_file_reruns_the_smoke_test(project: Path, out: Path) -> None:
    """A test file outside the source is part of the target's key: unchanged, the target is cached;
    changed, it is smoke-tested again (and here fails, its check naming the difference)."""
    again: OslessRun = run_osless(project, "build", "filter", "--platform=linux/amd64", out=out)
    assert again.returncode == 0, again.stdout + again.stderr
    assert again.target("filter", "linux/amd64")["cached"] is True
    (project / "tests" / "data" / "input.json").write_text('{"k": 2}')
    changed = run_osless(project, "build", "filter", "--platform=linux/amd64", out=out)
    assert changed.returncode == 12, changed.stdout + changed.stderr
    target = changed.target("filter", "linux/amd64")
    assert target["cached"] is False
    assert (
        target["reason"]
        == "1 of 5 checks failed: 'a test file from outside the source': stdout differs from the recipe"
    )
