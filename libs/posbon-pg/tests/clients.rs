//! The PostgreSQL front end with the real clients: `psql` (Debian's
//! postgresql-client) and Python's psycopg, both installed by
//! `scripts/install-test-deps.sh` (`POSBON_PSQL`, `POSBON_PYTHON`).
//! A missing client fails the test with that instruction; nothing is
//! skipped.
//!
//! One server over a small simulated city: an analyst's token, a
//! district-scoped analyst, an operator (no SQL), a user with a password,
//! and a second server with TLS required.

use posbon_model::Span;
use std::path::PathBuf;
use std::process::{Command, Output};
use std::sync::Arc;
use std::time::Duration;

use chrono::{FixedOffset, TimeDelta, TimeZone, Utc};
use posbon_auth::{Auth, AuthConfig, Role, ScopeItem};
use posbon_geo::Registry;
use posbon_pg::{PgConfig, PgServer};
use posbon_sim::{CityOptions, EventOptions, EventStream, SimBody, SimRegistry, city_registry};
use posbon_sql::{SqlEngine, SqlLimits};
use posbon_store::{EventStoreExt, MemoryStore, Store};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

/// A client binary named by `env`, or a failure saying how to get it.
fn client(env: &str, fallback: &str) -> PathBuf {
    let path = std::env::var_os(env).map_or_else(|| PathBuf::from(fallback), PathBuf::from);
    let works = Command::new(&path)
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    assert!(
        works,
        "{} not found: run `eval \"$(scripts/install-test-deps.sh)\"` (sets {env})",
        path.display()
    );
    path
}

fn psql_binary() -> PathBuf {
    client("POSBON_PSQL", "psql")
}

fn python() -> PathBuf {
    client("POSBON_PYTHON", "python3")
}

struct Server {
    address: std::net::SocketAddr,
    analyst: String,
    scoped: String,
    operator: String,
    district: String,
    registry: Arc<Registry>,
    auth: Arc<Auth>,
    _stop: tokio_util::sync::DropGuard,
    _dir: tempfile::TempDir,
}

/// A city of 40 mahallas, two days of its events.
async fn fill(store: &MemoryStore) -> Arc<Registry> {
    let city = city_registry(&CityOptions {
        seed: 5,
        mahallas: 40,
    })
    .expect("city");
    let registry = Arc::new(city.registry().expect("registry"));
    let sim = Arc::new(SimRegistry::from_generated(&city).expect("sim registry"));
    let start = FixedOffset::east_opt(5 * 3600)
        .expect("offset")
        .with_ymd_and_hms(2026, 5, 1, 0, 0, 0)
        .single()
        .expect("time");
    let stream = EventStream::new(
        sim,
        &EventOptions {
            seed: 3,
            rate_per_hour: 60.0,
            duration: TimeDelta::days(2),
            start,
            bad_fraction: 0.0,
            situations: Default::default(),
        },
    )
    .expect("stream");
    let mut events = Vec::new();
    for item in stream {
        if let SimBody::Valid { event, .. } = item.body {
            let at = event.occurred_at().with_timezone(&Utc) + TimeDelta::seconds(2);
            events.push(posbon_sim::enrich(&registry, *event, at).expect("enrich"));
        }
    }
    for chunk in events.chunks(1000) {
        store.put_events(chunk).await.expect("put");
    }
    registry
}

