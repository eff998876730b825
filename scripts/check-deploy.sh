#!/usr/bin/env bash
# Checks the deployment files offline, since neither Docker nor a cluster
# runs here (tests/tests/deploy.rs runs it; so can you):
#
# - deploy/compose.yaml against the Compose specification's schema and
#   Posbon's rules (replicas, the escalator's leased shards, healthchecks
#   and start conditions, Prometheus and Grafana): scripts/check-deploy.py
#   compose;
# - deploy/k8s and deploy/k8s/bootstrap rendered with `kubectl kustomize`,
#   every object validated against the Kubernetes JSON schemas and held to
#   the rules (probes, resources, PodDisruptionBudgets, ...):
#   scripts/check-deploy.py k8s;
# - the Prometheus configurations (compose and Kubernetes) with
#   `promtool check config`, and the alert rules' unit tests.
#
# Tools: POSBON_DEPLOY_PYTHON (a Python with check-jsonschema and
# kubernetes-validate), POSBON_KUBECTL and POSBON_PROMTOOL, as
# `eval "$(scripts/install-test-deps.sh)"` sets them; else found on PATH.
# Exits 1 naming every check that failed, 2 when a tool is missing.
set -uo pipefail
cd "$(dirname "$0")/.."

python="${POSBON_DEPLOY_PYTHON:-}"
if [ -z "$python" ] && python3 -c "import check_jsonschema, kubernetes_validate, yaml" 2>/dev/null; then
    python=python3
fi
kubectl="${POSBON_KUBECTL:-$(command -v kubectl || true)}"
promtool="${POSBON_PROMTOOL:-$(command -v promtool || true)}"
missing=()
[ -n "$python" ] || missing+=("POSBON_DEPLOY_PYTHON (a Python with check-jsonschema and kubernetes-validate)")
[ -n "$kubectl" ] || missing+=("POSBON_KUBECTL (kubectl, for kustomize)")
[ -n "$promtool" ] || missing+=("POSBON_PROMTOOL (promtool)")
if [ "${#missing[@]}" -gt 0 ]; then
    printf 'check-deploy: missing %s\n' "${missing[@]}" >&2
    echo "check-deploy: install them with: eval \"\$(scripts/install-test-deps.sh)\"" >&2
    exit 2
fi

tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
failed=()
# step NAME COMMAND...: runs COMMAND, remembering NAME when it fails.
step() {
    local name="$1"
    shift
    echo "== $name"
    if "$@"; then
        return 0
    fi
    failed+=("$name")
    return 1
}

render() { # DIR OUT
    "$kubectl" kustomize "$1" >"$2"
}

# promcheck CONFIG: promtool check config on a copy whose token path points
# at a stand-in file (promtool requires it to exist), beside alerts.yml.
promcheck() {
    local name dir
    name="$(basename "$1")"
    dir="$tmp/prometheus-${name%.*}"
    mkdir -p "$dir"
    cp deploy/prometheus/alerts.yml "$dir/"
    echo stand-in >"$dir/metrics.token"
    sed -e "s#credentials_file: .*#credentials_file: $dir/metrics.token#" "$1" >"$dir/$name"
    "$promtool" check config "$dir/$name"
}

step "compose: schema and rules (deploy/compose.yaml)" \
    "$python" scripts/check-deploy.py compose deploy/compose.yaml deploy/prometheus/prometheus.yml
if step "k8s: kubectl kustomize deploy/k8s" render deploy/k8s "$tmp/k8s.yaml"; then
    step "k8s: schemas and rules (deploy/k8s)" \
        "$python" scripts/check-deploy.py k8s --posbon --prometheus deploy/prometheus/prometheus-k8s.yml \
        "$tmp/k8s.yaml"
fi
if step "k8s: kubectl kustomize deploy/k8s/bootstrap" render deploy/k8s/bootstrap "$tmp/bootstrap.yaml"; then
    step "k8s: schemas and rules (deploy/k8s/bootstrap)" \
        "$python" scripts/check-deploy.py k8s "$tmp/bootstrap.yaml"
fi
step "prometheus: promtool check config prometheus.yml" promcheck deploy/prometheus/prometheus.yml
step "prometheus: promtool check config prometheus-k8s.yml" promcheck deploy/prometheus/prometheus-k8s.yml
step "prometheus: promtool test rules alerts.test.yml" \
    bash -c 'cd deploy/prometheus && "$0" test rules alerts.test.yml' "$promtool"

if [ "${#failed[@]}" -gt 0 ]; then
    echo "check-deploy: FAILED:"
    printf '  %s\n' "${failed[@]}"
    exit 1
fi
echo "check-deploy: all checks passed"
