"""Scripts that run inside a user's environment while it is built: by `make run` with the environment's
own Python, and in the image build with the image's. Standard library only, and Python 3.6 syntax, since
that Python is whatever the user's conda file pinned; one implementation for both, so the local
environment and the image are made the same way."""

# The oldest inference server a deployment runs (the first with the `server.entry:app` module both launch
# paths run); 0.7.7 is the newest a Python 3.6 environment can have. serve.py answers health for pre-0.8 ones.
SERVER_MINIMUM = "0.7.0"
