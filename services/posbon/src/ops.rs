//! The operator's commands that talk to a running Posbon over HTTP (`sql`,
//! `report`, `tail`, `replay`) or work on files and stores (`mahallas load`,
//! `store copy`). They print results on stdout, progress and errors on
//! stderr, and exit 0 on success, 1 on an error, 2 on a usage error and 3 when
//! `replay` had rejected lines.

use std::io::{BufRead as _, Write as _};
use std::time::Instant;

use anyhow::{Context, bail};
use posbon_service::client::{ClientError, Endpoint, EventSource, get, request};
use serde_json::Value;

use crate::cli::{
    ApiTarget, MahallasAdoptArgs, MahallasLoadArgs, ReplayArgs, ReportDailyArgs, SqlArgs,
    StoreCopyArgs, StorePruneArgs, StoreRekeyArgs, TailAlertsArgs,
};

/// Exit code of `replay` when some lines were rejected.
pub(crate) const EXIT_REJECTED: u8 = 3;

pub(crate) fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")
}

pub(crate) fn endpoint(target: &ApiTarget) -> anyhow::Result<Endpoint> {
    Ok(
        Endpoint::parse_with_ca(&target.api, target.ca_file.as_deref())
            .map_err(|e| anyhow::anyhow!("--api {e}"))?
            .with_token(target.token.clone()),
    )
}

/// A message of the `cli` catalog in the user's language
/// ([`posbon_i18n::Lang::user`]).
pub(crate) fn say(key: &str, args: &[(&str, &dyn std::fmt::Display)]) -> String {
    posbon_i18n::Lang::user().f(key, args)
}

pub(crate) fn unreachable(api: &str, e: ClientError) -> anyhow::Error {
    anyhow::anyhow!(say("cli.unreachable", &[("api", &api), ("error", &e)]))
}

/// The `error` of a JSON error body, or the body.
pub(crate) fn server_error(status: u16, body: &[u8]) -> anyhow::Error {
    let text = String::from_utf8_lossy(body);
    let message = serde_json::from_slice::<Value>(body)
        .ok()
        .and_then(|v| {
            v["detail"]
                .as_str()
                .or_else(|| v["error"].as_str())
                .map(str::to_owned)
        })
        .unwrap_or_else(|| text.trim().to_owned());
    anyhow::anyhow!(say(
        "cli.http_error",
        &[("message", &message), ("status", &status)]
    ))
}

fn cell(v: &Value) -> String {
    crate::table::cell(v, "NULL")
}

/// A JSON result `{"columns": [...], "rows": [...]}` as an aligned text table.
pub(crate) fn text_table(result: &Value) -> String {
    let names: Vec<String> = result["columns"]
        .as_array()
        .map(|c| c.iter().map(|c| cell(&c["name"])).collect())
        .unwrap_or_default();
    let rows: Vec<Vec<String>> = result["rows"]
        .as_array()
        .map(|rows| {
            rows.iter()
                .map(|r| {
                    r.as_array()
                        .map(|r| r.iter().map(cell).collect())
                        .unwrap_or_default()
                })
                .collect()
        })
        .unwrap_or_default();
    let count = rows.len();
    let mut out = crate::table::render(names, rows);
    let truncated = result["truncated"].as_bool() == Some(true);
    out.push_str(&format!(
        "({} row{}{})\n",
        count,
        if count == 1 { "" } else { "s" },
        if truncated {
            ", truncated by the row limit"
        } else {
            ""
        }
    ));
    out
}

/// `posbon sql`.
pub(crate) fn sql(args: SqlArgs) -> anyhow::Result<()> {
    let to = endpoint(&args.target)?;
    let format = match args.format.as_str() {
        "table" | "json" => "json",
        f @ ("csv" | "parquet" | "geojson") => f,
        other => bail!("--format {other:?}: expected table, json, csv, parquet or geojson"),
    };
    let query = read_query(args.query)?;
    let body = serde_json::json!({ "query": query }).to_string();
    let response = runtime()?.block_on(request(
        to,
        "POST",
        &format!("/v1/sql?format={format}"),
        Some("application/json"),
        body.as_bytes(),
    ));
    let response = response.map_err(|e| unreachable(&args.target.api, e))?;
    if response.status != 200 {
        return Err(server_error(response.status, &response.body));
    }
    let mut stdout = std::io::stdout().lock();
    match args.format.as_str() {
        "table" => stdout.write_all(text_table(&response.json()).as_bytes())?,
        _ => stdout.write_all(&response.body)?,
    }
    Ok(())
}

