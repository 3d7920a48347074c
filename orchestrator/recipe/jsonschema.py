"""The JSON Schemas of service and toolchain recipes, for editors (Taplo, Even Better TOML): made from
the vocabularies and value patterns the reader checks with (the platform table, the image extras, the
languages, the placeholders, the converters' patterns and ranges, read from convert.py where they are
module-private), so that the schema cannot drift from them.

The reader stays the authority: the schema describes each file on its own, while the loader also
checks what spans files or the file system (a service's toolchain, its source directory, a
placeholder's definition on every platform). docs/recipes.md, "Editor support", lists what only the
loader can tell. tests/unit/test_recipe_schema.py checks that the schema knows exactly the keys the
reader reads; the shipped files in schema/ are this module's output (`osless schema --write DIR`).
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from orchestrator.platforms import PLATFORMS
from orchestrator.recipe import convert, fetch, loader
from orchestrator.recipe.build import MAX_STEPS
from orchestrator.recipe.fetch import FILE_SCHEME
from orchestrator.recipe.model import ALL_PLATFORMS, BUILD_LIMITS, IMAGE_EXTRAS, SMOKE_LIMITS, Limits, MiB
from orchestrator.recipe.placeholders import FACTS

Schema = dict[str, Any]

KINDS = ("service", "toolchain")
SHIPPED = Path(__file__).resolve().parent / "schema"  # package data: pyproject.toml lists it
PROJECT_SCHEMAS = Path("recipes") / ".schema"  # where `osless schema --write` puts them in a project
DRAFT = "https://json-schema.org/draft/2020-12/schema"


def file_name(kind: str) -> str:
    """`service.schema.json`: the name of a kind's schema, shipped and written by `osless schema --write`."""
    return f"{kind}.schema.json"


def directive(kind: str) -> str:
    """The first line of a project's recipe of `kind`, naming its schema in PROJECT_SCHEMAS relative to
    the recipe (toolchains are one directory deeper): Taplo and Even Better TOML read it."""
    up = "../" if kind == "toolchain" else ""
    return f"#:schema {up}{PROJECT_SCHEMAS.name}/{file_name(kind)}"


def schema(kind: str) -> Schema:
    """The JSON Schema of one kind of recipe: "service" (recipes/*.toml) or "toolchain"."""
    return {"service": _service, "toolchain": _toolchain}[kind]()


def schema_text(kind: str) -> str:
    """The schema as it is written to a file and printed: indented JSON ending in a newline."""
    return json.dumps(schema(kind), indent=2, ensure_ascii=False) + "\n"


# --- Building blocks ---


def _full(pattern: str) -> str:
    """A JSON Schema pattern (searched, not matched) that matches what `re.fullmatch(pattern)` does;
    a Python named group, which ECMA-262 writes otherwise, becomes a plain group."""
    return "^(?:" + _NAMED_GROUP.sub("(?:", pattern) + ")$"


_NAMED_GROUP = re.compile(r"\(\?P<\w+>")


def _string(description: str | None = None, pattern: str | None = None, **more: Any) -> Schema:
    node: Schema = {"type": "string", **({"pattern": pattern} if pattern else {}), **more}
    return _described(node, description)


def _described(node: Schema, description: str | None) -> Schema:
    return {**node, "description": description} if description else node


def _ref(name: str, description: str | None = None) -> Schema:
    return _described({"$ref": f"#/$defs/{name}"}, description)


def _list(items: Schema, description: str | None = None, **more: Any) -> Schema:
    return _described({"type": "array", **more, "items": items}, description)


def _table(description: str, properties: dict[str, Schema], **more: Any) -> Schema:
    """A table whose keys are the schema's: any other key is unknown, as the reader says."""
    return {
        "type": "object",
        "description": description,
        **more,
        "additionalProperties": False,
        "properties": properties,
    }


