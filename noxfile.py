"""Developer entry points: `nox -s build-all`, `nox -s tests`, `nox -s tests-all`, `nox -s lint`,
`nox -s examples`, `nox -s bench`."""

from __future__ import annotations

import nox

nox.options.default_venv_backend = "venv"
nox.options.reuse_existing_virtualenvs = True
nox.options.sessions = ["lint", "tests"]


@nox.session(name="build-all")
def build_all(session: nox.Session) -> None:
    """Provision toolchains, then build, verify, package and smoke-test every recipe into out/."""
    session.install("-e", ".")
    session.run("osless", "build", *session.posargs)


@nox.session
def examples(session: nox.Session) -> None:
    """Real upstream programs (examples/, an osless project of its own): fetch their pinned Debian
    sources (scripts/fetch-examples), then build, verify, package and smoke-test them on every platform.

    Options after `--` go to `osless build`, e.g. `nox -s examples -- --platform linux/amd64 lua`.
    """
    session.install("-e", ".")
    session.run("python", "scripts/fetch-examples")
    session.run("osless", "-C", "examples", "build", *session.posargs)


@nox.session
def tests(session: nox.Session) -> None:
    """Unit tests and integration tests (these need the Docker engine, toolchain images and qemu-user);
    the shipped samples are built for a representative subset of platforms (CI's run: every language
    on linux/amd64, linux/arm64 and linux/arm/v7, tests/integration/conftest.py). The examples' sources
    are fetched first: `osless init` is tested on them (tests/integration/test_init.py)."""
    session.install("-e", ".[test]")  # pyproject.toml lists them
    session.run("python", "scripts/fetch-examples")
    session.run("pytest", *session.posargs)


@nox.session(name="tests-all")
def tests_all(session: nox.Session) -> None:
    """The tests with every shipped sample built and checked on all seven platforms."""
    session.install("-e", ".[test]")
    session.run("python", "scripts/fetch-examples")
    session.run("pytest", *session.posargs, env={"OSLESS_TEST_PLATFORMS": "all"})


@nox.session
def lint(session: nox.Session) -> None:
    """ruff on everything, mypy --strict on the package and the bench."""
    session.install("-e", ".[lint]")
    session.run("ruff", "check", ".")
    session.run("ruff", "format", "--check", ".")
    session.run("mypy", "--strict", "orchestrator", "bench")


@nox.session
def bench(session: nox.Session) -> None:
    """Time osless against per-target Dockerfiles and the bare build steps in warm containers: synthetic
    services, the real-program examples and a 100-service scale run, with osless's profile and the
    issue's goals (figures, not a test; not run by default). Printed, and written to out/bench.json.

    Options after `--`: --only synthetic,remote,real,scale; --services N, --platforms P,P (synthetic,
    remote, scale); --real lua,ninja,gojq,hexyl[,minisign], --real-platforms P,P; --scale-services N;
    --jobs J, --json PATH, --keep. Needs the toolchain images (`nox -s build-all`, `nox -s examples`).
    """
    session.install("-e", ".")
    session.run("python", "-m", "bench.benchmark", *session.posargs)  # tests/daemons.py from the root
