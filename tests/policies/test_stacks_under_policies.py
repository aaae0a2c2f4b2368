"""The dev and prod stacks, run under Pulumi's mocks, sent through the pack as a preview would send them:
Analyze for every custom resource, AnalyzeStack over everything. Zero mandatory violations, also when the
values a first preview cannot know (digests, generated names, the cluster's name in its pools) are unknown."""
import pytest

from policy_kit import UNKNOWN, advisory, mandatory
from pulumi_mocks import run_program, stack_file_config
from tools.analyzer import Resource, from_registrations

STACKS = ("dev", "prod")


@pytest.fixture(scope="module")
def registered():
    return {stack: from_registrations(run_program(stack_file_config(stack), stack=stack).resources, stack)
            for stack in STACKS}


def _explain(diagnostics) -> str:
    return "\n".join(f"{d.policy} [{d.resource or 'stack'}]: {d.message}" for d in diagnostics)


@pytest.mark.parametrize("stack", STACKS)
def test_the_stack_meets_every_mandatory_policy(pack, registered, stack):
    resources = registered[stack]
    types = {r.type for r in resources}
    assert "azure-native:containerservice:ManagedCluster" in types
    found = pack.analyze_all(resources)
    assert mandatory(found) == [], _explain(mandatory(found))


@pytest.mark.parametrize("stack", STACKS)
def test_the_pack_sees_the_stack(pack, registered, stack):
    """The same run with one thing broken gives that violation, so the clean result above is real."""
    resources = list(registered[stack])
    index, cluster = next((i, r) for i, r in enumerate(resources)
                          if r.type == "azure-native:containerservice:ManagedCluster")
    tiny = [dict(p, count=1.0, vmSize="Standard_D2s_v3", enableAutoScaling=False)
            for p in cluster.properties["agentPoolProfiles"]]
    tags = {**cluster.properties["tags"], "cluster-purpose": "production"}
    small = resources[:index] + [_with(cluster, dict(cluster.properties, tags=tags, agentPoolProfiles=tiny))] + [
        r for r in resources[index + 1:] if r.type != "azure-native:containerservice:AgentPool"]
    found = mandatory(pack.analyze_stack(small), "production-cluster-capacity")
    assert found and all(d.urn == cluster.urn for d in found), _explain(found)

    index, workload = next((i, r) for i, r in enumerate(resources) if r.type == "kubernetes:apps/v1:Deployment")
    by_tag = _retagged(workload.properties)
    found = pack.analyze_all(resources[:index] + [_with(workload, by_tag)] + resources[index + 1:])
    assert {(d.policy, d.resource) for d in mandatory(found)} == {("images-by-digest", workload.name)}, \
        _explain(mandatory(found))


def _retagged(value):
    """Every image by tag instead of digest."""
    if isinstance(value, dict):
        return {k: v.split("@")[0] + ":latest" if k == "image" and isinstance(v, str) else _retagged(v)
                for k, v in value.items()}
    if isinstance(value, list):
        return [_retagged(v) for v in value]
    return value


@pytest.mark.parametrize("stack", STACKS)
def test_a_first_preview_of_the_stack_has_no_mandatory_violation(pack, registered, stack):
    preview = [_as_first_preview(r) for r in registered[stack]]
    clusters = {r.urn for r in preview if r.type == "azure-native:containerservice:ManagedCluster"}
    preview = [_with(r, r.properties, {"resourceName": sorted(clusters)})
               if r.type == "azure-native:containerservice:AgentPool" else r for r in preview]
    found = pack.analyze_all(preview)
    assert mandatory(found) == [], _explain(mandatory(found))
    unsure = {d.policy for d in advisory(found)}
    assert {"registry-name", "storage-account-name"} <= unsure
    if any(r.type == "kubernetes:apps/v1:Deployment" for r in preview):
        assert "images-by-digest" in unsure
    # The pools still count for the cluster through their dependency on it.
    assert "production-cluster-capacity" not in unsure and "devtest-cluster-capacity" not in unsure


def _with(resource: Resource, properties: dict, property_dependencies=None) -> Resource:
    return Resource(type=resource.type, name=resource.name, properties=properties, urn=resource.urn,
                    parent=resource.parent, custom=resource.custom, dependencies=resource.dependencies,
                    property_dependencies=property_dependencies or resource.property_dependencies)


def _as_first_preview(resource: Resource) -> Resource:
    """What a first preview cannot know: generated names, image digests, the cluster name of its pools."""
    props = resource.properties
    if resource.type == "azure-native:containerregistry:Registry":
        return _with(resource, dict(props, registryName=UNKNOWN))
    if resource.type == "azure-native:storage:StorageAccount":
        return _with(resource, dict(props, accountName=UNKNOWN))
    if resource.type == "azure-native:containerservice:AgentPool":
        return _with(resource, dict(props, resourceName=UNKNOWN))
    if resource.type.startswith("kubernetes:") and isinstance(props.get("spec"), dict):
        return _with(resource, _unknown_images(props))
    return resource


def _unknown_images(value):
    if isinstance(value, dict):
        return {k: UNKNOWN if k == "image" and isinstance(v, str) else _unknown_images(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_unknown_images(v) for v in value]
    return value