def _keyed(description: str, names: Schema, values: Schema, **more: Any) -> Schema:
    """A table whose keys are data (platform names, variable names, image paths)."""
    return {
        "type": "object",
        "description": description,
        **more,
        "propertyNames": names,
        "additionalProperties": values,
    }


def _one_of_keys(*keys: str) -> list[Schema]:
    return [{"required": [key]} for key in keys]


def _if(condition: Schema, then: Schema, otherwise: Schema | None = None) -> Schema:
    """A rule that applies when `condition` holds (`otherwise`: when it does not)."""
    return {"if": condition, "then": then, **({"else": otherwise} if otherwise else {})}


def _not_both(*pairs: tuple[str, str]) -> Schema:
    return {"not": {"anyOf": [{"required": list(pair)} for pair in pairs]}}


def _template(names: str) -> str:
    """Text whose braces are `{{`, `}}` or a placeholder `{NAME}` whose name matches `names`, as
    `placeholders.scan` reads it: a lone brace, `{}`, `{NAME!r}` or `{NAME.attr}` is no placeholder."""
    return r"^(?:[^{}]|\{\{|\}\}|\{(?:" + names + r")\})*$"


# Patterns use no lookaround, which some editors' engines lack (Rust's regex crate has none): where the
# reader's pattern has one, `not` or an equivalent pattern says it (tests compare them on samples).
_NO_NUL = r"^[^\x00]*$"  # a path: no NUL can reach a file name
_TEXT = r"^[^\x00]*[^\s\x00][^\x00]*$"  # as_text (not only blanks), and no NUL
_RELATIVE = r"^(?:[^/\s\x00][^\x00]*|\s+[^\s\x00][^\x00]*)$"  # relative to the project root, as _TEXT
_FILE_NAME = r"^(?:[^/\x00.][^/\x00]*|\.(?:[^/\x00.][^/\x00]*|\.[^/\x00]+))$"  # convert._FILE_NAME
_COMMAND_TEXT = _template(convert.ENV_NAME.pattern)  # any name: the toolchain may define it
_FACT = r"\{(?:" + "|".join(FACTS) + r")\}"
_FACT_TEXT = _template("|".join(FACTS))  # shared env values: platform facts only
_ARCHITECTURES = "|".join(convert.DEBIAN_ARCHITECTURES)
# A Debian package (as_packages, Debian policy 5.6.1), then an architecture, if any, from Debian's list.
_DEBIAN_NAME = r"[a-z0-9][a-z0-9+.-]+"
_PACKAGE = rf"^{_DEBIAN_NAME}(?::(?:{_ARCHITECTURES}))?$"
_LIBRARY = r"^[a-z0-9][a-z0-9+.-]*-dev$"
# A toolchain platform's package before its facts are filled in (the reader checks it filled in):
# "gcc-{GNU_TRIPLE}", "musl-dev:{DEBIAN_ARCH}".
_PLATFORM_PACKAGE = (
    rf"^(?:[a-z0-9]|{_FACT})(?:[a-z0-9+.-]|{_FACT})*"
    rf"(?::(?:{_ARCHITECTURES}|[a-z0-9-]*{_FACT}(?:[a-z0-9-]|{_FACT})*))?$"
)
_PORT = r"(?::(?:6553[0-5]|655[0-2]\d|65[0-4]\d{2}|6[0-4]\d{3}|[1-5]\d{4}|\d{1,4}))?"  # 0 to 65535
_HOST = r"(?:\[[0-9A-Fa-f:.]+\]|[^\s/?#@:\[\]]+)"
# as_mirror: http(s) with a host, or file:// with an absolute path; no whitespace.
_MIRROR = rf"^(?:https?://(?:[^\s/?#@]*@)?{_HOST}{_PORT}(?:[/?#]\S*)?|file:///\S*)$"
# A GOPROXY entry (fetch.as_goproxy, then each checked): a relative project directory, or an http(s)
# proxy URL of printable ASCII without credentials or '|'.
_GOPROXY_ENTRY = (
    rf"\s*(?:{FILE_SCHEME}[^/\s,](?:{fetch._RELATIVE_PATH.pattern})?"
    r"|https?://[A-Za-z0-9._~%!$&'()*+;=:\[\]-]+(?:[/?#][!-+\--{}~]*)?)\s*"
)
_ONLINE = r"(?:^|,)\s*https?://"


