//! `[notify]`: receivers, routes and retries, as written in a service's
//! configuration file, checked before anything is sent.

use std::collections::HashSet;
use std::net::IpAddr;
use std::path::PathBuf;

use posbon_model::{Escalation, EscalationMatchers, NotifyTier, RiskLevel, Span};
use serde::Deserialize;

/// The target that stands for the mahalla's inspector in a receiver's `to`
/// or `chat_id`: the registry's `inspector_contact`.
pub const INSPECTOR: &str = "@inspector";
/// Most receivers and most routes.
pub const MAX_RECEIVERS: usize = 64;
/// Most recipients of one receiver.
pub const MAX_RECIPIENTS: usize = 32;

/// Notifications out (`[notify]`). No receivers: nothing is paged.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NotifyConfig {
    /// Where notifications go (`[[notify.receivers]]`).
    #[serde(default)]
    pub receivers: Vec<ReceiverConfig>,
    /// Which escalations go where (`[[notify.routes]]`). Every matching route
    /// pages its receivers; a receiver is paged once per step however many
    /// routes name it.
    #[serde(default)]
    pub routes: Vec<RouteConfig>,
    /// Retries of a failed delivery.
    #[serde(default)]
    pub retry: RetryConfig,
    /// The command-centre page's address (`https://posbon.example`), for the
    /// link in each message; absent: messages carry no link.
    #[serde(default)]
    pub page_url: Option<String>,
    /// A PEM file of certificate authorities trusted besides the system's
    /// (gateways with a private CA).
    #[serde(default)]
    pub ca_file: Option<PathBuf>,
}

/// Retries with exponential backoff, then a dead letter.
#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RetryConfig {
    /// Attempts in all (1..=20).
    pub attempts: u32,
    /// Wait after the first failure; doubled after each.
    pub initial_backoff: Span,
    /// Longest wait.
    pub max_backoff: Span,
    /// Time limit of one attempt (connect, send, answer).
    pub timeout: Span,
}

impl Default for RetryConfig {
    fn default() -> Self {
        Self {
            attempts: 5,
            initial_backoff: Span::from_secs(1),
            max_backoff: Span::from_minutes(1),
            timeout: Span::from_secs(10),
        }
    }
}

/// One receiver: a name routes refer to, and how to reach it. Its `Debug`
/// shows no secret.
#[derive(Clone, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum ReceiverConfig {
    /// `POST` of Alertmanager-compatible JSON, signed with
    /// `X-Posbon-Signature: sha256=<hex HMAC-SHA256 of the body>`.
    Webhook {
        /// Name.
        name: String,
        /// `https://` (`http://` only to a loopback address).
        url: String,
        /// The HMAC key (or `secret_file`).
        #[serde(default)]
        secret: Option<String>,
        /// A file whose first line is the HMAC key.
        #[serde(default)]
        secret_file: Option<PathBuf>,
    },
    /// Telegram Bot API `sendMessage`.
    Telegram {
        /// Name.
        name: String,
        /// The bot's token (or `bot_token_file`).
        #[serde(default)]
        bot_token: Option<String>,
        /// A file whose first line is the bot's token.
        #[serde(default)]
        bot_token_file: Option<PathBuf>,
        /// Chat ids, or `@inspector`.
        chat_id: Vec<String>,
        /// The Bot API's address; default `https://api.telegram.org`.
        #[serde(default)]
        api_url: Option<String>,
    },
    /// E-mail over SMTP.
    Email {
        /// Name.
        name: String,
        /// The SMTP server.
        smtp_host: String,
        /// Its port; default 587 (`starttls`), 465 (`tls`), 25 (`none`).
        #[serde(default)]
        smtp_port: Option<u16>,
        /// `starttls` (default), `tls`, or `none` (only to a loopback address).
        #[serde(default)]
        tls: SmtpTls,
        /// SMTP user, with `password` or `password_file`.
        #[serde(default)]
        username: Option<String>,
        /// SMTP password.
        #[serde(default)]
        password: Option<String>,
        /// A file whose first line is the SMTP password.
        #[serde(default)]
        password_file: Option<PathBuf>,
        /// Sender address.
        from: String,
        /// Addresses, or `@inspector`.
        to: Vec<String>,
    },
    /// An SMS gateway over HTTP: `POST {"to": [...], "text": "..."}` with
    /// `Authorization: Bearer <token>`.
    Sms {
        /// Name.
        name: String,
        /// `https://` (`http://` only to a loopback address).
        url: String,
        /// The gateway's token (or `token_file`).
        #[serde(default)]
        token: Option<String>,
        /// A file whose first line is the gateway's token.
        #[serde(default)]
        token_file: Option<PathBuf>,
        /// Phone numbers (`+998...`), or `@inspector`.
        to: Vec<String>,
    },
}

