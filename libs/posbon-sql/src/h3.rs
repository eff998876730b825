//! H3 functions under the names and argument orders of DuckDB's `h3`
//! extension, so analysts' queries carry over, plus `mahalla_of`.
//!
//! | function | result |
//! |---|---|
//! | `h3_latlng_to_cell(lat, lng, res)` | UBIGINT |
//! | `h3_cell_to_parent(cell, res)` | UBIGINT |
//! | `h3_cell_to_children(cell, res)` | UBIGINT[] |
//! | `h3_grid_disk(cell, k)` | UBIGINT[] (the cell first, then ring by ring) |
//! | `h3_grid_ring(cell, k)` | UBIGINT[] |
//! | `h3_grid_distance(a, b)` | BIGINT |
//! | `h3_h3_to_string(cell)` | VARCHAR (lowercase hex, no leading zeros) |
//! | `h3_string_to_h3(text)` | UBIGINT |
//! | `h3_get_resolution(cell)` | INTEGER |
//! | `h3_cell_to_lat(cell)`, `h3_cell_to_lng(cell)` | DOUBLE (degrees, cell centre) |
//! | `h3_cell_to_boundary_wkt(cell)` | VARCHAR: `POLYGON ((lng lat, ...))`, closed, 6 decimals |
//! | `h3_cell_area(cell, unit)` | DOUBLE; unit `km^2`, `m^2` or `rads^2` |
//! | `mahalla_of(lat, lng)` | VARCHAR: the mahalla id, NULL outside every mahalla |
//!
//! Cells are UBIGINT; any integer is accepted and converted. Like DuckDB,
//! the inspection functions (`h3_get_resolution`, `h3_cell_to_lat`,
//! `h3_cell_to_lng`, `h3_cell_to_boundary_wkt`, `h3_cell_area`) also take
//! the cell as a hex string. Invalid input gives NULL, as in DuckDB: an
//! invalid cell or resolution, a negative `k`, an unknown area unit, two
//! cells too far apart for `h3_grid_distance`. `h3_cell_to_boundary_wkt` of
//! an invalid cell is the empty string, as in DuckDB. Two limits DuckDB
//! does not have: `h3_cell_to_children` refuses more than 1,000,000
//! children and `h3_grid_disk` / `h3_grid_ring` a `k` above 1,000, with an
//! error that says so, instead of exhausting memory; and the three list
//! functions return at most [`MAX_CELLS_PER_BATCH`] cells for one batch of
//! rows, so that a query over many rows cannot build gigabytes outside the
//! query's memory pool either.

use std::hash::{Hash, Hasher};
use std::sync::Arc;

use datafusion::arrow::array::{
    Array, ArrayBuilder, ArrayRef, AsArray, Float64Builder, Int32Builder, Int64Builder,
    ListBuilder, StringBuilder, UInt64Builder,
};
use datafusion::arrow::datatypes::{DataType, Field, Float64Type, Int64Type, UInt64Type};
use datafusion::common::{Result as DfResult, ScalarValue, exec_err, plan_err};
use datafusion::logical_expr::{
    ColumnarValue, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl, Signature, Volatility,
};
use posbon_geo::{CellIndex, LatLng, Registry, Resolution};

/// Most children `h3_cell_to_children` returns.
pub const MAX_CHILDREN: u64 = 1_000_000;
/// Largest `k` of `h3_grid_disk` and `h3_grid_ring`.
pub const MAX_K: i64 = 1_000;
/// Most cells the list functions (`h3_cell_to_children`, `h3_grid_disk`,
/// `h3_grid_ring`) return for one batch of rows (8,192 rows by default), in
/// all: 4 million cells, 32 MiB. The per-row limits alone would let a batch
/// of rows build gigabytes outside the query's memory pool.
pub const MAX_CELLS_PER_BATCH: usize = 4_000_000;

/// The error of a batch whose list results would pass [`MAX_CELLS_PER_BATCH`].
fn too_many_cells(fun: &str, cells: usize) -> DfResult<ArrayRef> {
    exec_err!(
        "{fun}: the results of one batch of rows would hold {cells} cells, more than the limit of {MAX_CELLS_PER_BATCH}; ask for fewer rows or a smaller resolution or k"
    )
}

