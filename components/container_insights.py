"""Container Insights' data collection rule and its association with the cluster.

The monitoring add-on runs with managed-identity auth (`useAADAuth`), and then its agents send only
what a data collection rule (DCR) associated with the cluster asks for. `az aks create
--enable-addons monitoring` makes both on the client side; an ARM or Pulumi deployment of the cluster
makes neither, so without these two resources the agents run and nothing reaches Log Analytics.
Names, kind and streams follow what the Azure CLI creates, so a cluster onboarded either way looks the same.
"""
from __future__ import annotations

import pulumi
from pulumi_azure_native import monitor

STREAMS = ["Microsoft-ContainerInsights-Group-Default"]  # logs (ContainerLogV2), events, inventory, perf
DESTINATION = "ciworkspace"
ASSOCIATION = "ContainerInsightsExtension"  # the name the agent and the portal look for
MAX_NAME = 64  # a DCR name's limit


def rule_name(workspace_location: str, cluster_name: str) -> str:
    return f"MSCI-{workspace_location}-{cluster_name}"[:MAX_NAME]


def container_insights(name: str, *, cluster_id: pulumi.Input[str], cluster_name: str,
                       resource_group_name: pulumi.Input[str], workspace_location: str,
                       log_analytics_workspace_id: pulumi.Input[str],
                       opts: pulumi.ResourceOptions) -> monitor.DataCollectionRuleAssociation:
    # The rule lives in the Log Analytics workspace's region (a DCR must share its destination's region).
    rule = monitor.DataCollectionRule(
        f"{name}-dcr", data_collection_rule_name=rule_name(workspace_location, cluster_name),
        resource_group_name=resource_group_name, location=workspace_location, kind="Linux",
        description=f"Container Insights for AKS cluster {cluster_name}",
        data_sources=monitor.DataCollectionRuleDataSourcesArgs(extensions=[monitor.ExtensionDataSourceArgs(
            name=ASSOCIATION, extension_name="ContainerInsights", streams=STREAMS,
            extension_settings={"dataCollectionSettings": {
                "interval": "1m", "namespaceFilteringMode": "Off", "enableContainerLogV2": True}})]),
        destinations=monitor.DataCollectionRuleDestinationsArgs(log_analytics=[monitor.LogAnalyticsDestinationArgs(
            name=DESTINATION, workspace_resource_id=log_analytics_workspace_id)]),
        data_flows=[monitor.DataFlowArgs(streams=STREAMS, destinations=[DESTINATION])],
        tags={"managed-by": "aks-serving"}, opts=opts)
    return monitor.DataCollectionRuleAssociation(
        f"{name}-dcr-association", association_name=ASSOCIATION, resource_uri=cluster_id,
        data_collection_rule_id=rule.id,
        description="Association of data collection rule. Deleting this association will break the data "
                    "collection for this AKS Cluster.",
        opts=opts)
