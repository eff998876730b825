//! Batches: a JSON array or NDJSON body split into items, each parsed on its own.

use chrono::{DateTime, Utc};

use super::{Limits, parse_event};
use crate::error::{ErrorCode, ValidationErrors};
use crate::event::Event;

/// Where one item of a batch was found.
#[derive(Debug, Clone, PartialEq)]
pub struct BatchItem {
    /// 0-based position of the item in the batch (array index, or count of
    /// non-blank lines before it in NDJSON).
    pub index: usize,
    /// 1-based line of the batch on which the item starts.
    pub line: usize,
    /// The event, or every problem found in it.
    pub result: Result<Event, ValidationErrors>,
}

/// Parses a batch: a JSON array of events, or NDJSON (one event per line;
/// blank lines are skipped). Chosen by the first non-whitespace byte (`[`
/// means array).
///
/// Each item is judged on its own, with the same rules as [`parse_event`]
/// (`limits.max_payload_bytes` applies to each item): one bad item never
/// loses the others. A structurally broken array is split as well as
/// possible (by bracket depth outside strings) and the broken part reported
/// as its own item.
///
/// A batch of more than `limits.max_batch_items` items is one item with
/// [`ErrorCode::BatchTooLarge`].
pub fn parse_events(bytes: &[u8], limits: &Limits, now: DateTime<Utc>) -> Vec<BatchItem> {
    let first = bytes.iter().position(|b| !b.is_ascii_whitespace());
    let items = match first {
        None => Vec::new(),
        Some(i) if bytes[i] == b'[' => parse_array(bytes, i, limits, now),
        Some(_) => parse_ndjson(bytes, limits, now),
    };
    match limits.check_batch_items(items.len()) {
        Some(errors) => vec![BatchItem {
            index: 0,
            line: 1,
            result: Err(errors),
        }],
        None => items,
    }
}

fn parse_ndjson(bytes: &[u8], limits: &Limits, now: DateTime<Utc>) -> Vec<BatchItem> {
    let mut out = Vec::new();
    for (n, line) in bytes.split(|&b| b == b'\n').enumerate() {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        if line.iter().all(|b| b.is_ascii_whitespace()) {
            continue;
        }
        let index = out.len();
        if index == limits.max_batch_items {
            // One more than the limit: the caller refuses the batch whole.
            out.push(too_many());
            break;
        }
        out.push(BatchItem {
            index,
            line: n + 1,
            result: parse_event(line, limits, now),
        });
    }
    out
}

/// The placeholder for the item past the limit (never returned: the batch
/// is refused whole).
fn too_many() -> BatchItem {
    BatchItem {
        index: 0,
        line: 0,
        result: Err(ValidationErrors::single("", ErrorCode::BatchTooLarge, "")),
    }
}

fn parse_array(bytes: &[u8], open: usize, limits: &Limits, now: DateTime<Utc>) -> Vec<BatchItem> {
    let mut out = Vec::new();
    let mut line = 1 + bytes[..open].iter().filter(|&&b| b == b'\n').count();
    let mut i = open + 1;
    let n = bytes.len();
    let skip_ws = |i: &mut usize, line: &mut usize| {
        while *i < n && bytes[*i].is_ascii_whitespace() {
            if bytes[*i] == b'\n' {
                *line += 1;
            }
            *i += 1;
        }
    };
    skip_ws(&mut i, &mut line);
    if i < n && bytes[i] == b']' {
        i += 1;
    } else {
        loop {
            skip_ws(&mut i, &mut line);
            let start = i;
            let start_line = line;
            // Scan one element: up to a ',' or ']' at depth 0, outside strings.
            let mut depth = 0usize;
            let mut in_str = false;
            let mut esc = false;
            let mut end = None;
            while i < n {
                let b = bytes[i];
                if b == b'\n' {
                    line += 1;
                }
                if in_str {
                    if esc {
                        esc = false;
                    } else if b == b'\\' {
                        esc = true;
                    } else if b == b'"' {
                        in_str = false;
                    }
                } else {
                    match b {
                        b'"' => in_str = true,
                        b'{' | b'[' => depth += 1,
                        b'}' | b']' if depth > 0 => depth -= 1,
                        b',' | b']' if depth == 0 => {
                            end = Some(b);
                            break;
                        }
                        _ => {}
                    }
                }
                i += 1;
            }
            let index = out.len();
            if index == limits.max_batch_items {
                out.push(too_many());
                return out;
            }
            let item = &bytes[start..i];
            let result = if end.is_none() {
                Err(ValidationErrors::single(
                    "",
                    ErrorCode::MalformedJson,
                    "malformed json: unterminated array (missing `]`)",
                ))
            } else if item.iter().all(|b| b.is_ascii_whitespace()) {
                Err(ValidationErrors::single(
                    "",
                    ErrorCode::MalformedJson,
                    "malformed json: empty array element",
                ))
            } else {
                parse_event(item, limits, now)
            };
            out.push(BatchItem {
                index,
                line: start_line,
                result,
            });
            match end {
                Some(b',') => i += 1,
                Some(_) => {
                    i += 1;
                    break;
                }
                None => return out,
            }
        }
    }
    skip_ws(&mut i, &mut line);
    if i < n {
        out.push(BatchItem {
            index: out.len(),
            line,
            result: Err(ValidationErrors::single(
                "",
                ErrorCode::MalformedJson,
                "malformed json: unexpected data after the end of the array",
            )),
        });
    }
    out
}
