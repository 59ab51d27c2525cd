"""Builds the policy pack. Nothing else: the PolicyPack constructor starts the analyzer server and
blocks, so the rules live in `support_policies` where the tests import them.
"""

from pulumi_policy import EnforcementLevel, PolicyPack

from support_policies import PACK_NAME, all_policies

PolicyPack(
    name=PACK_NAME,
    # Without a config file every rule blocks; the per-stack files in config/ relax what is noisy.
    enforcement_level=EnforcementLevel.MANDATORY,
    # Every theme module's POLICIES, in catalogue order: the one list of what the pack enforces.
    policies=all_policies(),
)
