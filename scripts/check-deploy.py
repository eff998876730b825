#!/usr/bin/env python3
"""Checks Posbon's deployment files offline: what scripts/check-deploy.sh runs.

  check-deploy.py compose COMPOSE.yaml PROMETHEUS.yml
      The compose file against the Compose specification's schema (the one
      vendored in check-jsonschema), then Posbon's rules: three replicas of
      ingest, indexer and API, the escalator's leased shards (see
      check_escalators), a healthcheck and start conditions for every Posbon
      service and NATS node, the streams job after all of NATS, Prometheus
      scraping every service, Grafana provisioned with its password from a
      secret file.

  check-deploy.py k8s [--posbon] [--prometheus FILE] RENDERED.yaml...
      Every object of `kubectl kustomize` output against the Kubernetes JSON
      schemas carried by kubernetes-validate (strict: unknown fields fail),
      then the rules every workload keeps: liveness and readiness probes,
      resource requests and a memory limit, non-root and a read-only root
      filesystem, a PodDisruptionBudget for each workload of more than one
      replica, no Secret shipped. --posbon adds the shape of deploy/k8s
      (replicas, the escalator's shards, NATS, the streams job, a scrape job
      per service).

Runs with the Python of the venv scripts/install-test-deps.sh makes
(POSBON_DEPLOY_PYTHON): PyYAML, check-jsonschema and kubernetes-validate.
Prints one line per failure and exits 1 when there is any.
"""

import argparse
import re
import subprocess
import sys
from pathlib import Path

import yaml

# Validated against the oldest and the newest Kubernetes this deployment is
# meant for (schemas inside the kubernetes-validate package).
K8S_VERSIONS = ["1.30.0", "1.37.0"]

WORKLOADS = ("Deployment", "StatefulSet", "DaemonSet")
PER_SERVICE = ("ingest", "indexer", "api")  # three replicas each
ESCALATOR_MIN_REPLICAS = 2  # one takes the other's shards when it stops
SHARD_COUNT = "POSBON__ESCALATOR__SHARD_COUNT"
SHARD_INDEX = "POSBON__ESCALATOR__SHARD_INDEX"
INSTANCE = "POSBON__ESCALATOR__INSTANCE"
NATS_NODES = ("nats1", "nats2", "nats3")

failures = []


def fail(where, message):
    failures.append(f"{where}: {message}")


def load_all(path):
    with open(path, encoding="utf-8") as f:
        return [d for d in yaml.safe_load_all(f) if d is not None]


def check_streams_command(where, command, servers):
    """The streams job: `posbon nats-streams` against every NATS server, with
    three replicas per stream."""
    if "nats-streams" not in command:
        fail(where, f"does not run `posbon nats-streams`: {command}")
        return
    urls = command[command.index("--nats") + 1] if "--nats" in command[:-1] else ""
    if len([u for u in urls.split(",") if u.strip()]) != servers:
        fail(where, f"--nats must name all {servers} NATS servers, got {urls!r}")
    given = None
    for i, arg in enumerate(command):
        if arg == "--replicas" and i + 1 < len(command):
            given = command[i + 1]
        elif arg.startswith("--replicas="):
            given = arg.split("=", 1)[1]
    if given != "3":
        fail(where, "streams must be R3: pass `--replicas 3`")


