//! Secrets: random values from the operating system, their SHA-256, a
//! constant-time comparison, and files only the owner can read.

use std::io::Write as _;
use std::path::Path;

use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq as _;

/// `n` random bytes from the operating system, as lowercase hex.
pub fn random_hex(n: usize) -> String {
    let mut bytes = vec![0u8; n];
    getrandom::fill(&mut bytes).expect("the operating system's random source failed");
    hex::encode(bytes)
}

/// SHA-256 of `data`, lowercase hex.
pub fn sha256_hex(data: &[u8]) -> String {
    hex::encode(Sha256::digest(data))
}

/// Whether `a` and `b` are equal, in time that depends only on their length.
pub fn same(a: &str, b: &str) -> bool {
    a.len() == b.len() && bool::from(a.as_bytes().ct_eq(b.as_bytes()))
}

/// Creates a new, empty file at `path` that only its owner may read or
/// write (mode 0600 on Unix). Fails if the file exists.
pub fn create_secret_file(path: &Path) -> std::io::Result<std::fs::File> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir)?;
    }
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt as _;
        options.mode(0o600);
    }
    options.open(path)
}

/// Writes `contents` to a new file at `path` that only its owner may read
/// or write (mode 0600 on Unix). Fails if the file exists.
pub fn write_secret_file(path: &Path, contents: &str) -> std::io::Result<()> {
    let mut file = create_secret_file(path)?;
    file.write_all(contents.as_bytes())?;
    file.write_all(b"\n")?;
    file.sync_all()
}

/// Reads a secret from a file: its first line, trimmed. Names the file in
/// the error, never the content.
pub fn read_secret_file(path: &Path) -> anyhow::Result<String> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| anyhow::anyhow!("cannot read the secret file {}: {e}", path.display()))?;
    let secret = text.lines().next().unwrap_or_default().trim().to_owned();
    anyhow::ensure!(
        !secret.is_empty(),
        "the secret file {} is empty",
        path.display()
    );
    Ok(secret)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets() {
        let a = random_hex(32);
        assert_eq!(a.len(), 64);
        assert_ne!(a, random_hex(32));
        assert!(same(&a, &a.clone()));
        assert!(!same(&a, &random_hex(32)));
        assert!(!same("ab", "abc"));
        let dir = tempfile::tempdir().expect("dir");
        let path = dir.path().join("sub/x.token");
        write_secret_file(&path, "s3cret").expect("written");
        assert_eq!(read_secret_file(&path).expect("read"), "s3cret");
        assert!(
            write_secret_file(&path, "again").is_err(),
            "never overwritten"
        );
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt as _;
            let mode = std::fs::metadata(&path).expect("meta").permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
    }
}
