//! What a page says: Alertmanager-compatible JSON for webhooks, and one
//! short text for people (Telegram, SMS, e-mail).

use chrono::{DateTime, Utc};
use posbon_model::{Escalation, NotifyTier};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

/// One page: an escalation at one of its paging steps (its opening, or a
/// re-notification one tier up).
#[derive(Debug, Clone)]
pub struct Page {
    /// The escalation.
    pub escalation: Escalation,
    /// The number (from 1) of the `opened` or `renotify` step.
    pub step: u32,
    /// The tier that step paged.
    pub tier: NotifyTier,
    /// The mahalla's name, its district's name.
    pub place: String,
    /// The inspector's contact from the registry, when known.
    pub inspector_contact: Option<String>,
    /// When the step happened.
    pub at: DateTime<Utc>,
}

impl Page {
    /// `<escalation id>#<step>`: the key of deduplication, and the
    /// `Idempotency-Key` a gateway can use to drop a repeated delivery.
    pub fn key(&self) -> String {
        format!("{}#{}", self.escalation.id, self.step)
    }

    fn tier_text(&self) -> &'static str {
        match self.tier {
            NotifyTier::MahallaInspector => "mahalla inspector",
            NotifyTier::District => "district command centre",
            NotifyTier::City => "city command centre",
        }
    }

    fn link(&self, page_url: Option<&str>) -> Option<String> {
        page_url.map(|base| {
            format!(
                "{}/#escalation={}",
                base.trim_end_matches('/'),
                percent_encode(&self.escalation.id)
            )
        })
    }

    /// The subject line of an e-mail.
    pub fn subject(&self) -> String {
        let e = &self.escalation;
        format!(
            "[Posbon] {} · {} · {}",
            e.level.as_str().to_uppercase(),
            self.place,
            e.rule
        )
    }

    /// The text for people: what, where, why, who is paged and the link.
    pub fn text(&self, page_url: Option<&str>) -> String {
        let e = &self.escalation;
        let mut text = format!(
            "{} escalation in {}: rule {}{} ({} -> {}), opened {} UTC. Paged: {}{}.",
            e.level.as_str().to_uppercase(),
            self.place,
            e.rule,
            e.measure
                .as_ref()
                .map_or(String::new(), |m| format!(", {}", m.describe())),
            e.previous_level.as_str(),
            e.level.as_str(),
            e.opened_at.format("%Y-%m-%d %H:%M"),
            self.tier_text(),
            if self.step > 1 {
                " (not acknowledged in time)"
            } else {
                ""
            },
        );
        if let Some(link) = self.link(page_url) {
            text.push(' ');
            text.push_str(&link);
        }
        text
    }

    /// The labels of the alert.
    fn labels(&self) -> Value {
        let e = &self.escalation;
        json!({
            "alertname": "PosbonEscalation",
            "escalation_id": e.id,
            "level": e.level.as_str(),
            "rule": e.rule,
            "region": e.region_id,
            "district": e.district_id,
            "mahalla": e.mahalla_id,
            "tier": self.tier.as_str(),
            "step": self.step.to_string(),
        })
    }

    /// Alertmanager's webhook JSON (version 4) for receiver `receiver`: one
    /// firing alert.
    pub fn alertmanager_json(&self, receiver: &str, page_url: Option<&str>) -> Value {
        let e = &self.escalation;
        let labels = self.labels();
        let mut annotations = json!({
            "summary": format!("{} escalation in {}", e.level.as_str(), self.place),
            "description": self.text(None),
            "score": format!("{:.2}", e.score),
        });
        if let Some(m) = &e.measure {
            annotations["measure"] = Value::String(m.describe());
        }
        let fingerprint = {
            let digest = Sha256::digest(self.key().as_bytes());
            hex::encode(&digest[..8])
        };
        json!({
            "version": "4",
            "groupKey": format!("{{}}:{{escalation_id=\"{}\"}}", e.id),
            "truncatedAlerts": 0,
            "status": "firing",
            "receiver": receiver,
            "groupLabels": { "escalation_id": e.id },
            "commonLabels": labels,
            "commonAnnotations": annotations,
            "externalURL": page_url.unwrap_or_default(),
            "alerts": [{
                "status": "firing",
                "labels": labels,
                "annotations": annotations,
                "startsAt": e.opened_at.to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
                "endsAt": "0001-01-01T00:00:00Z",
                "generatorURL": self.link(page_url).unwrap_or_default(),
                "fingerprint": fingerprint,
            }],
        })
    }
}

/// Percent-encodes everything but unreserved characters (ids hold `:`).
fn percent_encode(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for b in text.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}
