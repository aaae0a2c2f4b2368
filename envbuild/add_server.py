"""Give the environment the Azure ML inference server, fitted around what the user's packages are.

    python add_server.py MIN_VERSION [pip option ...]

Run with the environment's own Python once its packages are installed. The environment decides the
server's version: one it brought (`azureml-defaults` brings one) is kept when it is MIN_VERSION or newer.
Otherwise the newest release that fits is added around the installed packages (fit.py), so nothing of
the user's moves and a package that asks for an older server (azureml-defaults 1.48: `~=0.7.2`) is named
in pip's refusal instead of being overruled. MIN_VERSION is the oldest server the deployment can run
(envbuild.SERVER_MINIMUM). Prints what it did, then pip's own lines; exits with pip's status. Standard library only (envbuild/__init__).
"""
import os
import re
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from fit import install_around  # noqa: E402  (a sibling script, wherever the two are copied)

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


def main(argv):
    minimum, pip_options = argv[0], argv[1:]
    have = installed_version()
    if have is not None and version_key(have) >= version_key(minimum):
        print("keeping the environment's %s %s" % (SERVER, have))
        return 0
    print("%s %s; adding the newest %s>=%s that fits the installed packages" % (SERVER, have or "missing", SERVER, minimum))
    return install_around(["%s>=%s" % (SERVER, minimum)], pip_options, leave_out={SERVER})


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
