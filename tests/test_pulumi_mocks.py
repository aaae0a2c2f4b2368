"""The engine's stand-in answers a registration as the SDK's MockMonitor would, only cheaper: the program
reads back the same outputs."""
from __future__ import annotations

import pytest
from pulumi.runtime import rpc
from pulumi.runtime.sync_await import _sync_await

import pulumi_mocks
from pulumi_mocks import _outputs, run_program, stack_file_config

SECRET = {rpc._special_sig_key: rpc._special_secret_sig, "value": "hunter2"}


def _serialized(values: dict):
    """`values` on the wire: what the program sends as inputs, and what mocks.MockMonitor.RegisterResource
    sends back (the whole state serialized again)."""
    return _sync_await(rpc.serialize_properties(values, {}))


def _read_back(answer) -> dict:
    """The outputs as the program reads them (nested secrets lift to their top-level field here)."""
    return rpc.deserialize_properties(answer)


INPUTS = {"metadata": {"name": "m", "labels": {"a": "b"}}, "spec": {"ports": [{"port": 5001}], "on": True},
          "stringData": SECRET, "length": 32}


@pytest.mark.parametrize("change", [
    {},  # the state is the inputs
    {"status": {"loadBalancer": {"ingress": [{"ip": "20.31.42.53"}]}}},  # something computed
    {"spec": {"type": "ClusterIP"}, "result": "abc"},  # an input replaced, and a new field
])
def test_the_answer_is_the_sdks_whatever_the_stand_in_computed(change):
    sent = _serialized(INPUTS)
    inputs = rpc.deserialize_properties(sent)
    state = {**inputs, **change}
    assert _outputs(sent, inputs, state) == _serialized(state)


def test_a_field_the_stand_in_dropped_is_not_answered():
    sent = _serialized(INPUTS)
    inputs = rpc.deserialize_properties(sent)
    state = {k: v for k, v in inputs.items() if k != "spec"}
    answer = _outputs(sent, inputs, state)
    assert answer == _serialized(state) and "spec" not in answer.fields
    assert "spec" in sent.fields  # the request itself is left as it was


def test_every_registration_of_both_stacks_and_a_preview_gets_the_sdks_answer(monkeypatch):
    mismatched = []

    class Checking(pulumi_mocks.RecordingMonitor):
        def RegisterResource(self, request):
            response = super().RegisterResource(request)
            if request.type != "pulumi:pulumi:Stack":
                sdk = _serialized(self.resources[response.urn].state)
                # The same on the wire, or read back the same (assets read back as new objects each time).
                if response.object != sdk and _read_back(response.object) != _read_back(sdk):
                    mismatched.append(request.name)
            return response

    monkeypatch.setattr(pulumi_mocks, "RecordingMonitor", Checking)
    for stack, preview in (("dev", False), ("prod", False), ("dev", True)):  # a preview sends unknowns
        run = run_program(stack_file_config(stack), stack=stack, preview=preview)
        assert len(run.resources) > 40
    assert mismatched == []
