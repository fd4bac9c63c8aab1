//! Entry points of the cargo-fuzz targets under `fuzz/`: each face's
//! request parser on arbitrary input, asserting the properties its target
//! checks (a panic is a finding). `tests/fuzz_seeds.rs` replays the
//! committed seeds through them. Not an API; hidden from the docs.

/// InLong DataProxy: the input up to its first `?` as a form body, the
/// rest as the query.
pub fn inlong_form(data: &[u8]) {
    let (body, query) = match data.iter().position(|&b| b == b'?') {
        Some(at) => {
            let (body, rest) = data.split_at(at);
            (body, rest.get(1..).unwrap_or_default())
        }
        None => (data, &[][..]),
    };
    crate::faces::inlong::fuzz_form(body, query);
}

/// CKafka DataHub: the input as a `SendMessage` body and as a TC3
/// `Authorization` header.
pub fn ckafka_request(data: &[u8]) {
    crate::faces::ckafka::fuzz_request(data);
}

/// Kafka REST Proxy v2: the input as a produce request, with the JSON
/// embedding and with the binary (base64) one.
pub fn rest_produce(data: &[u8]) {
    crate::faces::rest_proxy::fuzz_produce(data, false);
    crate::faces::rest_proxy::fuzz_produce(data, true);
}
