#!/bin/sh
# Pins every dependency of pyproject.toml, for Python 3.11 and later on any platform:
#   requirements.lock  what the image installs (pip install --require-hashes), with hashes
#   constraints.txt    what a development install takes (pip install -c): the same versions,
#                      and the dev extras
# `ops/lock.sh` after changing pyproject.toml's dependencies keeps every other pin;
# `ops/lock.sh --upgrade` moves every pin to the newest release pyproject.toml allows.
# Needs uv (pip install uv).
set -eu
cd "$(dirname "$0")/.."
compile="uv pip compile pyproject.toml --universal --python-version 3.11 --quiet --custom-compile-command ops/lock.sh"
$compile --extra dev "$@" -o constraints.txt
$compile --generate-hashes "$@" -c constraints.txt -o requirements.lock
