//! Headless Chromium driven through chromedriver (W3C WebDriver over HTTP
//! JSON), with the few commands the browser tests need. Blocking, no
//! dependencies beyond `serde_json` and [`crate::http`].
//!
//! Binaries: `$POSBON_CHROMIUM` and `$POSBON_CHROMEDRIVER`, else `chromium`
//! and `chromedriver` on `PATH` (Debian packages `chromium` and
//! `chromium-driver`; `scripts/install-test-deps.sh` installs them). A missing
//! binary fails the test with [`CHROMIUM_INSTALL_HINT`].

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::http;

/// How to install the browser, for error messages.
pub const CHROMIUM_INSTALL_HINT: &str = "install Debian's chromium and chromium-driver with \
     `sudo apt-get install -y chromium chromium-driver` (or `eval \"$(scripts/install-test-deps.sh)\"`), \
     or set POSBON_CHROMIUM and POSBON_CHROMEDRIVER to their paths";

/// The W3C key of an element reference.
const ELEMENT_KEY: &str = "element-6066-11e4-a52e-4f735466cecf";

fn on_path(names: &[&str]) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .flat_map(|dir| names.iter().map(move |n| dir.join(n)))
        .find(|p| p.is_file())
}

fn from_env_or_path(var: &str, names: &[&str]) -> Result<PathBuf, String> {
    match std::env::var_os(var) {
        Some(p) if Path::new(&p).is_file() => Ok(PathBuf::from(p)),
        Some(p) => Err(format!(
            "{var}={} is not a file: {CHROMIUM_INSTALL_HINT}",
            Path::new(&p).display()
        )),
        None => on_path(names).ok_or_else(|| {
            format!(
                "{} not found on PATH: {CHROMIUM_INSTALL_HINT}",
                names.join(" / ")
            )
        }),
    }
}

/// The Chromium binary: `$POSBON_CHROMIUM`, else `chromium` on `PATH`.
pub fn chromium_bin() -> Result<PathBuf, String> {
    from_env_or_path("POSBON_CHROMIUM", &["chromium", "chromium-browser"])
}

/// The chromedriver binary: `$POSBON_CHROMEDRIVER`, else `chromedriver` on `PATH`.
pub fn chromedriver_bin() -> Result<PathBuf, String> {
    from_env_or_path("POSBON_CHROMEDRIVER", &["chromedriver"])
}

/// A reference to an element of the page.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Element(String);

/// One headless Chromium session; closed (and chromedriver stopped) on drop.
#[derive(Debug)]
pub struct Browser {
    driver: Child,
    addr: String,
    session: String,
}

impl Browser {
    /// Starts chromedriver on a free port and a headless Chromium session
    /// with a `width` × `height` window.
    pub fn start(width: u32, height: u32) -> Result<Self, String> {
        let chromium = chromium_bin()?;
        let driver_bin = chromedriver_bin()?;
        let mut last_error = String::new();
        for _ in 0..3 {
            let port = http::free_port();
            let driver = Command::new(&driver_bin)
                .arg(format!("--port={port}"))
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .map_err(|e| {
                    format!(
                        "cannot start {}: {e}; {CHROMIUM_INSTALL_HINT}",
                        driver_bin.display()
                    )
                })?;
            let mut browser = Self {
                driver,
                addr: format!("127.0.0.1:{port}"),
                session: String::new(),
            };
            match browser.open_session(&chromium, width, height) {
                Ok(()) => return Ok(browser),
                Err(e) => last_error = e,
            }
        }
        Err(format!("chromedriver did not give a session: {last_error}"))
    }

