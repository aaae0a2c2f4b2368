"""The aks-serving CrossGuard pack: `pulumi preview --policy-pack policies` (README.md lists the policies).

The engine runs this file as `python -m pulumi.policy <engine address> .` with this folder as the working
directory (and so as sys.path[0]): the modules beside it import as top-level modules, the rule module as
`rules`. Every policy is mandatory unless it says otherwise; the pack config may change any level.
"""
from pulumi_policy import EnforcementLevel, PolicyPack

import autoscaling
import naming_policies
import serving
import sku
import workloads

PolicyPack(
    name="aks-serving",
    description="Guard rails for model serving on AKS: names, VM sizes and cluster capacity, autoscaling, "
                "workload security and the router's serving rules.",
    enforcement_level=EnforcementLevel.MANDATORY,
    policies=[
        *naming_policies.POLICIES,
        *sku.POLICIES,
        *autoscaling.POLICIES,
        *workloads.POLICIES,
        *serving.POLICIES,
    ],
)