def check_escalators(where, escalators):
    """The escalator takes its shards through leases in the store: `escalators`
    is [(where, replicas, env)], one per compose service or Deployment that
    runs posbon-escalator (env: variable name to value, None for valueFrom).
    Together they run at least ESCALATOR_MIN_REPLICAS replicas, all with the
    same shard count, and at least as many shards as replicas (else some
    replica holds none); none names a shard (SHARD_INDEX pins an instance to
    one shard, which replicas would share) or a fixed lease holder name
    (INSTANCE, which replicas would share: the default, host name and listen
    address, differs per replica)."""
    if not escalators:
        fail(where, "no escalator (command posbon-escalator)")
        return
    total = 0
    counts = set()
    for at, replicas, env in escalators:
        if not isinstance(replicas, int):
            return  # reported with the other replica counts
        total += replicas
        if SHARD_INDEX in env:
            fail(at, f"{SHARD_INDEX} is set: the escalator's replicas take their shards "
                 "through leases, remove it")
        if replicas > 1 and INSTANCE in env and env[INSTANCE] is not None:
            fail(at, f"{INSTANCE} is one name for {replicas} replicas: leave it unset "
                 "(host name and listen address, one per replica)")
        count = env.get(SHARD_COUNT)
        if count is None or not str(count).isdigit() or not 1 <= int(count) <= 256:
            fail(at, f"{SHARD_COUNT} must be set to a number of shards from 1 to 256, is {count!r}")
            continue
        counts.add(int(count))
    if len(counts) > 1:
        fail(where, f"the escalators must share one {SHARD_COUNT}, have {sorted(counts)}")
    if total < ESCALATOR_MIN_REPLICAS:
        fail(where, f"the escalator must run at least {ESCALATOR_MIN_REPLICAS} replicas "
             f"(one takes the other's shards when it stops), runs {total}")
    if counts and min(counts) < total:
        fail(where, f"{SHARD_COUNT} {min(counts)} is below the escalator's {total} replicas: "
             "make it at least the most replicas you will run")


# ---------------------------------------------------------------- compose


def compose_schema(path):
    """The Compose specification's schema, vendored in check-jsonschema."""
    run = subprocess.run(
        [sys.executable, "-m", "check_jsonschema", "--builtin-schema",
         "vendor.compose-spec", str(path)],
        capture_output=True, text=True)
    if run.returncode != 0:
        fail(f"{path} (compose schema)", (run.stdout + run.stderr).strip())


def listen_port(env, service):
    for key, value in (env or {}).items():
        if key.endswith("__LISTEN") and key.startswith("POSBON__"):
            return int(str(value).rsplit(":", 1)[1])
    fail(service, "no POSBON__<SERVICE>__LISTEN: its port is unknown")
    return None


def as_env(env):
    if isinstance(env, list):
        return dict(item.split("=", 1) for item in env)
    return env or {}


def published_ports(ports):
    """The host side of each published port: (first, last) or None."""
    out = []
    for port in ports or []:
        if isinstance(port, dict):
            published = port.get("published")
            if published is None:
                out.append(None)
                continue
            text = str(published)
        else:
            parts = str(port).split(":")
            if len(parts) == 1:
                out.append(None)
                continue
            text = parts[-2]
        first, _, last = text.partition("-")
        out.append((int(first), int(last or first)))
    return out