/// How an e-mail receiver protects its SMTP connection.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SmtpTls {
    /// Plain connection upgraded with STARTTLS, which must succeed.
    #[default]
    Starttls,
    /// TLS from the first byte (SMTPS).
    Tls,
    /// No TLS: only to a loopback address.
    None,
}

/// One routing rule: every matcher given must hold (an empty one holds for
/// any escalation); then `receivers` are paged.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RouteConfig {
    /// Receiver names.
    pub receivers: Vec<String>,
    /// `region`, `district`, `mahalla`, `rule` and `level` lists, as a
    /// silence has them.
    #[serde(flatten)]
    pub matchers: EscalationMatchers,
    /// Lowest level paged.
    #[serde(default)]
    pub min_level: Option<RiskLevel>,
    /// Tiers: `mahalla_inspector` (the opening), `district` and `city` (the
    /// re-notifications). Empty: every step.
    #[serde(default)]
    pub tier: Vec<NotifyTier>,
}

impl RouteConfig {
    /// Whether `escalation` at tier `tier` takes this route.
    pub fn matches(&self, escalation: &Escalation, tier: NotifyTier) -> bool {
        self.matchers.matches(escalation)
            && self.min_level.is_none_or(|min| escalation.level >= min)
            && (self.tier.is_empty() || self.tier.contains(&tier))
    }
}

impl std::fmt::Debug for ReceiverConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut d = f.debug_struct("ReceiverConfig");
        d.field("name", &self.name()).field("type", &self.kind());
        match self {
            Self::Webhook { url, .. } | Self::Sms { url, .. } => {
                d.field("url", url);
            }
            Self::Telegram { api_url, .. } => {
                d.field("api_url", api_url);
            }
            Self::Email {
                smtp_host,
                smtp_port,
                username,
                ..
            } => {
                d.field("smtp_host", smtp_host)
                    .field("smtp_port", smtp_port)
                    .field("username", username);
            }
        }
        d.field("recipients", &self.recipients())
            .finish_non_exhaustive()
    }
}

impl ReceiverConfig {
    /// Its name.
    pub fn name(&self) -> &str {
        match self {
            Self::Webhook { name, .. }
            | Self::Telegram { name, .. }
            | Self::Email { name, .. }
            | Self::Sms { name, .. } => name,
        }
    }

    /// `webhook`, `telegram`, `email` or `sms`.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Webhook { .. } => "webhook",
            Self::Telegram { .. } => "telegram",
            Self::Email { .. } => "email",
            Self::Sms { .. } => "sms",
        }
    }

    /// Its recipients (`@inspector` included), empty for a webhook.
    pub fn recipients(&self) -> &[String] {
        match self {
            Self::Webhook { .. } => &[],
            Self::Telegram { chat_id, .. } => chat_id,
            Self::Email { to, .. } | Self::Sms { to, .. } => to,
        }
    }
}