/// `posbon report daily`.
pub(crate) fn report_daily(args: ReportDailyArgs) -> anyhow::Result<()> {
    let to = endpoint(&args.target)?;
    let format = match args.format.as_str() {
        f @ ("text" | "json" | "csv" | "html") => f,
        other => bail!("--format {other:?}: expected text, json, csv or html"),
    };
    let date = chrono::NaiveDate::parse_from_str(&args.date, "%Y-%m-%d")
        .with_context(|| format!("--date {:?}: expected YYYY-MM-DD", args.date))?;
    let rt = runtime()?;
    if args.generate {
        let response = rt
            .block_on(request(
                to.clone(),
                "POST",
                &format!("/v1/reports/daily?date={date}"),
                None,
                b"",
            ))
            .map_err(|e| unreachable(&args.target.api, e))?;
        if response.status != 200 {
            return Err(server_error(response.status, &response.body));
        }
    }
    let wire = if format == "text" { "json" } else { format };
    let path = format!(
        "/v1/reports/daily?date={date}&scope={}&format={wire}",
        args.scope
    );
    let response = rt
        .block_on(get(to, &path))
        .map_err(|e| unreachable(&args.target.api, e))?;
    if response.status != 200 {
        return Err(server_error(response.status, &response.body));
    }
    let mut stdout = std::io::stdout().lock();
    if format == "text" {
        let view: posbon_reporter::ScopeView = serde_json::from_slice(&response.body)
            .context("the server's report is not a report view")?;
        stdout.write_all(posbon_reporter::render::to_text(&view).as_bytes())?;
    } else {
        stdout.write_all(&response.body)?;
    }
    Ok(())
}

/// `posbon tail alerts`.
pub(crate) fn tail_alerts(args: TailAlertsArgs) -> anyhow::Result<()> {
    let to = endpoint(&args.target)?;
    let mut query = Vec::new();
    for (key, value) in [
        ("region", &args.region),
        ("district", &args.district),
        ("mahalla", &args.mahalla),
        ("min_level", &args.min_level),
    ] {
        if let Some(v) = value {
            query.push(format!("{key}={v}"));
        }
    }
    if let Some(since) = args.since {
        query.push(format!("since={since}"));
    }
    let path = format!("/v1/feed?{}", query.join("&"));
    runtime()?.block_on(async {
        let mut feed = EventSource::open(to, &path).await.map_err(|e| match e {
            ClientError::Status { status, body } => server_error(status, body.as_bytes()),
            other => unreachable(&args.target.api, other),
        })?;
        let mut reconnects = 0;
        loop {
            let event = feed.next().await.map_err(|e| match e {
                ClientError::Status { status, body } => server_error(status, body.as_bytes()),
                other => unreachable(&args.target.api, other),
            })?;
            if feed.reconnects() != reconnects {
                reconnects = feed.reconnects();
                eprintln!(
                    "{}",
                    say(
                        "cli.feed_reconnected",
                        &[("sequence", &event.id.as_deref().unwrap_or("-"))]
                    )
                );
            }
            let mut out = std::io::stdout().lock();
            if args.json {
                writeln!(out, "{}", event.data)?;
            } else {
                let r: Value = serde_json::from_str(&event.data).unwrap_or(Value::Null);
                writeln!(
                    out,
                    "{:>6} {:<7} {:<8} {:<9} {:<22} {:<20} {:<12} {}",
                    event.id.as_deref().unwrap_or(""),
                    event.event,
                    cell(&r["level"]),
                    cell(&r["status"]),
                    cell(&r["mahalla_id"]),
                    cell(&r["rule"]),
                    cell(&r["opened_at"]).get(..19).unwrap_or(""),
                    cell(&r["id"]),
                )?;
            }
            out.flush()?;
        }
    })
}