def check_compose(path, prometheus):
    compose_schema(path)
    doc = load_all(path)[0]
    services = doc.get("services") or {}
    posbon = {name: s for name, s in services.items()
              if str(s.get("image", "")).startswith("posbon:")
              and (s.get("command") or [""])[0].startswith("posbon-")}
    if not posbon:
        fail(path, "no Posbon service (image posbon:*, command posbon-*)")
    ports = {}
    for name, service in posbon.items():
        where = f"compose service {name}"
        health = service.get("healthcheck") or {}
        if not health.get("test") or health.get("disable"):
            fail(where, "has no healthcheck")
        depends = service.get("depends_on")
        if not isinstance(depends, dict):
            fail(where, "depends_on must give conditions (service_healthy, ...)")
            depends = {}
        if (depends.get("nats-streams") or {}).get("condition") != "service_completed_successfully":
            fail(where, "must start after nats-streams completed (service_completed_successfully)")
        for node in NATS_NODES:
            if (depends.get(node) or {}).get("condition") != "service_healthy":
                fail(where, f"must start after {node} is healthy (service_healthy)")
        env = as_env(service.get("environment"))
        if "POSBON__AUTH__METRICS_TOKEN_FILE" not in env:
            fail(where, "no POSBON__AUTH__METRICS_TOKEN_FILE: Prometheus could not scrape it")
        ports[name] = listen_port(env, name)
        replicas = (service.get("deploy") or {}).get("replicas", 1)
        if not isinstance(replicas, int):
            fail(where, f"deploy.replicas must be a number, is {replicas!r}")
            continue
        for published in published_ports(service.get("ports")):
            if published and published[1] - published[0] + 1 < replicas:
                fail(where, f"{replicas} replicas need a published port range of as many ports")
    for name in PER_SERVICE:
        replicas = (posbon.get(name, {}).get("deploy") or {}).get("replicas")
        if name not in posbon:
            fail("compose", f"no service {name}")
        elif replicas != 3 or not isinstance(replicas, int):
            fail(f"compose service {name}", f"must have deploy.replicas 3, has {replicas!r}")
    check_escalators("compose", [
        (f"compose service {name}", (s.get("deploy") or {}).get("replicas", 1),
         as_env(s.get("environment")))
        for name, s in posbon.items() if s["command"][0] == "posbon-escalator"])

    for node in NATS_NODES:
        service = services.get(node)
        if service is None:
            fail("compose", f"no NATS node {node}")
            continue
        if not (service.get("healthcheck") or {}).get("test"):
            fail(f"compose service {node}", "has no healthcheck")
    for name, service in services.items():
        for port in service.get("ports") or []:
            if "8222" in str(port):
                fail(f"compose service {name}", "publishes the NATS monitoring port 8222")
    streams = services.get("nats-streams")
    if streams is None:
        fail("compose", "no nats-streams service")
    else:
        check_streams_command("compose service nats-streams", streams.get("command") or [],
                              len(NATS_NODES))
        depends = streams.get("depends_on")
        for node in NATS_NODES:
            if not isinstance(depends, dict) or (depends.get(node) or {}).get("condition") != "service_healthy":
                fail("compose service nats-streams", f"must start after {node} is healthy")

    for name, spec in (doc.get("secrets") or {}).items():
        if not str(spec.get("file", "")).startswith("./secrets/"):
            fail(f"compose secret {name}", "must be a file under ./secrets/ (never shipped)")

    grafana = [s for s in services.values() if str(s.get("image", "")).startswith("grafana/grafana")]
    if len(grafana) != 1:
        fail("compose", "needs one Grafana (image grafana/grafana)")
    else:
        env = as_env(grafana[0].get("environment"))
        if "GF_SECURITY_ADMIN_PASSWORD" in env or "GF_SECURITY_ADMIN_PASSWORD__FILE" not in env:
            fail("compose service grafana", "the admin password must come from a file "
                 "(GF_SECURITY_ADMIN_PASSWORD__FILE)")
        volumes = " ".join(str(v) for v in grafana[0].get("volumes") or [])
        for needed in ("./grafana/provisioning:/etc/grafana/provisioning",
                       "./grafana/dashboards:/var/lib/grafana/dashboards/posbon"):
            if needed not in volumes:
                fail("compose service grafana", f"must mount {needed}")

    proms = [s for s in services.values() if str(s.get("image", "")).startswith("prom/prometheus")]
    if len(proms) != 1:
        fail("compose", "needs one Prometheus (image prom/prometheus)")
    else:
        volumes = " ".join(str(v) for v in proms[0].get("volumes") or [])
        for needed in ("./prometheus/prometheus.yml:", "./prometheus/alerts.yml:"):
            if needed not in volumes:
                fail("compose service prometheus", f"must mount {needed.rstrip(':')}")
    check_scrapes(prometheus, {name: (name, port) for name, port in ports.items()},
                  "compose service")


def check_scrapes(prometheus, targets, what):
    """Each target (a DNS name and port) is scraped by a job of `prometheus`
    through dns_sd_configs type A, with the metrics token."""
    config = load_all(prometheus)[0]
    found = {}
    for job in config.get("scrape_configs") or []:
        token = (job.get("authorization") or {}).get("credentials_file")
        for sd in job.get("dns_sd_configs") or []:
            if sd.get("type", "SRV") != "A":
                continue
            for dns in sd.get("names") or []:
                found[dns] = (sd.get("port"), bool(token), job.get("job_name"))
    if "alerts.yml" not in (config.get("rule_files") or []):
        fail(prometheus, "does not load alerts.yml")
    for name, (dns, port) in targets.items():
        got = found.get(dns)
        if got is None:
            fail(prometheus, f"does not scrape {what} {name} (dns_sd_configs type A on {dns})")
        elif got[0] != port:
            fail(prometheus, f"scrapes {name} on port {got[0]}, it listens on {port}")
        elif not got[1]:
            fail(prometheus, f"job {got[2]} has no metrics token (authorization.credentials_file)")


