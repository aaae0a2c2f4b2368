"""Scripts that run inside a user's environment while it is built: by `make run` with the environment's
own Python, and in the image build with the image's. Standard library only, and Python 3.6 syntax, since
that Python is whatever the user's conda file pinned; one implementation for both, so the local
environment and the image are made the same way."""

# The oldest inference server a deployment runs: 0.8 has the separate health listener the cluster probes.
SERVER_MINIMUM = "0.8.0"
