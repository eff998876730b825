//! The command-centre page in headless Chromium (Debian `chromium` and
//! `chromium-driver`, driven over WebDriver by [`posbon_tests::webdriver`]).
//!
//! * `page_follows_the_feed_and_acts`: the API in this process on the
//!   in-memory bus and store; escalations are published on ALERTS by the test.
//!   The page draws every mahalla, shows a new escalation live (highlighted,
//!   its mahalla recoloured), acknowledges it through the dialog (asking the
//!   operator's name once), follows another operator's assignment from the
//!   feed, shows a refused action (409) with the server's message, resumes
//!   the feed after a network outage (a proxy drops every connection) with
//!   what opened meanwhile, and opens a mahalla's detail from the feed.
//! * `command_centre_on_posbon_standalone`: the real `posbon standalone`;
//!   three drug-handoff camera alerts posted to `/v1/events` make the
//!   escalator open an escalation, which the page shows live and acknowledges;
//!   then the SQL console answers a query as a table and a bad one with a
//!   readable error, and the daily report renders.
//!
//! Screenshots are saved under `<target>/tmp/test-artefacts/` (the path is
//! printed), and on a failure with the page's state in the message.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use chrono::{TimeDelta, Utc};
use posbon_api::{ApiConfig, ApiState};
use posbon_bus::subjects::{Place, alert_subject};
use posbon_bus::{Bus, Headers, MemoryBus, default_streams};
use posbon_geo::Registry;
use posbon_model::{Escalation, EscalationStatus, RiskLevel};
use posbon_store::{MemoryStore, Store};
use posbon_telemetry::Metrics;
use posbon_tests::webdriver::{Browser, Element};
use posbon_tests::{http, posbon_bin};
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;

/// Where screenshots go.
fn artefacts() -> PathBuf {
    PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("test-artefacts")
}

/// The page in a browser, with failures that say what the page showed.
struct Ui {
    browser: Browser,
    base: String,
    name: &'static str,
}

impl Ui {
    fn open(base: &str, name: &'static str) -> Ui {
        let browser = Browser::start(1440, 960).unwrap_or_else(|e| panic!("{e}"));
        let ui = Ui {
            browser,
            base: base.to_owned(),
            name,
        };
        let url = format!("{}/", ui.base);
        ui.ok(ui.browser.goto(&url));
        ui
    }

    /// Fails the test with a screenshot and what the page knows.
    fn fail(&self, message: &str) -> ! {
        let shot = artefacts().join(format!("{}-failure.png", self.name));
        let saved = self.browser.save_screenshot(&shot).map_or_else(
            |e| format!("no screenshot: {e}"),
            |_| shot.display().to_string(),
        );
        let state = self
            .browser
            .execute(
                "return {errors: (window.posbon || {}).errors, banner: document.getElementById('errors')?.innerText, \
                 conn: document.getElementById('conn')?.innerText, feed: document.getElementById('feed')?.innerText?.slice(0, 2000)}",
                json!([]),
            )
            .unwrap_or_else(|e| json!({ "unreadable": e }));
        panic!("{message}\npage state: {state:#}\nscreenshot: {saved}");
    }

    fn ok<T>(&self, result: Result<T, String>) -> T {
        result.unwrap_or_else(|e| self.fail(&e))
    }

    fn wait<T>(
        &self,
        what: &str,
        secs: u64,
        check: impl FnMut(&Browser) -> Result<Option<T>, String>,
    ) -> T {
        let r = self
            .browser
            .wait_for(what, Duration::from_secs(secs), check);
        self.ok(r)
    }

    fn js(&self, script: &str, args: Value) -> Value {
        self.ok(self.browser.execute(script, args))
    }

    /// The page's JavaScript errors so far.
    fn js_errors(&self) -> Vec<String> {
        let v = self.js(
            "return (window.posbon || {errors: ['app.js did not start']}).errors",
            json!([]),
        );
        v.as_array()
            .map(|a| a.iter().map(|e| e.to_string()).collect())
            .unwrap_or_default()
    }

