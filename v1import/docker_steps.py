"""v1's `extraDockerfileSteps` (a file of Dockerfile lines) as `environments.<name>.dockerSteps`, line by line:
which instructions this project's image build can run, and why the others cannot.

The steps run after the conda environment exists, as root, in a build context that holds the conda file and
this project's build scripts only (components/image.py); after them the image makes its app root, switches
to a numeric non-root user and starts the inference server itself.
"""
from __future__ import annotations

CARRIED = {"RUN", "ENV", "ARG", "LABEL", "WORKDIR", "SHELL"}
REFUSED = {
    "FROM": "the image is built on the environment's baseImage; a second stage cannot be expressed",
    "COPY": "the build context holds the conda file and this project's build scripts only, not your files; "
            "put files the script needs in sourceDirectory (it is fetched into the pod) or bake them into baseImage",
    "ADD": "the build context holds the conda file and this project's build scripts only, not your files",
    "USER": "the build's own steps after yours run as root, and the server runs as a numeric non-root user",
    "CMD": "the image starts the inference server itself (envbuild/serve.py)",
    "ENTRYPOINT": "the image starts the inference server itself (envbuild/serve.py)",
    "EXPOSE": "the inference server listens on its own port, which the router and probes use",
    "HEALTHCHECK": "Kubernetes ignores image health checks; use the service's livenessProbe keys",
    "VOLUME": "pods get their volumes from Kubernetes, not from the image",
    "STOPSIGNAL": "Kubernetes stops the server with SIGTERM",
    "ONBUILD": "nothing builds on top of this image",
    "MAINTAINER": "deprecated by Docker; use a LABEL step",
}

DOCKERFILE_WORDS = CARRIED | set(REFUSED)


def instructions(text: str) -> list[str]:
    """The file's instructions, continuation lines joined, comments and blank lines left out."""
    found, pending = [], ""
    for line in text.splitlines():
        stripped = line.strip()
        if not pending and (not stripped or stripped.startswith("#")):
            continue
        if stripped.endswith("\\"):
            pending += stripped[:-1].rstrip() + " "
            continue
        found.append((pending + stripped).strip())
        pending = ""
    if pending.strip():
        found.append(pending.strip())
    return found


def split_steps(text: str) -> tuple[list[str], list[tuple[str, str]]]:
    """(lines carried, [(line, why not)]) for the text of a v1 extra Docker steps file."""
    carried, refused = [], []
    for line in instructions(text):
        word = line.split(None, 1)[0].upper()
        if word in CARRIED:
            carried.append(line)
        elif word in ("COPY", "ADD") and _from_outside_context(line):
            carried.append(line)
        else:
            refused.append((line, REFUSED.get(word, f"{word} is not a Dockerfile instruction this build knows")))
    return carried, refused


def _from_outside_context(line: str) -> bool:
    """`COPY --from=<image>` and `ADD https://...` take nothing from the build context, so they still work."""
    word, *words = line.split()
    if any(w.startswith("--from=") for w in words):
        return True
    sources = [w for w in words if not w.startswith("--")][:-1]
    return word.upper() == "ADD" and bool(sources) and all(s.startswith(("http://", "https://")) for s in sources)
