//! JSON and NDJSON framing: split a body into records without copying.

use bytes::Bytes;
use serde_json::value::RawValue;

use crate::error::FormatError;

fn malformed(e: &serde_json::Error) -> FormatError {
    FormatError::Malformed {
        line: e.line(),
        column: e.column(),
        reason: strip_position(&e.to_string()),
    }
}

/// serde_json appends " at line L column C"; the error says so already.
fn strip_position(message: &str) -> String {
    match message.rfind(" at line ") {
        Some(i) => message.get(..i).unwrap_or(message).to_owned(),
        None => message.to_owned(),
    }
}

fn first_non_space(body: &[u8]) -> Option<u8> {
    body.iter().copied().find(|b| !b.is_ascii_whitespace())
}

/// Splits a JSON body: an array gives one record per element, any other
/// value is one record. Each record is a zero-copy slice of `body`.
///
/// # Errors
/// [`FormatError::Malformed`] with line and column when `body` is not JSON.
pub fn split_json(body: &Bytes) -> Result<Vec<Bytes>, FormatError> {
    if first_non_space(body) == Some(b'[') {
        let items: Vec<&RawValue> = serde_json::from_slice(body).map_err(|e| malformed(&e))?;
        Ok(items
            .into_iter()
            .map(|raw| body.slice_ref(raw.get().as_bytes()))
            .collect())
    } else {
        let raw: &RawValue = serde_json::from_slice(body).map_err(|e| malformed(&e))?;
        Ok(vec![body.slice_ref(raw.get().as_bytes())])
    }
}

/// Splits NDJSON: every non-blank line is one JSON record.
///
/// # Errors
/// [`FormatError::Malformed`] naming the line of the first bad record.
pub fn split_ndjson(body: &Bytes) -> Result<Vec<Bytes>, FormatError> {
    let mut out = Vec::new();
    for (number, line) in body.split(|&b| b == b'\n').enumerate() {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        if line.iter().all(u8::is_ascii_whitespace) {
            continue;
        }
        let raw: &RawValue = serde_json::from_slice(line).map_err(|e| FormatError::Malformed {
            line: number + 1,
            column: e.column(),
            reason: format!("record {}: {}", out.len(), strip_position(&e.to_string())),
        })?;
        out.push(body.slice_ref(raw.get().as_bytes()));
    }
    Ok(out)
}

/// Checks that an item pushed by a face is one JSON value.
///
/// # Errors
/// [`FormatError::InvalidRecord`] naming `index`.
pub fn check_json(index: usize, item: &[u8]) -> Result<(), FormatError> {
    serde_json::from_slice::<&RawValue>(item)
        .map(|_| ())
        .map_err(|e| FormatError::record(index, None, format!("not JSON: {}", e)))
}

/// The byte position at which `body` nests JSON arrays and objects deeper
/// than `limit`, or `None` when it stays within. One pass, no recursion and
/// no allocation, so it runs before any parser sees a hostile body (100,000
/// open brackets cost 100,000 steps, not a stack). Brackets inside strings
/// do not count; the body need not be valid JSON. NDJSON works too: each
/// valid line closes what it opens.
pub fn depth_exceeded_at(body: &[u8], limit: usize) -> Option<usize> {
    // Fast path: a body with no more opening brackets than the limit cannot
    // nest deeper (a count the compiler vectorises; most records stop here).
    let opening = body.iter().filter(|&&b| b == b'[' || b == b'{').count();
    if opening <= limit {
        return None;
    }
    scan_depth(body, limit)
}