def _limits_default(limits: Limits) -> str:
    cpus = int(limits.cpus) if limits.cpus.is_integer() else limits.cpus
    memory = convert.size_text(limits.memory)
    return f'Default: {{ memory = "{memory}", pids = {limits.pids}, cpus = {cpus} }}.'


def _sized(low: int, description: str) -> Schema:
    """A size (the `size` form) from `low` bytes to 1TiB: a range a pattern cannot tell of a string."""
    return {
        "allOf": [_ref("size"), {"minimum": low, "maximum": convert.MAX_SIZE}],
        "description": description,
    }


def _shared_defs() -> Schema:
    """What both kinds of recipe use."""
    return {
        "name": _string(
            "Lowercase letters, digits, '.', '_' and '-', starting with a letter or digit.",
            _full(convert.NAME_PATTERN.pattern),
        ),
        "buildEnv": _keyed(
            "Build environment variables: names are identifiers (they double as command placeholders), "
            "values strings that may use platform placeholders such as {GOARCH}; {{ and }} are literal "
            "braces.",
            {"pattern": _full(convert.ENV_NAME.pattern)},
            _string(pattern=_FACT_TEXT),
        ),
        "platform": {
            "enum": list(PLATFORMS),
            "description": "A platform of the platform table (orchestrator/platforms.py).",
        },
    }


# --- Service recipes ---


def _document(kind: str, *, title: str, description: str, required: list[str]) -> Schema:
    """The head of a recipe kind's schema: a TOML document of these top-level tables, no others."""
    return {
        "$schema": DRAFT,
        "$id": f"https://osless.invalid/schema/{file_name(kind)}",
        "title": title,
        "description": f"{description} Reference: docs/recipes.md.",
        "type": "object",
        "required": required,
        "additionalProperties": False,
    }


def _service() -> Schema:
    return {
        **_document(
            "service",
            title="osless service recipe (recipes/*.toml)",
            description="One service: its source, toolchain, platforms, build, image, verification policy "
            "and smoke test.",
            required=["service", "build"],
        ),
        "properties": {
            "service": _service_table(),
            "build": _build_table(),
            "image": _image_table(),
            "verify": _verify_table(),
            "fetch": _fetch_table(),
            "smoke": {
                "description": "The smoke checks, run in order on every platform: one table ([smoke]) or "
                "an array of tables ([[smoke]]). Default: one check that wants exit code 0.",
                "anyOf": [_ref("smokeCheck"), _list(_ref("smokeCheck"), minItems=1)],
            },
        },
        "allOf": [_named_as_repository(), _root_allowed(), *_tag_fits()],
        "$defs": {
            "smokeCheck": _smoke_check(),
            "smokeExpect": _smoke_expect(),
            **_shared_defs(),
            "strings": _list({"type": "string"}),
            "stringTable": {"type": "object", "additionalProperties": {"type": "string"}},
            "duration": {
                "description": 'A duration: "500ms", "30s", "2m", "1h", "1m30s" or a number of seconds; '
                "more than 0, at most 24h.",
                "oneOf": [
                    _string(pattern=_full(convert.DURATION_PATTERN.pattern)),
                    {"type": "number", "exclusiveMinimum": 0, "maximum": convert.MAX_DURATION},
                ],
            },
            "size": {
                "description": 'A size: "800KiB", "2MiB", "1.5GB" or a number of bytes.',
                "oneOf": [
                    _string(pattern=_full(convert.SIZE_PATTERN.pattern)),
                    {"type": "integer"},
                ],
            },
            "limits": _table(
                "What one container may use; keys left out keep their defaults.",
                {
                    "memory": _sized(16 * MiB, "Memory, 16MiB to 1TiB."),  # as_memory's least
                    "pids": {
                        "type": "integer",
                        "minimum": 16,
                        "maximum": 1_000_000,
                        "description": "Process and thread count.",
                    },
                    "cpus": {
                        "type": "number",
                        "minimum": 0.01,
                        "maximum": 1024,
                        "description": "CPUs, at most the engine's cores.",
                    },
                },
            ),
        },
    }


