"""The CycloneDX parts the SBOM and the languages both make: toolchain Debian packages as components,
and osless' own properties."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass

from cyclonedx.model import Property
from cyclonedx.model.component import Component, ComponentType
from packageurl import PackageURL

SERVICE_SOURCE = "service-source"
"""The `osless:origin` of what was compiled from the service's own source tree: the tree itself, a Go main
module, Go modules vendored in it, Rust crates of its workspace or its `cargo vendor` directory."""


@dataclass(frozen=True, kw_only=True)
class DebianPackage:
    """An installed package of a toolchain image: a Debian package, or (purl_type "pypi") a wheel that
    the bootstrap unpacked under /opt/wheels, keyed `wheel_key(name)` among the image's packages."""

    name: str
    version: str
    architecture: str  # the package's own: "amd64", or "all" (e.g. libc6-dev-arm64-cross); "" for a wheel
    distro: str | None = None  # "debian-13": the purl qualifier vulnerability scanners match on
    purl_type: str = "deb"  # "pypi": a wheel, pkg:pypi/<name>@<version>
    static_archive: bool = False  # it ships a static library (`.a`): something a static binary can link

    @property
    def purl(self) -> PackageURL:
        if self.purl_type != "deb":
            return PackageURL(type=self.purl_type, name=self.name, version=self.version)
        qualifiers = {"arch": self.architecture} | ({"distro": self.distro} if self.distro else {})
        return PackageURL(
            type="deb", namespace="debian", name=self.name, version=self.version, qualifiers=qualifiers
        )


def wheel_key(name: str) -> str:
    """How a toolchain image's wheel is keyed among its packages: "pypi/" and the name normalized as
    PyPI does (PEP 503: "pypi/ziglang"); a "/" is in no Debian package name."""
    return "pypi/" + re.sub(r"[-_.]+", "-", name).lower()


def properties(values: Mapping[str, str | None]) -> list[Property]:
    """`osless:<key>` properties for the values that are set."""
    return [Property(name=f"osless:{key}", value=value) for key, value in values.items() if value]


def deb_component(
    package: DebianPackage, kind: ComponentType = ComponentType.LIBRARY, **values: str
) -> Component:
    purl = package.purl
    return Component(
        type=kind,
        name=package.name,
        version=package.version,
        purl=purl,
        bom_ref=purl.to_string(),
        properties=properties(values),
    )