    fn open_session(&mut self, chromium: &Path, width: u32, height: u32) -> Result<(), String> {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Ok(Some(status)) = self.driver.try_wait() {
                return Err(format!("chromedriver exited with {status}"));
            }
            if let Ok(r) = http::get(&self.addr, "/status")
                && r.json()
                    .is_ok_and(|v| v["value"]["ready"].as_bool() == Some(true))
            {
                break;
            }
            if Instant::now() > deadline {
                return Err("chromedriver did not become ready in 20 s".into());
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        let caps = json!({
            "capabilities": {
                "alwaysMatch": {
                    "browserName": "chrome",
                    "goog:chromeOptions": {
                        "binary": chromium.to_string_lossy(),
                        "args": [
                            "--headless=new",
                            "--no-sandbox",
                            "--disable-gpu",
                            "--disable-dev-shm-usage",
                            "--disable-extensions",
                            "--no-first-run",
                            "--lang=en-GB",
                            "--force-device-scale-factor=1",
                            format!("--window-size={width},{height}"),
                        ],
                    },
                    "timeouts": { "implicit": 0, "pageLoad": 60_000, "script": 30_000 },
                }
            }
        });
        let value = self.raw("POST", "/session", Some(&caps))?;
        self.session = value["sessionId"]
            .as_str()
            .ok_or_else(|| format!("no sessionId in {value}"))?
            .to_owned();
        Ok(())
    }

    fn raw(&self, method: &str, path: &str, body: Option<&Value>) -> Result<Value, String> {
        let bytes = body.map(Value::to_string).unwrap_or_default();
        let headers: &[(&str, &str)] = if body.is_some() {
            &[("Content-Type", "application/json; charset=utf-8")]
        } else {
            &[]
        };
        let r = http::request(
            &self.addr,
            method,
            path,
            headers,
            bytes.as_bytes(),
            Duration::from_secs(90),
        )?;
        let v = r.json()?;
        if r.status != 200 {
            return Err(format!(
                "webdriver {method} {path}: {} {}: {}",
                r.status,
                v["value"]["error"].as_str().unwrap_or("error"),
                v["value"]["message"]
                    .as_str()
                    .unwrap_or_default()
                    .lines()
                    .next()
                    .unwrap_or_default()
            ));
        }
        Ok(v["value"].clone())
    }

    fn cmd(&self, method: &str, path: &str, body: Option<Value>) -> Result<Value, String> {
        self.raw(
            method,
            &format!("/session/{}{path}", self.session),
            body.as_ref(),
        )
    }

    /// Loads `url` and waits for the load event.
    pub fn goto(&self, url: &str) -> Result<(), String> {
        self.cmd("POST", "/url", Some(json!({ "url": url })))
            .map(drop)
    }

    /// The first element matching the CSS selector.
    pub fn find(&self, css: &str) -> Result<Element, String> {
        let v = self.cmd(
            "POST",
            "/element",
            Some(json!({ "using": "css selector", "value": css })),
        )?;
        element(&v).ok_or_else(|| format!("no element reference for {css}: {v}"))
    }

    /// Every element matching the CSS selector.
    pub fn find_all(&self, css: &str) -> Result<Vec<Element>, String> {
        let v = self.cmd(
            "POST",
            "/elements",
            Some(json!({ "using": "css selector", "value": css })),
        )?;
        Ok(v.as_array()
            .map(|a| a.iter().filter_map(element).collect())
            .unwrap_or_default())
    }

    /// The first element matching `css` inside `parent`.
    pub fn find_in(&self, parent: &Element, css: &str) -> Result<Element, String> {
        let v = self.cmd(
            "POST",
            &format!("/element/{}/element", parent.0),
            Some(json!({ "using": "css selector", "value": css })),
        )?;
        element(&v).ok_or_else(|| format!("no element reference for {css}: {v}"))
    }

    /// Clicks `e` (scrolled into view first).
    pub fn click(&self, e: &Element) -> Result<(), String> {
        self.cmd("POST", &format!("/element/{}/click", e.0), Some(json!({})))
            .map(drop)
    }

    /// Clears a text field.
    pub fn clear(&self, e: &Element) -> Result<(), String> {
        self.cmd("POST", &format!("/element/{}/clear", e.0), Some(json!({})))
            .map(drop)
    }

    /// Types `text` into `e`.
    pub fn send_keys(&self, e: &Element, text: &str) -> Result<(), String> {
        self.cmd(
            "POST",
            &format!("/element/{}/value", e.0),
            Some(json!({ "text": text })),
        )
        .map(drop)
    }

    /// The rendered text of `e`.
    pub fn text(&self, e: &Element) -> Result<String, String> {
        let v = self.cmd("GET", &format!("/element/{}/text", e.0), None)?;
        Ok(v.as_str().unwrap_or_default().to_owned())
    }

    /// An attribute of `e`.
    pub fn attribute(&self, e: &Element, name: &str) -> Result<Option<String>, String> {
        let v = self.cmd("GET", &format!("/element/{}/attribute/{name}", e.0), None)?;
        Ok(v.as_str().map(str::to_owned))
    }

    /// Runs `script` (a function body; `arguments` holds `args`) and returns its result.
    pub fn execute(&self, script: &str, args: Value) -> Result<Value, String> {
        self.cmd(
            "POST",
            "/execute/sync",
            Some(json!({ "script": script, "args": args })),
        )
    }

    /// Runs `script` (a function body whose last argument is the callback
    /// to call with the result; `arguments` holds `args` before it) and
    /// returns what it passed to the callback. For promises: `fetch(...)
    /// .then(r => arguments[arguments.length - 1](r.status))`.
    pub fn execute_async(&self, script: &str, args: Value) -> Result<Value, String> {
        self.cmd(
            "POST",
            "/execute/async",
            Some(json!({ "script": script, "args": args })),
        )
    }

    /// Every cookie of the current page's origin, `HttpOnly` ones included
    /// (W3C cookie objects: `name`, `value`, `httpOnly`, `sameSite`, ...).
    pub fn cookies(&self) -> Result<Vec<Value>, String> {
        let v = self.cmd("GET", "/cookie", None)?;
        Ok(v.as_array().cloned().unwrap_or_default())
    }

    /// Runs `script` and returns the element it returns, `None` for `null`.
    pub fn execute_element(&self, script: &str, args: Value) -> Result<Option<Element>, String> {
        let v = self.execute(script, args)?;
        if v.is_null() {
            return Ok(None);
        }
        element(&v)
            .map(Some)
            .ok_or_else(|| format!("the script returned {v}, not an element"))
    }

    /// A PNG screenshot of the viewport.
    pub fn screenshot(&self) -> Result<Vec<u8>, String> {
        let v = self.cmd("GET", "/screenshot", None)?;
        base64_decode(v.as_str().unwrap_or_default())
    }

    /// Saves a screenshot to `path` (creating its directory).
    pub fn save_screenshot(&self, path: &Path) -> Result<Vec<u8>, String> {
        let png = self.screenshot()?;
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
        }
        std::fs::write(path, &png).map_err(|e| format!("{}: {e}", path.display()))?;
        Ok(png)
    }

