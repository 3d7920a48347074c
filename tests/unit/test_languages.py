"""The language registry: what each language contributes to builds and messages, and that the names
the platform table's flag rules exempt are languages osless has."""

from __future__ import annotations

from orchestrator.languages import LANGUAGES, build_env_defaults
from orchestrator.languages.c import C
from orchestrator.languages.go import GO
from orchestrator.platforms import PLATFORMS
from orchestrator.stages.build import BUILD_ENV_DEFAULTS


def test_c_is_asked_last_since_it_recognises_every_binary() -> None:
    assert LANGUAGES[-1] is C and GO in LANGUAGES
    assert len({language.name for language in LANGUAGES}) == len(LANGUAGES)


def test_build_environment_defaults_keep_builds_offline_and_cached() -> None:
    assert build_env_defaults("/cache", "/cache/targets/svc/linux-arm64") == {
        "GOCACHE": "/cache/go-build",
        "GOPATH": "/tmp/go",
        "GOTOOLCHAIN": "local",
        "GOPROXY": "off",
        "GOFLAGS": "-buildvcs=false",
        "CARGO_HOME": "/tmp/cargo-home",
        "CARGO_TARGET_DIR": "/cache/targets/svc/linux-arm64/cargo",
        "CARGO_NET_OFFLINE": "true",
        "ZIG_GLOBAL_CACHE_DIR": "/cache/zig",
        "ZIG_LOCAL_CACHE_DIR": "/cache/targets/svc/linux-arm64/zig-local",
        "CCACHE_DIR": "/cache/ccache",
    }
    assert BUILD_ENV_DEFAULTS == {"HOME": "/tmp", "XDG_CACHE_HOME": "/cache"}


def test_each_language_says_how_it_builds_for_a_platform() -> None:
    arm = PLATFORMS["linux/arm/v7"]
    assert {language.name: language.cross_compiler(arm) for language in LANGUAGES} == {
        "go": "GOARCH=arm",
        "rust": "cargo --target armv7-unknown-linux-gnueabihf",
        "zig": "zig -target arm-linux-musleabihf",
        "c++": "arm-linux-gnueabihf-g++",
        "c": "arm-linux-gnueabihf-gcc",
    }


def test_flag_rules_exempt_only_known_languages() -> None:
    names = {language.name for language in LANGUAGES}
    for platform in PLATFORMS.values():
        for rule in platform.flag_rules:
            assert set(rule.exempt_languages) <= names, (platform.name, rule.finding)
