"""A preview right after `pulumi up` of an unchanged stack shows no changes: every resource registers the same
inputs again, and the engine's diff, which compares them, finds nothing.

Under Pulumi's mocks (no engine or Azure can run here) a preview does not hand back the outputs the state holds
for an unchanged resource, as the engine does (an image's digest, say); a second `up` does. So the second run
is an `up`: what this checks is that nothing in the program's inputs moves between runs (no time, random value,
token or machine path), which is what a preview of an unchanged stack compares.
"""
import json

import pytest

from pulumi_mocks import run_program, stack_file_config


def _plain(value):
    """Assets by what they hold (their Python objects differ from run to run, their content does not)."""
    for attribute in ("path", "text", "uri"):
        if getattr(value, attribute, None) is not None:
            return {type(value).__name__: getattr(value, attribute)}
    raise TypeError(f"no stable form for {type(value).__name__}")


def registrations(run) -> dict:
    return {(r.type, r.name): json.dumps(r.inputs, sort_keys=True, default=_plain) for r in run.resources}


@pytest.mark.parametrize("stack", ["dev", "prod"])
def test_an_unchanged_stack_registers_the_same_inputs_for_every_resource_on_the_next_run(stack):
    first = registrations(run_program(stack_file_config(stack), stack=stack))
    second = registrations(run_program(stack_file_config(stack), stack=stack))
    assert second.keys() == first.keys() and len(first) > 80
    changed = sorted(f"{t} {n}" for (t, n), inputs in second.items() if inputs != first[(t, n)])
    assert changed == []
