//! The deployment's Prometheus alert rules are valid and do what their unit
//! tests say, and the Grafana dashboards' queries are valid PromQL over
//! metrics the services export, checked with the real promtool
//! (`POSBON_PROMTOOL`, installed by `scripts/install-test-deps.sh`).
//!
//! The compose file and the Kubernetes manifests, which cannot run here, are
//! checked by `scripts/check-deploy.sh`: against the Compose and Kubernetes
//! schemas (check-jsonschema and kubernetes-validate, in the Python of
//! `POSBON_DEPLOY_PYTHON`), rendered with `kubectl kustomize`
//! (`POSBON_KUBECTL`), and held to Posbon's rules (replicas, probes,
//! resources, disruption budgets, healthchecks); broken files must fail.

use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::process::Command;

/// `var` (which `scripts/install-test-deps.sh` exports), else `command` on
/// PATH; panics naming both when neither is there.
fn tool(var: &str, command: &str, package: &str) -> PathBuf {
    std::env::var_os(var)
        .map(PathBuf::from)
        .or_else(|| {
            let found = Command::new("sh")
                .args(["-c", &format!("command -v {command}")])
                .output()
                .ok()?;
            let path = String::from_utf8(found.stdout).ok()?;
            (!path.trim().is_empty()).then(|| PathBuf::from(path.trim()))
        })
        .unwrap_or_else(|| {
            panic!(
                "{command} is needed: install it with `eval \"$(scripts/install-test-deps.sh)\"` \
                 ({package}) or set {var}"
            )
        })
}

fn promtool() -> PathBuf {
    tool("POSBON_PROMTOOL", "promtool", "Debian package prometheus")
}

fn kubectl() -> PathBuf {
    tool(
        "POSBON_KUBECTL",
        "kubectl",
        "Debian package kubernetes-client",
    )
}

/// The Python with check-jsonschema and kubernetes-validate (pinned, in the
/// venv `scripts/install-test-deps.sh` makes): the system's has neither.
fn deploy_python() -> PathBuf {
    std::env::var_os("POSBON_DEPLOY_PYTHON")
        .map(PathBuf::from)
        .expect(
            "POSBON_DEPLOY_PYTHON is needed (a Python with check-jsonschema and \
             kubernetes-validate): install it with `eval \"$(scripts/install-test-deps.sh)\"`",
        )
}

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn rules_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy/prometheus")
}

