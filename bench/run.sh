#!/usr/bin/env bash
# Router benchmark: installs nginx and wrk (Debian packages) if missing, then runs bench/run.py.
# Usage (from anywhere): bench/run.sh [--seconds 5] [--rounds 3] [--baseline DIR] [--telemetry]
set -euo pipefail
cd "$(dirname "$0")/.."
missing=()
command -v nginx >/dev/null || missing+=(nginx-light)
command -v wrk >/dev/null || missing+=(wrk)
if [ ${#missing[@]} -gt 0 ]; then
  sudo=""; [ "$(id -u)" -eq 0 ] || sudo="sudo"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi
python=.venv/bin/python
[ -x "$python" ] || python=python3
exec "$python" bench/run.py "$@"