def _named_as_repository() -> Schema:
    """Without image.repository, the image is named after the service: the name must be a repository."""
    return {
        "if": {"not": {"required": ["image"], "properties": {"image": {"required": ["repository"]}}}},
        "then": {
            "properties": {
                "service": {
                    "properties": {
                        "name": {
                            "pattern": _full(convert.REPOSITORY_PATTERN.pattern),
                            "maxLength": convert.MAX_REPOSITORY,
                        }
                    }
                }
            }
        },
    }


def _root_allowed() -> Schema:
    """image.user may be uid 0 only when a smoke check says allow_root = true."""
    allows = {"type": "object", "required": ["allow_root"], "properties": {"allow_root": {"const": True}}}
    return {
        "if": {
            "required": ["image"],
            "properties": {
                "image": {"required": ["user"], "properties": {"user": {"pattern": r"^0+(?::\d+)?$"}}}
            },
        },
        "then": {
            "required": ["smoke"],
            "properties": {"smoke": {"anyOf": [allows, {"type": "array", "contains": allows}]}},
        },
    }


def _tag_fits() -> list[Schema]:
    """The image tag with the platform suffix osless appends ("<tag>-arm64") is at most MAX_TAG long,
    for each platform the service lists (for ["all"], the toolchain's platforms: only the loader knows)."""
    return [
        {
            "if": {
                "required": ["service", "image"],
                "properties": {
                    "service": {
                        "required": ["platforms"],
                        "properties": {"platforms": {"type": "array", "contains": {"enum": platforms}}},
                    }
                },
            },
            "then": {"properties": {"image": {"properties": {"tag": {"maxLength": length}}}}},
        }
        for length, platforms in sorted(_longest_tags().items())
    ]


def _longest_tags() -> dict[int, list[str]]:
    """The longest tag a platform's suffix leaves room for -> the platforms with that suffix length."""
    longest: dict[int, list[str]] = {}
    for platform in PLATFORMS.values():
        longest.setdefault(convert.MAX_TAG - 1 - len(platform.tag_suffix), []).append(platform.name)
    return longest


def _service_table() -> Schema:
    return _table(
        "What is built, with which toolchain, for which platforms.",
        {
            "name": _ref(
                "name",
                "The service name; also the default image repository, so without a trailing '-', '.' or "
                "'_' and without two of them in a row.",
            ),
            "source": _string(
                "The source directory, relative to the project root and inside it; no FIFO, socket or "
                "device file in it.",
                _RELATIVE,
            ),
            "toolchain": _string("The name of a toolchain in recipes/toolchains/.", _TEXT),
            "platforms": _list(
                {"enum": [*PLATFORMS, ALL_PLATFORMS]},
                "The platforms to build for, each supported by the toolchain; "
                f'["{ALL_PLATFORMS}"]: every platform the toolchain can build the service for.',
                minItems=1,
                uniqueItems=True,
            ),
            "exclude_platforms": _list(
                _ref("platform"), f'Platforms left out of ["{ALL_PLATFORMS}"]. Default: none.'
            ),
        },
        required=["name", "source", "toolchain", "platforms"],
    )


_OUTPUT_PLACEHOLDER = {"type": "string", "pattern": r"(?:^|[^{])(?:\{\{)*\{output\}"}


