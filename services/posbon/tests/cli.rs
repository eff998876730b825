//! The `posbon` binary: exit codes, help, and `simulate` end to end.

use std::process::Command;

/// The binary, speaking English whatever the machine's locale.
fn posbon() -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_posbon"));
    command.env("POSBON_LANG", "en");
    command
}

/// Messages for people follow POSBON_LANG, else LC_ALL, LC_MESSAGES, LANG.
#[test]
fn messages_follow_the_users_language() {
    let english = "error: a token is needed: --token or POSBON_TOKEN";
    for (vars, starts) in [
        (&[("POSBON_LANG", "ru")][..], "ошибка: "),
        (&[("LANG", "uz_UZ.UTF-8")], "xato: "),
        (
            &[("LC_ALL", "ru_RU.UTF-8"), ("LANG", "uz_UZ.UTF-8")],
            "ошибка: ",
        ),
        (&[("LANG", "de_DE.UTF-8")], english),
        (&[], english),
    ] {
        let mut command = Command::new(env!("CARGO_BIN_EXE_posbon"));
        for name in [
            "POSBON_LANG",
            "LC_ALL",
            "LC_MESSAGES",
            "LANG",
            "POSBON_TOKEN",
        ] {
            command.env_remove(name);
        }
        let out = command
            .envs(vars.iter().copied())
            .args(["users", "list", "--api", "http://127.0.0.1:9"])
            .output()
            .expect("run");
        assert_eq!(out.status.code(), Some(1), "{vars:?}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.starts_with(starts), "{vars:?}: {err}");
        assert!(!err.contains('⟦'), "{vars:?}: {err}");
        if starts != english {
            assert!(
                !err.contains("a token is needed"),
                "{vars:?} untranslated: {err}"
            );
        }
    }
}

#[test]
fn help_usage_and_runtime_errors_have_their_exit_codes() {
    for args in [
        &["--help"][..],
        &["simulate", "--help"],
        &["simulate", "events", "--help"],
        &["simulate", "city", "--help"],
        &["simulate", "national", "--help"],
    ] {
        let out = posbon().args(args).output().expect("run");
        assert_eq!(out.status.code(), Some(0), "{args:?}");
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(text.contains("Usage:"), "{args:?}: {text}");
    }
    let out = posbon()
        .args(["simulate", "events", "--help"])
        .output()
        .expect("run");
    assert!(String::from_utf8_lossy(&out.stdout).contains("events per hour"));

    let out = posbon()
        .args(["simulate", "events", "--rate", "abc"])
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(2));
    let out = posbon().args(["simulate", "bogus"]).output().expect("run");
    assert_eq!(out.status.code(), Some(2));

    let out = posbon()
        .args(["simulate", "events", "--duration", "forever"])
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.starts_with("error: invalid duration"), "{err}");

    let out = posbon()
        .args([
            "simulate",
            "events",
            "--registry",
            "/nonexistent/registry.geojson",
        ])
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(1));
}

#[test]
fn simulate_city_then_events_over_it() {
    let dir = tempfile::tempdir().expect("tempdir");
    let city = dir.path().join("city.geojson");
    let out = posbon()
        .args([
            "simulate",
            "city",
            "--seed",
            "5",
            "--mahallas",
            "120",
            "--out",
        ])
        .arg(&city)
        .output()
        .expect("run");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let doc: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&city).expect("read")).expect("json");
    assert_eq!(doc["features"].as_array().map(Vec::len), Some(120));

    // The registry of a deployment: adopted into a store, named by digest.
    let store = format!("embedded:{}", dir.path().join("store").display());
    let out = posbon()
        .args(["mahallas", "adopt"])
        .arg(&city)
        .args(["--store", &store])
        .output()
        .expect("run");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(
        said.contains("sha256:") && said.contains("120 mahallas"),
        "{said}"
    );

    let run = |name: &str| {
        let path = dir.path().join(name);
        let out = posbon()
            .args([
                "-q",
                "simulate",
                "events",
                "--duration",
                "12h",
                "--rate",
                "80",
                "--seed",
                "9",
                "--bad-fraction",
                "0.1",
                "--registry",
            ])
            .arg(&city)
            .arg("--out")
            .arg(&path)
            .output()
            .expect("run");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(out.stderr.is_empty(), "quiet");
        path
    };
    let a = run("a.ndjson");
    let b = run("b.ndjson");
    let bytes = std::fs::read(&a).expect("read");
    assert_eq!(bytes, std::fs::read(&b).expect("read"));
    let truth: serde_json::Value = serde_json::from_slice(
        &std::fs::read(dir.path().join("a.ndjson.truth.json")).expect("truth"),
    )
    .expect("json");
    let bad: Vec<u64> = truth["bad_lines"]
        .as_array()
        .expect("bad lines")
        .iter()
        .map(|b| b["line"].as_u64().expect("line"))
        .collect();
    assert!(!bad.is_empty());
    assert!(
        !truth["injections"]
            .as_array()
            .expect("injections")
            .is_empty()
    );
    let now = chrono::Utc::now();
    let limits = posbon_model::Limits::default();
    for (i, line) in bytes
        .split(|&b| b == b'\n')
        .filter(|l| !l.is_empty())
        .enumerate()
    {
        let n = i as u64 + 1;
        let ok = posbon_model::parse_event(line, &limits, now).is_ok();
        if !bad.contains(&n) {
            assert!(ok, "line {n} rejected");
        }
    }
}
