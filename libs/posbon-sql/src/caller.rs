//! A caller's queries, whatever front end they arrive by (`POST /v1/sql`,
//! the PostgreSQL protocol): what the caller may read ([`access_of`]) and
//! the audit record of each query ([`record_query`]).

use std::collections::HashSet;
use std::time::Duration;

use posbon_auth::{Auth, Caller, Permission};
use serde_json::json;

use crate::access::SqlAccess;
use crate::audit::AUDIT_TABLE;
use crate::engine::QueryOutput;
use crate::error::SqlError;

/// The audit keeps this many characters of a query's text.
pub const AUDITED_QUERY_CHARS: usize = 4000;

/// What `caller` may read: rows inside their scope, sensitive columns only
/// with `sensitive_columns`, the audit table only as an admin.
pub fn access_of(caller: &Caller) -> SqlAccess {
    SqlAccess {
        mahallas: caller.scope.mahallas().cloned(),
        districts: caller.scope.districts().cloned(),
        regions: caller.scope.regions().cloned(),
        sensitive: caller.may(Permission::SensitiveColumns),
        extra_tables: if caller.may(Permission::Admin) {
            HashSet::from([AUDIT_TABLE.to_owned()])
        } else {
            HashSet::new()
        },
    }
}

/// Records one query of `caller` in the audit log (action `sql`): the first
/// [`AUDITED_QUERY_CHARS`] characters of its text, the rows it returned or
/// why it was refused, how long it took, and the front end (`http`, `pg`).
pub async fn record_query(
    auth: &Auth,
    caller: &Caller,
    front: &'static str,
    query: &str,
    result: &Result<QueryOutput, SqlError>,
    elapsed: Duration,
) {
    let audited: String = query.chars().take(AUDITED_QUERY_CHARS).collect();
    let ms = elapsed.as_millis() as u64;
    let detail = match result {
        Ok(output) => json!({
            "query": audited,
            "rows": output.rows,
            "truncated": output.truncated,
            "ms": ms,
            "via": front,
        }),
        Err(e) => json!({
            "query": audited,
            "error": e.message(),
            "kind": e.kind().as_str(),
            "ms": ms,
            "via": front,
        }),
    };
    let outcome = if result.is_ok() { "ok" } else { "refused" };
    auth.audit()
        .record(caller.audit("sql", None, outcome, detail))
        .await;
}
