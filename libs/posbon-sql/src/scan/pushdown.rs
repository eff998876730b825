//! Filter pushdown: which filters of an event table narrow the keys to
//! read, and the [`KeyFilter`] they add up to (a time window and cells).

use std::collections::BTreeSet;

use datafusion::common::ScalarValue;
use datafusion::logical_expr::{Between, BinaryExpr, Expr, Operator};
use posbon_geo::{CellIndex, Registry, Resolution};

use crate::columns::{days_to_date, local_day_start};

/// What the filters of a query say about the keys to read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct KeyFilter {
    /// `occurred_at` in `[from, to)`, microseconds.
    pub(crate) from: i64,
    /// End of the window (exclusive).
    pub(crate) to: i64,
    /// Cells whose storage cells hold every matching row; `None` when no
    /// cell predicate was found. Sorted, no cell inside another.
    pub(crate) cells: Option<Vec<CellIndex>>,
    /// Where the cells come from, for `EXPLAIN`.
    pub(crate) cells_from: &'static str,
}

impl Default for KeyFilter {
    fn default() -> Self {
        Self {
            from: i64::MIN,
            to: i64::MAX,
            cells: None,
            cells_from: "",
        }
    }
}

/// The filters of an event table that narrow its keys, and how.
pub(crate) fn usable(expr: &Expr) -> bool {
    time_bounds(expr).is_some() || cell_predicate(expr, None, Resolution::Fifteen).is_some()
}

/// Reads `filters` (ANDed) into a [`KeyFilter`].
pub(crate) fn key_filter(filters: &[Expr], registry: &Registry) -> KeyFilter {
    let storage = registry.resolution();
    let mut out = KeyFilter::default();
    let mut best: Option<(u64, Vec<CellIndex>, &'static str)> = None;
    let mut conjuncts = Vec::new();
    for f in filters {
        split_and(f, &mut conjuncts);
    }
    for expr in conjuncts {
        if let Some((from, to)) = time_bounds(expr) {
            out.from = out.from.max(from);
            out.to = out.to.min(to);
        }
        if let Some((cells, from)) = cell_predicate(expr, Some(registry), storage) {
            let cells = normalize(cells, storage);
            let cost = coverage(&cells, storage);
            if best.as_ref().is_none_or(|(c, _, _)| cost < *c) {
                best = Some((cost, cells, from));
            }
        }
    }
    if let Some((_, cells, from)) = best {
        out.cells = Some(cells);
        out.cells_from = from;
    }
    out
}

fn split_and<'a>(expr: &'a Expr, out: &mut Vec<&'a Expr>) {
    match expr {
        Expr::BinaryExpr(BinaryExpr {
            left,
            op: Operator::And,
            right,
        }) => {
            split_and(left, out);
            split_and(right, out);
        }
        other => out.push(other),
    }
}

/// The column name of a plain column reference.
fn column(expr: &Expr) -> Option<&str> {
    match expr {
        Expr::Column(c) => Some(c.name.as_str()),
        _ => None,
    }
}

fn literal(expr: &Expr) -> Option<&ScalarValue> {
    match expr {
        Expr::Literal(v, _) => Some(v),
        _ => None,
    }
}

/// A timestamp literal in microseconds.
fn micros(v: &ScalarValue) -> Option<i64> {
    match v {
        ScalarValue::TimestampSecond(Some(s), _) => s.checked_mul(1_000_000),
        ScalarValue::TimestampMillisecond(Some(ms), _) => ms.checked_mul(1_000),
        ScalarValue::TimestampMicrosecond(Some(us), _) => Some(*us),
        ScalarValue::TimestampNanosecond(Some(ns), _) => Some(ns.div_euclid(1_000)),
        _ => None,
    }
}

/// A date literal in days since 1970-01-01.
fn days(v: &ScalarValue) -> Option<i32> {
    match v {
        ScalarValue::Date32(Some(d)) => Some(*d),
        ScalarValue::Date64(Some(ms)) => i32::try_from(ms.div_euclid(86_400_000)).ok(),
        _ => None,
    }
}

