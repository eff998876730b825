//! The command-centre page in headless Chromium (Debian `chromium` and
//! `chromium-driver`, driven over WebDriver by [`posbon_tests::webdriver`]).
//!
//! * `page_follows_the_feed_and_acts`: the API in this process on the
//!   in-memory bus and store; escalations are published on ALERTS by the test.
//!   Without a session the page shows only its login form; a wrong password
//!   is refused with the server's message; the operator logs in through the
//!   form. The page draws every mahalla, shows a new escalation live
//!   (highlighted, its mahalla recoloured), acknowledges it through the
//!   dialog (no name to type: the history names the logged-in user), follows
//!   a colleague's assignment from the feed, shows a refused action (409)
//!   with the server's message, resumes the feed after a network outage (a
//!   proxy drops every connection) with what opened meanwhile, and opens a
//!   mahalla's detail from the feed. A session ended on the server brings
//!   the login form back; so does "Log out", after which `/v1/me` answers
//!   401 to the page and to the old cookie.
//! * `command_centre_on_posbon_standalone`: the real `posbon standalone`;
//!   three drug-handoff camera alerts posted to `/v1/events` make the
//!   escalator open an escalation, which the page (an operator logged in)
//!   shows live and acknowledges; after a logout, an analyst logs in: no
//!   action buttons, and the SQL console answers a query as a table and a
//!   bad one with a readable error, and the daily report renders.
//!
//! The test users are in the constants below: both servers must know them
//! (the `AUTH-SETUP` comments say where they are created).
//!
//! Screenshots are saved under `<target>/tmp/test-artefacts/` (the path is
//! printed), and on a failure with the page's state in the message.

use posbon_model::Span;
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
use posbon_model::{Escalation, EscalationStatus, MeasureName, RiskLevel, RuleMeasure};
use posbon_store::{MemoryStore, Store};
use posbon_telemetry::Metrics;
use posbon_tests::webdriver::{Browser, Element};
use posbon_tests::{http, posbon_bin};
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;

// The test users, each with the whole country as scope. AUTH-SETUP: the
// servers of these tests must know them with these passwords (12 characters
// at least); see `InProcessApi::start` and `Standalone::start`.
/// Role operator: logs in through the page's form and acts (both tests).
const OPERATOR: &str = "operator-test";
const OPERATOR_PASSWORD: &str = "operator-test-password";
/// Role operator: acts over HTTP beside the page (in process).
const COLLEAGUE: &str = "colleague-test";
const COLLEAGUE_PASSWORD: &str = "colleague-test-password";
/// Role analyst: the SQL console and the daily report (standalone).
const ANALYST: &str = "analyst-test";
const ANALYST_PASSWORD: &str = "analyst-test-password";
/// Role producer: posts the camera alerts to `/v1/events` (standalone).
const PRODUCER: &str = "producer-test";
const PRODUCER_PASSWORD: &str = "producer-test-password";

/// The page's session cookie.
const SESSION_COOKIE: &str = "posbon_session";

/// `name=value` of the session cookie that a response sets, if any.
fn session_cookie_of(r: &http::Response) -> Option<String> {
    r.headers
        .iter()
        .filter(|(k, _)| k == "set-cookie")
        .filter_map(|(_, v)| v.split(';').next())
        .map(str::trim)
        .find(|c| {
            c.strip_prefix(SESSION_COOKIE)
                .and_then(|rest| rest.strip_prefix('='))
                .is_some_and(|value| !value.is_empty())
        })
        .map(str::to_owned)
}

/// A session of the test's own over HTTP, the way the page has one: the
/// cookie and CSRF token of `POST /v1/login`.
struct HttpSession {
    addr: String,
    /// `posbon_session=<id>`.
    cookie: String,
    csrf: String,
    /// What the server says of this user: name, role, scope, permissions.
    me: Value,
}

impl HttpSession {
    /// Logs `name` in with `password`.
    fn login(addr: &str, name: &str, password: &str) -> HttpSession {
        let r = http::post_json(
            addr,
            "/v1/login",
            &json!({"name": name, "password": password}),
        )
        .expect("POST /v1/login");
        assert_eq!(
            r.status,
            200,
            "AUTH-SETUP: the server has no user {name:?} with the test's password: {}",
            r.text()
        );
        let cookie = session_cookie_of(&r).unwrap_or_else(|| {
            panic!(
                "POST /v1/login set no {SESSION_COOKIE} cookie: {:?}",
                r.headers
            )
        });
        let me = r.json().expect("the login answer");
        HttpSession::new(addr, cookie, me)
    }