/// `posbon replay`.
pub(crate) fn replay(args: ReplayArgs, quiet: bool) -> anyhow::Result<u8> {
    let to = endpoint(&args.target)?;
    anyhow::ensure!(args.batch >= 1, "--batch must be at least 1");
    let file = std::fs::File::open(&args.file)
        .with_context(|| format!("cannot open {}", args.file.display()))?;
    let total_bytes = file.metadata().map(|m| m.len()).unwrap_or(0);
    let reader = std::io::BufReader::new(file);
    let rt = runtime()?;
    let started = Instant::now();
    let (mut accepted, mut duplicates, mut rejected, mut lines_sent, mut bytes_sent) =
        (0u64, 0u64, 0u64, 0u64, 0u64);
    let mut first_rejections: Vec<String> = Vec::new();
    let mut batch = String::new();
    let mut in_batch = 0usize;
    let progress = crate::progress::bytes(total_bytes, quiet);
    let mut send = |batch: &mut String, in_batch: &mut usize| -> anyhow::Result<()> {
        if *in_batch == 0 {
            return Ok(());
        }
        let response = rt
            .block_on(request(
                to.clone(),
                "POST",
                "/v1/events",
                Some("application/x-ndjson"),
                batch.as_bytes(),
            ))
            .map_err(|e| unreachable(&args.target.api, e))?;
        if response.status != 200 && response.status != 422 {
            return Err(server_error(response.status, &response.body));
        }
        let v = response.json();
        accepted += v["accepted"].as_u64().unwrap_or(0);
        duplicates += v["duplicates"].as_u64().unwrap_or(0);
        rejected += v["rejected"].as_u64().unwrap_or(0);
        if let Some(items) = v["items"].as_array() {
            for (i, item) in items.iter().enumerate() {
                if first_rejections.len() < 10 && item["status"] == "rejected" {
                    first_rejections.push(format!(
                        "line {}: {}",
                        lines_sent + i as u64 + 1,
                        item["errors"]
                            .as_array()
                            .map(|e| e
                                .iter()
                                .filter_map(|e| e["message"].as_str().map(str::to_owned))
                                .collect::<Vec<_>>()
                                .join("; "))
                            .unwrap_or_else(|| item.to_string())
                    ));
                }
            }
        }
        lines_sent += *in_batch as u64;
        bytes_sent += batch.len() as u64;
        batch.clear();
        *in_batch = 0;
        let rate = lines_sent as f64 / started.elapsed().as_secs_f64().max(1e-3);
        progress.set_position(bytes_sent);
        progress.set_message(format!(
            "{lines_sent} lines  {rate:.0}/s  accepted {accepted}  duplicates {duplicates}  rejected {rejected}"
        ));
        Ok(())
    };
    for line in reader.lines() {
        let line = line.with_context(|| format!("cannot read {}", args.file.display()))?;
        if line.trim().is_empty() {
            continue;
        }
        batch.push_str(&line);
        batch.push('\n');
        in_batch += 1;
        if in_batch >= args.batch {
            send(&mut batch, &mut in_batch)?;
        }
    }
    send(&mut batch, &mut in_batch)?;
    progress.finish_and_clear();
    for r in &first_rejections {
        eprintln!("{}", say("cli.rejected", &[("reason", r)]));
    }
    println!(
        "{}",
        say(
            "cli.sent",
            &[
                ("lines", &lines_sent),
                (
                    "seconds",
                    &format!("{:.1}", started.elapsed().as_secs_f64())
                ),
                ("accepted", &accepted),
                ("duplicates", &duplicates),
                ("rejected", &rejected),
            ]
        )
    );
    Ok(if rejected > 0 { EXIT_REJECTED } else { 0 })
}

