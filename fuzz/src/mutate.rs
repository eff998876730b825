//! Mutations: how the runner turns one input into the next.
//!
//! Blind byte edits (bit flips, random bytes, insertions, deletions) find
//! the shallow bugs; the structured ones reach deeper: numbers replaced by
//! edge values, tokens of the input's language from a dictionary, chunks of
//! another input spliced in, a chunk repeated (long strings, many items),
//! and deep nesting of brackets.

use rand::{Rng, RngExt};

/// Tokens worth inserting into any text input.
const COMMON: &[&str] = &[
    "[", "]", "{", "}", "\"", ",", ":", "\\", "\\u0000", "\\ud800", "\\udc00", "\\n", "\n", "\r\n",
    "\t", " ", "null", "true", "false", "-", ".", "e", "0", "-0", "\u{0}", "\u{7f}", "\u{feff}",
    "\u{202e}", "é", "😀", "'", "`", "#", "=", "/", "*", "%",
];

/// Numbers at the edges: of JSON, of `f64`, of the integer types, of the
/// event ranges.
const NUMBERS: &[&str] = &[
    "0",
    "-0",
    "1",
    "-1",
    "5",
    "6",
    "0.5",
    "1.0000000000000002",
    "90",
    "90.0000001",
    "-90",
    "180",
    "180.0000001",
    "-180",
    "127",
    "128",
    "255",
    "256",
    "32767",
    "65535",
    "65536",
    "2147483647",
    "2147483648",
    "-2147483649",
    "4294967295",
    "4294967296",
    "9007199254740993",
    "9223372036854775807",
    "-9223372036854775808",
    "18446744073709551615",
    "18446744073709551616",
    "1e308",
    "1e309",
    "-1e309",
    "1e-324",
    "4.9e-324",
    "2.2250738585072014e-308",
    "1E400",
    "0e0",
    "1.5e3",
    "00",
    "01",
    "1.",
    ".5",
    "+1",
    "NaN",
    "Infinity",
    "0x10",
    "99999999999999999999999999999999999999999999",
];

/// Little-endian integers and floats at the edges, for binary inputs.
const BINARY: &[&[u8]] = &[
    &[0],
    &[1],
    &[0x7f],
    &[0x80],
    &[0xff],
    &[0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x01],
    &[0xff, 0xff, 0xff, 0xff, 0x0f],
    &[0xff, 0xff, 0xff, 0x7f],
    &[0x00, 0x00, 0x00, 0x80],
    &[0x80, 0x51, 0x01, 0x00],
    &[0x7f, 0xae, 0xfe, 0xff],
    &[0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f],
    &[0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x80],
    &[0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0xf8, 0x7f],
    &[0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0xf0, 0x7f],
    &[0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0xf0, 0xff],
    &[0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xef, 0x7f],
    &[0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00],
    &[0xff, 0xc9, 0x9a, 0x3b],
    &[0x00, 0xca, 0x9a, 0x3b],
    &[0xff, 0x93, 0x35, 0x77],
    &[0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x0f],
    &[0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x10],
    &[0xef, 0xbf, 0xbd],
    &[0xc3, 0x28],
    &[0xed, 0xa0, 0x80],
];

/// The dictionaries of the targets.
pub mod dict {
    /// [`crate::event_json`]: field names, enum values, timestamps.
    pub const EVENT_JSON: &[&str] = &[
        "\"kind\"",
        "\"incident\"",
        "\"camera_alert\"",
        "\"fraud_flag\"",
        "\"id\"",
        "\"occurred_at\"",
        "\"location\"",
        "\"lat\"",
        "\"lng\"",
        "\"accuracy_m\"",
        "\"source\"",
        "\"attributes\"",
        "\"category\"",
        "\"severity\"",
        "\"flags\"",
        "\"victim_minor\"",
        "\"domestic\"",
        "\"status\"",
        "\"description\"",
        "\"camera_id\"",
        "\"detection\"",
        "\"confidence\"",
        "\"model\"",
        "\"snapshot_uri\"",
        "\"scheme\"",
        "\"channel\"",
        "\"amount_uzs\"",
        "\"payment_system\"",
        "\"account_ref\"",
        "\"detector_score\"",
        "\"theft\"",
        "\"drug_handoff\"",
        "\"scam_call\"",
        "\"uzcard\"",
        "\"2026-05-01T14:30:00+05:00\"",
        "\"2026-04-30T23:59:60Z\"",
        "\"2026-05-01T10:05:00.000000001Z\"",
        "\"1999-12-31T23:59:59Z\"",
        "\"2026-05-01 14:30:00+05:00\"",
        "\"2026-05-01T14:30:00\"",
        "+23:59",
        "-23:59",
        "{\"lat\":41.3,\"lng\":69.2}",
        "\"x\":\"y\"",
        "\"a b\"",
    ];

