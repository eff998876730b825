//! One attempt at one receiver: a webhook, Telegram, an SMS gateway or SMTP.
//!
//! Every error says whether trying again can help ([`SendError::retry`]) and
//! never carries a secret: reqwest errors lose their URL (a Telegram URL
//! holds the bot's token) and SMTP errors are the server's answer.

use std::collections::BTreeSet;
use std::time::Duration;

use chrono::{DateTime, Utc};
use hmac::{Hmac, Mac};
use lettre::message::{Mailbox, header::ContentType};
use lettre::transport::smtp::authentication::Credentials;
use lettre::transport::smtp::client::{Certificate, Tls, TlsParameters};
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};
use serde_json::json;
use sha2::Sha256;

use crate::config::{INSPECTOR, ReceiverConfig, SmtpTls, check_url, secret};
use crate::message::Page;

/// The header carrying the webhook body's signature.
pub const SIGNATURE_HEADER: &str = "x-posbon-signature";
/// The header carrying the Unix time the page was sent, also in the signed
/// body as `posbonSentAt`.
pub const TIMESTAMP_HEADER: &str = "x-posbon-timestamp";
/// The header carrying `<escalation id>#<step>/<receiver>`, for gateways
/// that drop a delivery they have seen.
pub const IDEMPOTENCY_HEADER: &str = "idempotency-key";
/// Shortest webhook HMAC key.
pub const MIN_WEBHOOK_KEY: usize = 32;
/// The Telegram Bot API's address.
pub const TELEGRAM_API: &str = "https://api.telegram.org";
/// Longest text sent to Telegram (its limit is 4,096 characters).
const MAX_TELEGRAM_CHARS: usize = 4000;
/// Longest SMS text: three concatenated GSM-7 parts (names with letters
/// outside GSM-7, such as `ʻ`, make each part 67 characters, so up to seven).
const MAX_SMS_CHARS: usize = 459;

/// Why one attempt failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SendError {
    /// Whether another attempt can succeed (a timeout, 5xx, 429), or not (a
    /// 4xx, a missing contact).
    pub retry: bool,
    /// What went wrong, without secrets.
    pub message: String,
    /// How long the receiver asked to be left alone (`Retry-After` of a 429
    /// or 503, or Telegram's `parameters.retry_after`).
    pub retry_after: Option<Duration>,
}

impl SendError {
    pub(crate) fn retry(message: impl Into<String>) -> Self {
        Self {
            retry: true,
            message: message.into(),
            retry_after: None,
        }
    }

    fn fatal(message: impl Into<String>) -> Self {
        Self {
            retry: false,
            message: message.into(),
            retry_after: None,
        }
    }
}

/// The wait a refusal asks for: the `Retry-After` header (seconds or an
/// HTTP date) or, from the Bot API, the body's `parameters.retry_after`.
fn retry_after(
    headers: &reqwest::header::HeaderMap,
    body: &[u8],
    now: DateTime<Utc>,
) -> Option<Duration> {
    let header = headers
        .get(reqwest::header::RETRY_AFTER)
        .and_then(|v| v.to_str().ok())
        .map(str::trim);
    if let Some(value) = header {
        if let Ok(secs) = value.parse::<u64>() {
            return Some(Duration::from_secs(secs));
        }
        if let Ok(at) = DateTime::parse_from_rfc2822(value) {
            let wait = at.with_timezone(&Utc) - now;
            return Some(wait.to_std().unwrap_or(Duration::ZERO));
        }
    }
    serde_json::from_slice::<serde_json::Value>(body)
        .ok()?
        .pointer("/parameters/retry_after")?
        .as_u64()
        .map(Duration::from_secs)
}

/// The signature of `body` under `key`: `sha256=<hex HMAC-SHA256>`.
pub fn signature(key: &[u8], body: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(key).expect("HMAC takes a key of any length");
    mac.update(body);
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

/// How to reach one receiver, with its secrets read.
pub(crate) enum Transport {
    Webhook {
        url: reqwest::Url,
        key: Vec<u8>,
    },
    Telegram {
        base: String,
        token: String,
        chats: Vec<String>,
    },
    Sms {
        url: reqwest::Url,
        token: Option<String>,
        to: Vec<String>,
    },
    Email {
        smtp: Box<AsyncSmtpTransport<Tokio1Executor>>,
        from: Mailbox,
        to: Vec<String>,
    },
}

impl std::fmt::Debug for Transport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Webhook { url, .. } => write!(f, "Webhook({url})"),
            Self::Telegram { base, chats, .. } => write!(f, "Telegram({base}, {chats:?})"),
            Self::Sms { url, to, .. } => write!(f, "Sms({url}, {to:?})"),
            Self::Email { from, to, .. } => write!(f, "Email({from} -> {to:?})"),
        }
    }
}