/// `posbon mahallas load`: validates a registry and installs it as the data
/// directory's registry (`<data>/mahallas.geojson`), which `posbon
/// standalone` uses when no `--registry` is given.
pub(crate) fn mahallas_load(args: MahallasLoadArgs) -> anyhow::Result<()> {
    let started = Instant::now();
    let registry =
        posbon_geo::Registry::from_path(&args.file, &posbon_geo::RegistryOptions::default())
            .with_context(|| format!("cannot load the mahalla registry {}", args.file.display()))?;
    let stats = registry.stats();
    println!(
        "{}",
        say(
            "cli.registry_valid",
            &[
                ("file", &args.file.display()),
                ("mahallas", &registry.mahallas().len()),
                ("districts", &registry.districts().len()),
                ("regions", &registry.regions().len()),
                ("ms", &started.elapsed().as_millis()),
                ("interior", &stats.interior_squares),
                ("boundary", &stats.boundary_squares),
            ]
        )
    );
    if args.check {
        return Ok(());
    }
    std::fs::create_dir_all(&args.data)
        .with_context(|| format!("cannot create {}", args.data.display()))?;
    let target = args.data.join(posbon_standalone::REGISTRY_FILE);
    let tmp = target.with_extension("geojson.tmp");
    std::fs::copy(&args.file, &tmp).with_context(|| format!("cannot write {}", tmp.display()))?;
    std::fs::rename(&tmp, &target)
        .with_context(|| format!("cannot install {}", target.display()))?;
    println!(
        "{}",
        say(
            "cli.registry_installed",
            &[
                ("target", &target.display()),
                ("data", &args.data.display())
            ]
        )
    );
    Ok(())
}

/// `posbon mahallas adopt`: records a registry as the deployment's, so that
/// services started with it join and those with the old one refuse.
pub(crate) fn mahallas_adopt(args: MahallasAdoptArgs) -> anyhow::Result<()> {
    let registry =
        posbon_geo::Registry::from_path(&args.file, &posbon_geo::RegistryOptions::default())
            .with_context(|| format!("cannot load the mahalla registry {}", args.file.display()))?;
    let config = store_config(&args.store)?;
    runtime()?.block_on(async {
        let store = posbon_store::open_store(&config)
            .await
            .with_context(|| format!("cannot open {}", config.describe()))?;
        posbon_service::registry::adopt(&*store, &registry, "posbon mahallas adopt").await
    })?;
    println!(
        "{}",
        say(
            "cli.registry_adopted",
            &[
                ("digest", &registry.digest()),
                ("mahallas", &registry.mahallas().len()),
            ]
        )
    );
    Ok(())
}

fn store_config(spec: &str) -> anyhow::Result<posbon_store::StoreConfig> {
    if let Some(path) = spec.strip_prefix("embedded:") {
        anyhow::ensure!(!path.is_empty(), "{spec:?}: embedded:PATH needs a path");
        return Ok(posbon_store::StoreConfig::embedded(path));
    }
    if let Some(pd) = spec.strip_prefix("tikv:") {
        let endpoints: Vec<&str> = pd
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .collect();
        anyhow::ensure!(
            !endpoints.is_empty(),
            "{spec:?}: tikv:PD[,PD...] needs PD endpoints"
        );
        return Ok(posbon_store::StoreConfig::tikv(endpoints));
    }
    bail!("{spec:?}: a store is embedded:PATH or tikv:PD_ENDPOINT[,PD_ENDPOINT...]")
}

/// `posbon store prune`.
pub(crate) fn store_prune(args: StorePruneArgs) -> anyhow::Result<()> {
    #[derive(serde::Deserialize)]
    struct File {
        #[serde(default)]
        retention: posbon_store::retention::RetentionConfig,
    }
    let retention = match &args.config {
        None => posbon_store::retention::RetentionConfig::default(),
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("cannot read {}", path.display()))?;
            toml::from_str::<File>(&text)
                .with_context(|| format!("{}: [retention]", path.display()))?
                .retention
        }
    };
    let config = store_config(&args.store)?;
    runtime()?.block_on(async {
        let store = posbon_store::open_store(&config)
            .await
            .with_context(|| format!("cannot open {}", config.describe()))?;
        let report = posbon_store::retention::prune(
            &*store,
            &retention,
            chrono::Utc::now(),
            args.dry_run,
            args.full,
        )
        .await?;
        let verb = if report.dry_run {
            "would delete"
        } else {
            "deleted"
        };
        let mut out = std::io::stdout().lock();
        for (table, cutoff) in &report.cutoffs {
            let n = match table.as_str() {
                "escalations" => report.escalations,
                kind => report.events.get(kind).copied().unwrap_or(0),
            };
            writeln!(
                out,
                "{table:<14} {verb} {n:>9}  (older than {})",
                cutoff.format("%Y-%m-%d %H:%M UTC")
            )?;
        }
        if report.cutoffs.is_empty() {
            writeln!(out, "every table is kept forever: nothing to delete")?;
        }
        Ok(())
    })
}