/// [`depth_exceeded_at`] without its fast path: the bracket-counting scan
/// that skips strings.
fn scan_depth(body: &[u8], limit: usize) -> Option<usize> {
    let mut depth = 0usize;
    let mut in_string = false;
    let mut escaped = false;
    for (at, &b) in body.iter().enumerate() {
        if in_string {
            if escaped {
                escaped = false;
            } else if b == b'\\' {
                escaped = true;
            } else if b == b'"' {
                in_string = false;
            }
            continue;
        }
        match b {
            b'"' => in_string = true,
            b'[' | b'{' => {
                depth += 1;
                if depth > limit {
                    return Some(at);
                }
            }
            b']' | b'}' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn depth_at_and_past_the_limit() {
        assert_eq!(depth_exceeded_at(b"[[[1]]]", 3), None);
        assert_eq!(depth_exceeded_at(b"[[[[1]]]]", 3), Some(3));
        assert_eq!(depth_exceeded_at(br#"{"a":{"b":[1]}}"#, 3), None);
        assert_eq!(depth_exceeded_at(br#"{"a":{"b":[{}]}}"#, 3), Some(11));
        // Brackets in strings, escaped quotes, and NDJSON lines.
        assert_eq!(depth_exceeded_at(br#"["[[[[\"[[["]"#, 1), None);
        assert_eq!(depth_exceeded_at(b"[[1]]\n[[2]]\n", 2), None);
        let deep = "[".repeat(100_000);
        assert_eq!(depth_exceeded_at(deep.as_bytes(), 64), Some(64));
    }

    #[test]
    fn object_is_one_record_array_is_many() {
        let one = split_json(&Bytes::from_static(br#" {"a": 1} "#)).unwrap();
        assert_eq!(one, vec![Bytes::from_static(br#"{"a": 1}"#)]);
        let many = split_json(&Bytes::from_static(br#"[{"a":1}, 2, "x", [3]]"#)).unwrap();
        assert_eq!(many, vec![&br#"{"a":1}"#[..], b"2", br#""x""#, b"[3]"]);
        assert!(split_json(&Bytes::from_static(b"[]")).unwrap().is_empty());
    }

    #[test]
    fn malformed_json_names_line_and_column() {
        let err = split_json(&Bytes::from_static(b"[{\"a\":1},\n {\"b\":}]")).unwrap_err();
        match err {
            FormatError::Malformed {
                line,
                column,
                reason,
            } => {
                assert_eq!((line, column), (2, 7));
                assert!(!reason.contains("at line"), "{reason}");
            }
            other => panic!("{other:?}"),
        }
        assert!(
            split_json(&Bytes::from_static(b"{} {}")).is_err(),
            "trailing value"
        );
        assert!(split_json(&Bytes::from_static(b"")).is_err());
    }

    #[test]
    fn ndjson_skips_blank_lines_and_names_bad_line() {
        let items = split_ndjson(&Bytes::from_static(b"{\"a\":1}\r\n\n  \n[2]\n")).unwrap();
        assert_eq!(items, vec![&b"{\"a\":1}"[..], b"[2]"]);
        let err = split_ndjson(&Bytes::from_static(b"1\n2\n{x\n")).unwrap_err();
        let FormatError::Malformed { line, reason, .. } = err else {
            panic!()
        };
        assert_eq!(line, 3);
        assert!(reason.starts_with("record 2:"), "{reason}");
    }

    proptest! {
        #[test]
        fn split_never_panics(body in proptest::collection::vec(any::<u8>(), 0..200)) {
            let body = Bytes::from(body);
            let _ = split_json(&body);
            let _ = split_ndjson(&body);
            let _ = depth_exceeded_at(&body, 3);
        }

        #[test]
        fn depth_fast_path_agrees_with_the_scan(
            body in proptest::collection::vec(proptest::sample::select(b"[]{}\"\\a,".to_vec()), 0..64),
            limit in 0usize..12,
        ) {
            prop_assert_eq!(depth_exceeded_at(&body, limit), scan_depth(&body, limit));
        }

        #[test]
        fn array_roundtrip(values in proptest::collection::vec(any::<i64>(), 0..20)) {
            let body = Bytes::from(serde_json::to_vec(&values).unwrap());
            let items = split_json(&body).unwrap();
            let back: Vec<i64> = items.iter().map(|i| serde_json::from_slice(i).unwrap()).collect();
            prop_assert_eq!(back, values);
        }
    }
}