/// `col op lit` with the column on the left (operands swapped if needed).
fn comparison(expr: &Expr) -> Option<(&str, Operator, &ScalarValue)> {
    let Expr::BinaryExpr(BinaryExpr { left, op, right }) = expr else {
        return None;
    };
    let swap = |op: Operator| match op {
        Operator::Lt => Some(Operator::Gt),
        Operator::LtEq => Some(Operator::GtEq),
        Operator::Gt => Some(Operator::Lt),
        Operator::GtEq => Some(Operator::LtEq),
        Operator::Eq => Some(Operator::Eq),
        _ => None,
    };
    if let (Some(c), Some(v)) = (column(left), literal(right)) {
        swap(*op)?; // only comparisons
        return Some((c, *op, v));
    }
    if let (Some(v), Some(c)) = (literal(left), column(right)) {
        return Some((c, swap(*op)?, v));
    }
    None
}

/// The `[from, to)` window (microseconds) a time predicate allows.
fn time_bounds(expr: &Expr) -> Option<(i64, i64)> {
    if let Expr::Between(Between {
        expr,
        negated: false,
        low,
        high,
    }) = expr
    {
        let name = column(expr)?;
        let (low, high) = (literal(low)?, literal(high)?);
        return match name {
            "occurred_at" => Some((micros(low)?, micros(high)?.checked_add(1)?)),
            "local_date" => Some((
                day_start(days(low)?)?,
                day_start(days(high)?.checked_add(1)?)?,
            )),
            _ => None,
        };
    }
    let (name, op, v) = comparison(expr)?;
    let (lo, hi) = match name {
        "occurred_at" => {
            let t = micros(v)?;
            (t, t.checked_add(1)?)
        }
        "local_date" => {
            let d = days(v)?;
            (day_start(d)?, day_start(d.checked_add(1)?)?)
        }
        _ => return None,
    };
    Some(match op {
        Operator::Eq => (lo, hi),
        Operator::Gt => (hi, i64::MAX),
        Operator::GtEq => (lo, i64::MAX),
        Operator::Lt => (i64::MIN, lo),
        Operator::LtEq => (i64::MIN, hi),
        _ => return None,
    })
}

/// The first instant of a local day.
fn day_start(days: i32) -> Option<i64> {
    local_day_start(days_to_date(days)?)
}

/// A cell literal.
fn cell_value(v: &ScalarValue) -> Option<u64> {
    match v {
        ScalarValue::UInt64(Some(c)) => Some(*c),
        ScalarValue::Int64(Some(c)) => u64::try_from(*c).ok(),
        _ => None,
    }
}