    /// [`crate::compact()`]: the binary edge values do most of the work.
    pub const COMPACT: &[&str] = &["iiv-2026-000123", "iiv-102", "chilonzor-017", "tashkent"];

    /// [`crate::registry_geojson`]: GeoJSON members and coordinates.
    pub const REGISTRY: &[&str] = &[
        "\"type\"",
        "\"FeatureCollection\"",
        "\"Feature\"",
        "\"features\"",
        "\"properties\"",
        "\"geometry\"",
        "\"Polygon\"",
        "\"MultiPolygon\"",
        "\"Point\"",
        "\"coordinates\"",
        "\"id\"",
        "\"name\"",
        "\"district\"",
        "\"district_name\"",
        "\"region\"",
        "\"region_name\"",
        "\"population\"",
        "\"inspector\"",
        "[69.25,41.30]",
        "[69.26,41.30]",
        "[69.25,41.31]",
        "[[69.25,41.30],[69.26,41.30],[69.26,41.31],[69.25,41.30]]",
        "69.2",
        "41.3",
        "1e-9",
        "0.0009765625",
    ];

    /// [`crate::escalation_action`]: the request and escalation fields.
    pub const ACTION: &[&str] = &[
        "\"escalation_id\"",
        "\"action\"",
        "\"by\"",
        "\"note\"",
        "\"assignee\"",
        "\"acknowledge\"",
        "\"assign\"",
        "\"resolve\"",
        "\"false_alarm\"",
        "\"inspector-1\"",
        "\"mahalla_id\"",
        "\"district_id\"",
        "\"region_id\"",
        "\"level\"",
        "\"previous_level\"",
        "\"critical\"",
        "\"score\"",
        "\"rule\"",
        "\"counts\"",
        "\"hot_cells\"",
        "\"cell\"",
        "\"8a2a1072b59ffff\"",
        "\"gi_z\"",
        "\"events\"",
        "\"evidence\"",
        "\"window_start\"",
        "\"window_end\"",
        "\"opened_at\"",
        "\"status\"",
        "\"open\"",
        "\"2026-05-01T10:00:00Z\"",
        "\"+262143-12-31T23:59:59Z\"",
        "\"\\u0007\"",
        "\"   \"",
    ];

    /// [`crate::sql_request`]: keywords, operators, literals.
    pub const SQL: &[&str] = &[
        "{\"query\":\"",
        "\"}",
        "SELECT ",
        " FROM ",
        " WHERE ",
        " GROUP BY ",
        " ORDER BY ",
        " LIMIT ",
        " OFFSET ",
        " HAVING ",
        " JOIN ",
        " LEFT JOIN ",
        " ON ",
        " USING ",
        " UNION ALL ",
        " INTERSECT ",
        "WITH RECURSIVE t AS (",
        " OVER (PARTITION BY ",
        "CASE WHEN ",
        " THEN ",
        " ELSE ",
        " END",
        "CAST(",
        " AS ",
        "::",
        "TRY_CAST(",
        "EXPLAIN ",
        "EXPLAIN ANALYZE ",
        "COPY ",
        "CREATE EXTERNAL TABLE ",
        "SET ",
        "SHOW ",
        "DROP TABLE ",
        "INSERT INTO ",
        "PREPARE ",
        "VALUES (",
        "ARRAY[",
        "STRUCT(",
        "MAP {",
        "INTERVAL '1 day'",
        "TIMESTAMP '2026-05-01T00:00:00Z'",
        "DATE '2026-05-01'",
        "E'\\x41'",
        "X'00'",
        "$1",
        "?",
        "@@",
        "events",
        "escalations",
        "mahallas",
        "occurred_at",
        "h3_parent(",
        "h3_cell(",
        "count(*)",
        "NOT ",
        " IS NULL",
        " BETWEEN ",
        " LIKE ",
        " IN (",
        "EXISTS (",
        "(",
        ")",
        "((((((((((",
        "))))))))))",
        "-- ",
        "/*",
        "*/",
        ";",
        "\\\"",
        "\\\\",
        "\\n",
    ];

