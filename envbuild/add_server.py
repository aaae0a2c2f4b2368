"""Give the environment the Azure ML inference server, fitted around what the user's packages are.

    python add_server.py MIN_VERSION [pip option ...]

Run with the environment's own Python once its packages are installed. The environment decides the
server's version: one it brought (`azureml-defaults` brings one) is kept when it is MIN_VERSION or newer.
Otherwise the newest release that fits is added, with every other installed package held at its version.
They are handed to pip as requirements, not constraints: pip then checks the server against what the
installed packages ask of it (azureml-defaults 1.48 asks for `~=0.7.2`) and refuses, naming both, instead
of installing a server an installed package says it cannot work with. Nothing of the user's moves. MIN_VERSION is the
oldest server the deployment can run (0.8: a separate health listener for the cluster's probes). Prints
what it did; exits with pip's status, pip's own message on stderr. Standard library only (envbuild/__init__).
"""
import os
import re
import subprocess
import sys
import tempfile

SERVER = "azureml-inference-server-http"


def installed_version():
    try:
        from importlib import metadata  # Python 3.8+
    except ImportError:
        metadata = None
    if metadata is not None:
        try:
            return metadata.version(SERVER)
        except metadata.PackageNotFoundError:
            return None
    import pkg_resources  # Python 3.6/3.7 environments have setuptools
    try:
        return pkg_resources.get_distribution(SERVER).version
    except pkg_resources.DistributionNotFound:
        return None


def version_key(version):
    return [int(part) for part in re.findall(r"\d+", version.split("+")[0])[:4]]


def held_packages():
    """`name==version` for every installed package but the server itself."""
    listed = subprocess.run([sys.executable, "-m", "pip", "list", "--format=freeze", "--disable-pip-version-check"],
                            stdout=subprocess.PIPE, universal_newlines=True, check=True).stdout
    return [line for line in listed.splitlines()
            if "==" in line and re.split(r"[=<>!~ ]", line)[0].lower().replace("_", "-") != SERVER]


def main(argv):
    minimum, pip_options = argv[0], argv[1:]
    have = installed_version()
    if have is not None and version_key(have) >= version_key(minimum):
        print("keeping the environment's %s %s" % (SERVER, have))
        return 0
    with tempfile.NamedTemporaryFile("w", suffix=".txt", delete=False) as held:
        held.write("\n".join(held_packages()) + "\n")
    try:
        print("%s %s; adding the newest %s>=%s that fits the installed packages"
              % (SERVER, have or "missing", SERVER, minimum))
        sys.stdout.flush()  # before pip's own lines
        return subprocess.call([sys.executable, "-m", "pip", "install", "--disable-pip-version-check",
                                "--no-input", "-r", held.name, "%s>=%s" % (SERVER, minimum)] + pip_options)
    finally:
        os.unlink(held.name)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