impl Transport {
    /// Builds the transport of `config`, reading its secrets.
    pub(crate) fn new(
        config: &ReceiverConfig,
        timeout: Duration,
        ca_pem: Option<&[u8]>,
    ) -> anyhow::Result<Self> {
        let what = format!("notify.receivers[{}]", config.name());
        Ok(match config {
            ReceiverConfig::Webhook {
                url,
                secret: inline,
                secret_file,
                ..
            } => {
                let key = secret(
                    &format!("{what}.secret"),
                    inline.as_ref(),
                    secret_file.as_ref(),
                )?;
                anyhow::ensure!(
                    key.len() >= MIN_WEBHOOK_KEY,
                    "{what}.secret: {} characters, at least {MIN_WEBHOOK_KEY} (make one with `openssl rand -hex 32`)",
                    key.len()
                );
                Self::Webhook {
                    url: check_url(&format!("{what}.url"), url)?,
                    key: key.into_bytes(),
                }
            }
            ReceiverConfig::Telegram {
                bot_token,
                bot_token_file,
                chat_id,
                api_url,
                ..
            } => {
                let token = secret(
                    &format!("{what}.bot_token"),
                    bot_token.as_ref(),
                    bot_token_file.as_ref(),
                )?;
                anyhow::ensure!(
                    token.bytes().all(|b| b.is_ascii_graphic() && b != b'/'),
                    "{what}.bot_token: not a bot token (visible ASCII without /)"
                );
                Self::Telegram {
                    base: api_url
                        .as_deref()
                        .unwrap_or(TELEGRAM_API)
                        .trim_end_matches('/')
                        .to_owned(),
                    token,
                    chats: chat_id.clone(),
                }
            }
            ReceiverConfig::Sms {
                url,
                token,
                token_file,
                to,
                ..
            } => Self::Sms {
                url: check_url(&format!("{what}.url"), url)?,
                token: match (token, token_file) {
                    (None, None) => None,
                    _ => Some(secret(
                        &format!("{what}.token"),
                        token.as_ref(),
                        token_file.as_ref(),
                    )?),
                },
                to: to.clone(),
            },
            ReceiverConfig::Email {
                smtp_host,
                smtp_port,
                tls,
                username,
                password,
                password_file,
                from,
                to,
                ..
            } => {
                let parameters = || -> anyhow::Result<TlsParameters> {
                    let mut builder = TlsParameters::builder(smtp_host.clone());
                    if let Some(pem) = ca_pem {
                        builder = builder.add_root_certificate(
                            Certificate::from_pem(pem)
                                .map_err(|e| anyhow::anyhow!("notify.ca_file: {e}"))?,
                        );
                    }
                    builder
                        .build_rustls()
                        .map_err(|e| anyhow::anyhow!("{what}: TLS: {e}"))
                };
                let (tls, port) = match tls {
                    SmtpTls::Starttls => (Tls::Required(parameters()?), 587),
                    SmtpTls::Tls => (Tls::Wrapper(parameters()?), 465),
                    SmtpTls::None => (Tls::None, 25),
                };
                let mut smtp = AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(smtp_host)
                    .port(smtp_port.unwrap_or(port))
                    .tls(tls)
                    .timeout(Some(timeout));
                if let Some(user) = username {
                    let password = secret(
                        &format!("{what}.password"),
                        password.as_ref(),
                        password_file.as_ref(),
                    )?;
                    smtp = smtp.credentials(Credentials::new(user.clone(), password));
                }
                Self::Email {
                    smtp: Box::new(smtp.build()),
                    from: from
                        .parse()
                        .map_err(|e| anyhow::anyhow!("{what}.from {from:?}: {e}"))?,
                    to: to.clone(),
                }
            }
        })
    }

    /// The secrets of this transport, to be kept out of every message.
    fn secrets(&self) -> Vec<&str> {
        match self {
            Self::Webhook { .. } | Self::Email { .. } => Vec::new(),
            Self::Telegram { token, .. } => vec![token.as_str()],
            Self::Sms { token, .. } => token.iter().map(String::as_str).collect(),
        }
    }

    /// How many requests one attempt makes at most (Telegram: one per chat).
    pub(crate) fn requests_per_attempt(&self) -> u32 {
        match self {
            Self::Telegram { chats, .. } => u32::try_from(chats.len()).unwrap_or(u32::MAX).max(1),
            _ => 1,
        }
    }

    /// Sends `page` to the recipients not in `done`, adding each that
    /// succeeds; when some fail, the others are still tried and the first
    /// error is returned (retryable if any failure is).
    pub(crate) async fn send(
        &self,
        client: &reqwest::Client,
        receiver: &str,
        page: &Page,
        page_url: Option<&str>,
        done: &mut BTreeSet<String>,
    ) -> Result<(), SendError> {
        let result = self
            .send_inner(client, receiver, page, page_url, done)
            .await;
        result.map_err(|mut e| {
            for secret in self.secrets() {
                if !secret.is_empty() {
                    e.message = e.message.replace(secret, "<secret>");
                }
            }
            e
        })
    }