def _build_table() -> Schema:
    arguments = _list(_string(pattern=_COMMAND_TEXT), minItems=1)
    return _table(
        "How the binary is built in the target's workspace (a writable copy of the source at "
        "/workspace/<service>/<platform>, kept between builds): exactly one of command, steps or script.",
        {
            "command": _described(
                arguments,
                "One program to run. Placeholders: {output} (where to write the binary), {JOBS}, "
                "{WORKSPACE}, platform facts ({GOARCH}, {GNU_TRIPLE}...), {NAME} of the build "
                "environment; {{ and }} are literal braces.",
            ),
            "steps": _list(
                arguments,
                "Programs run in order, each a list of arguments with the placeholders of command; the "
                "build stops at the first that fails.",
                minItems=1,
                maxItems=MAX_STEPS,
            ),
            "script": _string(
                "Shell text run by `sh -eu -c`; no placeholders: every placeholder's value is an "
                "environment variable of the same name ($GNU_TRIPLE, $JOBS, $OUTPUT, $WORKSPACE).",
                _TEXT,
            ),
            "artifact": _string(
                "The binary after the build, relative to the workspace or absolute; placeholders allowed "
                "(e.g. {CARGO_TARGET_DIR}/{RUST_TARGET}/release/app). Default: {output}.",
                allOf=[
                    {"pattern": _TEXT},
                    {"pattern": "[^/]$"},  # a file, not a directory
                    {"not": {"pattern": r"^\.{1,2}$"}},
                    {"pattern": _COMMAND_TEXT},
                ],
            ),
            "incremental": {
                "type": "boolean",
                "description": "Keep the target's workspace between builds and sync it with the source "
                "(changed files copied and touched, removed ones removed), so make, cmake or cargo "
                "recompile only what changed. false: a fresh copy of the source before every build, for "
                "a build that edits its source files in place. Default: true.",
            },
            "env": _ref(
                "buildEnv", "Build environment added to the toolchain's (wins over it). Default: {}."
            ),
            "output": _string(
                "The binary's file name (no '/'). Default: the service name.",
                _FILE_NAME,
            ),
            "timeout": _ref(
                "duration",
                'Timeout of the whole build (preparing the workspace and every step). Default: "10m".',
            ),
            "limits": _ref("limits", f"Builder limits. {_limits_default(BUILD_LIMITS)}"),
        },
        oneOf=_one_of_keys("command", "steps", "script"),
        # With an artifact, the binary is taken from there: nothing would read what {output} names.
        **_if(
            {"required": ["artifact"]},
            {
                "properties": {
                    "command": {"not": {"contains": _OUTPUT_PLACEHOLDER}},
                    "steps": {"not": {"contains": {"contains": _OUTPUT_PLACEHOLDER}}},
                }
            },
        ),
    )


def _image_table() -> Schema:
    return _table(
        "The FROM-scratch image that carries the binary.",
        {
            "repository": _string(
                "Image repository, [host[:port]/]component[/component...]. Default: the service name.",
                _full(convert.REPOSITORY_PATTERN.pattern),
                maxLength=convert.MAX_REPOSITORY,
            ),
            "tag": _string(
                'Image tag; with the platform suffix osless appends ("-arm64", "-armv7") at most '
                f"{convert.MAX_TAG} characters. repository:tag is unique among the services. "
                'Default: "latest".',
                _full(convert.TAG_PATTERN.pattern),
                maxLength=min(_longest_tags()),
            ),
            "entrypoint": _list({"type": "string"}, 'Default: ["/" + build.output].', minItems=1),
            "cmd": _ref("strings", "Default: []."),
            "user": _string(
                'Numeric uid[:gid]; uid 0 only with [smoke] allow_root = true. Default: "65534:65534".',
                _full(convert.USER_PATTERN.pattern),
            ),
            "env": _keyed(
                "The image's environment: names are identifiers, values strings (no placeholders). "
                "Default: {}.",
                {"pattern": _full(convert.ENV_NAME.pattern)},
                {"type": "string"},
            ),
            "labels": _ref("stringTable", "Image labels. Default: {}."),
            "extras": _list(
                {"enum": list(IMAGE_EXTRAS)}, "Files added to the image. Default: [].", uniqueItems=True
            ),
            "zones": _ref(
                "strings",
                'With the tzdata extra: only these zones, e.g. ["Europe/Paris", "UTC"]. Default: all.',
            ),
            "files": _keyed(
                "Absolute, normalized image path (not the binary's) -> a file relative to the service's "
                "source. Default: {}.",
                {"pattern": r"^/[^\x00]*$"},
                _string(pattern=_NO_NUL),
            ),
        },
    )


