//! The command-centre page, served at `/`, and the small JSON routes it uses.
//!
//! | route | what |
//! |---|---|
//! | `GET /` | the page (`static/index.html`) |
//! | `GET /static/{file}` | its script modules (`main.js`, which imports the others: see [`ASSETS`]), styles (`app.css`) and icon (`favicon.svg`) |
//! | `GET /i18n.json[?lang=]` | its messages in Uzbek, Russian or English ([`messages`]) |
//! | `GET /v1/risk` | the current level of every mahalla that is not plainly normal |
//!
//! The files under `services/posbon-api/static/` are built into the binary
//! with `include_str!`: nothing is fetched from the network, there is no
//! build step and no bundler, and the page works on a machine without
//! internet access (the map is drawn as SVG from `GET /v1/mahallas`, no tile
//! server). Plain modern JavaScript as native ES modules (`<script
//! type="module">`, each file `// @ts-check` with JSDoc types), no
//! framework.
//!
//! Every file is answered with its content type, an `ETag` (a hash of its
//! bytes) and `Cache-Control: no-cache`: the browser keeps its copy and asks
//! each time whether it is still current (`If-None-Match` gets `304 Not
//! Modified`), so a new binary behind the same URL is picked up at the next
//! load without a build step that renames files. The page itself carries a
//! Content-Security-Policy that allows nothing but this origin (module
//! scripts from this origin included).
//!
//! What the page does (the parts and the API routes they use):
//!
//! * **Language**: the texts come from the `page` catalog of `posbon-i18n`
//!   (`GET /i18n.json`), in the language of `?lang=`, else the one chosen in
//!   the header's selector (kept in `localStorage`), else the browser's
//!   `Accept-Language`; numbers follow the language, times are Tashkent
//!   time as `YYYY-MM-DD HH:MM:SS` in every language.
//! * **Login**: the page checks the session (`GET /v1/me`) and shows only a
//!   login form without one (`POST /v1/login`, which sets an HttpOnly
//!   session cookie and answers a CSRF token, sent in `X-CSRF-Token` on
//!   every state-changing request). The header names the user, role and
//!   scope; views and buttons follow the permissions. "Log out" (`POST
//!   /v1/logout`), or any request answered 401, brings the login form back
//!   with nothing of the session left on screen.
//! * **Map**: the mahallas from `GET /v1/mahallas` as SVG paths (longitude
//!   scaled by the cosine of the mean latitude), filled by risk level; wheel,
//!   buttons and keys zoom, dragging pans. The levels are refreshed every
//!   10 s from `GET /v1/risk` (a few bytes per mahalla at risk instead of the
//!   whole GeoJSON again). A click, or the "find mahalla" box, opens the
//!   mahalla's recent events, hot cells and escalations
//!   (`GET /v1/mahallas/{id}`).
//! * **Live feed**: `GET /v1/escalations` (filters: region, district, level)
//!   and then `/v1/feed?since=<X-Alerts-Sequence>` over `EventSource`, which
//!   resumes with `Last-Event-ID` after a drop. Records are merged by id, an
//!   update replacing the version it supersedes (more audit steps); newest
//!   first; new and changed entries flash (CSS, no sound). Acknowledge,
//!   assign, resolve and false alarm post to
//!   `/v1/escalations/{id}/{action}`; the buttons a record offers are the
//!   server's `allowed_actions` for this user, and the server records the
//!   logged-in user as the one who acted. A refusal (409) or a bad request
//!   (400) is shown with the server's message. Silences are listed
//!   (`GET /v1/silences`) and, with the permission, made and ended.
//! * **Daily report**: `GET /v1/reports/daily?date=&scope=` rendered as
//!   tables with drill-down (nation → region → district → mahalla), the
//!   mahallas of a nation or region from `GET /v1/reports/daily/mahallas`
//!   (with the equivalent SQL, which the SQL console can open), links to the
//!   printable HTML and CSV forms, and `POST` to generate a missing report.
//! * **SQL console**: `POST /v1/sql`, results as a table, errors as the
//!   server's message.

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::Json;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use posbon_model::RiskLevel;
use serde_json::{Value, json};

use crate::ApiState;
use crate::error::ApiError;
use crate::mahallas::current_risk;

/// A file of the page.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Asset {
    /// Its name under `/static/` (`index.html` is served at `/`).
    pub(crate) name: &'static str,
    /// Its `Content-Type`.
    pub(crate) content_type: &'static str,
    /// Its bytes.
    pub(crate) body: &'static str,
}