/// Which function.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Fun {
    LatLngToCell,
    CellToParent,
    CellToChildren,
    GridDisk,
    GridRing,
    GridDistance,
    H3ToString,
    StringToH3,
    GetResolution,
    CellToLat,
    CellToLng,
    CellToBoundaryWkt,
    CellArea,
    MahallaOf,
}

impl Fun {
    const ALL: [Fun; 14] = [
        Fun::LatLngToCell,
        Fun::CellToParent,
        Fun::CellToChildren,
        Fun::GridDisk,
        Fun::GridRing,
        Fun::GridDistance,
        Fun::H3ToString,
        Fun::StringToH3,
        Fun::GetResolution,
        Fun::CellToLat,
        Fun::CellToLng,
        Fun::CellToBoundaryWkt,
        Fun::CellArea,
        Fun::MahallaOf,
    ];

    const fn name(self) -> &'static str {
        match self {
            Fun::LatLngToCell => "h3_latlng_to_cell",
            Fun::CellToParent => "h3_cell_to_parent",
            Fun::CellToChildren => "h3_cell_to_children",
            Fun::GridDisk => "h3_grid_disk",
            Fun::GridRing => "h3_grid_ring",
            Fun::GridDistance => "h3_grid_distance",
            Fun::H3ToString => "h3_h3_to_string",
            Fun::StringToH3 => "h3_string_to_h3",
            Fun::GetResolution => "h3_get_resolution",
            Fun::CellToLat => "h3_cell_to_lat",
            Fun::CellToLng => "h3_cell_to_lng",
            Fun::CellToBoundaryWkt => "h3_cell_to_boundary_wkt",
            Fun::CellArea => "h3_cell_area",
            Fun::MahallaOf => "mahalla_of",
        }
    }

    /// The argument names, for error messages.
    const fn args(self) -> &'static [&'static str] {
        match self {
            Fun::LatLngToCell => &["lat", "lng", "resolution"],
            Fun::CellToParent | Fun::CellToChildren => &["cell", "resolution"],
            Fun::GridDisk | Fun::GridRing => &["cell", "k"],
            Fun::GridDistance => &["origin", "destination"],
            Fun::StringToH3 => &["text"],
            Fun::CellArea => &["cell", "unit"],
            Fun::MahallaOf => &["lat", "lng"],
            _ => &["cell"],
        }
    }

    /// Whether the cell argument may also be a hex string.
    const fn takes_string_cell(self) -> bool {
        matches!(
            self,
            Fun::GetResolution
                | Fun::CellToLat
                | Fun::CellToLng
                | Fun::CellToBoundaryWkt
                | Fun::CellArea
        )
    }

    fn return_type(self) -> DataType {
        let list = || DataType::List(Arc::new(Field::new_list_field(DataType::UInt64, true)));
        match self {
            Fun::LatLngToCell | Fun::CellToParent | Fun::StringToH3 => DataType::UInt64,
            Fun::CellToChildren | Fun::GridDisk | Fun::GridRing => list(),
            Fun::GridDistance => DataType::Int64,
            Fun::H3ToString | Fun::CellToBoundaryWkt | Fun::MahallaOf => DataType::Utf8,
            Fun::GetResolution => DataType::Int32,
            Fun::CellToLat | Fun::CellToLng | Fun::CellArea => DataType::Float64,
        }
    }
}

/// One of the functions of this module as a DataFusion UDF.
#[derive(Debug)]
struct H3Udf {
    fun: Fun,
    signature: Signature,
    /// For `mahalla_of`.
    registry: Option<Arc<Registry>>,
}

impl PartialEq for H3Udf {
    fn eq(&self, other: &Self) -> bool {
        self.fun == other.fun
            && match (&self.registry, &other.registry) {
                (Some(a), Some(b)) => Arc::ptr_eq(a, b),
                (None, None) => true,
                _ => false,
            }
    }
}

impl Eq for H3Udf {}

impl Hash for H3Udf {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.fun.hash(state);
    }
}

/// Every function of this module; `mahalla_of` answers from `registry`.
pub fn functions(registry: Arc<Registry>) -> Vec<ScalarUDF> {
    Fun::ALL
        .iter()
        .map(|&fun| {
            ScalarUDF::new_from_impl(H3Udf {
                fun,
                signature: Signature::user_defined(Volatility::Immutable),
                registry: (fun == Fun::MahallaOf).then(|| Arc::clone(&registry)),
            })
        })
        .collect()
}