/// The cells a cell predicate allows, or `None` when `expr` is not one. With
/// no registry, only says whether it is one (mahalla predicates included).
fn cell_predicate(
    expr: &Expr,
    registry: Option<&Registry>,
    storage: Resolution,
) -> Option<(Vec<CellIndex>, &'static str)> {
    // The cells a value stands for: a stored cell equals `x` only when `x`
    // is a valid cell at the storage resolution.
    let exact = |raw: u64| {
        CellIndex::try_from(raw)
            .ok()
            .filter(|c| c.resolution() == storage)
    };
    let parent_of = |raw: u64, res: Resolution| {
        CellIndex::try_from(raw)
            .ok()
            .filter(|c| c.resolution() == res && res <= storage)
    };
    let (target, values): (&Expr, Vec<&ScalarValue>) = match expr {
        // `a OR b`, as DataFusion writes a short IN list: the cells of both.
        Expr::BinaryExpr(BinaryExpr {
            left,
            op: Operator::Or,
            right,
        }) => {
            let (mut cells, from) = cell_predicate(left, registry, storage)?;
            let (more, _) = cell_predicate(right, registry, storage)?;
            cells.extend(more);
            return Some((cells, from));
        }
        Expr::BinaryExpr(BinaryExpr {
            left,
            op: Operator::Eq,
            right,
        }) => match (literal(left), literal(right)) {
            (None, Some(v)) => (left.as_ref(), vec![v]),
            (Some(v), None) => (right.as_ref(), vec![v]),
            _ => return None,
        },
        Expr::InList(list) if !list.negated => {
            let values: Option<Vec<&ScalarValue>> = list.list.iter().map(literal).collect();
            (list.expr.as_ref(), values?)
        }
        Expr::ScalarFunction(f) if f.func.name() == "array_has" && f.args.len() == 2 => {
            let ScalarValue::List(list) = literal(&f.args[0])? else {
                return None;
            };
            let values = ScalarValue::convert_array_to_scalar_vec(list.as_ref()).ok()?;
            let values: Vec<ScalarValue> = values.into_iter().flatten().flatten().collect();
            let cells: Vec<CellIndex> = values
                .iter()
                .filter_map(cell_value)
                .filter_map(exact)
                .collect();
            column(&f.args[1]).filter(|c| *c == "cell")?;
            return Some((cells, "cell list"));
        }
        _ => return None,
    };
    if values.iter().any(|v| v.is_null()) {
        return None;
    }
    match target {
        Expr::Column(c) if c.name == "cell" => {
            let raws: Option<Vec<u64>> = values.iter().map(|v| cell_value(v)).collect();
            Some((raws?.into_iter().filter_map(exact).collect(), "cell"))
        }
        Expr::Column(c) if c.name == "mahalla_id" => {
            let ids: Option<Vec<&str>> = values
                .iter()
                .map(|v| match v {
                    ScalarValue::Utf8(Some(s))
                    | ScalarValue::Utf8View(Some(s))
                    | ScalarValue::LargeUtf8(Some(s)) => Some(s.as_str()),
                    _ => None,
                })
                .collect();
            let ids = ids?;
            let Some(registry) = registry else {
                return Some((Vec::new(), "mahalla"));
            };
            let mut cells = Vec::new();
            for id in ids {
                // A mahalla the registry does not know may still have
                // events (stored under an older registry): no pushdown.
                let (idx, _) = registry.mahalla_by_id(id)?;
                cells.extend(registry.mahalla_cells(idx, storage));
            }
            Some((cells, "mahalla cover"))
        }
        Expr::ScalarFunction(f)
            if f.func.name() == "h3_cell_to_parent"
                && f.args.len() == 2
                && column(&f.args[0]) == Some("cell") =>
        {
            let res = match literal(&f.args[1])? {
                ScalarValue::Int64(Some(r)) => u8::try_from(*r).ok(),
                ScalarValue::Int32(Some(r)) => u8::try_from(*r).ok(),
                _ => None,
            };
            let Some(res) = res.and_then(|r| Resolution::try_from(r).ok()) else {
                // An invalid resolution gives NULL: nothing matches.
                return Some((Vec::new(), "parent cell"));
            };
            let raws: Option<Vec<u64>> = values.iter().map(|v| cell_value(v)).collect();
            Some((
                raws?
                    .into_iter()
                    .filter_map(|r| parent_of(r, res))
                    .collect(),
                "parent cell",
            ))
        }
        _ => None,
    }
}

/// Sorted cells with duplicates and cells inside others removed.
fn normalize(mut cells: Vec<CellIndex>, storage: Resolution) -> Vec<CellIndex> {
    cells.retain(|c| c.resolution() <= storage);
    cells.sort_unstable_by_key(|c| (c.resolution(), u64::from(*c)));
    cells.dedup();
    let mut kept: BTreeSet<CellIndex> = BTreeSet::new();
    for cell in cells {
        let covered = (0..u8::from(cell.resolution())).any(|r| {
            Resolution::try_from(r)
                .ok()
                .and_then(|r| cell.parent(r))
                .is_some_and(|p| kept.contains(&p))
        });
        if !covered {
            kept.insert(cell);
        }
    }
    let mut out: Vec<CellIndex> = kept.into_iter().collect();
    out.sort_unstable_by_key(|c| u64::from(*c));
    out
}

