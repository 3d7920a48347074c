"""Stage 3: check that the built binary runs alone in an empty image, under the service's policy.

The checks are orchestrator.verify's; this stage applies the recipe's [verify] table and image extras
to one target's binary, writes verify.json beside it, and tells the report what the binary is.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

from orchestrator.outputs.report import BinaryInfo, write_json
from orchestrator.platforms import Platform
from orchestrator.recipe.model import Service
from orchestrator.verify.findings import Verdict
from orchestrator.verify.policy import VerifyPolicy, verify_binary


def verify_policy(service: Service) -> VerifyPolicy:
    """The recipe's [verify] table, plus the image extras that satisfy `needs.*` findings."""
    return VerifyPolicy(
        errors=frozenset(service.verify.errors),
        allowed=service.verify.allow,
        max_size=service.verify.max_size,
        provided=frozenset(service.image.extras),
    )


def verify(binary: Path, service: Service, platform: Platform, output_dir: Path) -> Verdict:
    """The binary's verdict under the service's policy, also written to output_dir/verify.json."""
    verdict = verify_binary(binary, platform, verify_policy(service))
    write_json(output_dir / "verify.json", verdict)
    return verdict


def binary_info(binary: Path, verdict: Verdict) -> BinaryInfo:
    """What the report and the cache record of the binary: its size, sha256 and what its ELF says."""
    data = binary.read_bytes()
    facts = verdict.facts
    return BinaryInfo(
        path=str(binary),
        size=len(data),
        sha256=hashlib.sha256(data).hexdigest(),
        linkage=facts.linkage.value if facts else None,
        platform=facts.platform if facts else None,
    )
