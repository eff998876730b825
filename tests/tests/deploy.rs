//! The deployment's Prometheus alert rules are valid and do what their unit
//! tests say, checked with the real promtool (`POSBON_PROMTOOL`, installed by
//! `scripts/install-test-deps.sh`).

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

/// Every metric an alert reads is one a service exports (a renamed metric
/// would leave its alert silent forever).
#[test]
fn alerts_read_metrics_that_exist() {
    let rules = std::fs::read_to_string(rules_dir().join("alerts.yml")).expect("alerts.yml");
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let mut sources = String::new();
    for dir in ["services", "libs"] {
        collect_sources(&root.join(dir), &mut sources);
    }
    let names: std::collections::BTreeSet<&str> = rules
        .split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
        .filter(|w| w.starts_with("posbon_"))
        .collect();
    assert!(!names.is_empty());
    for name in names {
        let exported = name.strip_suffix("_total").unwrap_or(name);
        assert!(
            sources.contains(&format!("\"{exported}")),
            "alerts.yml reads {name}, which no service exports"
        );
    }
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
