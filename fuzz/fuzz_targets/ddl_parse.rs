//! eKuiper DDL: any text parses or is refused with a position inside it;
//! a created stream has a valid name.
#![no_main]

use intake_format::ddl::{Statement, parse};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(sql) = std::str::from_utf8(data) else {
        return;
    };
    match parse(sql) {
        Ok(Statement::Create { definition, .. }) => {
            assert!(intake_format::api::check_stream_name(&definition.name).is_ok());
        }
        Ok(_) => {}
        Err(e) => assert!(e.position <= sql.chars().count()),
    }
});