    async fn send_inner(
        &self,
        client: &reqwest::Client,
        receiver: &str,
        page: &Page,
        page_url: Option<&str>,
        done: &mut BTreeSet<String>,
    ) -> Result<(), SendError> {
        let idempotency = format!("{}/{receiver}", page.key());
        let mut failed = Failures::default();
        match self {
            Self::Webhook { url, key } => {
                let sent_at = chrono::Utc::now().timestamp().to_string();
                let mut json = page.alertmanager_json(receiver, page_url);
                // Signed with the body: a receiver can refuse a replayed page.
                json["posbonSentAt"] = serde_json::Value::String(sent_at.clone());
                let body = serde_json::to_vec(&json)
                    .map_err(|e| SendError::fatal(format!("cannot encode the page: {e}")))?;
                let request = client
                    .post(url.clone())
                    .header(reqwest::header::CONTENT_TYPE, "application/json")
                    .header(SIGNATURE_HEADER, signature(key, &body))
                    .header(TIMESTAMP_HEADER, sent_at)
                    .header(IDEMPOTENCY_HEADER, &idempotency)
                    .body(body);
                return answer(request.send().await).await;
            }
            Self::Telegram { base, token, chats } => {
                let text = truncate(page.text(page_url), MAX_TELEGRAM_CHARS);
                for chat in resolve(chats, page, &mut failed) {
                    if done.contains(&chat) {
                        continue;
                    }
                    if !is_chat_id(&chat) {
                        failed.add(SendError::fatal(format!(
                            "{chat:?} is not a Telegram chat id"
                        )));
                        continue;
                    }
                    let request =
                        client
                            .post(format!("{base}/bot{token}/sendMessage"))
                            .json(&json!({
                                "chat_id": chat,
                                "text": text,
                                "disable_web_page_preview": true,
                            }));
                    match answer(request.send().await).await {
                        Ok(()) => {
                            done.insert(chat);
                        }
                        Err(e) => failed.add(e),
                    }
                }
            }
            Self::Sms { url, token, to } => {
                let numbers: Vec<String> = resolve(to, page, &mut failed)
                    .into_iter()
                    .filter(|n| !done.contains(n))
                    .collect();
                if !numbers.is_empty() {
                    let mut request = client
                        .post(url.clone())
                        .header(IDEMPOTENCY_HEADER, &idempotency)
                        .json(&json!({
                            "to": numbers,
                            "text": truncate(page.text(page_url), MAX_SMS_CHARS),
                            "id": page.key(),
                        }));
                    if let Some(token) = token {
                        request = request.bearer_auth(token);
                    }
                    match answer(request.send().await).await {
                        Ok(()) => done.extend(numbers),
                        Err(e) => failed.add(e),
                    }
                }
            }
            Self::Email { smtp, from, to } => {
                let mut mailboxes = Vec::new();
                for address in resolve(to, page, &mut failed) {
                    if done.contains(&address) {
                        continue;
                    }
                    match address.parse::<Mailbox>() {
                        Ok(mailbox) => mailboxes.push((address, mailbox)),
                        Err(e) => failed.add(SendError::fatal(format!(
                            "{address:?} is not an e-mail address: {e}"
                        ))),
                    }
                }
                if !mailboxes.is_empty() {
                    let mut message = Message::builder()
                        .from(from.clone())
                        .subject(page.subject())
                        .header(ContentType::TEXT_PLAIN);
                    for (_, mailbox) in &mailboxes {
                        message = message.to(mailbox.clone());
                    }
                    let message = message
                        .body(page.text(page_url))
                        .map_err(|e| SendError::fatal(format!("cannot build the e-mail: {e}")))?;
                    match smtp.send(message).await {
                        Ok(_) => done.extend(mailboxes.into_iter().map(|(a, _)| a)),
                        Err(e) if e.is_permanent() => {
                            failed.add(SendError::fatal(format!("smtp: {e}")));
                        }
                        Err(e) => failed.add(SendError::retry(format!("smtp: {e}"))),
                    }
                }
            }
        }
        failed.into_result()
    }
}

/// The failures of one attempt: the first message, retryable if any is.
#[derive(Default)]
struct Failures {
    first: Option<SendError>,
    retry: bool,
}

impl Failures {
    fn add(&mut self, e: SendError) {
        self.retry |= e.retry;
        self.first.get_or_insert(e);
    }

    fn into_result(self) -> Result<(), SendError> {
        match self.first {
            None => Ok(()),
            Some(mut e) => {
                e.retry = self.retry;
                Err(e)
            }
        }
    }
}

