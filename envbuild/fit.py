"""Install requirements into an environment without moving any package it already has.

    python fit.py REQUIREMENT ... [-- pip option ...]

Every installed package is handed to pip as a requirement at its installed version, beside the new ones:
pip then resolves them together, so it either finds releases of the new requirements that fit what is
there, or refuses, naming what conflicts (an installed package's own requirements included, which a
constraints file would not check). Exits with pip's status. Standard library only (envbuild/__init__).
"""
import os
import re
import subprocess
import sys
import tempfile


def held_packages(leave_out=()):
    """`name==version` for every installed package but those in `leave_out` (canonical names)."""
    listed = subprocess.run([sys.executable, "-m", "pip", "list", "--format=freeze", "--disable-pip-version-check"],
                            stdout=subprocess.PIPE, universal_newlines=True, check=True).stdout
    return [line for line in listed.splitlines()
            if "==" in line and canonical(re.split(r"[=<>!~ ]", line)[0]) not in leave_out]


def canonical(name):
    return re.sub(r"[-_.]+", "-", name).lower()


def install_around(requirements, pip_options=(), leave_out=()):
    with tempfile.NamedTemporaryFile("w", suffix=".txt", delete=False) as held:
        held.write("\n".join(held_packages(leave_out)) + "\n")
    try:
        sys.stdout.flush()  # what the caller printed comes before pip's own lines
        return subprocess.call([sys.executable, "-m", "pip", "install", "--disable-pip-version-check", "--no-input",
                                "-r", held.name] + list(requirements) + list(pip_options))
    finally:
        os.unlink(held.name)


def main(argv):
    split = argv.index("--") if "--" in argv else len(argv)
    return install_around(argv[:split], argv[split + 1:])


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
