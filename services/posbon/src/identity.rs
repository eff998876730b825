//! `posbon tokens`, `posbon users` and `posbon audit`: the admin's commands,
//! through the running system's identity routes (`/v1/tokens`, `/v1/users`,
//! `/v1/audit`); and `posbon silences` (`/v1/silences`), a supervisor's.

use std::io::BufRead as _;

use posbon_service::client::{Endpoint, request};
use serde_json::{Value, json};

use crate::cli::{ApiTarget, AuditCommand, SilencesCommand, TokensCommand, UsersCommand};
use crate::ops::{endpoint, runtime, say, server_error, unreachable};

/// Exit code of `audit verify` when the chain is broken.
pub(crate) const EXIT_TAMPERED: u8 = 4;

fn call(api: &ApiTarget, method: &str, path: &str, body: Option<&Value>) -> anyhow::Result<Value> {
    let to: Endpoint = endpoint(api)?;
    if api.token.is_none() {
        anyhow::bail!(say("cli.token_needed", &[]));
    }
    let bytes = body.map(|b| b.to_string().into_bytes()).unwrap_or_default();
    let content_type = body.map(|_| "application/json");
    let response = runtime()?
        .block_on(request(to, method, path, content_type, &bytes))
        .map_err(|e| unreachable(&api.api, e))?;
    if !(200..300).contains(&response.status) {
        return Err(server_error(response.status, &response.body));
    }
    if response.body.is_empty() {
        return Ok(Value::Null);
    }
    Ok(serde_json::from_slice(&response.body)?)
}

fn print_rows(rows: &[Value], columns: &[&str]) {
    let table = rows
        .iter()
        .map(|r| {
            columns
                .iter()
                .map(|c| crate::table::cell(&r[*c], ""))
                .collect()
        })
        .collect();
    print!(
        "{}",
        crate::table::render(columns.iter().map(|c| (*c).to_owned()).collect(), table)
    );
}

/// `posbon tokens ...`.
pub(crate) fn tokens(command: TokensCommand) -> anyhow::Result<()> {
    match command {
        TokensCommand::Create {
            name,
            role,
            scope,
            expires_in_days,
            api,
        } => {
            let body = json!({ "name": name, "role": role, "scope": scope, "expires_in_days": expires_in_days });
            let made = call(&api, "POST", "/v1/tokens", Some(&body))?;
            eprintln!(
                "{}",
                say(
                    "cli.token_made",
                    &[
                        ("id", &made["id"].as_str().unwrap_or_default()),
                        ("name", &made["name"].as_str().unwrap_or_default()),
                        ("role", &made["role"].as_str().unwrap_or_default()),
                    ]
                )
            );
            println!("{}", made["token"].as_str().unwrap_or_default());
        }
        TokensCommand::List { api } => {
            let list = call(&api, "GET", "/v1/tokens", None)?;
            let rows = list["tokens"].as_array().cloned().unwrap_or_default();
            print_rows(
                &rows,
                &[
                    "id",
                    "name",
                    "role",
                    "scope",
                    "created_at",
                    "expires_at",
                    "created_by",
                ],
            );
        }
        TokensCommand::Revoke { id, api } => {
            call(&api, "DELETE", &format!("/v1/tokens/{id}"), None)?;
            eprintln!("{}", say("cli.token_revoked", &[("id", &id)]));
        }
    }
    Ok(())
}

