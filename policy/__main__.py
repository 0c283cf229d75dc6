"""The edge-registry policy pack: ``pulumi preview --policy-pack policy``.

Only builds the pack (which starts the policy server); the policies live in ``edge_policies``.
"""

from pulumi_policy import EnforcementLevel, PolicyPack

from edge_policies import POLICIES

PolicyPack(
    name="edge-registry",
    description="Guardrails for edge-registry sites: modes, scope maps, http, passwords, host keys, "
    "pull secrets and ACR limits.",
    enforcement_level=EnforcementLevel.MANDATORY,
    policies=list(POLICIES),
)