    /// The session of an existing cookie (`posbon_session=<id>`, e.g. the
    /// browser's), with its CSRF token from `/v1/me`.
    fn of_cookie(addr: &str, cookie: &str) -> HttpSession {
        let r = http::request(
            addr,
            "GET",
            "/v1/me",
            &[("Cookie", cookie)],
            &[],
            Duration::from_secs(30),
        )
        .expect("GET /v1/me");
        assert_eq!(r.status, 200, "the cookie is not a session: {}", r.text());
        HttpSession::new(addr, cookie.to_owned(), r.json().expect("/v1/me"))
    }

    fn new(addr: &str, cookie: String, me: Value) -> HttpSession {
        let csrf = me["csrf"]
            .as_str()
            .unwrap_or_else(|| panic!("no csrf token in {me}"))
            .to_owned();
        HttpSession {
            addr: addr.to_owned(),
            cookie,
            csrf,
            me,
        }
    }

    /// Whether the server gave this user `permission`.
    fn may(&self, permission: &str) -> bool {
        self.me["permissions"]
            .as_array()
            .is_some_and(|a| a.iter().any(|p| p == permission))
    }

    /// A request with the cookie, and the CSRF token unless it is a `GET`.
    fn request(
        &self,
        method: &str,
        path: &str,
        content_type: Option<&str>,
        body: &[u8],
    ) -> http::Response {
        let mut headers = vec![("Cookie", self.cookie.as_str())];
        if method != "GET" {
            headers.push(("X-CSRF-Token", self.csrf.as_str()));
        }
        if let Some(ct) = content_type {
            headers.push(("Content-Type", ct));
        }
        http::request(
            &self.addr,
            method,
            path,
            &headers,
            body,
            Duration::from_secs(60),
        )
        .unwrap_or_else(|e| panic!("{method} {path}: {e}"))
    }

    fn get(&self, path: &str) -> http::Response {
        self.request("GET", path, None, &[])
    }