# ---------------------------------------------------------------- kubernetes


def k8s_schema(docs, path):
    from kubernetes_validate import utils as kv

    for doc in docs:
        name = f"{doc.get('kind')}/{(doc.get('metadata') or {}).get('name')}"
        for version in K8S_VERSIONS:
            try:
                kv.validate(doc, version, strict=True)
            except kv.ValidationError as e:
                at = ".".join(str(p) for p in e.path)
                fail(f"{path} {name}", f"not valid Kubernetes {version}: {at}: {e.message}")
                break
            except kv.SchemaNotFoundError as e:
                fail(f"{path} {name}", e.message)
                break
            except Exception as e:  # a malformed object: no kind, no apiVersion, ...
                fail(f"{path} {name}", f"cannot be validated: {e!r}")
                break


def pod_spec(doc):
    kind = doc.get("kind")
    spec = doc.get("spec") or {}
    if kind == "Pod":
        return spec
    if kind == "CronJob":
        spec = (spec.get("jobTemplate") or {}).get("spec") or {}
    return (spec.get("template") or {}).get("spec")


def check_k8s(paths, posbon, prometheus):
    docs = []
    for path in paths:
        these = load_all(path)
        if not these:
            fail(path, "renders no object")
        for doc in these:
            if not isinstance(doc, dict):
                fail(path, f"not a Kubernetes object: {doc!r}")
                continue
            k8s_schema([doc], path)
            docs.append(doc)
    pdbs = [d for d in docs if d.get("kind") == "PodDisruptionBudget"]
    for doc in docs:
        kind = doc.get("kind")
        meta = doc.get("metadata") or {}
        where = f"{kind}/{meta.get('name')}"
        if kind == "Secret":
            fail(where, "a Secret is shipped: reference it by name and document how to create it")
        spec = pod_spec(doc)
        if not isinstance(spec, dict):
            continue
        security = spec.get("securityContext") or {}
        if security.get("runAsNonRoot") is not True:
            fail(where, "pod securityContext.runAsNonRoot must be true")
        for container in (spec.get("containers") or []) + (spec.get("initContainers") or []):
            at = f"{where} container {container.get('name')}"
            resources = container.get("resources") or {}
            requests = resources.get("requests") or {}
            if not {"cpu", "memory"} <= set(requests):
                fail(at, "needs resource requests for cpu and memory")
            if "memory" not in (resources.get("limits") or {}):
                fail(at, "needs a memory limit")
            csc = container.get("securityContext") or {}
            if csc.get("readOnlyRootFilesystem") is not True:
                fail(at, "securityContext.readOnlyRootFilesystem must be true")
            if csc.get("allowPrivilegeEscalation") is not False:
                fail(at, "securityContext.allowPrivilegeEscalation must be false")
            if kind in WORKLOADS:
                for probe in ("livenessProbe", "readinessProbe"):
                    if not container.get(probe):
                        fail(at, f"has no {probe}")
        if kind in ("Deployment", "StatefulSet"):
            replicas = (doc.get("spec") or {}).get("replicas", 1)
            labels = ((doc["spec"].get("template") or {}).get("metadata") or {}).get("labels") or {}
            if isinstance(replicas, int) and replicas > 1:
                covering = [p for p in pdbs
                            if (p.get("metadata") or {}).get("namespace") == meta.get("namespace")
                            and selects(p, labels)
                            and ("minAvailable" in p["spec"] or "maxUnavailable" in p["spec"])]
                if not covering:
                    fail(where, f"{replicas} replicas and no PodDisruptionBudget selects its pods")
    for pdb in pdbs:
        if not any(d.get("kind") in WORKLOADS and selects(pdb, ((pod_template(d).get("metadata") or {})
                                                                .get("labels") or {}))
                   for d in docs):
            fail(f"PodDisruptionBudget/{pdb['metadata'].get('name')}", "selects no workload")
    if posbon:
        check_posbon_k8s(docs, prometheus)


def pod_template(doc):
    return (doc.get("spec") or {}).get("template") or {}