fn is_string(t: &DataType) -> bool {
    matches!(t, DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View)
}

fn is_number(t: &DataType) -> bool {
    t.is_numeric() || *t == DataType::Null
}

impl ScalarUDFImpl for H3Udf {
    fn name(&self) -> &str {
        self.fun.name()
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _arg_types: &[DataType]) -> DfResult<DataType> {
        Ok(self.fun.return_type())
    }

    fn coerce_types(&self, arg_types: &[DataType]) -> DfResult<Vec<DataType>> {
        let fun = self.fun;
        let names = fun.args();
        if arg_types.len() != names.len() {
            return plan_err!(
                "{}({}) takes {} argument{}, got {}",
                fun.name(),
                names.join(", "),
                names.len(),
                if names.len() == 1 { "" } else { "s" },
                arg_types.len()
            );
        }
        let mut out = Vec::with_capacity(arg_types.len());
        for (i, (t, name)) in arg_types.iter().zip(names).enumerate() {
            let target = match *name {
                "lat" | "lng" if is_number(t) => DataType::Float64,
                "resolution" | "k" if t.is_integer() || *t == DataType::Null => DataType::Int64,
                "cell" | "origin" | "destination" if t.is_integer() || *t == DataType::Null => {
                    DataType::UInt64
                }
                "cell" if i == 0 && fun.takes_string_cell() && is_string(t) => DataType::Utf8,
                "text" | "unit" if is_string(t) || *t == DataType::Null => DataType::Utf8,
                _ => {
                    let expected = match *name {
                        "lat" | "lng" => "a number",
                        "resolution" | "k" => "an integer",
                        "cell" if fun.takes_string_cell() => "a UBIGINT cell or its hex string",
                        "cell" | "origin" | "destination" => "a UBIGINT cell",
                        _ => "a string",
                    };
                    return plan_err!(
                        "{}: argument {name} must be {expected}, got {t}",
                        fun.name()
                    );
                }
            };
            out.push(target);
        }
        Ok(out)
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> DfResult<ColumnarValue> {
        let scalar = args
            .args
            .iter()
            .all(|a| matches!(a, ColumnarValue::Scalar(_)));
        let arrays = ColumnarValue::values_to_arrays(&args.args)?;
        let out = self.eval(&arrays)?;
        if scalar {
            // A constant list is repeated for every row of the batch.
            if let Some(list) = out.as_list_opt::<i32>() {
                let cells = list.values().len().saturating_mul(args.number_rows);
                if cells > MAX_CELLS_PER_BATCH {
                    return too_many_cells(self.fun.name(), cells).map(ColumnarValue::Array);
                }
            }
            Ok(ColumnarValue::Scalar(ScalarValue::try_from_array(&out, 0)?))
        } else {
            Ok(ColumnarValue::Array(out))
        }
    }
}

/// A valid cell from a raw index.
fn cell(raw: u64) -> Option<CellIndex> {
    CellIndex::try_from(raw).ok()
}

fn resolution(r: i64) -> Option<Resolution> {
    u8::try_from(r)
        .ok()
        .and_then(|r| Resolution::try_from(r).ok())
}

/// Parses a hex H3 string like DuckDB's `h3_string_to_h3` (no validity check).
fn parse_hex(s: &str) -> Option<u64> {
    if s.is_empty() || s.len() > 16 {
        return None;
    }
    u64::from_str_radix(s, 16).ok()
}

/// Cells of the first argument, whether UBIGINT or hex strings.
fn cells_of(array: &ArrayRef) -> Vec<Option<u64>> {
    if let Some(strings) = array.as_string_opt::<i32>() {
        return strings.iter().map(|s| s.and_then(parse_hex)).collect();
    }
    let ints = array.as_primitive::<UInt64Type>();
    ints.iter().collect()
}

impl H3Udf {
    fn eval(&self, a: &[ArrayRef]) -> DfResult<ArrayRef> {
        let n = a.first().map_or(0, |x| x.len());
        let ints = |i: usize| a[i].as_primitive::<Int64Type>();
        let floats = |i: usize| a[i].as_primitive::<Float64Type>();
        let u64s = |i: usize| a[i].as_primitive::<UInt64Type>();
        Ok(match self.fun {
            Fun::LatLngToCell => {
                let (lat, lng, res) = (floats(0), floats(1), ints(2));
                let mut b = UInt64Builder::with_capacity(n);
                for i in 0..n {
                    let v = if lat.is_valid(i) && lng.is_valid(i) && res.is_valid(i) {
                        LatLng::new(lat.value(i), lng.value(i))
                            .ok()
                            .zip(resolution(res.value(i)))
                            .map(|(ll, r)| u64::from(ll.to_cell(r)))
                    } else {
                        None
                    };
                    b.append_option(v);
                }
                Arc::new(b.finish())
            }
            Fun::CellToParent => {
                let (cells, res) = (u64s(0), ints(1));
                let mut b = UInt64Builder::with_capacity(n);
                for i in 0..n {
                    let v = (cells.is_valid(i) && res.is_valid(i))
                        .then(|| {
                            cell(cells.value(i))?
                                .parent(resolution(res.value(i))?)
                                .map(u64::from)
                        })
                        .flatten();
                    b.append_option(v);
                }
                Arc::new(b.finish())
            }
            Fun::CellToChildren => {
                let (cells, res) = (u64s(0), ints(1));
                let mut b = ListBuilder::new(UInt64Builder::new());
                for i in 0..n {
                    let target = (cells.is_valid(i) && res.is_valid(i))
                        .then(|| Some((cell(cells.value(i))?, resolution(res.value(i))?)))
                        .flatten()
                        .filter(|(c, r)| *r >= c.resolution());
                    match target {
                        Some((c, r)) => {
                            let count = c.children_count(r);
                            if count > MAX_CHILDREN {
                                return exec_err!(
                                    "h3_cell_to_children: cell {c} has {count} children at resolution {}, more than the limit of {MAX_CHILDREN}",
                                    u8::from(r)
                                );
                            }
                            let total = b.values().len().saturating_add(count as usize);
                            if total > MAX_CELLS_PER_BATCH {
                                return too_many_cells(self.fun.name(), total);
                            }
                            for child in c.children(r) {
                                b.values().append_value(u64::from(child));
                            }
                            b.append(true);
                        }
                        None => b.append(false),
                    }
                }
                Arc::new(b.finish())
            }
            Fun::GridDisk | Fun::GridRing => {
                let (cells, ks) = (u64s(0), ints(1));
                let mut b = ListBuilder::new(UInt64Builder::new());
                for i in 0..n {
                    if !(cells.is_valid(i) && ks.is_valid(i)) {
                        b.append(false);
                        continue;
                    }
                    let k = ks.value(i);
                    if k > MAX_K {
                        return exec_err!(
                            "{}: k = {k} is above the limit of {MAX_K}",
                            self.fun.name()
                        );
                    }
                    let (Some(c), Ok(k)) = (cell(cells.value(i)), u32::try_from(k)) else {
                        b.append(false);
                        continue;
                    };
                    // 3k(k+1)+1 cells in a disk of radius k, 6k in a ring.
                    let k64 = u64::from(k);
                    let expected = if self.fun == Fun::GridDisk {
                        3 * k64 * (k64 + 1) + 1
                    } else {
                        (6 * k64).max(1)
                    };
                    let total = b.values().len().saturating_add(expected as usize);
                    if total > MAX_CELLS_PER_BATCH {
                        return too_many_cells(self.fun.name(), total);
                    }
                    let found: Vec<CellIndex> = if self.fun == Fun::GridDisk {
                        c.grid_disk(k)
                    } else {
                        c.grid_ring(k)
                    };
                    for x in found {
                        b.values().append_value(u64::from(x));
                    }
                    b.append(true);
                }
                Arc::new(b.finish())
            }
            Fun::GridDistance => {
                let (x, y) = (u64s(0), u64s(1));
                let mut b = Int64Builder::with_capacity(n);
                for i in 0..n {
                    let v = (x.is_valid(i) && y.is_valid(i))
                        .then(|| {
                            cell(x.value(i))?
                                .grid_distance(cell(y.value(i))?)
                                .ok()
                                .map(i64::from)
                        })
                        .flatten();
                    b.append_option(v);
                }
                Arc::new(b.finish())
            }
            Fun::H3ToString => {
                let cells = u64s(0);
                let mut b = StringBuilder::with_capacity(n, n * 15);
                for v in cells.iter() {
                    b.append_option(v.map(|v| format!("{v:x}")));
                }
                Arc::new(b.finish())
            }
            Fun::StringToH3 => {
                let strings = a[0].as_string::<i32>();
                let mut b = UInt64Builder::with_capacity(n);
                for s in strings.iter() {
                    b.append_option(s.and_then(parse_hex));
                }
                Arc::new(b.finish())
            }
            Fun::GetResolution => {
                let mut b = Int32Builder::with_capacity(n);
                for v in cells_of(&a[0]) {
                    // Like H3's getResolution: the resolution bits, unchecked.
                    b.append_option(v.map(|v| ((v >> 52) & 0xF) as i32));
                }
                Arc::new(b.finish())
            }
            Fun::CellToLat | Fun::CellToLng => {
                let mut b = Float64Builder::with_capacity(n);
                for v in cells_of(&a[0]) {
                    let ll = v.and_then(cell).map(LatLng::from);
                    b.append_option(ll.map(|ll| {
                        if self.fun == Fun::CellToLat {
                            ll.lat()
                        } else {
                            ll.lng()
                        }
                    }));
                }
                Arc::new(b.finish())
            }
            Fun::CellToBoundaryWkt => {
                let mut b = StringBuilder::with_capacity(n, n * 200);
                for (i, v) in cells_of(&a[0]).into_iter().enumerate() {
                    if a[0].is_null(i) {
                        b.append_null();
                        continue;
                    }
                    b.append_value(v.and_then(cell).map(boundary_wkt).unwrap_or_default());
                }
                Arc::new(b.finish())
            }
            Fun::CellArea => {
                let units = a[1].as_string::<i32>();
                let mut b = Float64Builder::with_capacity(n);
                for (i, v) in cells_of(&a[0]).into_iter().enumerate() {
                    let area = v.and_then(cell).and_then(|c| {
                        match units.is_valid(i).then(|| units.value(i))? {
                            "km^2" => Some(c.area_km2()),
                            "m^2" => Some(c.area_m2()),
                            "rads^2" => Some(c.area_rads2()),
                            _ => None,
                        }
                    });
                    b.append_option(area);
                }
                Arc::new(b.finish())
            }
            Fun::MahallaOf => {
                let Some(registry) = &self.registry else {
                    return exec_err!("mahalla_of: no registry");
                };
                let (lat, lng) = (floats(0), floats(1));
                let mut b = StringBuilder::with_capacity(n, n * 16);
                for i in 0..n {
                    let id = (lat.is_valid(i) && lng.is_valid(i))
                        .then(|| registry.locate(lat.value(i), lng.value(i)).ok()?.mahalla)
                        .flatten()
                        .map(|m| registry.mahalla(m).id.as_str());
                    b.append_option(id);
                }
                Arc::new(b.finish())
            }
        })
    }
}

/// `POLYGON ((lng lat, ...))` with the first vertex repeated, 6 decimals,
/// like DuckDB's `h3_cell_to_boundary_wkt`.
fn boundary_wkt(c: CellIndex) -> String {
    let boundary = c.boundary();
    let verts: Vec<String> = boundary
        .iter()
        .chain(boundary.iter().take(1))
        .map(|v| format!("{:.6} {:.6}", v.lng(), v.lat()))
        .collect();
    format!("POLYGON (({}))", verts.join(", "))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn boundary_matches_duckdb() {
        // From the h3 extension's tests.
        let c = CellIndex::try_from(0x822d57fffffffff).expect("cell");
        assert_eq!(
            boundary_wkt(c),
            "POLYGON ((38.777546 44.198571, 39.938746 42.736298, 42.150674 42.631271, 43.258395 44.047542, 42.146575 45.539505, 39.897167 45.559577, 38.777546 44.198571))"
        );
    }

    #[test]
    fn hex_parsing_is_duckdbs() {
        assert_eq!(parse_hex("85283473fffffff"), Some(0x0852_8347_3fff_ffff));
        assert_eq!(parse_hex(",,,,,"), None);
        assert_eq!(parse_hex(""), None);
        assert_eq!(format!("{:x}", 10_000_000_000_000_000u64), "2386f26fc10000");
    }
}