/// The page's files, built into the binary. `index.html` loads `main.js`
/// (a module), `app.css` and `favicon.svg`; every other script is a module
/// that another one imports (a test checks both ways, and that every import
/// is here).
pub(crate) const ASSETS: &[Asset] = &[
    Asset {
        name: "index.html",
        content_type: "text/html; charset=utf-8",
        body: include_str!("../static/index.html"),
    },
    // the start: error hook, messages, session, then every part
    Asset {
        name: "main.js",
        content_type: "text/javascript; charset=utf-8",
        body: include_str!("../static/main.js"),
    },
    // `window.posbon.errors`, set up before anything else runs
    Asset {
        name: "errors.js",
        content_type: "text/javascript; charset=utf-8",
        body: include_str!("../static/errors.js"),
    },
    // the messages (`GET /i18n.json`), `t()` and plurals
    Asset {
        name: "i18n.js",
        content_type: "text/javascript; charset=utf-8",
        body: include_str!("../static/i18n.js"),
    },
    // building elements
    Asset {
        name: "dom.js",
        content_type: "text/javascript; charset=utf-8",
        body: include_str!("../static/dom.js"),
    },
    // requests to the API and their errors
    Asset {
        name: "api.js",
        content_type: "text/javascript; charset=utf-8",
        body: include_str!("../static/api.js"),
    },
    // times, numbers, levels
    Asset {
        name: "format.js",
        content_type: "text/javascript; charset=utf-8",
        body: include_str!("../static/format.js"),
    },
    // login, logout, `/v1/me`, permissions, the error banner
    Asset {
        name: "session.js",
        content_type: "text/javascript; charset=utf-8",
        body: include_str!("../static/session.js"),
    },
    // the three views and what permissions show
    Asset {
        name: "views.js",
        content_type: "text/javascript; charset=utf-8",
        body: include_str!("../static/views.js"),
    },
    // names of regions, districts and mahallas
    Asset {
        name: "registry.js",
        content_type: "text/javascript; charset=utf-8",
        body: include_str!("../static/registry.js"),
    },
    // the SVG map
    Asset {
        name: "map.js",
        content_type: "text/javascript; charset=utf-8",
        body: include_str!("../static/map.js"),
    },
    // the mahalla panel
    Asset {
        name: "detail.js",
        content_type: "text/javascript; charset=utf-8",
        body: include_str!("../static/detail.js"),
    },
    // sortable data tables
    Asset {
        name: "tables.js",
        content_type: "text/javascript; charset=utf-8",
        body: include_str!("../static/tables.js"),
    },
    // the live feed
    Asset {
        name: "feed.js",
        content_type: "text/javascript; charset=utf-8",
        body: include_str!("../static/feed.js"),
    },
    // the act dialog
    Asset {
        name: "actions.js",
        content_type: "text/javascript; charset=utf-8",
        body: include_str!("../static/actions.js"),
    },
    // the daily report
    Asset {
        name: "report.js",
        content_type: "text/javascript; charset=utf-8",
        body: include_str!("../static/report.js"),
    },
    // the SQL console
    Asset {
        name: "sql.js",
        content_type: "text/javascript; charset=utf-8",
        body: include_str!("../static/sql.js"),
    },
    // silences
    Asset {
        name: "silences.js",
        content_type: "text/javascript; charset=utf-8",
        body: include_str!("../static/silences.js"),
    },
    Asset {
        name: "app.css",
        content_type: "text/css; charset=utf-8",
        body: include_str!("../static/app.css"),
    },
    Asset {
        name: "favicon.svg",
        content_type: "image/svg+xml",
        body: include_str!("../static/favicon.svg"),
    },
];

/// The policy of the page: scripts, styles, images and connections from this
/// origin only (no CDN, no inline script).
pub(crate) const CONTENT_SECURITY_POLICY: &str = "default-src 'self'; script-src 'self'; \
     style-src 'self'; img-src 'self' data:; connect-src 'self'; font-src 'self'; \
     object-src 'none'; base-uri 'none'; frame-ancestors 'none'; form-action 'self'";

/// The asset called `name`.
pub(crate) fn asset(name: &str) -> Option<&'static Asset> {
    ASSETS.iter().find(|a| a.name == name)
}