    /// [`crate::config_toml`]: TOML syntax and the services' keys.
    pub const CONFIG: &[&str] = &[
        "[ingest]",
        "[api]",
        "[store]",
        "[store.tikv]",
        "[auth]",
        "[nats]",
        "[telemetry]",
        "[ingest.http]",
        "[[a]]",
        "listen",
        "nats_urls",
        "max_event_bytes",
        "max_body_bytes",
        "max_batch_items",
        "events_encoding",
        "pd_endpoints",
        "path",
        " = ",
        "\"\"\"",
        "'''",
        "a.b.c",
        "\"a.b\"",
        "inf",
        "-inf",
        "nan",
        "+nan",
        "0x7f",
        "0o17",
        "0b101",
        "1_000",
        "1979-05-27T07:32:00Z",
        "1979-05-27T07:32:00.999999-07:00",
        "1979-05-27",
        "07:32:00",
        "{ a = 1 }",
        "[[[[[[[[",
        "]]]]]]]]",
        "\\U0010FFFF",
        "\\u00e9",
    ];
}

/// Applies one to a few random mutations to `data`, in place, leaving it at
/// most `max_len` bytes. `other` is another corpus input to splice from.
pub fn mutate<R: Rng>(
    rng: &mut R,
    data: &mut Vec<u8>,
    other: &[u8],
    dictionary: &[&str],
    max_len: usize,
) {
    // Mostly one or two edits: many edits at once wreck the structure.
    let rounds = match rng.random_range(0..16) {
        0..=7 => 1,
        8..=11 => 2,
        12..=14 => 4,
        _ => 8,
    };
    for _ in 0..rounds {
        mutate_once(rng, data, other, dictionary);
    }
    data.truncate(max_len);
}

fn pos<R: Rng>(rng: &mut R, len: usize) -> usize {
    rng.random_range(0..=len)
}

/// A random `start..end` within `len`, at most `max` long.
fn range<R: Rng>(rng: &mut R, len: usize, max: usize) -> (usize, usize) {
    let start = rng.random_range(0..=len);
    let n = rng.random_range(0..=(len - start).min(max));
    (start, start + n)
}

fn pick<'a, R: Rng, T: ?Sized>(rng: &mut R, items: &[&'a T]) -> &'a T {
    items[rng.random_range(0..items.len())]
}

fn mutate_once<R: Rng>(rng: &mut R, data: &mut Vec<u8>, other: &[u8], dictionary: &[&str]) {
    let len = data.len();
    match rng.random_range(0..19) {
        // Flip a bit.
        0 if len > 0 => {
            let i = rng.random_range(0..len);
            data[i] ^= 1 << rng.random_range(0..8);
        }
        // A random byte, or an ASCII one.
        1 if len > 0 => {
            let i = rng.random_range(0..len);
            data[i] = if rng.random_bool(0.5) {
                rng.random()
            } else {
                rng.random_range(0x20..0x7f)
            };
        }
        // Insert random bytes.
        2 => {
            let at = pos(rng, len);
            let n = rng.random_range(1..=8);
            let bytes: Vec<u8> = (0..n).map(|_| rng.random()).collect();
            data.splice(at..at, bytes);
        }
        // Delete a range.
        3 | 4 if len > 0 => {
            let (a, b) = range(rng, len, 16.max(len / 8));
            data.drain(a..b);
        }
        // Truncate.
        5 if len > 0 => data.truncate(rng.random_range(0..len)),
        // A dictionary token, inserted or written over.
        6 | 7 => {
            let token = if !dictionary.is_empty() && rng.random_bool(0.7) {
                pick(rng, dictionary)
            } else {
                pick(rng, COMMON)
            };
            put(rng, data, token.as_bytes());
        }
        // A number at the edge, replacing a number of the input.
        8 | 9 => {
            let number = pick(rng, NUMBERS).as_bytes();
            match find_number(rng, data) {
                Some((a, b)) => {
                    data.splice(a..b, number.iter().copied());
                }
                None => put(rng, data, number),
            }
        }
        // A binary edge value.
        10 => {
            let value = pick(rng, BINARY);
            put(rng, data, value);
        }
        // Splice: this input's head with the other's tail, or a chunk of the
        // other inserted.
        11 if !other.is_empty() => {
            if rng.random_bool(0.5) {
                let cut = pos(rng, len);
                let from = pos(rng, other.len());
                data.truncate(cut);
                data.extend_from_slice(&other[from..]);
            } else {
                let (a, b) = range(rng, other.len(), 256);
                let at = pos(rng, len);
                data.splice(at..at, other[a..b].iter().copied());
            }
        }
        // Repeat a chunk: long strings, many items, many attributes.
        12 if len > 0 => {
            let (a, b) = range(rng, len, 64);
            let chunk = data[a..b].to_vec();
            let times = *pick(rng, &[&2usize, &3, &8, &32, &256]);
            let at = if rng.random_bool(0.5) {
                b
            } else {
                pos(rng, len)
            };
            let repeated: Vec<u8> = chunk
                .iter()
                .copied()
                .cycle()
                .take(chunk.len() * times)
                .collect();
            data.splice(at..at, repeated);
        }
        // Deep nesting.
        13 => {
            let depth = *pick(rng, &[&8usize, &64, &127, &128, &129, &300, &3000]);
            let (open, close): (&[u8], &[u8]) = match rng.random_range(0..5) {
                0 => (b"[", b"]"),
                1 => (b"{\"a\":", b"}"),
                2 => (b"(", b")"),
                3 => (b"[[", b"]]"),
                _ => (b"{\"location\":", b"}"),
            };
            let at = pos(rng, len);
            let mut nested = open.repeat(depth);
            if rng.random_bool(0.5) {
                nested.extend_from_slice(b"1");
                nested.extend_from_slice(&close.repeat(depth));
            }
            data.splice(at..at, nested);
        }
        // Swap two chunks.
        14 if len > 1 => {
            let (a, b) = range(rng, len, 32);
            let chunk: Vec<u8> = data.drain(a..b).collect();
            let at = pos(rng, data.len());
            data.splice(at..at, chunk);
        }
        // Copy a chunk over another place of the same input.
        15 if len > 1 => {
            let (a, b) = range(rng, len, 32);
            let chunk = data[a..b].to_vec();
            let at = rng.random_range(0..len);
            let end = (at + chunk.len()).min(len);
            data[at..end].copy_from_slice(&chunk[..end - at]);
        }
        // Increment or decrement a byte.
        16 if len > 0 => {
            let i = rng.random_range(0..len);
            data[i] = if rng.random_bool(0.5) {
                data[i].wrapping_add(1)
            } else {
                data[i].wrapping_sub(1)
            };
        }
        // Change the case of a letter (keywords, enum values).
        17 if len > 0 => {
            let i = rng.random_range(0..len);
            data[i] ^= if data[i].is_ascii_alphabetic() {
                0x20
            } else {
                0
            };
        }
        // Replace a run of digits by its own prefix or a longer run.
        18 if len > 0 => {
            if let Some((a, b)) = find_number(rng, data) {
                let n = *pick(rng, &[&1usize, &20, &400]);
                let digits: Vec<u8> = (0..n).map(|_| rng.random_range(b'0'..=b'9')).collect();
                data.splice(a..b, digits);
            }
        }
        _ => {
            let at = pos(rng, len);
            data.insert(at, rng.random());
        }
    }
}

