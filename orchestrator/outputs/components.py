"""The CycloneDX parts the SBOM and the languages both make: toolchain Debian packages as components,
and osless' own properties."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from cyclonedx.model import Property
from cyclonedx.model.component import Component, ComponentType
from packageurl import PackageURL


@dataclass(frozen=True, kw_only=True)
class DebianPackage:
    """An installed package of a toolchain image."""

    name: str
    version: str
    architecture: str  # the package's own: "amd64", or "all" (e.g. libc6-dev-arm64-cross)
    distro: str | None = None  # "debian-13": the purl qualifier vulnerability scanners match on

    @property
    def purl(self) -> PackageURL:
        qualifiers = {"arch": self.architecture} | ({"distro": self.distro} if self.distro else {})
        return PackageURL(
            type="deb", namespace="debian", name=self.name, version=self.version, qualifiers=qualifiers
        )


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