    /// Waits until the map is drawn with `mahallas` paths and the feed is live.
    fn wait_ready(&self, mahallas: usize) {
        self.wait("the map and the live feed", 60, |b| {
            let v = b.execute(
                "return {paths: document.querySelectorAll('#map path.m').length, \
                 conn: document.getElementById('conn').dataset.state, ready: document.body.dataset.ready}",
                json!([]),
            )?;
            Ok((v["paths"] == json!(mahallas) && v["conn"] == "live" && v["ready"] == "true")
                .then_some(()))
        });
        let errors = self.js_errors();
        if !errors.is_empty() {
            self.fail(&format!("javascript errors: {errors:?}"));
        }
    }

    /// The feed entry of escalation `id`, once it is shown.
    fn item(&self, id: &str, secs: u64) -> Element {
        self.wait(&format!("escalation {id} in the feed"), secs, |b| {
            b.execute_element(
                "return [...document.querySelectorAll('#feed li.esc')].find(li => li.dataset.id === arguments[0]) || null",
                json!([id]),
            )
        })
    }

    /// Status, classes and text of escalation `id` in the feed.
    fn entry(&self, id: &str) -> Value {
        self.js(
            "const li = [...document.querySelectorAll('#feed li.esc')].find(li => li.dataset.id === arguments[0]); \
             return li ? {status: li.dataset.status, shown: li.querySelector('.esc-status').innerText, \
             class: li.className, text: li.innerText} : null",
            json!([id]),
        )
    }

    fn wait_status(&self, id: &str, status: &str, secs: u64) -> Value {
        self.wait(&format!("escalation {id} to be {status}"), secs, |b| {
            let v = b.execute(
                "const li = [...document.querySelectorAll('#feed li.esc')].find(li => li.dataset.id === arguments[0]); \
                 return li ? {status: li.dataset.status, shown: li.querySelector('.esc-status').innerText, text: li.innerText} : null",
                json!([id]),
            )?;
            Ok((v["status"] == status).then_some(v))
        })
    }

    /// Clicks `action` on escalation `id` and waits for the dialog.
    fn start_action(&self, id: &str, action: &str) {
        let li = self.item(id, 10);
        let button = self.ok(self
            .browser
            .find_in(&li, &format!("button[data-action=\"{action}\"]")));
        self.ok(self.browser.click(&button));
        self.wait("the action dialog", 10, |b| {
            let v = b.execute(
                "const d = document.getElementById('act-dialog'); return d.open && d.dataset.action",
                json!([]),
            )?;
            Ok((v == action).then_some(()))
        });
    }

    /// Types the operator's name (when `by` is given) and confirms.
    fn confirm_action(&self, by: Option<&str>) {
        if let Some(by) = by {
            let field = self.ok(self.browser.find("#act-by"));
            self.ok(self.browser.clear(&field));
            self.ok(self.browser.send_keys(&field, by));
        }
        let confirm = self.ok(self.browser.find("#act-confirm"));
        self.ok(self.browser.click(&confirm));
    }

    fn dialog_open(&self) -> bool {
        self.js(
            "return document.getElementById('act-dialog').open",
            json!([]),
        ) == json!(true)
    }

    /// Saves a screenshot under the artefacts directory, prints its path.
    fn screenshot(&self, file: &str) -> PathBuf {
        let path = artefacts().join(file);
        let png = self.ok(self.browser.save_screenshot(&path));
        assert!(
            png.starts_with(b"\x89PNG\r\n\x1a\n") && png.len() > 10_000,
            "the screenshot is not a PNG of a page ({} bytes)",
            png.len()
        );
        println!("screenshot: {}", path.display());
        path
    }
}

// ------------------------------------------------------------ in-process API

/// The API in this process, on the in-memory bus and store.
struct InProcessApi {
    runtime: tokio::runtime::Runtime,
    bus: Arc<dyn Bus>,
    registry: Arc<Registry>,
    /// The API itself (for the test's own requests).
    addr: String,
    /// A TCP proxy in front of it, for the browser: it can drop every
    /// connection and refuse new ones, like a network outage.
    proxy: Proxy,
    shutdown: CancellationToken,
}

/// A TCP proxy that can cut every connection and refuse new ones.
struct Proxy {
    addr: String,
    down: Arc<AtomicBool>,
    cut: Arc<Mutex<CancellationToken>>,
}