    fn post_json(&self, path: &str, body: &Value) -> http::Response {
        self.request(
            "POST",
            path,
            Some("application/json"),
            body.to_string().as_bytes(),
        )
    }
}

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
                "return {errors: (window.posbon || {}).errors, auth: document.body.dataset.auth, \
                 login: document.getElementById('login-error')?.innerText, who: document.getElementById('who')?.innerText, \
                 banner: document.getElementById('errors')?.innerText, \
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

    /// Runs an asynchronous script (its last argument is the callback).
    fn js_async(&self, script: &str, args: Value) -> Value {
        self.ok(self.browser.execute_async(script, args))
    }

    /// Waits for the login form: shown, with nothing of the application.
    /// Returns the note above the form (why it is back) and what else shows.
    fn wait_login_form(&self) -> Value {
        self.wait("the login form", 30, |b| {
            let v = b.execute(
                "const $ = (id) => document.getElementById(id); \
                 return document.body.dataset.auth === 'out' && !$('login').hidden \
                   ? {note: $('login-note').hidden ? '' : $('login-note').innerText, \
                      main: !$('main').hidden, who: !$('who').hidden, nav: !$('views-nav').hidden, \
                      feed: document.querySelectorAll('#feed li').length, \
                      paths: document.querySelectorAll('#map path').length} \
                   : null",
                json!([]),
            )?;
            Ok((!v.is_null()).then_some(v))
        })
    }

    /// Types `name` and `password` into the login form and submits it.
    fn fill_login(&self, name: &str, password: &str) {
        for (css, text) in [("#login-name", name), ("#login-password", password)] {
            let field = self.ok(self.browser.find(css));
            self.ok(self.browser.clear(&field));
            self.ok(self.browser.send_keys(&field, text));
        }
        let submit = self.ok(self.browser.find("#login-submit"));
        self.ok(self.browser.click(&submit));
    }

    /// Logs in through the form and waits until the page says who is in.
    fn login(&self, name: &str, password: &str) {
        self.wait_login_form();
        self.fill_login(name, password);
        let outcome = self.wait(&format!("{name} to be logged in"), 30, |b| {
            let v = b.execute(
                "const e = document.getElementById('login-error'); \
                 if (!e.hidden) return {refused: e.innerText}; \
                 return document.body.dataset.auth === 'in' ? {who: document.getElementById('who').dataset.name} : null",
                json!([]),
            )?;
            Ok((!v.is_null()).then_some(v))
        });
        if let Some(refused) = outcome["refused"].as_str() {
            self.fail(&format!(
                "AUTH-SETUP: the page refused {name}'s login: {refused}"
            ));
        }
        assert_eq!(outcome["who"], name, "{outcome}");
    }

    /// Submits a wrong password: the form stays, with the server's reason.
    /// Returns `{text, code}` of the error shown.
    fn login_refused(&self, name: &str, password: &str) -> Value {
        self.wait_login_form();
        self.fill_login(name, password);
        let v = self.wait("the login error", 20, |b| {
            let v = b.execute(
                "const e = document.getElementById('login-error'); \
                 return e.hidden ? null : {text: e.innerText, code: e.dataset.code, auth: document.body.dataset.auth, \
                 password: document.getElementById('login-password').value}",
                json!([]),
            )?;
            Ok((!v.is_null()).then_some(v))
        });
        assert_eq!(v["auth"], "out", "a refused login shows nothing else: {v}");
        assert_eq!(v["password"], "", "the wrong password is cleared: {v}");
        v
    }

    /// Who the header says is logged in.
    fn who(&self) -> Value {
        self.js(
            "const w = document.getElementById('who'); \
             return {shown: !w.hidden, name: w.dataset.name, role: w.dataset.role, \
             scope: document.getElementById('who-scope').textContent, \
             views: [...document.querySelectorAll('.top nav a')].filter(a => !a.hidden).map(a => a.dataset.view)}",
            json!([]),
        )
    }

    /// The browser's session cookie as `posbon_session=<id>`, checked to be
    /// out of the page's reach (`HttpOnly`) and same-site only.
    fn session_cookie(&self) -> String {
        let cookies = self.ok(self.browser.cookies());
        let Some(c) = cookies.iter().find(|c| c["name"] == SESSION_COOKIE) else {
            self.fail(&format!(
                "no {SESSION_COOKIE} cookie in the browser: {cookies:?}"
            ));
        };
        assert_eq!(c["httpOnly"], true, "{c}");
        assert_eq!(c["sameSite"], "Strict", "{c}");
        format!(
            "{SESSION_COOKIE}={}",
            c["value"].as_str().unwrap_or_default()
        )
    }

    /// The status `GET /v1/me` gets from the page (with whatever cookie the
    /// browser holds).
    fn me_status(&self) -> Value {
        self.js_async(
            "const done = arguments[arguments.length - 1]; \
             fetch('/v1/me', {credentials: 'same-origin'}).then(r => done(r.status), e => done(String(e)))",
            json!([]),
        )
    }

    /// Clicks "Log out": the login form comes back with nothing of the
    /// session on screen, and the session is over on the server: `/v1/me`
    /// answers 401 to the page and to the old cookie replayed on `addr`.
    fn logout_and_check(&self, addr: &str) {
        let cookie = self.session_cookie();
        assert_eq!(self.me_status(), 200, "the session works before the logout");
        let button = self.ok(self.browser.find("#logout"));
        self.ok(self.browser.click(&button));
        let form = self.wait_login_form();
        assert!(
            form["note"]
                .as_str()
                .is_some_and(|n| n.contains("logged out")),
            "{form}"
        );
        assert_eq!(
            json!([
                form["main"],
                form["who"],
                form["nav"],
                form["feed"],
                form["paths"]
            ]),
            json!([false, false, false, 0, 0]),
            "nothing of the session stays on screen: {form}"
        );
        assert_eq!(self.me_status(), 401, "/v1/me after the logout");
        let r = http::request(
            addr,
            "GET",
            "/v1/me",
            &[("Cookie", &cookie)],
            &[],
            Duration::from_secs(30),
        )
        .expect("GET /v1/me");
        assert_eq!(
            r.status,
            401,
            "the old session cookie still works after the logout: {}",
            r.text()
        );
        let left = self.ok(self.browser.cookies());
        assert!(
            !left
                .iter()
                .any(|c| c["name"] == SESSION_COOKIE && c["value"] != ""),
            "the logout leaves a session cookie in the browser: {left:?}"
        );
    }

    /// Waits until the page is logged in and shows `view` (after a reload).
    fn wait_view(&self, view: &str) {
        self.wait(&format!("the {view} view"), 30, |b| {
            let v = b.execute(
                "return document.body.dataset.auth === 'in' && !document.getElementById('view-' + arguments[0]).hidden",
                json!([view]),
            )?;
            Ok((v == true).then_some(()))
        });
    }

    /// The text of the history of escalation `id` in the feed (also while
    /// its `<details>` is closed).
    fn history(&self, id: &str) -> String {
        let v = self.js(
            "const li = [...document.querySelectorAll('#feed li.esc')].find(li => li.dataset.id === arguments[0]); \
             return li ? li.querySelector('details ol').textContent : null",
            json!([id]),
        );
        v.as_str().map(str::to_owned).unwrap_or_default()
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

    /// Confirms the action in the dialog (the server records who acts).
    fn confirm_action(&self) {
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
                http: Default::default(),
                nats_urls: vec![],
                registry: None,
                renotify_after: Span::from_secs(3600),
                renotify_check: Span::from_secs(5),
                feed_keepalive: Span::from_secs(5),
                max_list: 1000,
                max_feed_clients: 2048,
                max_feed_clients_per_caller: 32,
                max_feed_replay: 10_000,
            };
            let auth = posbon_auth::Auth::new(store.clone(), registry.clone(), Default::default())
                .expect("auth");
            for (name, password) in [
                (OPERATOR, OPERATOR_PASSWORD),
                (COLLEAGUE, COLLEAGUE_PASSWORD),
            ] {
                auth.identities()
                    .add_user(name, posbon_auth::Role::Operator, vec![], password)
                    .await
                    .expect("test user");
            }
            let state = ApiState::new(
                config,
                bus.clone(),
                store,
                registry.clone(),
                auth.clone(),
                &Metrics::new(),
            )
            .expect("api state");
            tokio::spawn(posbon_api::run_lifecycle(state.clone(), shutdown.clone()));
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
                .await
                .expect("bind");
            let addr = listener.local_addr().expect("addr").to_string();
            let app = posbon_auth::http::identity_routes(auth.clone())
                .merge(posbon_api::routes(state))
                .into_router(auth);
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
            measure: Some(RuleMeasure {
                name: MeasureName::Count,
                value: 3.0,
                threshold: 3.0,
                z: Some(6.25),
                min_z: Some(3.0),
            }),
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

    /// Another operator acts over HTTP, in their own session (the server
    /// records them as the one who acted: the body has no `by`).
    fn act(&self, who: &HttpSession, id: &str, action: &str, body: Value) -> http::Response {
        assert_eq!(who.addr, self.addr, "a session of this API");
        let path = format!("/v1/escalations/{}/{action}", percent_encode(id));
        who.post_json(&path, &body)
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
    let colleague = HttpSession::login(&api.addr, COLLEAGUE, COLLEAGUE_PASSWORD);
    let ui = Ui::open(&format!("http://{}", api.proxy.addr), "page-in-process");

    // Without a session: the login form and nothing else.
    let form = ui.wait_login_form();
    assert_eq!(
        json!([form["main"], form["who"], form["paths"]]),
        json!([false, false, 0]),
        "{form}"
    );
    assert_eq!(ui.me_status(), 401, "no session yet");

    // A wrong password is refused with the server's message.
    let refused = ui.login_refused(OPERATOR, "not the password at all");
    assert_eq!(refused["code"], "invalid_credentials", "{refused}");
    assert!(
        refused["text"]
            .as_str()
            .is_some_and(|t| !t.trim().is_empty()),
        "{refused}"
    );

    // The right one opens the page, which says who is logged in.
    ui.login(OPERATOR, OPERATOR_PASSWORD);
    ui.wait_ready(mahallas);
    let who = ui.who();
    assert_eq!(
        json!([who["shown"], who["name"], who["role"], who["scope"]]),
        json!([true, OPERATOR, "operator", "whole country"]),
        "{who}"
    );
    // An operator may not use the SQL console or read reports: neither is offered.
    assert_eq!(who["views"], json!(["map"]), "{who}");
    // Silences are shown to whoever reads escalations; only those who may
    // manage them get the form.
    let silences = ui.js(
        "return {panel: !document.getElementById('silences').hidden, \
         form: !document.getElementById('silence-form').hidden}",
        json!([]),
    );
    assert_eq!(
        silences,
        json!({"panel": true, "form": false}),
        "{silences}"
    );
    let cookie = ui.session_cookie();
    assert!(
        !ui.js("return document.cookie", json!([]))
            .as_str()
            .is_some_and(|c| c.contains(SESSION_COOKIE)),
        "the page's script cannot read the session cookie ({cookie})"
    );
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

    // Acknowledge from the page: no name to type, the server records the
    // logged-in user, and the history says so.
    ui.start_action(&first.id, "acknowledge");
    let dialog = ui.js(
        "return {nameField: document.getElementById('act-by') !== null, who: document.getElementById('act-who').innerText}",
        json!([]),
    );
    assert_eq!(dialog["nameField"], false, "{dialog}");
    assert!(
        dialog["who"].as_str().is_some_and(|w| w.contains(OPERATOR)),
        "{dialog}"
    );
    ui.confirm_action();
    let v = ui.wait_status(&first.id, "acknowledged", 20);
    assert_eq!(v["shown"], "acknowledged", "{v}");
    assert!(!ui.dialog_open(), "the dialog closes after a success");
    let history = ui.history(&first.id);
    assert!(
        history.contains(&format!("acknowledge by {OPERATOR}")),
        "{history}"
    );
    let stored = colleague
        .get(&format!("/v1/escalations/{}", percent_encode(&first.id)))
        .json()
        .expect("escalation");
    assert_eq!(stored["history"][1]["by"], OPERATOR, "{stored}");

    // Another operator assigns it: the page follows from the feed.
    let r = api.act(
        &colleague,
        &first.id,
        "assign",
        json!({"assignee": "inspector Karimov"}),
    );
    assert_eq!(r.status, 200, "{}", r.text());
    let v = ui.wait_status(&first.id, "assigned", 20);
    assert!(
        v["text"]
            .as_str()
            .is_some_and(|t| t.contains("assigned to inspector Karimov")),
        "{v}"
    );
    let history = ui.history(&first.id);
    assert!(
        history.contains(&format!("assign by {COLLEAGUE}")),
        "{history}"
    );

    // A refused action shows the server's reason: someone acknowledges the
    // second escalation while this operator has the dialog open.
    let second = api.open_escalation(9, 1, RiskLevel::High);
    ui.item(&second.id, 20);
    ui.start_action(&second.id, "acknowledge");
    let r = api.act(
        &colleague,
        &second.id,
        "acknowledge",
        json!({"note": "on my way"}),
    );
    assert_eq!(r.status, 200, "{}", r.text());
    ui.confirm_action();
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

    // Numbers in the page's language: the measure's z of 6.25 reads "6,25"
    // in Russian, with its decimal comma, in the catalog's own words.
    let catalog = ui.ok(ui.ok(http::get(&api.addr, "/i18n.json?lang=ru")).json());
    let measure_z = catalog["messages"]["feed.measure_z"]
        .as_str()
        .unwrap_or("?")
        .replace("{z}", "6,25")
        .replace("{min_z}", "3");
    ui.ok(ui
        .browser
        .goto(&format!("http://{}/?lang=ru", api.proxy.addr)));
    let feed = ui.wait("the feed in Russian", 30, |b| {
        let v = b.execute(
            "return document.documentElement.lang === 'ru' && document.getElementById('feed').children.length \
               ? document.getElementById('feed').innerText : null",
            json!([]),
        )?;
        Ok((!v.is_null()).then_some(v))
    });
    let feed = feed.as_str().unwrap_or_default();
    assert!(feed.contains(&measure_z), "{measure_z:?} in {feed}");
    assert!(!feed.contains("6.25"), "a decimal point in Russian: {feed}");
    // Back to English (the choice is kept) for what follows.
    ui.ok(ui
        .browser
        .goto(&format!("http://{}/?lang=en", api.proxy.addr)));
    ui.wait("the feed in English", 30, |b| {
        let v = b.execute(
            "return document.documentElement.lang === 'en' && document.getElementById('feed').children.length \
               ? true : null",
            json!([]),
        )?;
        Ok((!v.is_null()).then_some(v))
    });
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

    // The session ends on the server (logged out from elsewhere): the page's
    // next request is answered 401 (the map's refresh comes every 10 s) and
    // the login form is back, with nothing of the session on screen.
    let elsewhere = HttpSession::of_cookie(&api.addr, &ui.session_cookie());
    let r = elsewhere.request("POST", "/v1/logout", None, &[]);
    assert_eq!(r.status, 204, "{}", r.text());
    let form = ui.wait_login_form();
    assert!(
        form["note"]
            .as_str()
            .is_some_and(|n| n.contains("session has ended")),
        "{form}"
    );
    assert_eq!(
        json!([form["main"], form["feed"], form["paths"]]),
        json!([false, 0, 0]),
        "{form}"
    );

    // Logged in again, the page is as the store is; then "Log out" ends the
    // session for good.
    ui.login(OPERATOR, OPERATOR_PASSWORD);
    ui.wait_ready(mahallas);
    ui.item(&third.id, 20);
    assert_eq!(ui.entry(&first.id)["status"], "assigned");
    ui.logout_and_check(&api.addr);
    let errors = ui.js_errors();
    assert!(errors.is_empty(), "javascript errors: {errors:?}");
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
        // The test's users, made with the bootstrap admin token the first
        // start wrote, through `posbon users add` as an admin would.
        let admin = std::fs::read_to_string(s._data.path().join("admin.token"))
            .expect("the first start writes <data>/admin.token");
        for (name, role, password) in [
            (OPERATOR, "operator", OPERATOR_PASSWORD),
            (ANALYST, "analyst", ANALYST_PASSWORD),
            (PRODUCER, "producer", PRODUCER_PASSWORD),
        ] {
            use std::io::Write as _;
            let mut child = Command::new(posbon_bin())
                .args(["users", "add", name, "--role", role, "--password-stdin"])
                .args(["--api", &format!("http://{}", s.addr)])
                .env("POSBON_TOKEN", admin.trim())
                .stdin(Stdio::piped())
                .stdout(Stdio::null())
                .stderr(Stdio::inherit())
                .spawn()
                .expect("posbon users add");
            child
                .stdin
                .take()
                .expect("stdin")
                .write_all(format!("{password}\n").as_bytes())
                .expect("password");
            let status = child.wait().expect("posbon users add ends");
            assert!(status.success(), "posbon users add {name} failed: {status}");
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

/// `posbon silences add`, `list` and `expire` against the running system,
/// as an admin; an operator's token is refused.
fn silences_through_the_cli(server: &Standalone) {
    let admin =
        std::fs::read_to_string(server._data.path().join("admin.token")).expect("admin token");
    let district = posbon_sim::load_registry(None)
        .expect("registry")
        .mahallas()[0]
        .district_id
        .clone();
    let cli = |token: &str, args: &[&str]| {
        Command::new(posbon_bin())
            .arg("silences")
            .args(args)
            .args(["--api", &format!("http://{}", server.addr)])
            .env("POSBON_TOKEN", token)
            .stdin(Stdio::null())
            .output()
            .expect("posbon silences")
    };
    let added = cli(
        admin.trim(),
        &[
            "add",
            "--district",
            &district,
            "--for",
            "2h",
            "--reason",
            "drill",
        ],
    );
    assert!(
        added.status.success(),
        "{}",
        String::from_utf8_lossy(&added.stderr)
    );
    let id = String::from_utf8_lossy(&added.stdout).trim().to_owned();
    assert!(id.starts_with("sil-"), "{id}");
    let listed = cli(admin.trim(), &["list"]);
    let table = String::from_utf8_lossy(&listed.stdout);
    assert!(table.contains(&id) && table.contains("drill"), "{table}");
    let bad = cli(
        admin.trim(),
        &[
            "add",
            "--district",
            &district,
            "--for",
            "soon",
            "--reason",
            "x",
        ],
    );
    assert!(!bad.status.success());
    assert!(
        String::from_utf8_lossy(&bad.stderr).contains("--for"),
        "the bad value is named"
    );
    let ended = cli(admin.trim(), &["expire", &id]);
    assert!(
        ended.status.success(),
        "{}",
        String::from_utf8_lossy(&ended.stderr)
    );
    let again = cli(admin.trim(), &["expire", &id]);
    assert!(
        !again.status.success(),
        "an ended silence does not end twice"
    );
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
    let analyst = HttpSession::login(&addr, ANALYST, ANALYST_PASSWORD);
    for p in ["read_map", "read_sql", "read_reports", "generate_reports"] {
        assert!(
            analyst.may(p),
            "AUTH-SETUP: {ANALYST} must have {p} (role analyst): {}",
            analyst.me
        );
    }
    let producer = HttpSession::login(&addr, PRODUCER, PRODUCER_PASSWORD);
    silences_through_the_cli(&server);

    // The served registry is the simulated Tashkent one: a point inside one
    // of its mahallas, checked with the exact lookup ingest uses.
    let registry = posbon_sim::load_registry(None).expect("city registry");
    let mahallas = analyst.get("/v1/registry").json().expect("registry")["mahallas"]
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

    // The page asks for a login; a wrong password is refused with the
    // server's message; the operator logs in.
    let ui = Ui::open(&format!("http://{addr}"), "standalone");
    let refused = ui.login_refused(OPERATOR, "wrong password, surely");
    assert_eq!(refused["code"], "invalid_credentials", "{refused}");
    ui.login(OPERATOR, OPERATOR_PASSWORD);
    ui.wait_ready(mahallas);
    let who = ui.who();
    assert_eq!(
        json!([who["name"], who["role"], who["views"]]),
        json!([OPERATOR, "operator", ["map"]]),
        "{who}"
    );

    // The drug-handoff cluster rule fires on three camera alerts.
    let body = drug_handoffs(lat, lng);
    let r = producer.request(
        "POST",
        "/v1/events",
        Some("application/x-ndjson"),
        body.as_bytes(),
    );
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

    ui.start_action(&id, "acknowledge");
    ui.confirm_action();
    let v = ui.wait_status(&id, "acknowledged", 30);
    assert_eq!(v["shown"], "acknowledged", "{v}");
    let history = ui.history(&id);
    assert!(
        history.contains(&format!("acknowledge by {OPERATOR}")),
        "{history}"
    );
    let stored = analyst
        .get(&format!("/v1/escalations/{}", percent_encode(&id)))
        .json()
        .expect("escalation");
    assert_eq!(stored["status"], "acknowledged", "{stored}");
    assert_eq!(stored["history"][1]["by"], OPERATOR, "{stored}");
    ui.screenshot("command-centre.png");

    // Log out: the login form, and the session is over.
    ui.logout_and_check(&addr);

    // An analyst: the escalation without action buttons, the SQL console
    // and the report.
    ui.login(ANALYST, ANALYST_PASSWORD);
    ui.wait_ready(mahallas);
    let who = ui.who();
    assert_eq!(who["views"], json!(["map", "report", "sql"]), "{who}");
    ui.item(&id, 30);
    let buttons = ui.js(
        "return document.querySelectorAll('#feed button[data-action]').length",
        json!([]),
    );
    assert_eq!(buttons, 0, "an analyst is offered no action");

    // The SQL console: a table, then a readable error.
    ui.ok(ui.browser.goto(&format!("http://{addr}/#sql")));
    ui.wait_view("sql");
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
        let r = analyst.post_json("/v1/sql", &json!({"query": e["query"]}));
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
    ui.wait_view("report");
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
               ? {cards, text: r.innerText.slice(0, 12000)} : null",
            json!([today]),
        )?;
        Ok((!v.is_null()).then_some(v))
    });
    assert_eq!(report["cards"]["Camera alerts"], "3", "{report:#}");
    // Today is the first day with events: no baseline to compare with, and
    // the page says so rather than showing a z against zeros.
    for card in ["z vs 7 days", "z vs 28 days"] {
        assert!(
            report["cards"][card]
                .as_str()
                .is_some_and(|t| t.contains("not enough history")
                    && t.contains("0 of ")
                    && t.contains(" days with data")),
            "{card}: {report:#}"
        );
    }
    assert!(
        report["text"].as_str().is_some_and(
            |t| t.contains("Mahallas, most harm first") && t.contains("Crime-free mahallas")
        ),
        "{report:#}"
    );
    // The focus groups of prevention, and the streaks (the records begin
    // today: nobody has been crime-free for 30 days yet).
    assert!(
        report["text"]
            .as_str()
            .is_some_and(|t| t.contains("Focus groups")
                && t.contains("Minor victims (under 18)")
                && t.contains("Crime-free streaks")
                && t.contains("Crime-free for at least")
                && t.contains("30 days")),
        "{report:#}"
    );
    // Difficult mahallas and recurrence have their sections.
    assert!(
        report["text"]
            .as_str()
            .is_some_and(|t| t.contains("Difficult mahallas:")
                && t.contains("Recurrence, last 14 days")
                && t.contains("place-based offences")
                && t.contains("Top repeat locations")),
        "{report:#}"
    );
    ui.screenshot("command-centre-report.png");
    let errors = ui.js_errors();
    assert!(errors.is_empty(), "javascript errors: {errors:?}");

    // The printable report in each language, as the browser shows it.
    for (lang, heading) in [
        ("uz", "Kunlik vaziyat hisoboti: Barcha mahallalar"),
        ("ru", "Ежедневная сводка: Все махалли"),
        ("en", "Daily situation report: All mahallas"),
    ] {
        ui.ok(ui.browser.goto(&format!(
            "http://{addr}/v1/reports/daily?date={today}&scope=nation&format=html&lang={lang}"
        )));
        let page = ui.wait("the printable report", 30, |b| {
            let v = b.execute(
                "const h = document.querySelector('h1'); \
                 return h ? {lang: document.documentElement.lang, h1: h.innerText, \
                 text: document.body.innerText} : null",
                json!([]),
            )?;
            Ok((!v.is_null()).then_some(v))
        });
        assert_eq!(page["lang"], lang, "{page:#}");
        assert_eq!(page["h1"], heading, "{page:#}");
        assert!(
            !page["text"].as_str().unwrap_or_default().contains('⟦'),
            "{lang}: a message is missing from the catalog"
        );
        ui.screenshot(&format!("report-{lang}.png"));
    }

    // The page in each language (`?lang=`): every text from the catalog the
    // server gives for it, `<html lang>` following, nothing missing.
    for lang in ["uz", "ru", "en"] {
        let catalog = ui.ok(ui
            .ok(http::get(
                &addr.to_string(),
                &format!("/i18n.json?lang={lang}"),
            ))
            .json());
        let message = |key: &str| catalog["messages"][key].as_str().unwrap_or("?").to_owned();
        ui.ok(ui.browser.goto(&format!("http://{addr}/?lang={lang}#map")));
        let page = ui.wait(&format!("the page in {lang}"), 30, |b| {
            let v = b.execute(
                "const main = document.getElementById('main'); \
                 const count = document.getElementById('feed-count').innerText; \
                 const drawn = document.querySelector('#map-layer path') \
                   && !document.getElementById('conn').classList.contains('conn-connecting'); \
                 return document.documentElement.lang === arguments[0] && !main.hidden && count && drawn \
                   ? {feed: document.getElementById('feed-title').innerText, \
                      map: document.getElementById('map-title').innerText, \
                      logout: document.getElementById('logout').innerText, \
                      chosen: document.getElementById('lang').value, \
                      options: [...document.getElementById('lang').options].map(o => o.text), \
                      text: document.body.innerText} : null",
                json!([lang]),
            )?;
            Ok((!v.is_null()).then_some(v))
        });
        assert_eq!(page["feed"], message("feed.title").as_str(), "{lang}");
        assert_eq!(page["map"], message("map.title").as_str(), "{lang}");
        assert_eq!(page["logout"], message("page.logout").as_str(), "{lang}");
        assert_eq!(page["chosen"], lang);
        assert_eq!(page["options"], json!(["English", "Oʻzbekcha", "Русский"]));
        let text = page["text"].as_str().unwrap_or_default();
        assert!(!text.contains('⟦'), "{lang}: a message is missing: {text}");
        // The escalation shows what fired its rule against what it needs, in
        // the language's words: three handoffs, before the place's baseline
        // (the engine's own escalation; no score of a baseline it did not use).
        let measure = format!(
            "{}, {}",
            message("feed.measure_count")
                .replace("{value}", "3")
                .replace("{threshold}", "3"),
            message("feed.measure_before_baseline")
        );
        assert!(text.contains(&measure), "{lang}: {measure:?} in {text}");
        if lang == "en" {
            assert!(text.contains("3 events, needs 3, before its baseline"));
        }
        assert!(text.contains(&message("feed.help_title")), "{lang}");
        if lang != "en" {
            assert_ne!(page["feed"], "Live escalations", "{lang} is not translated");
        }
        ui.screenshot(&format!("command-centre-{lang}.png"));
    }
    // The selector: the choice reloads the page in that language and is kept.
    ui.js(
        "const s = document.getElementById('lang'); s.value = 'ru'; \
         s.dispatchEvent(new Event('change', {bubbles: true}));",
        json!([]),
    );
    ui.wait("the page reloaded in Russian", 30, |b| {
        let v = b.execute(
            "return document.documentElement.lang === 'ru' && !location.search.includes('lang=') \
               && !document.getElementById('main').hidden ? true : null",
            json!([]),
        )?;
        Ok((!v.is_null()).then_some(v))
    });
    ui.ok(ui.browser.goto(&format!("http://{addr}/#map")));
    ui.wait("Russian kept for the next visit", 30, |b| {
        let v = b.execute(
            "return document.documentElement.lang === 'ru' && !document.getElementById('main').hidden \
               ? true : null",
            json!([]),
        )?;
        Ok((!v.is_null()).then_some(v))
    });
    let errors = ui.js_errors();
    assert!(errors.is_empty(), "javascript errors: {errors:?}");
}
