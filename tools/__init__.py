"""Helpers for checks and tooling that run outside the Pulumi program."""