def _verify_table() -> Schema:
    return _table(
        "The verification policy.",
        {
            "errors": _ref("strings", 'Finding ids that fail the target, e.g. "needs.tzdata". Default: [].'),
            "allow": _ref("stringTable", "Finding id -> why it is acceptable here. Default: {}."),
            "max_size": _sized(1, "A larger binary fails the target: 1 byte to 1TiB. Default: none."),
        },
    )


def _fetch_table() -> Schema:
    online = {
        "anyOf": [
            {"type": "string", "pattern": _ONLINE},
            {"type": "array", "contains": {"type": "string", "pattern": _ONLINE}},
        ]
    }
    return _table(
        "Dependencies downloaded in a step of their own before the offline build, cached by the files "
        "that pin them (Go: go.mod and go.sum).",
        {
            "goproxy": {
                "description": "Go: where `go mod download` takes modules from, in order: "
                f'"{FILE_SCHEME}<directory relative to the project root>" (GOPROXY layout, mounted '
                "read-only) or an http(s) proxy URL (needs network = true). A string (entries separated "
                "by ',') or a list.",
                "anyOf": [
                    _string(pattern=rf"^{_GOPROXY_ENTRY}(?:,{_GOPROXY_ENTRY})*$"),
                    _list(_string(pattern=rf"^{_GOPROXY_ENTRY}$"), minItems=1),
                ],
            },
            "network": {
                "type": "boolean",
                "description": "The fetch step (never the build) gets a network: required by http(s) "
                "sources, refused without one. Default: false.",
            },
            "timeout": _ref("duration", 'Default: "10m".'),
        },
        required=["goproxy"],
        # network = true exactly when an entry is an http(s) URL.
        **_if(
            {"required": ["goproxy"], "properties": {"goproxy": online}},
            {"required": ["network"], "properties": {"network": {"const": True}}},
            otherwise={"properties": {"network": {"const": False}}},
        ),
    )


def _smoke_check() -> Schema:
    expect = "#/$defs/smokeExpect/properties/"
    return {
        **_table(
            "One run of the image: its arguments, stdin and test files, and what it must give.",
            {
                "name": _string(
                    'Shown in the report and JUnit; unique within the service. Default: "smoke" for '
                    '[smoke], "check N" for the N-th [[smoke]].',
                    allOf=[{"pattern": _full(convert.CHECK_NAME_PATTERN.pattern)}, {"pattern": r"\S"}],
                ),
                "args": _ref("strings", "Arguments to the image. Default: []."),
                "stdin": _string(
                    "Written to the program's standard input (UTF-8), which is then closed. "
                    "Default: no input."
                ),
                "stdin_file": _string(
                    "A file relative to the project root (inside it after symlinks, regular, at most "
                    "64 MiB) written to the program's standard input. Not with stdin.",
                    _RELATIVE,
                ),
                "files": _keyed(
                    "Absolute, normalized image path -> a file relative to the project root (at most "
                    "64 MiB each): present for this check's run only, in a layer of its own, never in "
                    "the shipped image.",
                    {"pattern": r"^/[^\x00]+$"},
                    _string(pattern=_NO_NUL),
                ),
                **{key: {"$ref": expect + key} for key in _EXPECT_KEYS},
                "platforms": _keyed(
                    "What the check must give on a platform instead: a table per platform name; a stream "
                    "it names replaces the check's expectation of that stream, the rest is the check's.",
                    _ref("platform"),
                    _ref("smokeExpect"),
                ),
                "timeout": _ref("duration", 'Default: "30s".'),
                "limits": _ref("limits", _limits_default(SMOKE_LIMITS)),
                "allow_root": {
                    "type": "boolean",
                    "description": "Lets image.user be uid 0 (for every check). Default: false.",
                },
            },
        ),
        **_not_both(("stdin", "stdin_file"), *_EXPECT_PAIRS),
    }