async fn start(limits: SqlLimits, tls: Option<Arc<posbon_service::http::Certificates>>) -> Server {
    let dir = tempfile::tempdir().expect("dir");
    let memory = Arc::new(MemoryStore::new());
    let registry = fill(&memory).await;
    let store: Store = memory;
    let auth = Auth::new(store.clone(), registry.clone(), AuthConfig::default()).expect("auth");
    let ids = auth.identities();
    let district = registry.districts()[0].id.clone();
    let (_, analyst) = ids
        .create_token("grafana", Role::Analyst, vec![], None, "test")
        .await
        .expect("token");
    let (_, scoped) = ids
        .create_token(
            "district-analyst",
            Role::Analyst,
            vec![ScopeItem::District(district.clone())],
            None,
            "test",
        )
        .await
        .expect("token");
    let (_, operator) = ids
        .create_token("duty", Role::Operator, vec![], None, "test")
        .await
        .expect("token");
    ids.add_user("dilnoza", Role::Supervisor, vec![], "correct horse battery")
        .await
        .expect("user");
    let engine = Arc::new(SqlEngine::new(store, registry.clone(), limits).expect("engine"));
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let address = listener.local_addr().expect("address");
    let stop = CancellationToken::new();
    let server = PgServer::new(engine, auth.clone(), tls, &PgConfig::default());
    tokio::spawn(server.serve(listener, stop.clone()));
    Server {
        address,
        analyst,
        scoped,
        operator,
        district,
        registry,
        auth,
        _stop: stop.drop_guard(),
        _dir: dir,
    }
}

impl Server {
    fn url(&self, user: &str, extra: &str) -> String {
        format!(
            "postgresql://{user}@{}:{}/posbon?sslmode=disable{extra}",
            self.address.ip(),
            self.address.port()
        )
    }

    /// Runs psql with `password`, `-c` each of `commands`, off the runtime.
    async fn psql(&self, user: &str, password: &str, commands: &[&str]) -> Output {
        self.psql_url(&self.url(user, ""), password, commands).await
    }

