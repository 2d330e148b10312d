"""The homelab policy pack: ``pulumi preview --policy-pack policy``.

The Pulumi CLI runs this file with the pack folder as working directory;
constructing ``PolicyPack`` starts the analyzer's gRPC server and blocks, so
nothing else may import this module. The rules live in ``policy/rules.py``.
"""

import sys
from pathlib import Path

# Run as a script from policy/: make `policy.rules` importable from the repository root.
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from pulumi_policy import EnforcementLevel, PolicyPack

from policy.rules import POLICIES

PolicyPack(
    name="homelab",
    description="Conventions of the homelab stack: pinned versions, protected state, secrets kept secret.",
    # Each policy sets its own level; this only applies to one that would not.
    enforcement_level=EnforcementLevel.MANDATORY,
    policies=list(POLICIES),
)
