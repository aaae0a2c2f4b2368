"""What the import says back: every v1 setting it could not carry over and why, what it changed on the
way, and the `pulumi config set --secret` commands for the keys it never writes into the stack file."""
from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class Report:
    not_carried: list[str] = field(default_factory=list)  # `file: key: why`
    notes: list[str] = field(default_factory=list)  # carried, but differently from v1
    secret_commands: list[str] = field(default_factory=list)

    def skip(self, source: str, why: str) -> None:
        self.not_carried.append(f"{source}: {why}")

    def note(self, source: str, what: str) -> None:
        self.notes.append(f"{source}: {what}")

    def render(self) -> str:
        lines = []
        if self.not_carried:
            lines += ["Not carried over (v1 settings this project cannot express):"]
            lines += [f"  - {line}" for line in self.not_carried]
        else:
            lines += ["Not carried over: nothing; every v1 setting given has a place in the stack file."]
        if self.notes:
            lines += ["Carried differently from v1:"] + [f"  - {line}" for line in self.notes]
        if self.secret_commands:
            lines += ["Secrets are never written into the stack file; once the stack exists in Pulumi (`pulumi stack "
                      "init`), set them (each value is read from your file, never put on a command line):"]
            lines += [f"  {command}" for command in self.secret_commands]
        return "\n".join(lines)