/// A Telegram chat id: a number, or `@channelname`.
fn is_chat_id(chat: &str) -> bool {
    let digits = chat.strip_prefix('-').unwrap_or(chat);
    (!digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit()))
        || chat.strip_prefix('@').is_some_and(|name| {
            !name.is_empty() && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
        })
}

/// The recipients with `@inspector` replaced by the registry's contact,
/// each once; a missing contact is a failure (the others are still paged).
fn resolve(recipients: &[String], page: &Page, failed: &mut Failures) -> Vec<String> {
    let mut out: Vec<String> = Vec::with_capacity(recipients.len());
    for r in recipients {
        let value = if r == INSPECTOR {
            match &page.inspector_contact {
                Some(contact) => contact.clone(),
                None => {
                    failed.add(SendError::fatal(format!(
                        "mahalla {} has no inspector_contact in the registry",
                        page.escalation.mahalla_id
                    )));
                    continue;
                }
            }
        } else {
            r.clone()
        };
        if !out.contains(&value) {
            out.push(value);
        }
    }
    out
}

fn truncate(mut text: String, chars: usize) -> String {
    if let Some((i, _)) = text.char_indices().nth(chars) {
        text.truncate(i);
    }
    text
}

/// Most bytes of an error answer kept (the rest is not read).
const MAX_ERROR_BODY: usize = 1024;

/// Success on 2xx; 408, 429 and 5xx can be retried, other answers cannot.
async fn answer(sent: Result<reqwest::Response, reqwest::Error>) -> Result<(), SendError> {
    let mut response = sent.map_err(|e| SendError::retry(describe(e)))?;
    let status = response.status();
    if status.is_success() {
        return Ok(());
    }
    let headers = response.headers().clone();
    // The start of the answer helps whoever reads the history; read no more.
    let mut body = Vec::new();
    while body.len() < MAX_ERROR_BODY {
        match response.chunk().await {
            Ok(Some(chunk)) => body.extend_from_slice(&chunk),
            _ => break,
        }
    }
    body.truncate(MAX_ERROR_BODY);
    let wait = match status.as_u16() {
        429 | 503 => retry_after(&headers, &body, Utc::now()),
        _ => None,
    };
    let body: String = String::from_utf8_lossy(&body)
        .chars()
        .filter(|c| !c.is_control())
        .take(200)
        .collect();
    let message = format!("answered {status}: {}", body.trim());
    if status.is_server_error() || status.as_u16() == 408 || status.as_u16() == 429 {
        Err(SendError {
            retry_after: wait,
            ..SendError::retry(message)
        })
    } else {
        Err(SendError::fatal(message))
    }
}

/// A transport error without its URL, with its causes.
fn describe(e: reqwest::Error) -> String {
    let e = e.without_url();
    let mut text = e.to_string();
    let mut source = std::error::Error::source(&e);
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signature_matches_a_known_hmac() {
        // RFC 4231 test case 2.
        assert_eq!(
            signature(b"Jefe", b"what do ya want for nothing?"),
            "sha256=5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }

    #[test]
    fn texts_are_cut_on_characters() {
        assert_eq!(truncate("Чилонзор".to_owned(), 3), "Чил");
        assert_eq!(truncate("ab".to_owned(), 3), "ab");
    }

    #[test]
    fn chat_ids() {
        for ok in ["-1001234567890", "42", "@posbon_duty"] {
            assert!(is_chat_id(ok), "{ok}");
        }
        for bad in ["", "-", "+998901234567", "@", "chat 1", "duty@example.uz"] {
            assert!(!is_chat_id(bad), "{bad}");
        }
    }

    #[test]
    fn retry_after_in_its_three_forms() {
        use reqwest::header::{HeaderMap, HeaderValue, RETRY_AFTER};
        let now = DateTime::parse_from_rfc3339("2026-12-05T10:00:00Z")
            .expect("time")
            .with_timezone(&Utc);
        let with = |value: &'static str| {
            let mut h = HeaderMap::new();
            h.insert(RETRY_AFTER, HeaderValue::from_static(value));
            h
        };
        assert_eq!(
            retry_after(&with("7"), b"", now),
            Some(Duration::from_secs(7))
        );
        assert_eq!(
            retry_after(&with("Sat, 05 Dec 2026 10:00:30 GMT"), b"", now),
            Some(Duration::from_secs(30))
        );
        assert_eq!(
            retry_after(&with("Sat, 05 Dec 2026 09:00:00 GMT"), b"", now),
            Some(Duration::ZERO)
        );
        let telegram = br#"{"ok":false,"error_code":429,"description":"Too Many Requests: retry after 5","parameters":{"retry_after":5}}"#;
        assert_eq!(
            retry_after(&HeaderMap::new(), telegram, now),
            Some(Duration::from_secs(5))
        );
        assert_eq!(retry_after(&with("soon"), b"not json", now), None);
    }
}