/// `posbon silences ...`.
pub(crate) fn silences(command: SilencesCommand) -> anyhow::Result<()> {
    const COLUMNS: &[&str] = &[
        "id",
        "region",
        "district",
        "mahalla",
        "rule",
        "level",
        "starts_at",
        "ends_at",
        "created_by",
        "reason",
    ];
    match command {
        SilencesCommand::Add {
            region,
            district,
            mahalla,
            rule,
            level,
            starts_at,
            duration,
            reason,
            api,
        } => {
            let lasts = posbon_sim::parse_duration(&duration).map_err(|_| {
                anyhow::anyhow!("--for {duration:?}: expected a duration such as 90m, 2h or 1d12h")
            })?;
            let start = match &starts_at {
                Some(t) => chrono::DateTime::parse_from_rfc3339(t)
                    .map_err(|e| anyhow::anyhow!("--starts-at {t:?}: {e}; expected RFC 3339"))?
                    .with_timezone(&chrono::Utc),
                None => chrono::Utc::now(),
            };
            let body = json!({
                "region": region, "district": district, "mahalla": mahalla, "rule": rule,
                "level": level, "starts_at": starts_at.map(|_| start),
                "ends_at": start + lasts, "reason": reason,
            });
            let made = call(&api, "POST", "/v1/silences", Some(&body))?;
            eprintln!(
                "{}",
                say(
                    "cli.silence_made",
                    &[
                        ("id", &made["id"].as_str().unwrap_or_default()),
                        ("from", &made["starts_at"].as_str().unwrap_or_default()),
                        ("until", &made["ends_at"].as_str().unwrap_or_default()),
                    ]
                )
            );
            println!("{}", made["id"].as_str().unwrap_or_default());
        }
        SilencesCommand::List { all, api } => {
            let path = if all {
                "/v1/silences?all=true"
            } else {
                "/v1/silences"
            };
            let list = call(&api, "GET", path, None)?;
            print_rows(list.as_array().map_or(&[][..], Vec::as_slice), COLUMNS);
        }
        SilencesCommand::Expire { id, api } => {
            if !id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-') {
                anyhow::bail!("{id:?} is not a silence id (sil- and hex digits)");
            }
            let ended = call(&api, "DELETE", &format!("/v1/silences/{id}"), None)?;
            eprintln!(
                "{}",
                say(
                    "cli.silence_ended",
                    &[
                        ("id", &id),
                        ("at", &ended["ends_at"].as_str().unwrap_or_default())
                    ]
                )
            );
        }
    }
    Ok(())
}

/// `posbon users ...`.
pub(crate) fn users(command: UsersCommand) -> anyhow::Result<()> {
    match command {
        UsersCommand::Add {
            name,
            role,
            scope,
            password_stdin,
            api,
        } => {
            let (password, generated) = if password_stdin {
                let mut line = String::new();
                std::io::stdin().lock().read_line(&mut line)?;
                (line.trim_end_matches(['\r', '\n']).to_owned(), false)
            } else {
                (posbon_auth::secret::random_hex(12), true)
            };
            let body = json!({ "name": name, "role": role, "scope": scope, "password": password });
            call(&api, "POST", "/v1/users", Some(&body))?;
            eprintln!("{}", say("cli.user_added", &[("name", &name)]));
            if generated {
                eprintln!("{}", say("cli.password_once", &[]));
                println!("{password}");
            }
        }
        UsersCommand::List { api } => {
            let list = call(&api, "GET", "/v1/users", None)?;
            let rows = list["users"].as_array().cloned().unwrap_or_default();
            print_rows(&rows, &["name", "role", "scope", "created_at"]);
        }
        UsersCommand::Remove { name, api } => {
            call(&api, "DELETE", &format!("/v1/users/{name}"), None)?;
            eprintln!("{}", say("cli.user_removed", &[("name", &name)]));
        }
    }
    Ok(())
}

/// `posbon audit ...`: the exit code.
pub(crate) fn audit(command: AuditCommand) -> anyhow::Result<u8> {
    match command {
        AuditCommand::Verify { api } => {
            let v = call(&api, "GET", "/v1/audit/verify", None)?;
            let records = v["records"].as_u64().unwrap_or(0);
            if v["ok"].as_bool() == Some(true) {
                println!("{}", say("cli.audit_whole", &[("records", &records)]));
                Ok(0)
            } else {
                println!(
                    "{}",
                    say(
                        "cli.audit_broken",
                        &[
                            ("records", &records),
                            ("problem", &v["problem"].as_str().unwrap_or("unknown"))
                        ]
                    )
                );
                Ok(EXIT_TAMPERED)
            }
        }
        AuditCommand::List { after, limit, api } => {
            let v = call(
                &api,
                "GET",
                &format!("/v1/audit?after={after}&limit={limit}"),
                None,
            )?;
            for record in v["records"].as_array().into_iter().flatten() {
                println!("{record}");
            }
            Ok(0)
        }
    }
}
