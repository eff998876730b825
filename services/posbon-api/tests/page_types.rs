//! The page's modules type-check: `tsc` (TypeScript's checker, installed by
//! `scripts/install-test-deps.sh` as `POSBON_TSC`) over `static/*.js` with
//! `tsconfig.json` (strict, JSDoc types, nothing emitted).

use std::path::PathBuf;
use std::process::Command;

#[test]
fn the_pages_modules_type_check() {
    let tsc = std::env::var_os("POSBON_TSC")
        .map(PathBuf::from)
        .expect("POSBON_TSC is not set: run `eval \"$(scripts/install-test-deps.sh)\"` first");
    let project = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tsconfig.json");
    let out = Command::new(&tsc)
        .arg("--project")
        .arg(&project)
        .arg("--pretty")
        .arg("false")
        .output()
        .unwrap_or_else(|e| panic!("cannot run {}: {e}", tsc.display()));
    assert!(
        out.status.success(),
        "tsc found type errors in the page's modules:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}
