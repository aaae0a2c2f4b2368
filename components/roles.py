"""Azure built-in roles by definition ID: the one place that spells a role assignment's `roleDefinitionId`."""
from __future__ import annotations

import pulumi

ROLE_DEFINITIONS = "/providers/Microsoft.Authorization/roleDefinitions/"


def role_definition_id(subscription: pulumi.Input[str], role: str) -> pulumi.Output[str]:
    """A built-in role's definition ID in `subscription`: the one of the assignment's scope."""
    return pulumi.Output.concat("/subscriptions/", subscription, ROLE_DEFINITIONS, role)