/// The number of storage cells under `cells`.
pub(super) fn coverage(cells: &[CellIndex], storage: Resolution) -> u64 {
    cells
        .iter()
        .map(|c| c.children_count(storage))
        .fold(0u64, u64::saturating_add)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::columns::date_to_days;
    use chrono::DateTime;
    use datafusion::logical_expr::{col, lit};
    use posbon_geo::LatLng;

    #[test]
    fn time_predicates_become_windows() {
        let t = |s: &str| {
            ScalarValue::TimestampMicrosecond(
                Some(
                    DateTime::parse_from_rfc3339(s)
                        .expect("time")
                        .timestamp_micros(),
                ),
                Some("UTC".into()),
            )
        };
        let a = t("2026-05-01T00:00:00Z");
        let b = t("2026-05-02T00:00:00Z");
        let ma = micros(&a).expect("micros");
        let mb = micros(&b).expect("micros");
        let e = col("occurred_at")
            .gt_eq(lit(a.clone()))
            .and(col("occurred_at").lt(lit(b.clone())));
        let mut parts = Vec::new();
        split_and(&e, &mut parts);
        assert_eq!(parts.len(), 2);
        assert_eq!(time_bounds(parts[0]), Some((ma, i64::MAX)));
        assert_eq!(time_bounds(parts[1]), Some((i64::MIN, mb)));
        // Literal on the left.
        let e = lit(b.clone()).gt(col("occurred_at"));
        assert_eq!(time_bounds(&e), Some((i64::MIN, mb)));
        let e = col("occurred_at").between(lit(a), lit(b));
        assert_eq!(time_bounds(&e), Some((ma, mb + 1)));
        // A local day is the window between two local midnights.
        let day = NaiveDateLit::new(2026, 5, 1);
        let e = col("local_date").eq(lit(day.scalar()));
        let start = local_day_start(day.date).expect("start");
        assert_eq!(time_bounds(&e), Some((start, start + 86_400_000_000)));
        // Other columns and operators are not time predicates.
        assert_eq!(time_bounds(&col("lat").gt(lit(1.0))), None);
        assert_eq!(
            time_bounds(&col("occurred_at").not_eq(lit(t("2026-05-01T00:00:00Z")))),
            None
        );
    }

    struct NaiveDateLit {
        date: chrono::NaiveDate,
    }

    impl NaiveDateLit {
        fn new(y: i32, m: u32, d: u32) -> Self {
            Self {
                date: chrono::NaiveDate::from_ymd_opt(y, m, d).expect("date"),
            }
        }
        fn scalar(&self) -> ScalarValue {
            ScalarValue::Date32(Some(date_to_days(self.date)))
        }
    }

    #[test]
    fn cells_are_normalised() {
        let storage = Resolution::Ten;
        let c10 = LatLng::new(41.31, 69.25).expect("ll").to_cell(storage);
        let p7 = c10.parent(Resolution::Seven).expect("parent");
        let other = LatLng::new(41.0, 69.0)
            .expect("ll")
            .to_cell(Resolution::Nine);
        let out = normalize(vec![c10, p7, other, p7], storage);
        let mut want = vec![p7, other];
        want.sort_unstable_by_key(|c| u64::from(*c));
        assert_eq!(out, want);
        assert_eq!(coverage(&out, storage), 343 + 7);
    }

    #[test]
    fn cell_predicates_name_their_cells() {
        let storage = Resolution::Ten;
        let c10 = LatLng::new(41.31, 69.25).expect("ll").to_cell(storage);
        let raw = u64::from(c10);
        let (cells, _) = cell_predicate(&col("cell").eq(lit(raw)), None, storage).expect("cell");
        assert_eq!(cells, vec![c10]);
        // A value that is not a storage cell matches no stored cell.
        let coarse = u64::from(c10.parent(Resolution::Seven).expect("parent"));
        let (cells, _) = cell_predicate(&col("cell").eq(lit(coarse)), None, storage).expect("cell");
        assert!(cells.is_empty());
        let e = col("cell").in_list(vec![lit(raw), lit(coarse)], false);
        assert_eq!(cell_predicate(&e, None, storage).expect("in").0, vec![c10]);
        assert!(
            cell_predicate(&col("cell").in_list(vec![lit(raw)], true), None, storage).is_none()
        );
        assert!(cell_predicate(&col("lat").eq(lit(1.0)), None, storage).is_none());
        // A short IN list arrives as ORs.
        let e = col("cell").eq(lit(raw)).or(col("cell").eq(lit(coarse)));
        assert_eq!(cell_predicate(&e, None, storage).expect("or").0, vec![c10]);
        let e = col("cell").eq(lit(raw)).or(col("lat").eq(lit(1.0)));
        assert!(cell_predicate(&e, None, storage).is_none());
    }
}