impl Proxy {
    async fn start(upstream: String, shutdown: CancellationToken) -> Proxy {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind proxy");
        let addr = listener.local_addr().expect("addr").to_string();
        let down = Arc::new(AtomicBool::new(false));
        let cut = Arc::new(Mutex::new(CancellationToken::new()));
        let (down2, cut2) = (down.clone(), cut.clone());
        tokio::spawn(async move {
            loop {
                let accepted = tokio::select! {
                    a = listener.accept() => a,
                    () = shutdown.cancelled() => return,
                };
                let Ok((mut inbound, _)) = accepted else {
                    continue;
                };
                if down2.load(Ordering::SeqCst) {
                    drop(inbound);
                    continue;
                }
                let token = cut2.lock().expect("lock").clone();
                let upstream = upstream.clone();
                tokio::spawn(async move {
                    let Ok(mut outbound) = tokio::net::TcpStream::connect(&upstream).await else {
                        return;
                    };
                    tokio::select! {
                        _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound) => {}
                        () = token.cancelled() => {}
                    }
                });
            }
        });
        Proxy { addr, down, cut }
    }

    /// Drops every open connection and refuses new ones.
    fn outage(&self) {
        self.down.store(true, Ordering::SeqCst);
        let mut cut = self.cut.lock().expect("lock");
        cut.cancel();
        *cut = CancellationToken::new();
    }

    /// Accepts connections again.
    fn restore(&self) {
        self.down.store(false, Ordering::SeqCst);
    }
}

impl InProcessApi {
    fn start() -> InProcessApi {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("runtime");
        let registry = Arc::new(posbon_sim::load_registry(None).expect("city registry"));
        let bus: Arc<dyn Bus> = Arc::new(MemoryBus::new());
        let store: Store = Arc::new(MemoryStore::new());
        let shutdown = CancellationToken::new();
        let (addr, proxy) = runtime.block_on(async {
            bus.ensure_streams(&default_streams())
                .await
                .expect("streams");
            let config = ApiConfig {
                listen: "127.0.0.1:0".into(),
                nats_urls: vec![],
                registry: None,
                renotify_after_secs: 3600,
                renotify_check_secs: 5,
                feed_keepalive_secs: 5,
                max_list: 1000,
            };
            let state = ApiState::new(
                config,
                bus.clone(),
                store,
                registry.clone(),
                &Metrics::new(),
            )
            .expect("api state");
            tokio::spawn(posbon_api::run_lifecycle(state.clone(), shutdown.clone()));
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
                .await
                .expect("bind");
            let addr = listener.local_addr().expect("addr").to_string();
            let app = posbon_api::routes(state);
            let stop = shutdown.clone();
            tokio::spawn(async move {
                axum::serve(listener, app)
                    .with_graceful_shutdown(async move { stop.cancelled().await })
                    .await
            });
            let proxy = Proxy::start(addr.clone(), shutdown.clone()).await;
            (addr, proxy)
        });
        InProcessApi {
            runtime,
            bus,
            registry,
            addr,
            proxy,
            shutdown,
        }
    }

    /// Publishes an escalation of mahalla number `n` on ALERTS, as the escalator does.
    fn open_escalation(&self, n: usize, episode: u64, level: RiskLevel) -> Escalation {
        let m = &self.registry.mahallas()[n];
        let now = Utc::now();
        let e = Escalation {
            id: Escalation::deterministic_id(&m.id, "drug_handoff_cluster", episode),
            mahalla_id: m.id.clone(),
            district_id: m.district_id.clone(),
            region_id: m.region_id.clone(),
            level,
            previous_level: RiskLevel::Normal,
            score: 6.25,
            rule: "drug_handoff_cluster".into(),
            counts: [("drug_handoff".to_owned(), 3)].into_iter().collect(),
            hot_cells: vec![],
            evidence: vec!["cam-a".into(), "cam-b".into(), "cam-c".into()],
            window_start: now - TimeDelta::minutes(10),
            window_end: now,
            opened_at: now,
            status: EscalationStatus::Open,
        };
        let subject = alert_subject(Place::new(&e.region_id, &e.district_id, &e.mahalla_id))
            .expect("alert subject");
        self.runtime
            .block_on(self.bus.publish(
                &subject,
                Headers::new().with_msg_id(&e.id),
                Bytes::from(serde_json::to_vec(&e).expect("json")),
            ))
            .expect("publish");
        e
    }

    /// Another operator acts over HTTP.
    fn act(&self, id: &str, action: &str, body: Value) -> http::Response {
        let path = format!("/v1/escalations/{}/{action}", percent_encode(id));
        http::post_json(&self.addr, &path, &body).expect("action over http")
    }
}

