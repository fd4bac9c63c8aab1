//! Table filters: any text parses or is refused with a position inside
//! it; a parsed filter prints to text that parses back to it, and
//! evaluates on a row without panicking.
#![no_main]

use intake_format::filter::Filter;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    match Filter::parse(text) {
        Ok(filter) => {
            let printed = filter.to_string();
            // Printing may lengthen numbers (1e300) past the length limit.
            if printed.len() <= intake_format::filter::MAX_FILTER_BYTES {
                assert_eq!(Filter::parse(&printed).as_ref(), Ok(&filter), "{printed}");
            }
            let row = serde_json::json!({"a": 1, "b": "x", "c": true, "d": null, "e": {"f": 2.5}});
            let _ = filter.matches(&row);
        }
        Err(e) => assert!(e.position <= text.chars().count()),
    }
});