def selects(pdb, labels):
    wanted = ((pdb.get("spec") or {}).get("selector") or {}).get("matchLabels") or {}
    return bool(wanted) and all(labels.get(k) == v for k, v in wanted.items())


def container_env(container):
    """Variable name to value (a string), None for one set through valueFrom."""
    return {e["name"]: None if "valueFrom" in e else str(e.get("value", ""))
            for e in container.get("env") or [] if "name" in e}


def check_posbon_k8s(docs, prometheus):
    """deploy/k8s's own shape."""
    def named(kind, name):
        return next((d for d in docs if d.get("kind") == kind
                     and d["metadata"].get("name") == name), None)

    for doc in docs:
        if doc.get("kind") != "Namespace" and doc["metadata"].get("namespace") != "posbon":
            fail(f"{doc.get('kind')}/{doc['metadata'].get('name')}", "not in namespace posbon")
    for name in PER_SERVICE:
        deployment = named("Deployment", name)
        if deployment is None:
            fail("k8s", f"no Deployment {name}")
        elif deployment["spec"].get("replicas") != 3:
            fail(f"Deployment/{name}", f"must have 3 replicas, has {deployment['spec'].get('replicas')!r}")
    reporter = named("Deployment", "reporter")
    if reporter is None or reporter["spec"].get("replicas", 1) != 1:
        fail("k8s", "needs one reporter (Deployment reporter, 1 replica)")
    check_escalators("k8s", [
        (f"{d['kind']}/{d['metadata']['name']}", d["spec"].get("replicas", 1),
         container_env(pod_template(d)["spec"]["containers"][0]))
        for d in docs if d.get("kind") in ("Deployment", "StatefulSet")
        and (pod_template(d)["spec"]["containers"][0].get("command") or [""])[0] == "posbon-escalator"])
    nats = named("StatefulSet", "nats")
    if nats is None or nats["spec"].get("replicas") != 3:
        fail("k8s", "needs NATS as a StatefulSet nats of 3 replicas")
    elif (named("Service", nats["spec"].get("serviceName")) or {}).get("spec", {}).get("clusterIP") != "None":
        fail("StatefulSet/nats", "its serviceName must be a headless Service")
    job = named("Job", "nats-streams")
    if job is None:
        fail("k8s", "no Job nats-streams")
    else:
        container = pod_template(job)["spec"]["containers"][0]
        check_streams_command("Job/nats-streams",
                              (container.get("command") or []) + (container.get("args") or []),
                              3)
    if prometheus:
        targets = {}
        for doc in docs:
            if doc.get("kind") != "Deployment":
                continue
            container = pod_template(doc)["spec"]["containers"][0]
            app = pod_template(doc)["metadata"]["labels"].get("app.kubernetes.io/name")
            port = next((p["containerPort"] for p in container.get("ports") or []
                         if p.get("name") == "http"), None)
            service = named("Service", f"{app}-metrics")
            if service is None or service["spec"].get("clusterIP") != "None":
                fail(f"Deployment/{doc['metadata']['name']}", f"no headless Service {app}-metrics "
                     "to scrape its pods through")
            targets[app] = (f"{app}-metrics.posbon.svc.cluster.local", port)
        check_scrapes(prometheus, targets, "Deployment")


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="what", required=True)
    compose = sub.add_parser("compose")
    compose.add_argument("file")
    compose.add_argument("prometheus")
    k8s = sub.add_parser("k8s")
    k8s.add_argument("files", nargs="+")
    k8s.add_argument("--posbon", action="store_true", help="also check deploy/k8s's own shape")
    k8s.add_argument("--prometheus", help="the scrape configuration of the Kubernetes deployment")
    args = parser.parse_args()
    try:
        if args.what == "compose":
            check_compose(args.file, args.prometheus)
        else:
            check_k8s(args.files, args.posbon, args.prometheus)
    except (OSError, yaml.YAMLError, KeyError, TypeError, ValueError, AttributeError, IndexError) as e:
        fail(args.what, f"cannot be checked: {e!r}")
    for failure in failures:
        print(f"FAIL {failure}")
    if failures:
        return 1
    print(f"ok: {args.what} ({', '.join([args.file] if args.what == 'compose' else args.files)})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