impl Drop for InProcessApi {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

/// Percent-encodes a path segment.
fn percent_encode(s: &str) -> String {
    s.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

#[test]
fn page_follows_the_feed_and_acts() {
    let api = InProcessApi::start();
    let mahallas = api.registry.mahallas().len();
    let ui = Ui::open(&format!("http://{}", api.proxy.addr), "page-in-process");
    ui.wait_ready(mahallas);
    assert_eq!(
        ui.entry("none"),
        Value::Null,
        "the feed starts empty on an empty store"
    );

    // A new escalation appears live, highlighted, and recolours its mahalla.
    let first = api.open_escalation(5, 1, RiskLevel::Critical);
    ui.item(&first.id, 20);
    let entry = ui.entry(&first.id);
    assert_eq!(entry["status"], "open", "{entry}");
    let class = entry["class"].as_str().unwrap_or_default();
    assert!(
        class.contains("flash-new") && class.contains("lvl-critical"),
        "{entry}"
    );
    let name = &api.registry.mahallas()[5].name;
    assert!(
        entry["text"]
            .as_str()
            .is_some_and(|t| t.contains(name.as_str()) && t.contains("drug handoff ×3")),
        "{entry}"
    );
    let path_class = ui.js(
        "return document.querySelector(`#map path[data-id=\"${CSS.escape(arguments[0])}\"]`).getAttribute('class')",
        json!([first.mahalla_id]),
    );
    assert!(
        path_class
            .as_str()
            .is_some_and(|c| c.contains("lvl-critical") && c.contains("open")),
        "{path_class}"
    );

    // Acknowledge from the page: the operator's name is asked once and kept.
    ui.js("localStorage.removeItem('posbon.operator')", json!([]));
    ui.start_action(&first.id, "acknowledge");
    ui.confirm_action(Some("Operator Aziza"));
    let v = ui.wait_status(&first.id, "acknowledged", 20);
    assert_eq!(v["shown"], "acknowledged", "{v}");
    assert!(!ui.dialog_open(), "the dialog closes after a success");
    assert_eq!(
        ui.js("return localStorage.getItem('posbon.operator')", json!([])),
        "Operator Aziza"
    );

    // Another operator assigns it: the page follows from the feed.
    let r = api.act(
        &first.id,
        "assign",
        json!({"by": "district desk", "assignee": "inspector Karimov"}),
    );
    assert_eq!(r.status, 200, "{}", r.text());
    let v = ui.wait_status(&first.id, "assigned", 20);
    assert!(
        v["text"]
            .as_str()
            .is_some_and(|t| t.contains("assigned to inspector Karimov")),
        "{v}"
    );

    // A refused action shows the server's reason: someone acknowledges the
    // second escalation while this operator has the dialog open.
    let second = api.open_escalation(9, 1, RiskLevel::High);
    ui.item(&second.id, 20);
    ui.start_action(&second.id, "acknowledge");
    let prefilled = ui.js("return document.getElementById('act-by').value", json!([]));
    assert_eq!(prefilled, "Operator Aziza", "the name is not asked again");
    let r = api.act(&second.id, "acknowledge", json!({"by": "faster colleague"}));
    assert_eq!(r.status, 200, "{}", r.text());
    ui.confirm_action(None);
    let error = ui.wait("the refusal in the dialog", 20, |b| {
        let v = b.execute(
            "const e = document.getElementById('act-error'); return e.hidden ? null : e.innerText",
            json!([]),
        )?;
        Ok(v.as_str().map(str::to_owned))
    });
    assert!(
        error.contains("409") && error.contains("acknowledged already"),
        "{error}"
    );
    assert!(ui.dialog_open(), "the dialog stays open on a refusal");
    let cancel = ui.ok(ui.browser.find("#act-cancel"));
    ui.ok(ui.browser.click(&cancel));
    ui.wait_status(&second.id, "acknowledged", 20);

    // A network outage: the feed reconnects by itself and resumes after the
    // last message it saw (Last-Event-ID), so what opened meanwhile shows.
    api.proxy.outage();
    ui.wait("the page to notice the outage", 30, |b| {
        let v = b.execute(
            "return document.getElementById('conn').dataset.state",
            json!([]),
        )?;
        Ok((v == "reconnecting").then_some(()))
    });
    let third = api.open_escalation(12, 1, RiskLevel::Elevated);
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(
        ui.entry(&third.id),
        Value::Null,
        "nothing arrives during the outage"
    );
    api.proxy.restore();
    ui.item(&third.id, 30);
    ui.wait("the feed to be live again", 30, |b| {
        let v = b.execute(
            "return document.getElementById('conn').dataset.state",
            json!([]),
        )?;
        Ok((v == "live").then_some(()))
    });
    assert_eq!(ui.entry(&first.id)["status"], "assigned");

    // Newest first, each once.
    let order = ui.js(
        "return [...document.querySelectorAll('#feed li.esc')].map(li => li.dataset.id)",
        json!([]),
    );
    assert_eq!(order, json!([third.id, second.id, first.id]));

    // Filters: by level, then by district; the listing and the feed follow.
    let shown = |ui: &Ui, want: Value, what: &str| {
        ui.wait(what, 20, |b| {
            let v = b.execute(
                "return document.getElementById('conn').dataset.state === 'live' \
                 ? [...document.querySelectorAll('#feed li.esc')].map(li => li.dataset.id) : null",
                json!([]),
            )?;
            Ok((v == want).then_some(()))
        })
    };
    let choose = |ui: &Ui, css: &str| {
        let option = ui.ok(ui.browser.find(css));
        ui.ok(ui.browser.click(&option));
    };
    choose(&ui, "#f-level option[value=\"critical\"]");
    shown(&ui, json!([first.id]), "only the critical escalation");
    choose(&ui, "#f-level option[value=\"\"]");
    choose(
        &ui,
        &format!("#f-district option[value=\"{}\"]", second.district_id),
    );
    let in_district: Vec<&str> = [&third, &second, &first]
        .iter()
        .filter(|e| e.district_id == second.district_id)
        .map(|e| e.id.as_str())
        .collect();
    assert!(
        in_district.len() < 3,
        "the escalations are in different districts"
    );
    shown(&ui, json!(in_district), "the escalations of one district");
    choose(&ui, "#f-district option[value=\"\"]");
    shown(
        &ui,
        json!([third.id, second.id, first.id]),
        "every escalation again",
    );

    // The mahalla's detail from the feed.
    let li = ui.item(&first.id, 5);
    let link = ui.ok(ui.browser.find_in(&li, "button.mahalla"));
    ui.ok(ui.browser.click(&link));
    let detail = ui.wait("the mahalla detail", 20, |b| {
        let v = b.execute(
            "const d = document.getElementById('detail'); \
             return d.hidden || !d.querySelector('table') ? null : {title: document.getElementById('detail-title').innerText, text: d.innerText}",
            json!([]),
        )?;
        Ok((!v.is_null()).then_some(v))
    });
    assert_eq!(detail["title"], name.as_str(), "{detail}");
    assert!(
        detail["text"]
            .as_str()
            .is_some_and(|t| t.contains(&first.id)),
        "{detail}"
    );

    ui.screenshot("command-centre-in-process.png");
    let errors = ui.js_errors();
    assert!(errors.is_empty(), "javascript errors: {errors:?}");

    // The content security policy holds: an injected inline script does not
    // run, and the page records the violation.
    let ran = ui.js(
        "const s = document.createElement('script'); s.textContent = 'window.injected = 1'; \
         document.body.append(s); return window.injected === 1",
        json!([]),
    );
    assert_eq!(ran, false, "an inline script ran");
    ui.wait("the policy violation to be reported", 10, |b| {
        let v = b.execute("return window.posbon.errors.join(' ')", json!([]))?;
        Ok(v.as_str()
            .is_some_and(|e| e.contains("content security policy: script-src"))
            .then_some(()))
    });
}

// ------------------------------------------------------------ posbon standalone

/// `posbon standalone` on a free port with a temporary data directory.
struct Standalone {
    child: Child,
    addr: String,
    _data: tempfile::TempDir,
}

impl Standalone {
    fn start() -> Standalone {
        let data = tempfile::tempdir().expect("temp dir");
        let port = http::free_port();
        let addr = format!("127.0.0.1:{port}");
        let child = Command::new(posbon_bin())
            .args(["standalone", "--listen", &addr, "--data"])
            .arg(data.path())
            .env("POSBON__TELEMETRY__LOG_LEVEL", "warn")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("posbon standalone starts");
        let mut s = Standalone {
            child,
            addr,
            _data: data,
        };
        let deadline = Instant::now() + Duration::from_secs(120);
        loop {
            if let Ok(Some(status)) = s.child.try_wait() {
                panic!("posbon standalone exited with {status} before it was ready");
            }
            if http::get(&s.addr, "/readyz").is_ok_and(|r| r.status == 200) {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "posbon standalone was not ready on {} within 120 s",
                s.addr
            );
            std::thread::sleep(Duration::from_millis(200));
        }
        s
    }
}

impl Drop for Standalone {
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Three drug-handoff camera alerts a few metres and minutes apart, now.
fn drug_handoffs(lat: f64, lng: f64) -> String {
    let now = Utc::now();
    let run = now.timestamp_millis();
    (0..3)
        .map(|i| {
            let at = now - TimeDelta::minutes(6 - 2 * i);
            json!({
                "kind": "camera_alert",
                "id": format!("browser-test-{run}-{i}"),
                "occurred_at": at.to_rfc3339(),
                "location": {"lat": lat + 0.00005 * i as f64, "lng": lng},
                "source": "safe-city-va",
                "camera_id": format!("tsh-test-{i}"),
                "detection": "drug_handoff",
                "confidence": 0.9,
                "model": "va-detector/3.4.1",
            })
            .to_string()
        })
        .collect::<Vec<_>>()
        .join("\n")
}

#[test]
fn command_centre_on_posbon_standalone() {
    let server = Standalone::start();
    let addr = server.addr.clone();

    // The served registry is the simulated Tashkent one: a point inside one
    // of its mahallas, checked with the exact lookup ingest uses.
    let registry = posbon_sim::load_registry(None).expect("city registry");
    let mahallas = http::get(&addr, "/v1/registry")
        .and_then(|r| r.json())
        .expect("registry")["mahallas"]
        .as_u64()
        .expect("mahalla count") as usize;
    assert_eq!(mahallas, registry.mahallas().len(), "the served registry");
    let (mahalla_id, lat, lng) = registry
        .mahallas()
        .iter()
        .skip(40)
        .find_map(|m| {
            // The mean of the outer ring's vertices, when it is inside.
            let ring = m.geometry.0.first()?.exterior();
            let n = ring.coords().count() as f64;
            let lng = ring.coords().map(|c| c.x).sum::<f64>() / n;
            let lat = ring.coords().map(|c| c.y).sum::<f64>() / n;
            let place = registry.locate(lat, lng).ok()?;
            let inside = place.mahalla.map(|i| &registry.mahalla(i).id) == Some(&m.id);
            inside.then(|| (m.id.clone(), lat, lng))
        })
        .expect("a mahalla that holds the mean of its vertices");

    let ui = Ui::open(&format!("http://{addr}"), "standalone");
    ui.wait_ready(mahallas);

    // The drug-handoff cluster rule fires on three camera alerts.
    let body = drug_handoffs(lat, lng);
    let r = http::request(
        &addr,
        "POST",
        "/v1/events",
        &[("Content-Type", "application/x-ndjson")],
        body.as_bytes(),
        Duration::from_secs(30),
    )
    .expect("post events");
    assert_eq!(r.status, 200, "{}", r.text());
    let verdict = r.json().expect("verdict");
    assert_eq!(verdict["accepted"], 3, "{verdict}");

    let id = ui.wait("an escalation in the feed", 90, |b| {
        let v = b.execute(
            "const li = [...document.querySelectorAll('#feed li.esc')].find(li => li.dataset.mahalla === arguments[0]); \
             return li ? li.dataset.id : null",
            json!([mahalla_id]),
        )?;
        Ok(v.as_str().map(str::to_owned))
    });
    let entry = ui.entry(&id);
    assert_eq!(entry["status"], "open", "{entry}");
    assert!(
        entry["class"]
            .as_str()
            .is_some_and(|c| c.contains("flash-new")),
        "a new escalation is highlighted: {entry}"
    );

    ui.js("localStorage.removeItem('posbon.operator')", json!([]));
    ui.start_action(&id, "acknowledge");
    ui.confirm_action(Some("Operator Dilshod"));
    let v = ui.wait_status(&id, "acknowledged", 30);
    assert_eq!(v["shown"], "acknowledged", "{v}");
    let stored = http::get(&addr, &format!("/v1/escalations/{}", percent_encode(&id)))
        .and_then(|r| r.json())
        .expect("escalation");
    assert_eq!(stored["status"], "acknowledged", "{stored}");
    assert_eq!(stored["history"][1]["by"], "Operator Dilshod", "{stored}");
    ui.screenshot("command-centre.png");

    // The SQL console: a table, then a readable error.
    ui.ok(ui.browser.goto(&format!("http://{addr}/#sql")));
    let query = ui.ok(ui.browser.find("#sql-query"));
    ui.ok(ui.browser.clear(&query));
    ui.ok(ui.browser.send_keys(
        &query,
        "SELECT detection, count(*) AS alerts FROM camera_alerts GROUP BY detection",
    ));
    let run = ui.ok(ui.browser.find("#sql-run"));
    ui.ok(ui.browser.click(&run));
    let table = ui.wait("the query result", 60, |b| {
        let v = b.execute(
            "const r = document.getElementById('sql-result'); return r.dataset.rows ? r.innerText : null",
            json!([]),
        )?;
        Ok(v.as_str().map(str::to_owned))
    });
    assert!(
        table.contains("detection") && table.contains("drug_handoff") && table.contains('3'),
        "{table}"
    );
    ui.screenshot("command-centre-sql.png");
    // Every example query the console offers runs.
    let examples = ui.js("return window.posbon.sqlExamples", json!([]));
    let examples = examples.as_array().expect("examples");
    assert!(examples.len() >= 5, "{examples:?}");
    for e in examples {
        let r = http::post_json(&addr, "/v1/sql", &json!({"query": e["query"]})).expect("sql");
        assert_eq!(r.status, 200, "example {}: {}", e["label"], r.text());
    }
    ui.ok(ui.browser.clear(&query));
    ui.ok(ui
        .browser
        .send_keys(&query, "SELECT nope FROM camera_alerts"));
    ui.ok(ui.browser.click(&run));
    let error = ui.wait("the query error", 60, |b| {
        let v = b.execute(
            "const e = document.getElementById('sql-error'); return e.hidden ? null : e.innerText",
            json!([]),
        )?;
        Ok(v.as_str().map(str::to_owned))
    });
    assert!(
        error.contains("400") && error.contains("nope"),
        "a readable error: {error}"
    );

    // The daily report of today (Tashkent), generated on demand: it counts
    // the three camera alerts.
    ui.ok(ui.browser.goto(&format!("http://{addr}/#report")));
    ui.wait("the report view", 30, |b| {
        let v = b.execute(
            "return document.getElementById('report-status').innerText === '' && \
             document.getElementById('report-body').innerText !== ''",
            json!([]),
        )?;
        Ok((v == true).then_some(()))
    });
    let today = Utc::now()
        .with_timezone(&chrono::FixedOffset::east_opt(5 * 3600).expect("offset"))
        .format("%Y-%m-%d")
        .to_string();
    ui.js(
        "const d = document.getElementById('report-date'); d.value = arguments[0]; \
         d.dispatchEvent(new Event('change'));",
        json!([today]),
    );
    let generate = ui.ok(ui.browser.find("#report-generate"));
    ui.ok(ui.browser.click(&generate));
    let report = ui.wait("the daily report of today", 120, |b| {
        let v = b.execute(
            "const r = document.getElementById('report-body'); \
             const h = r.querySelector('h3'); \
             const cards = Object.fromEntries([...r.querySelectorAll('.card')].map(c => [c.querySelector('.k').innerText, c.querySelector('.v').innerText])); \
             return h && h.innerText.includes(arguments[0]) && r.querySelector('#report-mahallas table') \
               ? {cards, text: r.innerText.slice(0, 4000)} : null",
            json!([today]),
        )?;
        Ok((!v.is_null()).then_some(v))
    });
    assert_eq!(report["cards"]["Camera alerts"], "3", "{report:#}");
    assert!(
        report["text"].as_str().is_some_and(
            |t| t.contains("Mahallas, most harm first") && t.contains("Crime-free mahallas")
        ),
        "{report:#}"
    );
    ui.screenshot("command-centre-report.png");
    let errors = ui.js_errors();
    assert!(errors.is_empty(), "javascript errors: {errors:?}");
}