fn run(args: &[&str]) {
    let output = Command::new(promtool())
        .args(args)
        .current_dir(rules_dir())
        .output()
        .expect("run promtool");
    assert!(
        output.status.success(),
        "promtool {args:?} failed:\n{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

#[test]
fn alert_rules_are_valid_and_pass_their_unit_tests() {
    run(&["check", "rules", "alerts.yml"]);
    run(&["test", "rules", "alerts.test.yml"]);
}

/// The source of every service and library, to find metric names in.
fn all_sources() -> String {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let mut sources = String::new();
    for dir in ["services", "libs"] {
        collect_sources(&root.join(dir), &mut sources);
    }
    sources
}

/// Fails naming `what` for each `posbon_*` name in `text` no service
/// exports (a renamed metric would leave an alert or a panel silent).
fn assert_metrics_exist(what: &str, text: &str, sources: &str) {
    let names: std::collections::BTreeSet<&str> = text
        .split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
        .filter(|w| w.starts_with("posbon_"))
        .collect();
    assert!(!names.is_empty(), "{what} reads no posbon metric");
    for name in names {
        let exported = ["_total", "_bucket", "_count", "_sum"]
            .iter()
            .find_map(|suffix| name.strip_suffix(suffix))
            .unwrap_or(name);
        assert!(
            sources.contains(&format!("\"{exported}")),
            "{what} reads {name}, which no service exports"
        );
    }
}

/// Every metric an alert reads is one a service exports (a renamed metric
/// would leave its alert silent forever).
#[test]
fn alerts_read_metrics_that_exist() {
    let rules = std::fs::read_to_string(rules_dir().join("alerts.yml")).expect("alerts.yml");
    assert_metrics_exist("alerts.yml", &rules, &all_sources());
}

/// Each dashboard (deploy/grafana/dashboards) is a Grafana dashboard with a
/// unique uid whose panels query Prometheus; every query is valid PromQL
/// (promtool checks them as recording rules) over metrics that exist.
#[test]
fn dashboards_query_valid_promql_over_metrics_that_exist() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy/grafana/dashboards");
    let sources = all_sources();
    let mut uids = std::collections::BTreeSet::new();
    let mut rules = String::from("groups:\n  - name: dashboards\n    rules:\n");
    let mut boards = 0;
    for entry in std::fs::read_dir(&dir).expect("dashboards") {
        let path = entry.expect("entry").path();
        let text = std::fs::read_to_string(&path).expect("read");
        let board: serde_json::Value = serde_json::from_str(&text)
            .unwrap_or_else(|e| panic!("{} is not JSON: {e}", path.display()));
        let name = path.display().to_string();
        assert!(
            uids.insert(board["uid"].as_str().expect("uid").to_owned()),
            "{name}: uid used twice"
        );
        assert!(
            board["title"]
                .as_str()
                .is_some_and(|t| t.starts_with("Posbon / ")),
            "{name}"
        );
        let panels = board["panels"].as_array().expect("panels");
        assert!(!panels.is_empty(), "{name}: no panels");
        for panel in panels {
            let targets = panel["targets"].as_array().expect("targets");
            assert!(!targets.is_empty(), "{name}: a panel without a query");
            for target in targets {
                let expr = target["expr"].as_str().expect("expr");
                assert_metrics_exist(&name, expr, &sources);
                rules.push_str(&format!(
                    "      - record: posbon:dashboard:{}\n        expr: {}\n",
                    rules.matches("record:").count(),
                    serde_json::Value::String(expr.to_owned())
                ));
            }
        }
        boards += 1;
    }
    assert!(boards >= 5, "pipeline, escalations, SQL, NATS, store");
    let dir = tempfile::tempdir().expect("dir");
    let file = dir.path().join("dashboards.yml");
    std::fs::write(&file, rules).expect("write");
    let output = Command::new(promtool())
        .args(["check", "rules"])
        .arg(&file)
        .output()
        .expect("run promtool");
    assert!(
        output.status.success(),
        "a dashboard query is not valid PromQL:\n{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

fn collect_sources(dir: &Path, out: &mut String) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() {
            collect_sources(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push_str(&std::fs::read_to_string(&path).unwrap_or_default());
        }
    }
}

/// Whether the command succeeded, and what it printed.
fn outcome(command: &mut Command) -> (bool, String) {
    let output = command.output().expect("run the check");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    (output.status.success(), text)
}

/// `scripts/check-deploy.py ARGS...` with the deployment's Python.
fn check_deploy_py<S: AsRef<OsStr>>(args: &[S]) -> (bool, String) {
    outcome(
        Command::new(deploy_python())
            .arg(repo_root().join("scripts/check-deploy.py"))
            .args(args)
            .current_dir(repo_root()),
    )
}

/// `text` with `from` replaced by `to` once; `from` must be there (else the
/// file this case breaks has changed: update the case).
fn broken(text: &str, from: &str, to: &str) -> String {
    assert!(
        text.contains(from),
        "the case no longer applies: {from:?} is gone"
    );
    text.replacen(from, to, 1)
}

/// The whole of `scripts/check-deploy.sh`: deploy/compose.yaml, the
/// kustomizations deploy/k8s and deploy/k8s/bootstrap and both Prometheus
/// configurations pass their schemas and rules.
#[test]
fn deployment_files_pass_check_deploy() {
    let (ok, text) = outcome(
        Command::new("bash")
            .arg("scripts/check-deploy.sh")
            .current_dir(repo_root())
            .env("POSBON_DEPLOY_PYTHON", deploy_python())
            .env("POSBON_KUBECTL", kubectl())
            .env("POSBON_PROMTOOL", promtool()),
    );
    assert!(ok, "scripts/check-deploy.sh failed:\n{text}");
    assert!(text.contains("check-deploy: all checks passed"), "{text}");
}

/// A Deployment that keeps every rule, and the budget it needs.
const DEPLOYMENT: &str = "\
apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
  namespace: posbon
spec:
  replicas: 3
  selector:
    matchLabels:
      app: web
  template:
    metadata:
      labels:
        app: web
    spec:
      securityContext:
        runAsNonRoot: true
      containers:
        - name: web
          image: web:1
          livenessProbe:
            httpGet:
              path: /healthz
              port: 8080
          readinessProbe:
            httpGet:
              path: /readyz
              port: 8080
          resources:
            requests:
              cpu: 100m
              memory: 64Mi
            limits:
              memory: 128Mi
          securityContext:
            allowPrivilegeEscalation: false
            readOnlyRootFilesystem: true
";

const BUDGET: &str = "\
apiVersion: policy/v1
kind: PodDisruptionBudget
metadata:
  name: web
  namespace: posbon
spec:
  maxUnavailable: 1
  selector:
    matchLabels:
      app: web
";

/// The Kubernetes check fails on a wrong type, an unknown field, an unknown
/// kind, a missing probe, requests or budget, and a shipped Secret, and
/// passes the same objects without the fault.
#[test]
fn kubernetes_check_rejects_broken_manifests() {
    let good = format!("{DEPLOYMENT}---\n{BUDGET}");
    let secret = "apiVersion: v1\nkind: Secret\nmetadata:\n  name: key\n  namespace: posbon\n\
                  stringData:\n  key: s3cret\n";
    let cases = [
        (
            "replicas-three",
            broken(&good, "replicas: 3", "replicas: \"three\""),
            "spec.replicas: 'three' is not of type 'integer'",
        ),
        (
            "unknown-container-field",
            broken(
                &good,
                "          image: web:1\n",
                "          image: web:1\n          imagePullPolicyy: Always\n",
            ),
            "'imagePullPolicyy' was unexpected",
        ),
        (
            "unknown-kind",
            broken(&good, "kind: Deployment", "kind: Deploymnet"),
            "Couldn't find schema for kind Deploymnet",
        ),
        (
            "no-readiness-probe",
            broken(
                &good,
                "          readinessProbe:\n            httpGet:\n              path: /readyz\n              port: 8080\n",
                "",
            ),
            "container web: has no readinessProbe",
        ),
        (
            "no-requests",
            broken(
                &good,
                "            requests:\n              cpu: 100m\n              memory: 64Mi\n",
                "",
            ),
            "needs resource requests for cpu and memory",
        ),
        (
            "no-budget",
            DEPLOYMENT.to_owned(),
            "3 replicas and no PodDisruptionBudget selects its pods",
        ),
        (
            "budget-for-other-pods",
            format!(
                "{DEPLOYMENT}---\n{}",
                BUDGET.replace("app: web", "app: api")
            ),
            "3 replicas and no PodDisruptionBudget selects its pods",
        ),
        (
            "secret-shipped",
            format!("{good}---\n{secret}"),
            "a Secret is shipped",
        ),
    ];
    let dir = tempfile::tempdir().expect("dir");
    let file = dir.path().join("good.yaml");
    std::fs::write(&file, &good).expect("write");
    let (ok, text) = check_deploy_py(&[OsStr::new("k8s"), file.as_os_str()]);
    assert!(ok, "the valid objects must pass:\n{text}");
    for (name, objects, expected) in cases {
        let file = dir.path().join(format!("{name}.yaml"));
        std::fs::write(&file, objects).expect("write");
        let (ok, text) = check_deploy_py(&[OsStr::new("k8s"), file.as_os_str()]);
        assert!(!ok, "{name}: the broken objects passed:\n{text}");
        assert!(
            text.contains(expected),
            "{name}: expected {expected:?} in:\n{text}"
        );
    }
}

/// The compose check fails on a field the Compose specification does not
/// have, and on each of Posbon's rules broken in deploy/compose.yaml: among
/// them the escalator's (at least two replicas, sharing at least as many
/// shards through leases: no SHARD_INDEX, no one INSTANCE name for all).
#[test]
fn compose_check_rejects_broken_files() {
    let root = repo_root();
    let compose = std::fs::read_to_string(root.join("deploy/compose.yaml")).expect("compose.yaml");
    let prometheus = std::fs::read_to_string(root.join("deploy/prometheus/prometheus.yml"))
        .expect("prometheus.yml");
    let health_8084 = "    healthcheck:\n      <<: *health\n      test: [\"CMD\", \"curl\", \"-fsS\", \
                       \"-o\", \"/dev/null\", \"http://127.0.0.1:8084/readyz\"]\n";
    let shard_count = "      POSBON__ESCALATOR__SHARD_COUNT: \"8\"\n";
    let cases = [
        (
            "unknown-field",
            broken(
                &compose,
                "    command: [\"posbon-indexer\"]\n",
                "    command: [\"posbon-indexer\"]\n    healthchek: {}\n",
            ),
            prometheus.clone(),
            "'healthchek' was unexpected",
        ),
        (
            "two-ingest-replicas",
            broken(&compose, "deploy: {replicas: 3}", "deploy: {replicas: 2}"),
            prometheus.clone(),
            "must have deploy.replicas 3, has 2",
        ),
        (
            "replicas-three",
            broken(
                &compose,
                "deploy: {replicas: 3}",
                "deploy: {replicas: \"three\"}",
            ),
            prometheus.clone(),
            "deploy.replicas must be a number",
        ),
        (
            "one-escalator-replica",
            broken(&compose, "deploy: {replicas: 2}", "deploy: {replicas: 1}"),
            prometheus.clone(),
            "compose: the escalator must run at least 2 replicas",
        ),
        (
            "escalator-shard-index",
            broken(
                &compose,
                shard_count,
                &format!("{shard_count}      POSBON__ESCALATOR__SHARD_INDEX: \"0\"\n"),
            ),
            prometheus.clone(),
            "compose service escalator: POSBON__ESCALATOR__SHARD_INDEX is set",
        ),
        (
            "fewer-shards-than-replicas",
            broken(
                &compose,
                shard_count,
                "      POSBON__ESCALATOR__SHARD_COUNT: \"1\"\n",
            ),
            prometheus.clone(),
            "POSBON__ESCALATOR__SHARD_COUNT 1 is below the escalator's 2 replicas",
        ),
        (
            "no-shard-count",
            broken(&compose, shard_count, ""),
            prometheus.clone(),
            "POSBON__ESCALATOR__SHARD_COUNT must be set to a number of shards from 1 to 256",
        ),
        (
            "one-instance-name-for-the-replicas",
            broken(
                &compose,
                shard_count,
                &format!("{shard_count}      POSBON__ESCALATOR__INSTANCE: escalator\n"),
            ),
            prometheus.clone(),
            "POSBON__ESCALATOR__INSTANCE is one name for 2 replicas",
        ),
        (
            "reporter-without-healthcheck",
            broken(&compose, health_8084, ""),
            prometheus.clone(),
            "compose service reporter: has no healthcheck",
        ),
        (
            "started-before-the-streams",
            broken(
                &compose,
                "nats-streams: {condition: service_completed_successfully}",
                "nats-streams: {condition: service_started}",
            ),
            prometheus.clone(),
            "must start after nats-streams completed",
        ),
        (
            "grafana-password-inline",
            broken(
                &compose,
                "GF_SECURITY_ADMIN_PASSWORD__FILE: /run/secrets/grafana_admin_password",
                "GF_SECURITY_ADMIN_PASSWORD: admin",
            ),
            prometheus.clone(),
            "the admin password must come from a file",
        ),
        (
            "escalator-not-scraped",
            compose.clone(),
            broken(&prometheus, "names: [escalator]", "names: [escalator-0]"),
            "does not scrape compose service escalator (dns_sd_configs type A on escalator)",
        ),
    ];
    let dir = tempfile::tempdir().expect("dir");
    for (name, compose, prometheus, expected) in cases {
        let compose_file = dir.path().join(format!("{name}.compose.yaml"));
        let prometheus_file = dir.path().join(format!("{name}.prometheus.yml"));
        std::fs::write(&compose_file, compose).expect("write");
        std::fs::write(&prometheus_file, prometheus).expect("write");
        let (ok, text) = check_deploy_py(&[
            OsStr::new("compose"),
            compose_file.as_os_str(),
            prometheus_file.as_os_str(),
        ]);
        assert!(!ok, "{name}: the broken compose file passed:\n{text}");
        assert!(
            text.contains(expected),
            "{name}: expected {expected:?} in:\n{text}"
        );
    }
}

/// deploy/k8s rendered with `kubectl kustomize` passes the `--posbon` check,
/// and fails it with the escalator's rules broken: one replica, a
/// SHARD_INDEX, fewer shards than replicas, one INSTANCE name for all pods
/// (while a name from each pod's own, through the downward API, passes).
#[test]
fn kubernetes_check_rejects_a_broken_escalator() {
    let root = repo_root();
    let rendered = Command::new(kubectl())
        .arg("kustomize")
        .arg(root.join("deploy/k8s"))
        .output()
        .expect("run kubectl kustomize");
    assert!(
        rendered.status.success(),
        "kubectl kustomize deploy/k8s failed:\n{}",
        String::from_utf8_lossy(&rendered.stderr)
    );
    let k8s = String::from_utf8(rendered.stdout).expect("UTF-8");
    let prometheus = root.join("deploy/prometheus/prometheus-k8s.yml");
    let shard_count = "        - name: POSBON__ESCALATOR__SHARD_COUNT\n          value: \"8\"\n";
    let cases = [
        (
            "instance-from-the-pod-name",
            broken(
                &k8s,
                shard_count,
                &format!(
                    "        - name: POSBON__ESCALATOR__INSTANCE\n          valueFrom:\n            \
                     fieldRef:\n              fieldPath: metadata.name\n{shard_count}"
                ),
            ),
            None,
        ),
        (
            "one-escalator-replica",
            broken(&k8s, "  replicas: 2\n", "  replicas: 1\n"),
            Some("k8s: the escalator must run at least 2 replicas"),
        ),
        (
            "escalator-shard-index",
            broken(
                &k8s,
                shard_count,
                &format!(
                    "{shard_count}        - name: POSBON__ESCALATOR__SHARD_INDEX\n          value: \"0\"\n"
                ),
            ),
            Some("Deployment/escalator: POSBON__ESCALATOR__SHARD_INDEX is set"),
        ),
        (
            "fewer-shards-than-replicas",
            broken(
                &k8s,
                shard_count,
                "        - name: POSBON__ESCALATOR__SHARD_COUNT\n          value: \"1\"\n",
            ),
            Some("POSBON__ESCALATOR__SHARD_COUNT 1 is below the escalator's 2 replicas"),
        ),
        (
            "one-instance-name-for-the-pods",
            broken(
                &k8s,
                shard_count,
                &format!(
                    "        - name: POSBON__ESCALATOR__INSTANCE\n          value: escalator\n{shard_count}"
                ),
            ),
            Some("Deployment/escalator: POSBON__ESCALATOR__INSTANCE is one name for 2 replicas"),
        ),
    ];
    let dir = tempfile::tempdir().expect("dir");
    let file = dir.path().join("k8s.yaml");
    std::fs::write(&file, &k8s).expect("write");
    let check = |file: &Path| {
        check_deploy_py(&[
            OsStr::new("k8s"),
            OsStr::new("--posbon"),
            OsStr::new("--prometheus"),
            prometheus.as_os_str(),
            file.as_os_str(),
        ])
    };
    let (ok, text) = check(file.as_path());
    assert!(ok, "deploy/k8s as rendered must pass:\n{text}");
    for (name, objects, expected) in cases {
        let file = dir.path().join(format!("{name}.yaml"));
        std::fs::write(&file, objects).expect("write");
        let (ok, text) = check(file.as_path());
        match expected {
            None => assert!(ok, "{name}: must pass:\n{text}"),
            Some(expected) => {
                assert!(!ok, "{name}: the broken objects passed:\n{text}");
                assert!(
                    text.contains(expected),
                    "{name}: expected {expected:?} in:\n{text}"
                );
            }
        }
    }
}

/// The streams job must ask for three replicas: without `--replicas 3` the
/// compose check fails, naming it.
#[test]
fn streams_job_must_ask_for_three_replicas() {
    let root = repo_root();
    let dir = tempfile::tempdir().expect("dir");
    let compose = std::fs::read_to_string(root.join("deploy/compose.yaml")).expect("compose.yaml");
    let without = broken(&compose, r#", "--replicas", "3""#, "");
    let file = dir.path().join("without.compose.yaml");
    std::fs::write(&file, without).expect("write");
    let prometheus = root.join("deploy/prometheus/prometheus.yml");
    let (ok, output) = check_deploy_py(&[
        OsStr::new("compose"),
        file.as_os_str(),
        prometheus.as_os_str(),
    ]);
    assert!(!ok, "a streams job without --replicas 3 passed:\n{output}");
    let expected = "nats-streams: streams must be R3: pass `--replicas 3`";
    assert!(
        output.contains(expected),
        "expected {expected:?} in:\n{output}"
    );
}
