//! `/healthz`, `/readyz` and `/metrics`.

use std::sync::Arc;

use async_trait::async_trait;
use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use posbon_telemetry::{Metrics, PROMETHEUS_CONTENT_TYPE};
use serde::Serialize;

/// Whether one dependency of a service is usable.
#[derive(Debug, Clone, Serialize)]
pub struct Readiness {
    /// What was checked, e.g. `nats` or `store`.
    pub name: String,
    /// Usable or not.
    pub ready: bool,
    /// Why not, when not.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
    /// What was found, when it is worth showing (the registry's digest).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub value: Option<String>,
}

/// A dependency that `/readyz` checks (NATS streams, the store, ...).
#[async_trait]
pub trait ReadinessCheck: Send + Sync {
    /// Checks the dependency; must return within a second or two.
    async fn check(&self) -> Readiness;
}

/// A readiness check made of a name and an async function that says what is
/// wrong, if anything.
pub struct FnCheck<F> {
    name: &'static str,
    f: F,
}

impl<F, Fut> FnCheck<F>
where
    F: Fn() -> Fut + Send + Sync,
    Fut: std::future::Future<Output = Result<(), String>> + Send,
{
    /// A check called `name` that runs `f`.
    pub fn new(name: &'static str, f: F) -> Arc<Self> {
        Arc::new(FnCheck { name, f })
    }
}

#[async_trait]
impl<F, Fut> ReadinessCheck for FnCheck<F>
where
    F: Fn() -> Fut + Send + Sync,
    Fut: std::future::Future<Output = Result<(), String>> + Send,
{
    async fn check(&self) -> Readiness {
        let outcome =
            match tokio::time::timeout(std::time::Duration::from_secs(2), (self.f)()).await {
                Ok(r) => r,
                Err(_) => Err("no answer within 2 s".into()),
            };
        Readiness {
            name: self.name.to_owned(),
            ready: outcome.is_ok(),
            detail: outcome.err(),
            value: None,
        }
    }
}

/// The health endpoints of one service.
#[derive(Clone)]
pub struct Health {
    metrics: Metrics,
    checks: Vec<Arc<dyn ReadinessCheck>>,
}

impl Health {
    /// Endpoints that render `metrics` and check nothing yet.
    pub fn new(metrics: Metrics) -> Self {
        Health {
            metrics,
            checks: Vec::new(),
        }
    }

    /// Adds a readiness check.
    pub fn with_check(mut self, check: Arc<dyn ReadinessCheck>) -> Self {
        self.checks.push(check);
        self
    }

    /// Runs every check.
    pub async fn readiness(&self) -> Vec<Readiness> {
        let mut out = Vec::with_capacity(self.checks.len());
        for check in &self.checks {
            out.push(check.check().await);
        }
        out
    }

    /// `/healthz` (the process answers), `/readyz` (200 only when every check
    /// passes, with a JSON body listing them) and `/metrics` (Prometheus text).
    pub fn router(&self) -> Router {
        Router::new()
            .route("/healthz", get(|| async { "ok\n" }))
            .route("/readyz", get(readyz))
            .route("/metrics", get(metrics))
            .with_state(self.clone())
    }

    /// [`Health::router`] with its access rules: `/healthz` and `/readyz`
    /// answer anybody, `/metrics` needs the metrics token or an admin.
    pub fn guarded(&self) -> posbon_auth::Guarded {
        use axum::http::Method;
        use posbon_auth::Access;
        posbon_auth::Guarded::new(
            self.router(),
            [
                (Method::GET, "/healthz", Access::Public),
                (Method::GET, "/readyz", Access::Public),
                (Method::GET, "/metrics", Access::Metrics),
            ],
        )
    }
}

async fn readyz(State(health): State<Health>) -> Response {
    let checks = health.readiness().await;
    let ready = checks.iter().all(|c| c.ready);
    let status = if ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (
        status,
        axum::Json(serde_json::json!({ "ready": ready, "checks": checks })),
    )
        .into_response()
}

async fn metrics(State(health): State<Health>) -> Response {
    (
        [(header::CONTENT_TYPE, PROMETHEUS_CONTENT_TYPE)],
        health.metrics.render(),
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::body::Body;
    use axum::http::Request;
    use tower::ServiceExt;

    struct Fixed(bool);

    #[async_trait]
    impl ReadinessCheck for Fixed {
        async fn check(&self) -> Readiness {
            Readiness {
                name: "fixed".into(),
                ready: self.0,
                detail: (!self.0).then(|| "down".into()),
                value: None,
            }
        }
    }

    async fn get_status(app: Router, path: &str) -> (StatusCode, String) {
        let response = app
            .oneshot(Request::get(path).body(Body::empty()).expect("request"))
            .await
            .expect("response");
        let status = response.status();
        let body = axum::body::to_bytes(response.into_body(), 1 << 20)
            .await
            .expect("body");
        (status, String::from_utf8_lossy(&body).into_owned())
    }

    #[tokio::test]
    async fn endpoints_answer() {
        let metrics = Metrics::new();
        metrics
            .counter("posbon_test_things_total", "things")
            .expect("counter")
            .inc_by(3);
        let up = Health::new(metrics.clone()).with_check(Arc::new(Fixed(true)));
        assert_eq!(get_status(up.router(), "/healthz").await.0, StatusCode::OK);
        assert_eq!(get_status(up.router(), "/readyz").await.0, StatusCode::OK);
        let (status, body) = get_status(up.router(), "/metrics").await;
        assert_eq!(status, StatusCode::OK);
        assert!(body.contains("posbon_test_things_total 3"), "{body}");
        let down = Health::new(metrics).with_check(Arc::new(Fixed(false)));
        let (status, body) = get_status(down.router(), "/readyz").await;
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
        assert!(body.contains("\"down\""), "{body}");
    }
}