    async fn psql_url(&self, url: &str, password: &str, commands: &[&str]) -> Output {
        let mut command = Command::new(psql_binary());
        command
            .arg(url)
            .args([
                "-X",
                "-A",
                "-t",
                "-v",
                "ON_ERROR_STOP=1",
                "-v",
                "VERBOSITY=verbose",
            ])
            .env("PGPASSWORD", password)
            .env("PGCONNECT_TIMEOUT", "10");
        for c in commands {
            command.arg("-c").arg(c);
        }
        tokio::task::spawn_blocking(move || command.output().expect("psql runs"))
            .await
            .expect("join")
    }
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// Fails unless psql failed and said each of `said`.
fn assert_refused(out: &Output, said: &[&str]) {
    let text = stderr(out);
    assert!(
        !out.status.success() && said.iter().all(|s| text.contains(s)),
        "expected a refusal saying {said:?}, got: {text}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn psql_browses_the_catalog_and_queries_with_a_token() {
    let server = start(SqlLimits::default(), None).await;
    // \dt lists the analyst's tables; the audit log is not one of them.
    let out = server.psql("anyone", &server.analyst, &["\\dt"]).await;
    assert!(out.status.success(), "\\dt failed: {}", stderr(&out));
    let listed = stdout(&out);
    for table in [
        "events",
        "incidents",
        "mahallas",
        "escalations",
        "daily_reports",
    ] {
        assert!(
            listed.lines().any(|l| l.split('|').nth(1) == Some(table)),
            "{table} missing from \\dt:\n{listed}"
        );
    }
    assert!(
        !listed.contains("|audit|"),
        "audit listed to an analyst:\n{listed}"
    );
    // \d events describes the columns with PostgreSQL types.
    let out = server
        .psql("anyone", &server.analyst, &["\\d events"])
        .await;
    assert!(out.status.success(), "\\d events failed: {}", stderr(&out));
    let described = stdout(&out);
    for (column, pg_type) in [
        ("occurred_at", "timestamp with time zone"),
        ("mahalla_id", "text"),
        ("lat", "double precision"),
    ] {
        assert!(
            described
                .lines()
                .any(|l| l.starts_with(&format!("{column}|")) && l.contains(pg_type)),
            "{column} {pg_type} missing from \\d events:\n{described}"
        );
    }
    // A query, and what Grafana asks first.
    let out = server
        .psql(
            "anyone",
            &server.analyst,
            &[
                "SELECT count(*) > 1000 FROM events WHERE local_date = DATE '2026-05-01'",
                "SELECT current_setting('server_version_num')::int >= 100000, current_database()",
                "SHOW transaction_isolation",
                "SELECT version()",
            ],
        )
        .await;
    assert!(out.status.success(), "queries failed: {}", stderr(&out));
    let lines: Vec<String> = stdout(&out).lines().map(str::to_owned).collect();
    assert_eq!(lines[0], "t", "{lines:?}");
    assert_eq!(lines[1], "t|posbon", "{lines:?}");
    assert_eq!(lines[2], "read committed", "{lines:?}");
    assert!(lines[3].starts_with("PostgreSQL 16.6 (Posbon"), "{lines:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_refusal_has_its_sqlstate() {
    let server = start(SqlLimits::default(), None).await;
    // Writes: read-only.
    for statement in [
        "CREATE TABLE notes (a int)",
        "INSERT INTO events (id) VALUES ('x')",
        "BEGIN READ WRITE",
    ] {
        let out = server.psql("a", &server.analyst, &[statement]).await;
        assert_refused(&out, &["25006"]);
    }
    // SET of what the server fixes.
    let out = server
        .psql("a", &server.analyst, &["SET TimeZone = 'Asia/Tashkent'"])
        .await;
    assert_refused(&out, &["0A000", "UTC"]);
    // A wrong password; a token for a role without SQL; another database.
    // (libpq prints a log-in refusal's message without its SQLSTATE.)
    let out = server
        .psql("a", "psb_000000000000_nope", &["SELECT 1"])
        .await;
    assert_refused(&out, &["FATAL:  the token is not valid"]);
    let out = server
        .psql("dilnoza", "wrong password!", &["SELECT 1"])
        .await;
    assert_refused(&out, &["FATAL:  the user name or password is not valid"]);
    let out = server.psql("a", &server.operator, &["SELECT 1"]).await;
    assert_refused(
        &out,
        &["FATAL:  role operator may not query SQL (it needs read_sql)"],
    );
    let url = server.url("a", "").replace("/posbon?", "/postgres?");
    let out = server.psql_url(&url, &server.analyst, &["SELECT 1"]).await;
    assert_refused(&out, &["database \"postgres\" does not exist"]);
    // A statement the parser would take 2^30 steps over, and a dotted name
    // of 30 parts: refused as too complex, at once.
    let chain = format!("SELECT {}1", "ARRAY[".repeat(30));
    let out = server.psql("a", &server.analyst, &[&chain]).await;
    assert_refused(&out, &["54001", "too costly to parse"]);
    let dotted = format!("SELECT m{} FROM events m", ".a".repeat(30));
    let out = server.psql("a", &server.analyst, &[&dotted]).await;
    assert_refused(&out, &["54001", "dotted name of more than 8 parts"]);
    // The audit table does not exist for an analyst; an unknown column is
    // named.
    let out = server
        .psql("a", &server.analyst, &["SELECT * FROM audit"])
        .await;
    assert_refused(&out, &["42P01"]);
    let out = server
        .psql("a", &server.analyst, &["SELECT nonesuch FROM events"])
        .await;
    assert_refused(&out, &["42703"]);
    // A user's own password works, and the refusals above were audited.
    let out = server
        .psql(
            "dilnoza",
            "correct horse battery",
            &["SELECT count(*) FROM mahallas"],
        )
        .await;
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(
        stdout(&out).trim(),
        server.registry.mahallas().len().to_string()
    );
    let audit = server.auth.audit().list(0, 10_000).await.expect("audit");
    let logins: Vec<_> = audit.iter().filter(|r| r.action == "pg_login").collect();
    assert!(logins.iter().any(|r| r.outcome == "refused"), "{logins:?}");
    assert!(
        logins
            .iter()
            .any(|r| r.outcome == "ok" && r.actor == "dilnoza"),
        "{logins:?}"
    );
    assert!(
        audit
            .iter()
            .any(|r| r.action == "sql" && r.detail["via"] == "pg" && r.outcome == "refused"),
        "no refused pg query audited"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_scoped_caller_reads_only_its_district() {
    let server = start(SqlLimits::default(), None).await;
    let sql = "SELECT count(DISTINCT district_id), min(district_id) FROM events WHERE district_id IS NOT NULL";
    let all = server.psql("a", &server.analyst, &[sql]).await;
    let own = server.psql("a", &server.scoped, &[sql]).await;
    assert!(
        all.status.success() && own.status.success(),
        "{}",
        stderr(&own)
    );
    let all: Vec<String> = stdout(&all).trim().split('|').map(str::to_owned).collect();
    assert!(all[0].parse::<u32>().expect("count") > 1, "{all:?}");
    assert_eq!(stdout(&own).trim(), format!("1|{}", server.district));
}

/// Runs a Python script with psycopg against the server; it prints `ok`.
async fn psycopg(server: &Server, password: &str, script: &str) -> Output {
    let dsn = server.url("analyst", "");
    let mut command = Command::new(python());
    command
        .arg("-c")
        .arg(script)
        .env("DSN", dsn)
        .env("PGPASSWORD", password);
    tokio::task::spawn_blocking(move || command.output().expect("python runs"))
        .await
        .expect("join")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn psycopg_binds_parameters_round_trips_times_and_is_refused_and_cancelled() {
    let limits = SqlLimits {
        timeout: Span::from_millis(1500),
        ..SqlLimits::default()
    };
    let server = start(limits, None).await;
    let mahalla = server.registry.mahallas()[0].id.clone();
    let script = format!(
        r#"
import datetime, os, threading, time
import psycopg
from psycopg import errors

with psycopg.connect(os.environ["DSN"]) as conn:
    # Parameters, server-side (extended protocol), text and binary.
    for binary in (False, True):
        cur = conn.cursor(binary=binary)
        cur.execute(
            "SELECT count(*) FROM events WHERE mahalla_id = %s AND local_date = %s",
            ("{mahalla}", datetime.date(2026, 5, 1)),
        )
        (n,) = cur.fetchone()
        cur.execute("SELECT count(*) FROM events WHERE local_date = %s", (datetime.date(2026, 5, 1),))
        (day,) = cur.fetchone()
        assert 0 < n < day, (n, day)
    # A timestamptz goes in and comes back the same instant, in UTC.
    at = datetime.datetime(2026, 5, 1, 14, 30, 5, 250000, tzinfo=datetime.timezone(datetime.timedelta(hours=5)))
    for binary in (False, True):
        cur = conn.cursor(binary=binary)
        cur.execute("SELECT min(occurred_at) FROM events WHERE occurred_at >= %s", (at,))
        (first,) = cur.fetchone()
        assert first.tzinfo is not None and first.utcoffset() == datetime.timedelta(0), first
        assert first >= at, (first, at)
        assert cur.description[0].type_code == 1184, cur.description[0]
        cur.execute("SELECT %s::timestamptz", (at,))
        (back,) = cur.fetchone()
        assert back == at, (back, at)
    conn.commit()
    # DDL is refused with its SQLSTATE, and the connection goes on.
    try:
        conn.execute("CREATE TABLE notes (a int)")
        raise SystemExit("DDL accepted")
    except errors.ReadOnlySqlTransaction as e:
        assert e.sqlstate == "25006", e.sqlstate
    conn.rollback()
    # Statements beyond the protocol's limits are refused before planning.
    for text, code in (("SELECT $70000::int", "54023"), ("SELECT 1" + " " * (1 << 20), "54000")):
        try:
            conn.execute(text, prepare=True)
            raise SystemExit("accepted: " + text[:20])
        except psycopg.Error as e:
            assert e.sqlstate == code, (text[:20], e.sqlstate, str(e))
        conn.rollback()
    # A query longer than the server's limit is stopped.
    # Long, and yielding between batches (a stopped query ends at its next yield).
    slow = "SELECT count(*) FROM generate_series(1, 1000000000000) AS t(v) WHERE v % 7 = 3"
    started = time.monotonic()
    try:
        conn.execute(slow)
        raise SystemExit("the slow query finished")
    except errors.QueryCanceled as e:
        assert e.sqlstate == "57014", e.sqlstate
        assert "statement timeout" in str(e), str(e)
    assert time.monotonic() - started < 10, time.monotonic() - started
    conn.rollback()
    # A statement_timeout below the server's stops it sooner.
    conn.execute("SET statement_timeout = 200")
    started = time.monotonic()
    try:
        conn.execute(slow)
        raise SystemExit("the slow query finished")
    except errors.QueryCanceled:
        pass
    assert time.monotonic() - started < 1.4, time.monotonic() - started
    conn.rollback()
    conn.execute("RESET statement_timeout")
    conn.commit()
    # A cancel request from another thread stops the running query.
    conn.autocommit = True
    threading.Timer(0.3, conn.cancel).start()
    started = time.monotonic()
    try:
        conn.execute(slow)
        raise SystemExit("the slow query finished")
    except errors.QueryCanceled as e:
        assert e.sqlstate == "57014", e.sqlstate
    assert time.monotonic() - started < 1.4, time.monotonic() - started
    (one,) = conn.execute("SELECT 1").fetchone()
    assert one == 1
print("ok")
"#
    );
    let out = psycopg(&server, &server.analyst, &script).await;
    assert!(
        out.status.success() && stdout(&out).trim() == "ok",
        "psycopg script failed:\n{}\n{}",
        stdout(&out),
        stderr(&out)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_a_certificate_only_tls_connections_are_taken() {
    let dir = tempfile::tempdir().expect("dir");
    let cert = rcgen::generate_simple_self_signed(vec!["localhost".into()]).expect("cert");
    let (cert_path, key_path) = (dir.path().join("cert.pem"), dir.path().join("key.pem"));
    std::fs::write(&cert_path, cert.cert.pem()).expect("write");
    std::fs::write(&key_path, cert.signing_key.serialize_pem()).expect("write");
    let certificates =
        posbon_service::http::Certificates::load(&cert_path, &key_path, Duration::from_secs(30))
            .expect("certificate");
    let server = start(SqlLimits::default(), Some(Arc::new(certificates))).await;
    let out = server.psql("a", &server.analyst, &["SELECT 1"]).await;
    assert_refused(
        &out,
        &["FATAL:  this server takes connections over TLS only"],
    );
    let url = server
        .url("a", "")
        .replace("sslmode=disable", "sslmode=require");
    let out = server
        .psql_url(
            &url,
            &server.analyst,
            &["SELECT ssl FROM (SELECT true AS ssl)"],
        )
        .await;
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(stdout(&out).trim(), "t");
}

/// What Grafana's PostgreSQL data source sends: its table and column
/// pickers (verbatim), the version check, and a panel query whose
/// `$__timeFilter` and `$__timeGroupAlias` macros Grafana expands to plain
/// SQL before sending.
const GRAFANA: &[&str] = &[
    r#"SELECT
        CASE WHEN
              quote_ident(table_schema) IN (
              SELECT
                CASE WHEN trim(s[i]) = '"$user"' THEN user ELSE trim(s[i]) END
              FROM
                generate_series(
                  array_lower(string_to_array(current_setting('search_path'),','),1),
                  array_upper(string_to_array(current_setting('search_path'),','),1)
                ) as i,
                string_to_array(current_setting('search_path'),',') s
              )
          THEN quote_ident(table_name)
          ELSE quote_ident(table_schema) || '.' || quote_ident(table_name)
        END AS "table"
        FROM information_schema.tables
        WHERE quote_ident(table_schema) NOT IN ('information_schema',
                                 'pg_catalog',
                                 '_timescaledb_cache',
                                 '_timescaledb_catalog',
                                 '_timescaledb_internal',
                                 '_timescaledb_config',
                                 'timescaledb_information',
                                 'timescaledb_experimental')
        ORDER BY CASE WHEN
              quote_ident(table_schema) IN (
              SELECT
                CASE WHEN trim(s[i]) = '"$user"' THEN user ELSE trim(s[i]) END
              FROM
                generate_series(
                  array_lower(string_to_array(current_setting('search_path'),','),1),
                  array_upper(string_to_array(current_setting('search_path'),','),1)
                ) as i,
                string_to_array(current_setting('search_path'),',') s
              ) THEN 0 ELSE 1 END, 1"#,
    r#"SELECT quote_ident(column_name) AS "column", data_type AS "type"
        FROM information_schema.columns
        WHERE
          CASE WHEN array_length(parse_ident('public.events'),1) = 2
            THEN quote_ident(table_schema) = (parse_ident('public.events'))[1]
              AND quote_ident(table_name) = (parse_ident('public.events'))[2]
            ELSE quote_ident(table_name) = 'public.events'
              AND
              quote_ident(table_schema) IN (
              SELECT
                CASE WHEN trim(s[i]) = '"$user"' THEN user ELSE trim(s[i]) END
              FROM
                generate_series(
                  array_lower(string_to_array(current_setting('search_path'),','),1),
                  array_upper(string_to_array(current_setting('search_path'),','),1)
                ) as i,
                string_to_array(current_setting('search_path'),',') s
              )
          END"#,
    "SELECT current_setting('server_version_num')::int/100 as version",
    "SELECT date_bin(INTERVAL '3600 seconds', occurred_at, TIMESTAMPTZ '1970-01-01T00:00:00Z') AS time, \
     count(*) AS incidents FROM incidents \
     WHERE occurred_at BETWEEN '2026-05-01T00:00:00Z' AND '2026-05-01T23:59:59Z' \
     GROUP BY 1 ORDER BY 1",
];

/// DBeaver's (pgjdbc's) questions on connecting and opening the navigator.
const DBEAVER: &[&str] = &[
    "SET extra_float_digits = 3",
    "SET application_name = 'DBeaver 25.1.5 - Main <posbon>'",
    "SELECT current_schema(),session_user",
    "SELECT n.oid,n.*,d.description FROM pg_catalog.pg_namespace n LEFT OUTER JOIN pg_catalog.pg_description d ON d.objoid=n.oid AND d.objsubid=0 AND d.classoid='pg_namespace'::regclass ORDER BY nspname",
    "SHOW search_path",
    "SELECT db.oid,db.* FROM pg_catalog.pg_database db WHERE datname='posbon'",
    "SELECT * FROM pg_catalog.pg_settings where name='standard_conforming_strings'",
    "SELECT version()",
    "SELECT c.oid,c.*,d.description,pg_catalog.pg_get_expr(c.relpartbound, c.oid) as partition_expr,  pg_catalog.pg_get_partkeydef(c.oid) as partition_key \
     FROM pg_catalog.pg_class c \
     LEFT OUTER JOIN pg_catalog.pg_description d ON d.objoid=c.oid AND d.objsubid=0 AND d.classoid='pg_class'::regclass \
     WHERE c.relkind not in ('i','I','c')",
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grafana_and_dbeaver_browse_and_query() {
    let server = start(SqlLimits::default(), None).await;
    let out = server.psql("grafana", &server.analyst, GRAFANA).await;
    assert!(out.status.success(), "Grafana's queries: {}", stderr(&out));
    let text = stdout(&out);
    let lines: Vec<&str> = text.lines().collect();
    // The table picker lists the analyst's tables; the column picker the
    // columns of events with their types; the version is 16.6 (1600).
    assert!(
        lines.contains(&"events") || lines.contains(&"public.events"),
        "{text}"
    );
    assert!(
        lines.contains(&"occurred_at|timestamp with time zone"),
        "{text}"
    );
    assert!(lines.contains(&"1600"), "{text}");
    assert!(
        lines
            .iter()
            .any(|l| l.starts_with("2026-05-01 05:00:00") && l.ends_with("|38")),
        "{text}"
    );
    let out = server.psql("dbeaver", &server.analyst, DBEAVER).await;
    assert!(out.status.success(), "DBeaver's queries: {}", stderr(&out));
    assert!(stdout(&out).contains("|events|"), "{}", stdout(&out));
}