_EXPECT_KEYS = ("stdout", "stdout_matches", "stderr", "stderr_matches", "exit_code")
_EXPECT_PAIRS = (("stdout", "stdout_matches"), ("stderr", "stderr_matches"))


def _smoke_expect() -> Schema:
    return {
        **_table(
            "What a run must give.",
            {
                "stdout": _string("The exact expected standard output. Default: not checked."),
                "stdout_matches": _string(
                    "A Python regular expression searched in the standard output (re.search: anywhere, "
                    "unless anchored with ^ or \\A and $ or \\Z). Not with stdout.",
                    format="regex",
                ),
                "stderr": _string("The exact expected standard error. Default: not checked."),
                "stderr_matches": _string(
                    "A Python regular expression searched in the standard error. Not with stderr.",
                    format="regex",
                ),
                "exit_code": {"type": "integer", "minimum": 0, "maximum": 255, "description": "Default: 0."},
            },
        ),
        **_not_both(*_EXPECT_PAIRS),
    }


# --- Toolchain recipes ---


def _toolchain() -> Schema:
    return {
        **_document(
            "toolchain",
            title="osless toolchain recipe (recipes/toolchains/*.toml)",
            description="A builder image (existing, or bootstrapped from Debian packages) and the platforms "
            "it compiles for.",
            required=["toolchain"],
        ),
        "properties": {"toolchain": _toolchain_table()},
        "$defs": {
            **_shared_defs(),
            "toolchainPlatform": _table(
                "What the toolchain adds for one platform; placeholders are filled with that platform's "
                "facts. In a toolchain that extends another: its additions to a platform of the base.",
                {
                    "packages": _list(
                        _string(pattern=_PLATFORM_PACKAGE),
                        'Cross packages, e.g. "gcc-{GNU_TRIPLE}", "libc6-dev-{DEBIAN_ARCH}-cross", '
                        '"musl-dev:{DEBIAN_ARCH}" (multiarch). Default: [].',
                    ),
                    "unpack": _list(
                        _string(pattern=_PLATFORM_PACKAGE),
                        "Packages unpacked without their dependencies for this platform, e.g. "
                        '"libstd-rust-dev:{DEBIAN_ARCH}". Default: [].',
                    ),
                    "libraries": _list(
                        _ref("library"),
                        "Target libraries for this platform only, as [toolchain.bootstrap] libraries, "
                        'e.g. "libbz2-dev". Default: [].',
                    ),
                    "env": _ref(
                        "buildEnv",
                        'Build environment for this platform, e.g. { CC = "{GNU_TRIPLE}-gcc" }. Default: {}.',
                    ),
                },
            ),
            "wheel": _table(
                "One pinned wheel.",
                {
                    "version": _string(
                        'The version as PyPI lists it, e.g. "0.17.1".',
                        _full(convert.WHEEL_VERSION_PATTERN.pattern),
                    ),
                    "sha256": _string(
                        "The sha256 of the wheel file, as PyPI lists it.",
                        _full(convert.SHA256_PATTERN.pattern),
                    ),
                },
                required=["version", "sha256"],
            ),
            "library": _string("A Debian -dev package name, without :arch.", _LIBRARY),
        },
    }