/// The strong `ETag` of `body`: the stable 64-bit hash of its bytes
/// ([`posbon_store::stable_hash`], FNV-1a), quoted.
pub(crate) fn etag(body: &str) -> String {
    format!("\"{:016x}\"", posbon_store::stable_hash(body.as_bytes()))
}

/// Whether `If-None-Match` names `tag` (or is `*`).
fn not_modified(headers: &HeaderMap, tag: &str) -> bool {
    headers
        .get_all(header::IF_NONE_MATCH)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(|v| v.trim().trim_start_matches("W/"))
        .any(|v| v == tag || v == "*")
}

/// The response for `asset`, `304` when the client's copy is current.
fn serve(asset: &Asset, headers: &HeaderMap) -> Response {
    let tag = etag(asset.body);
    let mut response = if not_modified(headers, &tag) {
        StatusCode::NOT_MODIFIED.into_response()
    } else {
        (
            [(
                header::CONTENT_TYPE,
                HeaderValue::from_static(asset.content_type),
            )],
            asset.body,
        )
            .into_response()
    };
    let h = response.headers_mut();
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    if let Ok(value) = HeaderValue::from_str(&tag) {
        h.insert(header::ETAG, value);
    }
    if asset.name == "index.html" {
        h.insert(
            header::CONTENT_SECURITY_POLICY,
            HeaderValue::from_static(CONTENT_SECURITY_POLICY),
        );
        h.insert(
            header::REFERRER_POLICY,
            HeaderValue::from_static("same-origin"),
        );
    }
    response
}

/// `GET /`: the page.
pub(crate) async fn index(headers: HeaderMap) -> Response {
    match asset("index.html") {
        Some(a) => serve(a, &headers),
        None => ApiError::not_found("the page is missing from this build").into_response(),
    }
}

/// The files under `/static/`, for people: `main.js, ..., app.css and
/// favicon.svg`.
fn static_names() -> String {
    let names: Vec<&str> = ASSETS
        .iter()
        .map(|a| a.name)
        .filter(|name| *name != "index.html")
        .collect();
    match names.split_last() {
        Some((last, rest)) if !rest.is_empty() => format!("{} and {last}", rest.join(", ")),
        Some((last, _)) => (*last).to_owned(),
        None => String::new(),
    }
}

/// `GET /static/{file}`.
pub(crate) async fn static_file(Path(file): Path<String>, headers: HeaderMap) -> Response {
    match asset(&file).filter(|a| a.name != "index.html") {
        Some(a) => serve(a, &headers),
        None => ApiError::not_found(format!(
            "no static file {file:?}: there are {}",
            static_names()
        ))
        .into_response(),
    }
}

/// The query of `GET /i18n.json`.
#[derive(Debug, serde::Deserialize)]
pub(crate) struct LangQuery {
    /// `uz`, `ru` or `en`.
    pub(crate) lang: Option<String>,
}

/// `GET /i18n.json[?lang=uz|ru|en]`: the page's messages in the language
/// of `?lang=`, else of `Accept-Language`, else English:
/// `{"lang", "languages": [{"code", "name"}], "messages": {"section.key":
/// "text"}}` (the `page` catalog of `posbon-i18n`). Public, like the page
/// itself: the login form is translated too. An unknown `lang` is a 400
/// that names the choices.
pub(crate) async fn messages(
    axum::extract::Query(query): axum::extract::Query<LangQuery>,
    headers: HeaderMap,
) -> Response {
    let wanted = query.lang;
    let accept = headers
        .get(header::ACCEPT_LANGUAGE)
        .and_then(|v| v.to_str().ok());
    let lang = match posbon_i18n::Lang::negotiate(wanted.as_deref(), accept) {
        Ok(lang) => lang,
        Err(e) => return ApiError::bad_request("lang", e).into_response(),
    };
    let languages: Vec<Value> = posbon_i18n::Lang::ALL
        .iter()
        .map(|l| json!({ "code": l.code(), "name": l.name() }))
        .collect();
    let body = json!({
        "lang": lang.code(),
        "languages": languages,
        "messages": lang.messages_of("page"),
        // The page shows every time in the local time zone of the days.
        "time_zone": posbon_model::LOCAL_TIME_ZONE.name(),
        "numbers": {
            "decimal": lang.decimal_separator().to_string(),
            "group": lang.group_separator(),
            "percent": lang.percent_sign(),
        },
    });
    let mut response = Json(body).into_response();
    let h = response.headers_mut();
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    h.insert(header::VARY, HeaderValue::from_static("Accept-Language"));
    h.insert(
        header::CONTENT_LANGUAGE,
        HeaderValue::from_static(lang.code()),
    );
    response
}

