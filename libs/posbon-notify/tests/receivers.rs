//! Every receiver type against a local server on loopback that speaks its
//! protocol: a webhook endpoint that checks the signature, the Telegram Bot
//! API, an SMS gateway and an SMTP server.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use posbon_model::{Escalation, EscalationStatus, NotifyTier, RiskLevel};
use posbon_notify::{Notifier, NotifyConfig, Outcome, Page, signature};
use posbon_telemetry::Metrics;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};

/// What the fake server received, and the statuses it answers with in turn
/// (200 once they run out).
#[derive(Default)]
struct Fake {
    received: Mutex<Vec<(String, HeaderMap, Bytes)>>,
    /// When each request came.
    at: Mutex<Vec<std::time::Instant>>,
    answers: Mutex<VecDeque<u16>>,
    /// `Retry-After` (seconds) sent with a 429 or 503.
    retry_after: Option<u64>,
}

async fn record(
    State(fake): State<Arc<Fake>>,
    Path(path): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> (StatusCode, HeaderMap, String) {
    fake.at
        .lock()
        .expect("lock")
        .push(std::time::Instant::now());
    fake.received
        .lock()
        .expect("lock")
        .push((path.clone(), headers.clone(), body));
    let status = fake
        .answers
        .lock()
        .expect("lock")
        .pop_front()
        .unwrap_or(200);
    let answer = match status {
        200 => r#"{"ok":true}"#.to_owned(),
        // A careless proxy that echoes the request back.
        404 => format!("Cannot POST /{path} ({:?})", headers.get("authorization")),
        _ => r#"{"ok":false,"description":"try later"}"#.to_owned(),
    };
    let mut answer_headers = HeaderMap::new();
    if let (Some(secs), 429 | 503) = (fake.retry_after, status) {
        answer_headers.insert("retry-after", secs.to_string().parse().expect("header"));
    }
    (
        StatusCode::from_u16(status).expect("status"),
        answer_headers,
        answer,
    )
}

async fn fake_http(answers: &[u16]) -> (Arc<Fake>, String) {
    fake_http_with(answers, None).await
}

async fn fake_http_with(answers: &[u16], retry_after: Option<u64>) -> (Arc<Fake>, String) {
    let fake = Arc::new(Fake {
        answers: Mutex::new(answers.iter().copied().collect()),
        retry_after,
        ..Fake::default()
    });
    let app = Router::new()
        .route("/{*path}", post(record))
        .with_state(fake.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let base = format!("http://{}", listener.local_addr().expect("addr"));
    tokio::spawn(async move { axum::serve(listener, app).await });
    (fake, base)
}

fn page(contact: Option<&str>) -> Page {
    let t = chrono::Utc::now();
    Page {
        escalation: Escalation {
            id: Escalation::deterministic_id("chilonzor-017", "intensity", 4),
            mahalla_id: "chilonzor-017".into(),
            district_id: "chilonzor".into(),
            region_id: "tashkent".into(),
            level: RiskLevel::High,
            previous_level: RiskLevel::Elevated,
            score: 4.25,
            rule: "intensity".into(),
            measure: None,
            counts: Default::default(),
            hot_cells: vec![],
            evidence: vec![],
            window_start: t,
            window_end: t,
            opened_at: t,
            status: EscalationStatus::Open,
        },
        step: 1,
        tier: NotifyTier::MahallaInspector,
        place: "Qatortol (Chilonzor)".into(),
        inspector_contact: contact.map(str::to_owned),
        at: t,
    }
}

fn notifier(toml_text: &str) -> Notifier {
    let config: NotifyConfig = toml::from_str(toml_text).expect("toml");
    Notifier::new(&config, &Metrics::new()).expect("notifier")
}

const FAST_RETRY: &str = r#"
[retry]
attempts = 3
initial_backoff = "10ms"
max_backoff = "40ms"
timeout = "2s"
"#;

#[tokio::test]
async fn webhook_is_signed_alertmanager_json_and_retried() {
    let (fake, base) = fake_http(&[503]).await;
    let n = notifier(&format!(
        r#"
        page_url = "https://posbon.example"
        [[receivers]]
        name = "ops"
        type = "webhook"
        url = "{base}/hook"
        secret = "hook-key-0123456789abcdef0123456789abcdef"
        {FAST_RETRY}"#
    ));
    let outcome = n.deliver("ops", &page(None)).await;
    assert_eq!(outcome, Outcome::Delivered { attempts: 2 });
    let received = fake.received.lock().expect("lock");
    assert_eq!(received.len(), 2, "one 503, then delivered");
    let (path, headers, body) = &received[1];
    assert_eq!(path, "hook");
    assert_eq!(
        headers["x-posbon-signature"].to_str().expect("ascii"),
        signature(b"hook-key-0123456789abcdef0123456789abcdef", body),
        "the signature is the HMAC of the exact body"
    );
    assert_ne!(
        headers["x-posbon-signature"].to_str().expect("ascii"),
        signature(b"another key", body)
    );
    assert_eq!(
        headers["idempotency-key"].to_str().expect("ascii"),
        "esc:chilonzor-017:intensity:4#1/ops"
    );
    let json: serde_json::Value = serde_json::from_slice(body).expect("json");
    assert_eq!(json["version"], "4");
    assert_eq!(json["status"], "firing");
    assert_eq!(json["receiver"], "ops");
    let alert = &json["alerts"][0];
    assert_eq!(alert["labels"]["alertname"], "PosbonEscalation");
    assert_eq!(alert["labels"]["level"], "high");
    assert_eq!(alert["labels"]["district"], "chilonzor");
    assert_eq!(alert["labels"]["tier"], "mahalla_inspector");
    assert_eq!(
        alert["generatorURL"],
        "https://posbon.example/#escalation=esc%3Achilonzor-017%3Aintensity%3A4"
    );
    assert!(
        alert["annotations"]["description"]
            .as_str()
            .expect("text")
            .contains("Qatortol")
    );
}

#[tokio::test]
async fn a_refusal_is_not_retried_and_an_outage_runs_out_of_attempts() {
    let (fake, base) = fake_http(&[400]).await;
    let n = notifier(&format!(
        r#"
        [[receivers]]
        name = "ops"
        type = "webhook"
        url = "{base}/hook"
        secret = "0123456789abcdef0123456789abcdef"
        {FAST_RETRY}"#
    ));
    match n.deliver("ops", &page(None)).await {
        Outcome::Failed { attempts, reason } => {
            assert_eq!(attempts, 1, "a 400 cannot change");
            assert!(reason.contains("400"), "{reason}");
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(fake.received.lock().expect("lock").len(), 1);

    let (fake, base) = fake_http(&[500, 502, 503, 504]).await;
    let n = notifier(&format!(
        r#"
        [[receivers]]
        name = "ops"
        type = "webhook"
        url = "{base}/hook"
        secret = "0123456789abcdef0123456789abcdef"
        {FAST_RETRY}"#
    ));
    match n.deliver("ops", &page(None)).await {
        Outcome::Failed { attempts, reason } => {
            assert_eq!(attempts, 3);
            assert!(reason.contains("503"), "the last answer: {reason}");
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(fake.received.lock().expect("lock").len(), 3);

    // Nobody listening: a connection error, retried, and no secret in it.
    let n = notifier(&format!(
        r#"
        [[receivers]]
        name = "tg"
        type = "telegram"
        bot_token = "123456:SECRET-TOKEN"
        chat_id = ["-100"]
        api_url = "http://127.0.0.1:9"
        {FAST_RETRY}"#
    ));
    match n.deliver("tg", &page(None)).await {
        Outcome::Failed { attempts, reason } => {
            assert_eq!(attempts, 3);
            assert!(!reason.contains("SECRET"), "the bot token leaked: {reason}");
        }
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn telegram_reaches_each_chat_and_the_inspector() {
    let (fake, base) = fake_http(&[]).await;
    let n = notifier(&format!(
        r#"
        [[receivers]]
        name = "tg"
        type = "telegram"
        bot_token = "123456:ABC"
        chat_id = ["-1001", "@inspector"]
        api_url = "{base}"
        {FAST_RETRY}"#
    ));
    assert_eq!(
        n.deliver("tg", &page(Some("777"))).await,
        Outcome::Delivered { attempts: 1 }
    );
    let received = fake.received.lock().expect("lock").clone();
    let chats: Vec<String> = received
        .iter()
        .map(|(path, _, body)| {
            assert_eq!(path, "bot123456:ABC/sendMessage");
            let json: serde_json::Value = serde_json::from_slice(body).expect("json");
            assert!(
                json["text"]
                    .as_str()
                    .expect("text")
                    .starts_with("HIGH escalation in Qatortol")
            );
            json["chat_id"].as_str().expect("chat").to_owned()
        })
        .collect();
    assert_eq!(chats, ["-1001", "777"]);

    // No contact in the registry: the others are paged, the outcome says why.
    match n.deliver("tg", &page(None)).await {
        Outcome::Failed { attempts, reason } => {
            assert_eq!(attempts, 1);
            assert!(reason.contains("no inspector_contact"), "{reason}");
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(fake.received.lock().expect("lock").len(), 3);
}

#[tokio::test]
async fn sms_gateway_gets_numbers_text_and_token() {
    let (fake, base) = fake_http(&[429]).await;
    let n = notifier(&format!(
        r#"
        [[receivers]]
        name = "sms"
        type = "sms"
        url = "{base}/send"
        token = "gw-token"
        to = ["+998901234567", "@inspector"]
        {FAST_RETRY}"#
    ));
    assert_eq!(
        n.deliver("sms", &page(Some("+998907654321"))).await,
        Outcome::Delivered { attempts: 2 },
        "a 429 is retried"
    );
    let received = fake.received.lock().expect("lock");
    let (_, headers, body) = &received[1];
    assert_eq!(headers["authorization"], "Bearer gw-token");
    let json: serde_json::Value = serde_json::from_slice(body).expect("json");
    assert_eq!(
        json["to"],
        serde_json::json!(["+998901234567", "+998907654321"])
    );
    assert!(json["text"].as_str().expect("text").chars().count() <= 459);
}

/// A receiver that says when to come back is not asked sooner; one that
/// asks for longer than the longest backoff is given up on at once.
#[tokio::test]
async fn retry_after_is_honoured() {
    let webhook = |base: &str| {
        format!(
            r#"
        [[receivers]]
        name = "ops"
        type = "webhook"
        url = "{base}/hook"
        secret = "0123456789abcdef0123456789abcdef"
        [retry]
        attempts = 3
        initial_backoff = "10ms"
        max_backoff = "5s"
        timeout = "2s"
        "#
        )
    };
    let (fake, base) = fake_http_with(&[429], Some(1)).await;
    let n = notifier(&webhook(&base));
    assert_eq!(
        n.deliver("ops", &page(None)).await,
        Outcome::Delivered { attempts: 2 }
    );
    let at = fake.at.lock().expect("lock").clone();
    assert!(
        at[1] - at[0] >= std::time::Duration::from_secs(1),
        "retried after {:?}, asked for 1 s",
        at[1] - at[0]
    );
    let (fake, base) = fake_http_with(&[503, 503], Some(3600)).await;
    let n = notifier(&webhook(&base));
    match n.deliver("ops", &page(None)).await {
        Outcome::Failed { attempts, reason } => {
            assert_eq!(attempts, 1);
            assert!(reason.contains("retried after 3600 s"), "{reason}");
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(fake.received.lock().expect("lock").len(), 1);
}

/// A minimal SMTP server: answers each command, keeps each message.
async fn fake_smtp() -> (Arc<Mutex<Vec<String>>>, u16) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let port = listener.local_addr().expect("addr").port();
    let messages = Arc::new(Mutex::new(Vec::new()));
    let kept = messages.clone();
    tokio::spawn(async move {
        while let Ok((socket, _)) = listener.accept().await {
            let kept = kept.clone();
            tokio::spawn(async move {
                let (read, mut write) = socket.into_split();
                let mut lines = BufReader::new(read).lines();
                write.write_all(b"220 fake ESMTP\r\n").await.ok();
                let mut transcript = String::new();
                while let Ok(Some(line)) = lines.next_line().await {
                    let upper = line.to_ascii_uppercase();
                    transcript.push_str(&line);
                    transcript.push('\n');
                    let reply: &[u8] = if upper.starts_with("EHLO") {
                        b"250-fake\r\n250 8BITMIME\r\n"
                    } else if upper.starts_with("DATA") {
                        write.write_all(b"354 go on\r\n").await.ok();
                        while let Ok(Some(data)) = lines.next_line().await {
                            if data == "." {
                                break;
                            }
                            transcript.push_str(&data);
                            transcript.push('\n');
                        }
                        kept.lock().expect("lock").push(transcript.clone());
                        b"250 queued\r\n"
                    } else if upper.starts_with("QUIT") {
                        write.write_all(b"221 bye\r\n").await.ok();
                        break;
                    } else {
                        b"250 ok\r\n"
                    };
                    write.write_all(reply).await.ok();
                }
            });
        }
    });
    (messages, port)
}

#[tokio::test]
async fn email_goes_through_smtp() {
    let (messages, port) = fake_smtp().await;
    let n = notifier(&format!(
        r#"
        [[receivers]]
        name = "mail"
        type = "email"
        smtp_host = "127.0.0.1"
        smtp_port = {port}
        tls = "none"
        from = "Posbon <posbon@example.uz>"
        to = ["duty@example.uz", "@inspector"]
        {FAST_RETRY}"#
    ));
    assert_eq!(
        n.deliver("mail", &page(Some("inspector@example.uz"))).await,
        Outcome::Delivered { attempts: 1 }
    );
    let messages = messages.lock().expect("lock");
    assert_eq!(messages.len(), 1);
    let m = &messages[0];
    assert!(m.contains("MAIL FROM:<posbon@example.uz>"), "{m}");
    assert!(m.contains("RCPT TO:<duty@example.uz>"), "{m}");
    assert!(m.contains("RCPT TO:<inspector@example.uz>"), "{m}");
    assert!(m.contains("Subject: [Posbon] HIGH"), "{m}");
    assert!(m.contains("HIGH escalation in Qatortol"), "{m}");
}

#[tokio::test]
async fn secrets_are_read_from_files_and_never_shown() {
    let dir = std::env::temp_dir().join(format!("posbon-notify-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("dir");
    let file = dir.join("hook.key");
    std::fs::write(&file, "from-a-file-0123456789abcdef0123456789\n").expect("write");
    let (fake, base) = fake_http(&[]).await;
    let n = notifier(&format!(
        r#"
        [[receivers]]
        name = "ops"
        type = "webhook"
        url = "{base}/hook"
        secret_file = "{}"
        {FAST_RETRY}"#,
        file.display()
    ));
    assert!(!format!("{n:?}").contains("from-a-file-0123456789abcdef0123456789"));
    n.deliver("ops", &page(None)).await;
    let received = fake.received.lock().expect("lock");
    let (_, headers, body) = &received[0];
    assert_eq!(
        headers["x-posbon-signature"].to_str().expect("ascii"),
        signature(b"from-a-file-0123456789abcdef0123456789", body)
    );
    std::fs::remove_dir_all(&dir).ok();
    let config: NotifyConfig = toml::from_str(&format!(
        r#"
        [[receivers]]
        name = "ops"
        type = "webhook"
        url = "{base}/hook"
        secret_file = "/nonexistent/hook.key"
        "#
    ))
    .expect("toml");
    let err = Notifier::new(&config, &Metrics::new()).expect_err("no file");
    assert!(err.to_string().contains("/nonexistent/hook.key"), "{err}");
}

#[tokio::test]
async fn secrets_echoed_by_a_server_are_blanked_and_short_keys_refused() {
    let (_, base) = fake_http(&[404, 404]).await;
    let n = notifier(&format!(
        r#"
        [[receivers]]
        name = "tg"
        type = "telegram"
        bot_token = "123456:SECRET-TOKEN"
        chat_id = ["-100"]
        api_url = "{base}"
        [[receivers]]
        name = "sms"
        type = "sms"
        url = "{base}/send"
        token = "GATEWAY-TOKEN"
        to = ["+998901234567"]
        {FAST_RETRY}"#
    ));
    for name in ["tg", "sms"] {
        match n.deliver(name, &page(None)).await {
            Outcome::Failed { attempts, reason } => {
                assert_eq!(attempts, 1, "a 404 is not retried");
                assert!(
                    reason.contains("404") && reason.contains("<secret>"),
                    "{reason}"
                );
                assert!(!reason.contains("SECRET-TOKEN"), "{reason}");
                assert!(!reason.contains("GATEWAY-TOKEN"), "{reason}");
            }
            other => panic!("{other:?}"),
        }
    }
    let config: NotifyConfig = toml::from_str(
        r#"
        [[receivers]]
        name = "ops"
        type = "webhook"
        url = "https://gateway.example/hook"
        secret = "short"
        "#,
    )
    .expect("toml");
    let err = Notifier::new(&config, &Metrics::new()).expect_err("short key");
    assert!(err.to_string().contains("at least 32"), "{err}");
    assert!(
        !err.to_string().contains("short\""),
        "the key is not shown: {err}"
    );
}

#[tokio::test]
async fn one_bad_recipient_does_not_stop_the_others() {
    let (fake, base) = fake_http(&[]).await;
    let n = notifier(&format!(
        r#"
        [[receivers]]
        name = "tg"
        type = "telegram"
        bot_token = "1:A"
        chat_id = ["not a chat", "-1002"]
        api_url = "{base}"
        {FAST_RETRY}"#
    ));
    match n.deliver("tg", &page(None)).await {
        Outcome::Failed { reason, .. } => {
            assert!(reason.contains("not a Telegram chat id"), "{reason}")
        }
        other => panic!("{other:?}"),
    }
    let received = fake.received.lock().expect("lock");
    assert_eq!(received.len(), 1, "the good chat was paged");
}