/// Whether `host` (a name or an address, brackets allowed) is this machine.
pub(crate) fn is_loopback(host: &str) -> bool {
    let host = host.trim_start_matches('[').trim_end_matches(']');
    host.eq_ignore_ascii_case("localhost")
        || host.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

/// Checks an HTTP(S) address: `https`, or `http` to a loopback address.
pub(crate) fn check_url(what: &str, url: &str) -> anyhow::Result<reqwest::Url> {
    let parsed = reqwest::Url::parse(url).map_err(|e| anyhow::anyhow!("{what}: {e}"))?;
    let host = parsed
        .host_str()
        .ok_or_else(|| anyhow::anyhow!("{what}: no host"))?;
    match parsed.scheme() {
        "https" => {}
        "http" if is_loopback(host) => {}
        "http" => anyhow::bail!(
            "{what}: plain http to {host} would send escalations and secrets readable on the network; use https"
        ),
        other => anyhow::bail!("{what}: the scheme must be https, not {other}"),
    }
    if !parsed.username().is_empty() || parsed.password().is_some() {
        anyhow::bail!("{what}: put credentials in the receiver's secret fields, not in the URL");
    }
    Ok(parsed)
}

/// The value of a secret given inline or in a file (never both, one needed).
pub(crate) fn secret(
    what: &str,
    inline: Option<&String>,
    file: Option<&PathBuf>,
) -> anyhow::Result<String> {
    match (inline, file) {
        (Some(_), Some(_)) => anyhow::bail!("{what}: give it inline or in a file, not both"),
        (Some(value), None) if !value.trim().is_empty() => Ok(value.trim().to_owned()),
        (Some(_), None) => anyhow::bail!("{what}: empty"),
        (None, Some(path)) => posbon_auth::secret::read_secret_file(path)
            .map_err(|e| anyhow::anyhow!("{what}_file: {e}")),
        (None, None) => anyhow::bail!("{what}: missing (give {what} or {what}_file)"),
    }
}

impl NotifyConfig {
    /// Checks names, references, addresses and limits (secrets are read by
    /// [`crate::Notifier::new`]).
    pub fn validate(&self) -> anyhow::Result<()> {
        anyhow::ensure!(
            self.receivers.len() <= MAX_RECEIVERS && self.routes.len() <= MAX_RECEIVERS,
            "notify: at most {MAX_RECEIVERS} receivers and {MAX_RECEIVERS} routes"
        );
        let r = &self.retry;
        anyhow::ensure!(
            (1..=20).contains(&r.attempts),
            "notify.retry.attempts: {} is not within 1..=20",
            r.attempts
        );
        anyhow::ensure!(
            r.max_backoff >= r.initial_backoff,
            "notify.retry: initial_backoff ({}) must be at most max_backoff ({})",
            r.initial_backoff,
            r.max_backoff
        );
        anyhow::ensure!(
            (Span::from_millis(100)..=Span::from_minutes(2)).contains(&r.timeout),
            "notify.retry.timeout: {} is not within 100ms..=2m",
            r.timeout
        );
        if let Some(url) = &self.page_url {
            let parsed = reqwest::Url::parse(url)
                .map_err(|e| anyhow::anyhow!("notify.page_url {url:?}: {e}"))?;
            anyhow::ensure!(
                matches!(parsed.scheme(), "http" | "https"),
                "notify.page_url {url:?}: must be an http or https address"
            );
        }
        let mut names = HashSet::new();
        for receiver in &self.receivers {
            let name = receiver.name();
            let what = format!("notify.receivers[{name}]");
            anyhow::ensure!(
                posbon_model::is_valid_id(name) && !name.starts_with('@'),
                "notify.receivers: name {name:?} must be 1 to 128 visible ASCII characters, not starting with @"
            );
            anyhow::ensure!(names.insert(name), "{what}: the name is used twice");
            let recipients = receiver.recipients();
            anyhow::ensure!(
                recipients.len() <= MAX_RECIPIENTS,
                "{what}: at most {MAX_RECIPIENTS} recipients"
            );
            if let Some(bad) = recipients
                .iter()
                .find(|t| t.trim().is_empty() || t.len() > 254 || t.chars().any(char::is_control))
            {
                anyhow::bail!(
                    "{what}: recipient {bad:?} is empty, too long or has control characters"
                );
            }
            match receiver {
                ReceiverConfig::Webhook { url, .. } | ReceiverConfig::Sms { url, .. } => {
                    check_url(&format!("{what}.url"), url)?;
                }
                ReceiverConfig::Telegram {
                    api_url, chat_id, ..
                } => {
                    if let Some(url) = api_url {
                        check_url(&format!("{what}.api_url"), url)?;
                    }
                    anyhow::ensure!(!chat_id.is_empty(), "{what}.chat_id: give at least one");
                }
                ReceiverConfig::Email {
                    smtp_host,
                    tls,
                    from,
                    to,
                    username,
                    password,
                    password_file,
                    ..
                } => {
                    anyhow::ensure!(!to.is_empty(), "{what}.to: give at least one address");
                    if *tls == SmtpTls::None && !is_loopback(smtp_host) {
                        anyhow::bail!(
                            "{what}: tls = \"none\" to {smtp_host} would send escalations readable on the network; use starttls or tls"
                        );
                    }
                    from.parse::<lettre::message::Mailbox>()
                        .map_err(|e| anyhow::anyhow!("{what}.from {from:?}: {e}"))?;
                    for address in to.iter().filter(|t| *t != INSPECTOR) {
                        address
                            .parse::<lettre::message::Mailbox>()
                            .map_err(|e| anyhow::anyhow!("{what}.to {address:?}: {e}"))?;
                    }
                    anyhow::ensure!(
                        username.is_some() || (password.is_none() && password_file.is_none()),
                        "{what}: a password needs a username"
                    );
                }
            }
        }
        for (i, route) in self.routes.iter().enumerate() {
            route
                .matchers
                .validate()
                .map_err(|e| anyhow::anyhow!("notify.routes[{i}].{e}"))?;
            anyhow::ensure!(
                !route.receivers.is_empty(),
                "notify.routes[{i}]: name at least one receiver"
            );
            for name in &route.receivers {
                anyhow::ensure!(
                    names.contains(name.as_str()),
                    "notify.routes[{i}]: no receiver is named {name:?}"
                );
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> NotifyConfig {
        #[derive(Deserialize)]
        struct File {
            notify: NotifyConfig,
        }
        toml::from_str::<File>(text).expect("toml").notify
    }

    #[test]
    fn the_documented_shape_parses() {
        let config = parse(
            r#"
            [[notify.receivers]]
            name = "ops"
            type = "webhook"
            url = "https://gateway.example/hook"
            secret = "s3cret"

            [[notify.receivers]]
            name = "inspector-sms"
            type = "sms"
            url = "https://sms.example/send"
            token = "t"
            to = ["@inspector"]

            [[notify.routes]]
            receivers = ["ops"]
            district = ["chilonzor"]
            min_level = "high"

            [[notify.routes]]
            receivers = ["inspector-sms"]
            tier = ["mahalla_inspector"]
            "#,
        );
        config.validate().expect("valid");
        assert_eq!(config.receivers[0].kind(), "webhook");
        assert_eq!(config.routes[0].min_level, Some(RiskLevel::High));
        assert_eq!(config.routes[1].tier, vec![NotifyTier::MahallaInspector]);
    }

    #[test]
    fn mistakes_are_named() {
        let bad = |text: &str| parse(text).validate().expect_err("refused").to_string();
        assert!(
            bad(r#"
            [[notify.receivers]]
            name = "ops"
            type = "webhook"
            url = "http://gateway.example/hook"
            secret = "s"
        "#)
            .contains("use https")
        );
        assert!(
            bad(r#"
            [[notify.receivers]]
            name = "ops"
            type = "webhook"
            url = "https://gateway.example/hook"
            secret = "s"
            [[notify.routes]]
            receivers = ["opz"]
        "#)
            .contains("no receiver is named \"opz\"")
        );
        assert!(
            bad(r#"
            [[notify.receivers]]
            name = "mail"
            type = "email"
            smtp_host = "mail.example"
            tls = "none"
            from = "posbon@example.uz"
            to = ["duty@example.uz"]
        "#)
            .contains("use starttls or tls")
        );
        assert!(
            bad(r#"
            [[notify.receivers]]
            name = "a"
            type = "sms"
            url = "https://sms.example"
            to = ["1"]
            [[notify.receivers]]
            name = "a"
            type = "sms"
            url = "https://sms.example"
            to = ["2"]
        "#)
            .contains("used twice")
        );
        assert!(
            bad(r#"
            [notify.retry]
            attempts = 0
        "#)
            .contains("attempts")
        );
        #[derive(Debug, Deserialize)]
        #[allow(dead_code)]
        struct File {
            notify: NotifyConfig,
        }
        let unknown = toml::from_str::<File>(
            r#"
            [[notify.receivers]]
            name = "ops"
            type = "pager"
            url = "https://x"
            "#,
        )
        .expect_err("unknown type");
        assert!(unknown.to_string().contains("pager"), "{unknown}");
        let unknown = toml::from_str::<File>(
            r#"
            [[notify.routes]]
            receivers = ["ops"]
            distrcit = ["chilonzor"]
            "#,
        )
        .expect_err("a misspelt matcher");
        assert!(unknown.to_string().contains("distrcit"), "{unknown}");
    }

    #[test]
    fn debug_shows_no_secret() {
        let config = parse(
            r#"
            [[notify.receivers]]
            name = "tg"
            type = "telegram"
            bot_token = "123:TOKEN"
            chat_id = ["1"]
            [[notify.receivers]]
            name = "mail"
            type = "email"
            smtp_host = "mail.example"
            username = "u"
            password = "PASSWORD"
            from = "a@example.uz"
            to = ["b@example.uz"]
            "#,
        );
        let shown = format!("{config:?}");
        assert!(
            !shown.contains("TOKEN") && !shown.contains("PASSWORD"),
            "{shown}"
        );
        assert!(shown.contains("mail.example"), "{shown}");
    }

    #[test]
    fn secrets_inline_or_in_a_file() {
        assert_eq!(
            secret("secret", Some(&"a ".into()), None).expect("inline"),
            "a"
        );
        assert!(
            secret("secret", None, None)
                .expect_err("missing")
                .to_string()
                .contains("secret_file")
        );
        assert!(secret("secret", Some(&"a".into()), Some(&PathBuf::from("/x"))).is_err());
    }
}