def _toolchain_table() -> Schema:
    return _table(
        "The toolchain; `image`, `bootstrap` or `extends` is required.",
        {
            "name": _ref("name", "The toolchain name that services give as service.toolchain."),
            "extends": _ref(
                "name",
                "The name of another toolchain this one extends: it inherits that toolchain's env, "
                "languages and platforms (its own values win) and its bootstrap section only adds "
                "packages, unpack and libraries, installed as one thin layer on the base toolchain's "
                "image. Not with `image`.",
            ),
            "image": _string(
                "An existing image used as is: name[:tag][@digest].",
                _full(convert.IMAGE_REFERENCE_PATTERN.pattern),
            ),
            "env": _ref(
                "buildEnv",
                "Build environment for every platform; values may use platform placeholders such as "
                "{GOARCH}. Default: {}.",
            ),
            "languages": _list(
                {"enum": list(convert.LANGUAGE_NAMES)},
                "The languages the toolchain compiles, names of orchestrator.languages (shown by "
                "`osless list`). Default: [].",
            ),
            "bootstrap": _bootstrap_table(),
            "platforms": _keyed(
                "The platforms the toolchain compiles for, at least one, e.g. "
                '[toolchain.platforms."linux/arm64"].',
                _ref("platform"),
                _ref("toolchainPlatform"),
                minProperties=1,
            ),
        },
        required=["name"],
        anyOf=_one_of_keys("image", "bootstrap", "extends"),
        # A toolchain that extends another: its own platforms are optional, and its bootstrap section
        # only adds packages; the base's apt sources and wheels are the base's.
        **_if(
            {"required": ["extends"]},
            {
                "not": {"required": ["image"]},
                "properties": {"bootstrap": {"properties": {key: False for key in loader._FROM_BASE}}},
            },
            otherwise={
                "required": ["platforms"],
                "properties": {"bootstrap": {"required": ["suite", "packages"]}},
            },
        ),
    )


def _bootstrap_table() -> Schema:
    return _table(
        "Make the image from Debian packages with mmdebstrap; in a toolchain that extends another, only "
        "`packages`, `unpack` and `libraries` (added to the base image).",
        {
            "suite": _string(
                'Debian suite or codename: "trixie", "bookworm-backports", "unstable".',
                _full(convert.SUITE_PATTERN.pattern),
            ),
            "packages": _list(
                _string(pattern=_PACKAGE),
                "Debian packages for every platform (no placeholders), optionally name:arch with a Debian "
                "architecture. Required unless the toolchain extends another.",
            ),
            "mirror": _string(
                "An http://, https:// or file:// mirror URL. Default: mmdebstrap's.",
                _MIRROR,
            ),
            "components": _list(
                _string(pattern=_full(convert.COMPONENT_PATTERN.pattern)), 'Default: ["main"].', minItems=1
            ),
            "unpack": _list(
                _string(pattern=_PACKAGE),
                "Debian packages whose files are added to the image without their dependencies (no "
                "placeholders), optionally name:arch. A package the image has natively is taken in that "
                "same version. Default: [].",
            ),
            "wheels": _keyed(
                "Python wheels from PyPI, each pinned by version and the sha256 of its Linux wheel file for "
                "the build machine; their files land under /opt/wheels. Default: {}.",
                {"pattern": _full(convert.WHEEL_NAME.pattern)},
                _ref("wheel"),
            ),
            "libraries": _list(
                _ref("library"),
                "Target libraries (-dev packages, no :arch) installed for every platform's Debian "
                "architecture, with the -dev packages they depend on but without run-time packages; each "
                "must ship a static archive (.a) if it ships a shared library. Default: [].",
            ),
        },
    )


def write_schemas(directory: Path) -> list[Path]:
    """Both schemas, written into `directory` (made if missing): the files it wrote."""
    directory.mkdir(parents=True, exist_ok=True)
    written = []
    for kind in KINDS:
        path = directory / file_name(kind)
        path.write_text(schema_text(kind))
        written.append(path)
    return written