/// `GET /v1/risk`: `{"at": ..., "mahallas": {"<id>": {"level", "score",
/// "open_escalations"}}}` for every mahalla whose level is not `normal` or
/// that has an escalation still open; every other mahalla is normal with no
/// open escalation. The same figures as the properties of `GET /v1/mahallas`,
/// without the geometry, for the page to poll.
pub(crate) async fn risk(
    State(state): State<Arc<ApiState>>,
    caller: posbon_auth::Caller,
) -> Result<Json<Value>, ApiError> {
    let risk = current_risk(&state).await?;
    let mut open = crate::mahallas::open_per_mahalla(&state).await?;
    let mut out: BTreeMap<String, Value> = BTreeMap::new();
    open.retain(|id, _| caller.scope.contains_mahalla(id));
    for (id, r) in &risk {
        if !caller.scope.contains_mahalla(id) {
            continue;
        }
        if r.level != RiskLevel::Normal || open.contains_key(id) {
            out.insert(
                id.clone(),
                json!({
                    "level": r.level,
                    "score": r.score,
                    "open_escalations": open.get(id).copied().unwrap_or(0),
                }),
            );
        }
    }
    for (id, n) in open {
        out.entry(id).or_insert_with(
            || json!({ "level": RiskLevel::Normal, "score": 0.0, "open_escalations": n }),
        );
    }
    Ok(Json(json!({ "at": chrono::Utc::now(), "mahallas": out })))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ApiConfig;
    use posbon_model::Span;

    #[test]
    fn etags_differ_by_content_and_are_stable() {
        assert_eq!(etag("a"), etag("a"));
        assert_ne!(etag("a"), etag("b"));
        assert_eq!(etag(""), "\"cbf29ce484222325\"");
    }

    #[test]
    fn if_none_match_lists_and_weak_tags() {
        let tag = etag("x");
        let mut h = HeaderMap::new();
        assert!(!not_modified(&h, &tag));
        h.insert(
            header::IF_NONE_MATCH,
            HeaderValue::from_str(&format!("\"other\", W/{tag}")).expect("header"),
        );
        assert!(not_modified(&h, &tag));
        h.insert(header::IF_NONE_MATCH, HeaderValue::from_static("\"other\""));
        assert!(!not_modified(&h, &tag));
    }

    /// The page must work offline: no URL of another origin in any file.
    #[test]
    fn assets_reference_nothing_outside_this_origin() {
        for a in ASSETS {
            for scheme in ["http://", "https://", "//fonts.", "//cdn"] {
                // The SVG namespace is an identifier, not a fetch.
                let offending = a
                    .body
                    .match_indices(scheme)
                    .map(|(i, _)| &a.body[i..(i + 40).min(a.body.len())])
                    .find(|s| !s.starts_with("http://www.w3.org/"));
                assert!(
                    offending.is_none(),
                    "{} refers to another origin: {:?}",
                    a.name,
                    offending
                );
            }
        }
    }

    fn state() -> Arc<ApiState> {
        let config = ApiConfig {
            listen: "127.0.0.1:0".into(),
            http: Default::default(),
            nats_urls: vec![],
            registry: None,
            renotify_after: Span::from_secs(600),
            renotify_check: Span::from_secs(15),
            feed_keepalive: Span::from_secs(15),
            max_list: 100,
            max_feed_clients: 2048,
            max_feed_clients_per_caller: 32,
            max_feed_replay: 10_000,
        };
        let registry = Arc::new(posbon_sim::load_registry(None).expect("city registry"));
        let bus: Arc<dyn posbon_bus::Bus> = Arc::new(posbon_bus::MemoryBus::new());
        let store: posbon_store::Store = Arc::new(posbon_store::MemoryStore::new());
        let auth = posbon_auth::Auth::new(store.clone(), registry.clone(), Default::default())
            .expect("auth");
        ApiState::new(
            config,
            bus,
            store,
            registry,
            auth,
            &posbon_telemetry::Metrics::new(),
        )
        .expect("state")
    }

    /// The guarded routes, and an admin token for them.
    async fn app(state: &Arc<ApiState>) -> (axum::Router, String) {
        let (_, token) = state
            .auth
            .identities()
            .create_token("test", posbon_auth::Role::Admin, vec![], None, "test")
            .await
            .expect("token");
        (
            crate::routes(state.clone()).into_router(state.auth.clone()),
            format!("Bearer {token}"),
        )
    }

    async fn call(
        app: &axum::Router,
        uri: &str,
        headers: &[(&str, &str)],
    ) -> (StatusCode, HeaderMap, Vec<u8>) {
        use tower::ServiceExt as _;
        let mut request = axum::http::Request::builder().uri(uri);
        for (k, v) in headers {
            request = request.header(*k, *v);
        }
        let response = app
            .clone()
            .oneshot(request.body(axum::body::Body::empty()).expect("request"))
            .await
            .expect("response");
        let status = response.status();
        let headers = response.headers().clone();
        let body = axum::body::to_bytes(response.into_body(), 1 << 24)
            .await
            .expect("body");
        (status, headers, body.to_vec())
    }

    #[tokio::test]
    async fn serves_the_page_and_its_files_with_types_and_validators() {
        let (app, _) = app(&state()).await;
        let (status, h, body) = call(&app, "/", &[]).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(h[header::CONTENT_TYPE], "text/html; charset=utf-8");
        assert_eq!(h[header::CACHE_CONTROL], "no-cache");
        assert_eq!(h[header::CONTENT_SECURITY_POLICY], CONTENT_SECURITY_POLICY);
        assert!(String::from_utf8_lossy(&body).contains("<title>Posbon command centre</title>"));
        let tag = h[header::ETAG].to_str().expect("etag").to_owned();
        let (status, _, body) = call(&app, "/", &[("if-none-match", &tag)]).await;
        assert_eq!(status, StatusCode::NOT_MODIFIED);
        assert!(body.is_empty());

        for a in ASSETS.iter().filter(|a| a.name != "index.html") {
            let file = a.name;
            let ty = match file.rsplit('.').next() {
                Some("js") => "text/javascript; charset=utf-8",
                Some("css") => "text/css; charset=utf-8",
                Some("svg") => "image/svg+xml",
                other => panic!("{file}: no content type for {other:?}"),
            };
            assert_eq!(a.content_type, ty, "{file}");
            let (status, h, body) = call(&app, &format!("/static/{file}"), &[]).await;
            assert_eq!(status, StatusCode::OK, "{file}");
            assert_eq!(h[header::CONTENT_TYPE], ty, "{file}");
            assert_eq!(h[header::X_CONTENT_TYPE_OPTIONS], "nosniff");
            assert_eq!(body, a.body.as_bytes());
        }
        let (status, _, body) = call(&app, "/static/index.html", &[]).await;
        assert_eq!(status, StatusCode::NOT_FOUND);
        // The refusal names the files there are.
        let named = String::from_utf8_lossy(&body).into_owned();
        assert!(
            named.contains("main.js") && named.contains("app.css and favicon.svg"),
            "{named}"
        );
        let (status, _, _) = call(&app, "/static/app.js", &[]).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "app.js is gone");
        let (status, _, body2) = call(&app, "/static/../Cargo.toml", &[]).await;
        assert_eq!(status, StatusCode::NOT_FOUND);
        let error: Value = serde_json::from_slice(&body).expect("json error");
        assert_eq!(error["code"], "not_found");
        assert!(!String::from_utf8_lossy(&body2).contains("[package]"));
    }

    #[tokio::test]
    async fn risk_lists_levels_and_open_escalations() {
        use posbon_model::{
            Escalation, EscalationRecord, EscalationStatus, MahallaRisk, RISK_SNAPSHOT_PREFIX,
            RiskSnapshot,
        };
        use posbon_store::EventStoreExt as _;
        let state = state();
        let (app, token) = app(&state).await;
        let (status, _, _) = call(&app, "/v1/risk", &[]).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "the map needs a caller");
        let auth = [("authorization", token.as_str())];
        let (status, _, body) = call(&app, "/v1/risk", &auth).await;
        assert_eq!(status, StatusCode::OK);
        let v: Value = serde_json::from_slice(&body).expect("json");
        assert_eq!(v["mahallas"], json!({}));

        let ms = state.registry.mahallas();
        let (a, b, c) = (&ms[0], &ms[1], &ms[2]);
        let now = chrono::Utc::now();
        let snapshot = RiskSnapshot {
            shard: "0-of-1".into(),
            sequence: 1,
            watermark: None,
            written_at: now,
            mahallas: vec![
                MahallaRisk {
                    mahalla_id: a.id.clone(),
                    level: RiskLevel::High,
                    score: 4.5,
                    since: Some(now),
                    hot_cells: vec![],
                },
                MahallaRisk {
                    mahalla_id: c.id.clone(),
                    level: RiskLevel::Normal,
                    score: 0.5,
                    since: None,
                    hot_cells: vec![],
                },
            ],
        };
        state
            .store
            .put_checkpoint(
                &format!("{RISK_SNAPSHOT_PREFIX}0-of-1"),
                serde_json::to_vec(&snapshot).expect("json"),
            )
            .await
            .expect("snapshot");
        let escalation = Escalation {
            id: Escalation::deterministic_id(&b.id, "intensity", 1),
            mahalla_id: b.id.clone(),
            district_id: b.district_id.clone(),
            region_id: b.region_id.clone(),
            level: RiskLevel::Elevated,
            previous_level: RiskLevel::Normal,
            score: 3.0,
            rule: "intensity".into(),
            measure: None,
            counts: Default::default(),
            hot_cells: vec![],
            evidence: vec![],
            window_start: now,
            window_end: now,
            opened_at: now,
            status: EscalationStatus::Open,
        };
        posbon_store::EscalationStoreExt::put_escalation(
            &*state.store,
            &EscalationRecord::opened(escalation, 7, now),
        )
        .await
        .expect("record");

        let (_, _, body) = call(&app, "/v1/risk", &auth).await;
        let v: Value = serde_json::from_slice(&body).expect("json");
        let m = v["mahallas"].as_object().expect("object");
        assert_eq!(m.len(), 2, "{v}");
        assert_eq!(m[&a.id]["level"], "high");
        assert_eq!(m[&a.id]["score"], 4.5);
        assert_eq!(m[&a.id]["open_escalations"], 0);
        assert_eq!(m[&b.id]["level"], "normal");
        assert_eq!(m[&b.id]["open_escalations"], 1);
        assert!(
            !m.contains_key(&c.id),
            "plainly normal mahallas are left out"
        );
    }

    /// The modules a script imports statically: the `'./name.js'` of each
    /// `from './...'` and bare `import './...'`.
    fn imports(body: &str) -> Vec<&str> {
        let mut out = Vec::new();
        for marker in ["from './", "import './"] {
            for (i, _) in body.match_indices(marker) {
                let rest = &body[i + marker.len()..];
                if let Some(end) = rest.find('\'') {
                    out.push(&rest[..end]);
                }
            }
        }
        out
    }

    /// index.html loads `main.js` (as its one script, a module), `app.css`
    /// and `favicon.svg`; every other script is imported by another one; and
    /// every import names a script that is served. A module nobody loads,
    /// or an import of a file left out of ASSETS, fails here.
    #[test]
    fn every_asset_is_loaded_and_every_import_is_served() {
        let index = asset("index.html").expect("index").body;
        assert!(
            index.contains(r#"<script type="module" src="/static/main.js"></script>"#),
            "index.html does not load main.js as a module"
        );
        assert_eq!(
            index.matches("<script").count(),
            1,
            "one script in index.html"
        );
        let scripts: Vec<&Asset> = ASSETS.iter().filter(|a| a.name.ends_with(".js")).collect();
        for s in &scripts {
            assert!(
                s.body.starts_with("// @ts-check\n"),
                "{} starts with // @ts-check",
                s.name
            );
            for name in imports(s.body) {
                assert!(
                    scripts.iter().any(|other| other.name == name),
                    "{} imports {name}, which is not among the ASSETS",
                    s.name
                );
            }
        }
        for a in ASSETS.iter().filter(|a| a.name != "index.html") {
            let by_index = index.contains(&format!("/static/{}", a.name));
            let importers: Vec<&str> = scripts
                .iter()
                .filter(|s| s.name != a.name && imports(s.body).contains(&a.name))
                .map(|s| s.name)
                .collect();
            if a.name.ends_with(".js") && a.name != "main.js" {
                assert!(
                    !by_index,
                    "index.html loads {} itself: only main.js",
                    a.name
                );
                assert!(!importers.is_empty(), "no module imports {}", a.name);
            } else {
                assert!(by_index, "index.html does not load {}", a.name);
            }
        }
    }
}