/// `posbon store rekey-pseudonyms`.
pub(crate) fn store_rekey(args: StoreRekeyArgs) -> anyhow::Result<()> {
    let text = std::fs::read_to_string(&args.key_file)
        .with_context(|| format!("cannot read {}", args.key_file.display()))?;
    let keys =
        posbon_model::PseudonymKeys::parse(&text, posbon_ingest::config::MIN_PSEUDONYM_KEY_CHARS)
            .map_err(|e| anyhow::anyhow!("{}: {e}", args.key_file.display()))?;
    let config = store_config(&args.store)?;
    runtime()?.block_on(async {
        let store = posbon_store::open_store(&config)
            .await
            .with_context(|| format!("cannot open {}", config.describe()))?;
        let report =
            posbon_store::pseudonyms::rekey_pseudonyms(&*store, &keys, args.dry_run).await?;
        let key = if report.dry_run {
            "cli.rekey_dry_run"
        } else {
            "cli.rekeyed"
        };
        println!(
            "{}",
            say(
                key,
                &[
                    ("flags", &report.flags),
                    ("lifted", &report.lifted),
                    ("key", &keys.current_id()),
                    ("unknown", &report.unknown_key),
                ]
            )
        );
        Ok(())
    })
}

/// `posbon store copy`.
pub(crate) fn store_copy(args: StoreCopyArgs, quiet: bool) -> anyhow::Result<()> {
    let from = store_config(&args.from)?;
    let to = store_config(&args.to)?;
    anyhow::ensure!(args.from != args.to, "--from and --to are the same store");
    runtime()?.block_on(async {
        let source = posbon_store::open_store(&from)
            .await
            .with_context(|| format!("cannot open {}", from.describe()))?;
        let target = posbon_store::open_store(&to)
            .await
            .with_context(|| format!("cannot open {}", to.describe()))?;
        let progress = crate::progress::spinner(quiet);
        let summary = posbon_store::copy(&*source, &*target, |p| {
            progress.set_message(format!("{} keys, {:.1} MB", p.keys, p.bytes as f64 / 1e6));
        })
        .await?;
        progress.finish_and_clear();
        println!(
            "{}",
            say(
                "cli.copied",
                &[
                    ("keys", &summary.keys),
                    ("megabytes", &format!("{:.1}", summary.bytes as f64 / 1e6)),
                    ("from", &from.describe()),
                    ("to", &to.describe()),
                    ("seconds", &format!("{:.1}", summary.elapsed.as_secs_f64())),
                ]
            )
        );
        Ok(())
    })
}

/// `posbon sql` reads a query from stdin when it is `-`.
pub(crate) fn read_query(query: String) -> anyhow::Result<String> {
    if query == "-" {
        let mut text = String::new();
        std::io::Read::read_to_string(&mut std::io::stdin(), &mut text)?;
        return Ok(text);
    }
    Ok(query)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tables_align() {
        let v = serde_json::json!({
            "columns": [{"name": "mahalla_id", "type": "Utf8"}, {"name": "n", "type": "Int64"}],
            "rows": [["chilonzor-001", 12], [null, 3]]
        });
        assert_eq!(
            text_table(&v),
            "+---------------+----+\n\
             | mahalla_id    | n  |\n\
             +===============+====+\n\
             | chilonzor-001 | 12 |\n\
             | NULL          | 3  |\n\
             +---------------+----+\n\
             (2 rows)\n"
        );
    }

    #[test]
    fn store_specs() {
        assert!(store_config("embedded:/tmp/x").is_ok());
        assert!(store_config("tikv:a:2379,b:2379").is_ok());
        let err = store_config("rocks:/x").expect_err("unknown");
        assert!(err.to_string().contains("embedded:PATH or tikv:"), "{err}");
    }
}