/// Inserts `token` at a random place, or writes it over the bytes there.
fn put<R: Rng>(rng: &mut R, data: &mut Vec<u8>, token: &[u8]) {
    let at = pos(rng, data.len());
    if rng.random_bool(0.6) {
        data.splice(at..at, token.iter().copied());
    } else {
        let end = (at + token.len()).min(data.len());
        data.splice(at..end, token.iter().copied());
    }
}

/// A random run of number characters (digits, `.`, `e`, `-`) in `data`.
fn find_number<R: Rng>(rng: &mut R, data: &[u8]) -> Option<(usize, usize)> {
    if data.is_empty() {
        return None;
    }
    let start = rng.random_range(0..data.len());
    let first = (start..data.len())
        .chain(0..start)
        .find(|&i| data[i].is_ascii_digit())?;
    let is_num = |b: u8| b.is_ascii_digit() || matches!(b, b'.' | b'e' | b'E' | b'-' | b'+');
    let mut a = first;
    while a > 0 && is_num(data[a - 1]) {
        a -= 1;
    }
    let mut b = first;
    while b < data.len() && is_num(data[b]) {
        b += 1;
    }
    Some((a, b))
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;
    use rand_chacha::ChaCha8Rng;

    #[test]
    fn mutations_stay_within_max_len_and_are_deterministic() {
        let run = |seed| {
            let mut rng = ChaCha8Rng::seed_from_u64(seed);
            let mut data = br#"{"kind":"incident","severity":2}"#.to_vec();
            let mut seen = Vec::new();
            for _ in 0..2000 {
                mutate(&mut rng, &mut data, b"[1,2,3]", dict::EVENT_JSON, 512);
                assert!(data.len() <= 512);
                seen.push(data.clone());
                if data.is_empty() {
                    data = b"{}".to_vec();
                }
            }
            seen
        };
        assert_eq!(run(1), run(1));
        assert_ne!(run(1), run(2));
    }

    #[test]
    fn numbers_are_found() {
        let mut rng = ChaCha8Rng::seed_from_u64(3);
        let data = b"{\"lat\": -41.5e3}";
        let (a, b) = find_number(&mut rng, data).expect("a number");
        assert_eq!(&data[a..b], b"-41.5e3");
        assert_eq!(find_number(&mut rng, b"no digits"), None);
    }
}
