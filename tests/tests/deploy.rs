//! The deployment's Prometheus alert rules are valid and do what their unit
//! tests say, and the Grafana dashboards' queries are valid PromQL over
//! metrics the services export, checked with the real promtool
//! (`POSBON_PROMTOOL`, installed by `scripts/install-test-deps.sh`).

use std::path::{Path, PathBuf};
use std::process::Command;

fn promtool() -> PathBuf {
    std::env::var_os("POSBON_PROMTOOL")
        .map(PathBuf::from)
        .or_else(|| {
            let found = Command::new("sh")
                .args(["-c", "command -v promtool"])
                .output()
                .ok()?;
            let path = String::from_utf8(found.stdout).ok()?;
            (!path.trim().is_empty()).then(|| PathBuf::from(path.trim()))
        })
        .expect(
            "promtool is needed: install it with `eval \"$(scripts/install-test-deps.sh)\"` \
             (Debian package prometheus) or set POSBON_PROMTOOL",
        )
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