    /// Polls `check` every 100 ms until it gives a value or `timeout` passes.
    /// `check` errors (a stale element, a missing one) count as "not yet".
    pub fn wait_for<T>(
        &self,
        what: &str,
        timeout: Duration,
        mut check: impl FnMut(&Self) -> Result<Option<T>, String>,
    ) -> Result<T, String> {
        let deadline = Instant::now() + timeout;
        let mut last: String;
        loop {
            match check(self) {
                Ok(Some(v)) => return Ok(v),
                Ok(None) => last = "not yet".into(),
                Err(e) => last = e,
            }
            if Instant::now() > deadline {
                return Err(format!(
                    "timed out after {timeout:?} waiting for {what} (last: {last})"
                ));
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        if !self.session.is_empty() {
            let _ = self.raw("DELETE", &format!("/session/{}", self.session), None);
        }
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}

fn element(v: &Value) -> Option<Element> {
    v.get(ELEMENT_KEY)
        .and_then(Value::as_str)
        .map(|s| Element(s.to_owned()))
}

/// Decodes standard base64 (with or without padding).
pub fn base64_decode(text: &str) -> Result<Vec<u8>, String> {
    fn sextet(c: u8) -> Option<u32> {
        Some(match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' => 62,
            b'/' => 63,
            _ => return None,
        } as u32)
    }
    let bytes: Vec<u8> = text
        .bytes()
        .filter(|b| !b.is_ascii_whitespace() && *b != b'=')
        .collect();
    let mut out = Vec::with_capacity(bytes.len() * 3 / 4);
    for chunk in bytes.chunks(4) {
        let mut n = 0u32;
        for (i, &c) in chunk.iter().enumerate() {
            let v = sextet(c).ok_or_else(|| format!("not base64: byte {c:#04x}"))?;
            n |= v << (18 - 6 * i);
        }
        let len = match chunk.len() {
            4 => 3,
            3 => 2,
            2 => 1,
            _ => return Err("not base64: truncated".into()),
        };
        out.extend_from_slice(&n.to_be_bytes()[1..=len]);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::base64_decode;

    #[test]
    fn base64() {
        assert_eq!(base64_decode("aGVsbG8=").expect("valid"), b"hello");
        assert_eq!(base64_decode("aGVsbG8h").expect("valid"), b"hello!");
        assert_eq!(base64_decode("aGk").expect("valid"), b"hi");
        assert!(base64_decode("a").is_err());
        assert!(base64_decode("a*==").is_err());
    }
}
