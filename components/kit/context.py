"""The context every component of a tier takes: who it is, what it runs next to, what it protects.

Providers are not in it: the platform hands its explicit providers to its children, and every
resource inherits them through its parent, so nothing can reach for an ambient kubeconfig.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import pulumi

from components.config import NetworkSettings


@dataclass(frozen=True)
class TierContext:
    """Decided once by the platform, before any resource exists."""

    instance: str
    version: str
    network: NetworkSettings
    # The stateful/protect decision of this tier: protect + retain_on_delete on what holds data.
    protect: bool = False
    # What every resource of the tier waits for (its namespace, a PriorityClass).
    after: tuple[pulumi.Resource, ...] = ()

    def waiting_for(self, *resources: pulumi.Resource) -> TierContext:
        return replace(self, after=(*self.after, *resources))

    def options(
        self,
        parent: pulumi.Resource,
        *after: pulumi.Resource,
        stateful: bool = False,
        aliases: list[pulumi.Alias] | None = None,
        custom_timeouts: pulumi.CustomTimeouts | None = None,
        delete_before_replace: bool = False,
    ) -> pulumi.ResourceOptions:
        """A child of `parent` after the tier's own prerequisites and `after`; `stateful`: protected
        and kept on delete where the tier protects (production)."""
        options = pulumi.ResourceOptions(
            parent=parent,
            depends_on=[*self.after, *after],
            aliases=aliases,
            custom_timeouts=custom_timeouts,
            delete_before_replace=delete_before_replace or None,
        )
        if stateful:
            options.protect = self.protect
            options.retain_on_delete = self.protect
        return options
