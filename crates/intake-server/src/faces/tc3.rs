//! TC3-HMAC-SHA256, the request signature of Tencent Cloud API 3.0, as
//! the CKafka face checks it against a DataHub binding's credentials.
//!
//! A signed request carries `X-TC-Timestamp` (Unix seconds) and
//! `Authorization: TC3-HMAC-SHA256 Credential=ID/DATE/SERVICE/tc3_request,
//! SignedHeaders=content-type;host, Signature=HEX`. The signature is
//! `HMAC-SHA256(signing key, string to sign)` in hex, where the string to
//! sign is `TC3-HMAC-SHA256\nTIMESTAMP\nDATE/SERVICE/tc3_request\n` and
//! the SHA-256 of the canonical request (method, path, query, each signed
//! header as `name:value` lowercased and trimmed, the signed header names,
//! and the SHA-256 of the body, or of `UNSIGNED-PAYLOAD` when the header
//! `X-TC-Content-SHA256` says so), and the signing key is
//! `HMAC("TC3" + SecretKey, DATE)`, then of `SERVICE`, then of
//! `tc3_request`. DATE is the UTC day of the timestamp; a timestamp more
//! than five minutes from the node's clock is expired.

use axum::http::{HeaderMap, Method};
use hmac::{Hmac, Mac};
use intake_format::api::DatahubCredential;
use sha2::{Digest, Sha256};

/// The algorithm name that starts the `Authorization` header.
pub(crate) const ALGORITHM: &str = "TC3-HMAC-SHA256";
/// `X-TC-Content-SHA256` of a request whose signature leaves the body out.
const UNSIGNED_PAYLOAD: &str = "UNSIGNED-PAYLOAD";
/// How far a request's timestamp may be from the node's clock, in seconds.
pub(crate) const MAX_SKEW_S: i64 = 300;

type HmacSha256 = Hmac<Sha256>;

/// Why a signature was refused, one variant per API 3.0 error code.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub(crate) enum SignatureError {
    /// No `Authorization` header, or one not in the TC3 form
    /// (`AuthFailure.InvalidAuthorization`).
    #[error("{0}")]
    InvalidAuthorization(String),
    /// The SecretId is not one of the binding's
    /// (`AuthFailure.SecretIdNotFound`).
    #[error("the SecretId {secret_id:?} is not a credential of DataHubId {datahub_id:?}")]
    SecretIdNotFound {
        /// The SecretId the request named.
        secret_id: String,
        /// The DataHub it was sent to.
        datahub_id: String,
    },
    /// The timestamp is missing, malformed or too far from the clock
    /// (`AuthFailure.SignatureExpire`).
    #[error("{0}")]
    Expired(String),
    /// The signature does not match (`AuthFailure.SignatureFailure`).
    #[error("{0}")]
    Mismatch(String),
}

impl SignatureError {
    /// The API 3.0 error code.
    pub(crate) fn code(&self) -> &'static str {
        match self {
            Self::InvalidAuthorization(_) => "AuthFailure.InvalidAuthorization",
            Self::SecretIdNotFound { .. } => "AuthFailure.SecretIdNotFound",
            Self::Expired(_) => "AuthFailure.SignatureExpire",
            Self::Mismatch(_) => "AuthFailure.SignatureFailure",
        }
    }
}

/// The parts of a TC3 `Authorization` header.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Authorization<'a> {
    /// The SecretId.
    pub(crate) secret_id: &'a str,
    /// The UTC day, `YYYY-MM-DD`.
    pub(crate) date: &'a str,
    /// The service, e.g. `ckafka`.
    pub(crate) service: &'a str,
    /// The signed header names, lowercase, `;`-separated.
    pub(crate) signed_headers: &'a str,
    /// The signature, hex.
    pub(crate) signature: &'a str,
}

/// True when `headers` carry a TC3 `Authorization` (signed or not well).
pub(crate) fn is_signed(headers: &HeaderMap) -> bool {
    headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.trim_start().starts_with(ALGORITHM))
}

/// Parses `TC3-HMAC-SHA256 Credential=..., SignedHeaders=..., Signature=...`.
pub(crate) fn parse_authorization(value: &str) -> Result<Authorization<'_>, SignatureError> {
    let bad = |why: &str| {
        SignatureError::InvalidAuthorization(format!(
            "the Authorization header is not a {ALGORITHM} authorization: {why}"
        ))
    };
    let rest = value
        .trim()
        .strip_prefix(ALGORITHM)
        .ok_or_else(|| bad("it must start with TC3-HMAC-SHA256"))?;
    let (mut credential, mut signed_headers, mut signature) = (None, None, None);
    for part in rest.split(',') {
        let part = part.trim();
        let (name, value) = part
            .split_once('=')
            .ok_or_else(|| bad("expected Name=value parts separated by commas"))?;
        match name {
            "Credential" => credential = Some(value),
            "SignedHeaders" => signed_headers = Some(value),
            "Signature" => signature = Some(value),
            _ => {}
        }
    }
    let credential = credential.ok_or_else(|| bad("Credential is missing"))?;
    let mut scope = credential.split('/');
    let (Some(secret_id), Some(date), Some(service), Some("tc3_request"), None) = (
        scope.next(),
        scope.next(),
        scope.next(),
        scope.next(),
        scope.next(),
    ) else {
        return Err(bad(
            "Credential must be SecretId/YYYY-MM-DD/service/tc3_request",
        ));
    };
    let signed_headers = signed_headers.ok_or_else(|| bad("SignedHeaders is missing"))?;
    let signature = signature.ok_or_else(|| bad("Signature is missing"))?;
    if secret_id.is_empty() || service.is_empty() || signed_headers.is_empty() {
        return Err(bad("SecretId, service and SignedHeaders must not be empty"));
    }
    Ok(Authorization {
        secret_id,
        date,
        service,
        signed_headers,
        signature,
    })
}

/// What a signature covers besides the headers.
#[derive(Debug, Clone, Copy)]
pub(crate) struct SignedRequest<'a> {
    /// The method.
    pub(crate) method: &'a Method,
    /// The path, `/` for API 3.0.
    pub(crate) path: &'a str,
    /// The query string, empty for a POST.
    pub(crate) query: &'a str,
    /// The headers.
    pub(crate) headers: &'a HeaderMap,
    /// The body as received (before any decompression).
    pub(crate) body: &'a [u8],
}

/// Checks the request's signature against `credentials` (those of
/// `datahub_id`) at `now_s`, Unix seconds.
pub(crate) fn verify(
    request: SignedRequest<'_>,
    datahub_id: &str,
    credentials: &[DatahubCredential],
    now_s: i64,
) -> Result<(), SignatureError> {
    let header = request
        .headers
        .get("authorization")
        .ok_or_else(|| {
            SignatureError::InvalidAuthorization(format!(
                "DataHubId {datahub_id:?} takes only requests signed with {ALGORITHM}; the Authorization header is missing"
            ))
        })?
        .to_str()
        .map_err(|_| {
            SignatureError::InvalidAuthorization("the Authorization header is not text".into())
        })?;
    let auth = parse_authorization(header)?;
    let credential = credentials
        .iter()
        .find(|c| c.secret_id == auth.secret_id)
        .ok_or_else(|| SignatureError::SecretIdNotFound {
            secret_id: auth.secret_id.to_owned(),
            datahub_id: datahub_id.to_owned(),
        })?;
    let timestamp = request
        .headers
        .get("x-tc-timestamp")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<i64>().ok())
        .ok_or_else(|| {
            SignatureError::Expired("a signed request needs X-TC-Timestamp, in Unix seconds".into())
        })?;
    let skew = now_s.saturating_sub(timestamp);
    if skew.unsigned_abs() > MAX_SKEW_S.unsigned_abs() {
        return Err(SignatureError::Expired(format!(
            "the signature's X-TC-Timestamp {timestamp} is {skew} s from this node's clock; at most {MAX_SKEW_S} s are accepted"
        )));
    }
    let day = utc_day(timestamp);
    if auth.date != day {
        return Err(SignatureError::Mismatch(format!(
            "the Credential's date {} is not {day}, the UTC day of X-TC-Timestamp",
            auth.date
        )));
    }
    let expected = signature(&credential.secret_key, &auth, timestamp, request)?;
    let given = hex::decode(auth.signature)
        .map_err(|_| SignatureError::Mismatch("the Signature is not hex".into()))?;
    expected.verify_slice(&given).map_err(|_| {
        SignatureError::Mismatch(format!(
            "the signature does not match the request signed with the SecretKey of {:?}",
            auth.secret_id
        ))
    })
}

/// The MAC whose output is the signature, ready to compare.
fn signature(
    secret_key: &str,
    auth: &Authorization<'_>,
    timestamp: i64,
    request: SignedRequest<'_>,
) -> Result<HmacSha256, SignatureError> {
    let mut canonical = format!(
        "{}\n{}\n{}\n",
        request.method.as_str(),
        request.path,
        request.query
    );
    for name in auth.signed_headers.split(';') {
        let value = request
            .headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .ok_or_else(|| {
                SignatureError::Mismatch(format!(
                    "the signed header {name:?} is missing from the request"
                ))
            })?;
        canonical.push_str(&name.to_ascii_lowercase());
        canonical.push(':');
        canonical.push_str(&value.trim().to_ascii_lowercase());
        canonical.push('\n');
    }
    canonical.push('\n');
    canonical.push_str(auth.signed_headers);
    canonical.push('\n');
    let unsigned = request
        .headers
        .get("x-tc-content-sha256")
        .is_some_and(|v| v.as_bytes() == UNSIGNED_PAYLOAD.as_bytes());
    let payload = if unsigned {
        UNSIGNED_PAYLOAD.as_bytes()
    } else {
        request.body
    };
    canonical.push_str(&hex::encode(Sha256::digest(payload)));
    let string_to_sign = format!(
        "{ALGORITHM}\n{timestamp}\n{}/{}/tc3_request\n{}",
        auth.date,
        auth.service,
        hex::encode(Sha256::digest(canonical.as_bytes()))
    );
    let key = [
        auth.date.as_bytes(),
        auth.service.as_bytes(),
        b"tc3_request",
    ]
    .iter()
    .fold(format!("TC3{secret_key}").into_bytes(), |key, data| {
        mac(&key, data).finalize().into_bytes().to_vec()
    });
    Ok(mac(&key, string_to_sign.as_bytes()))
}

fn mac(key: &[u8], data: &[u8]) -> HmacSha256 {
    #[allow(clippy::expect_used, reason = "HMAC takes a key of any length")]
    let mut mac = HmacSha256::new_from_slice(key).expect("HMAC takes any key length");
    mac.update(data);
    mac
}

/// `YYYY-MM-DD`, the UTC day of Unix second `s`.
fn utc_day(s: i64) -> String {
    // Howard Hinnant's days-to-civil.
    let z = s.div_euclid(86_400) + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!("{year:04}-{month:02}-{day:02}")
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "a panic in a test is a failed test")]

    use axum::http::HeaderValue;

    use super::*;

    /// The worked example of Tencent Cloud's API 3.0 signature
    /// documentation (a CVM DescribeInstances request), with the signature
    /// the official Python SDK's `Sign.sign_tc3` computes for it.
    #[test]
    fn tencent_documentation_example_verifies() {
        let body = br#"{"Limit": 1, "Filters": [{"Values": ["\u672a\u547d\u540d"], "Name": "instance-name"}]}"#;
        let mut headers = HeaderMap::new();
        headers.insert(
            "content-type",
            HeaderValue::from_static("application/json; charset=utf-8"),
        );
        headers.insert("host", HeaderValue::from_static("cvm.tencentcloudapi.com"));
        headers.insert("x-tc-timestamp", HeaderValue::from_static("1551113065"));
        headers.insert(
            "authorization",
            HeaderValue::from_static(
                "TC3-HMAC-SHA256 Credential=AKIDz8krbsJ5yKBZQpn74WFkmLPx3EXAMPLE/2019-02-25/cvm/tc3_request, SignedHeaders=content-type;host, Signature=72e494ea809ad7a8c8f7a4507b9bddcbaa8e581f516e8da2f66e2c5a96525168",
            ),
        );
        let credentials = [DatahubCredential {
            secret_id: "AKIDz8krbsJ5yKBZQpn74WFkmLPx3EXAMPLE".into(),
            secret_key: "Gu5t9xGARNpq86cd98joQYCN3EXAMPLE".into(),
        }];
        let request = SignedRequest {
            method: &Method::POST,
            path: "/",
            query: "",
            headers: &headers,
            body,
        };
        assert_eq!(verify(request, "d", &credentials, 1_551_113_065), Ok(()));

        // A changed body, another key, a later clock, an unknown id.
        let tampered = SignedRequest {
            body: b"{}",
            ..request
        };
        assert!(matches!(
            verify(tampered, "d", &credentials, 1_551_113_065),
            Err(SignatureError::Mismatch(_))
        ));
        let other_key = [DatahubCredential {
            secret_key: "another".into(),
            ..credentials[0].clone()
        }];
        assert!(matches!(
            verify(request, "d", &other_key, 1_551_113_065),
            Err(SignatureError::Mismatch(_))
        ));
        assert!(matches!(
            verify(request, "d", &credentials, 1_551_113_065 + MAX_SKEW_S + 1),
            Err(SignatureError::Expired(_))
        ));
        assert_eq!(
            verify(request, "d", &credentials, 1_551_113_065 + MAX_SKEW_S),
            Ok(())
        );
        assert!(matches!(
            verify(request, "d", &credentials[..0], 1_551_113_065),
            Err(SignatureError::SecretIdNotFound { .. })
        ));
    }

    /// With `X-TC-Content-SHA256: UNSIGNED-PAYLOAD` the body is not signed.
    #[test]
    fn unsigned_payload_leaves_the_body_out() {
        let mut headers = HeaderMap::new();
        headers.insert(
            "content-type",
            HeaderValue::from_static("application/json; charset=utf-8"),
        );
        headers.insert("host", HeaderValue::from_static("cvm.tencentcloudapi.com"));
        headers.insert("x-tc-timestamp", HeaderValue::from_static("1551113065"));
        headers.insert(
            "x-tc-content-sha256",
            HeaderValue::from_static("UNSIGNED-PAYLOAD"),
        );
        headers.insert(
            "authorization",
            HeaderValue::from_static(
                "TC3-HMAC-SHA256 Credential=AKID/2019-02-25/cvm/tc3_request, SignedHeaders=content-type;host, Signature=046973eb8aff090a93ae075243c90c0b1df77954c7e4f0821f4750e2d49fc193",
            ),
        );
        let credentials = [DatahubCredential {
            secret_id: "AKID".into(),
            secret_key: "Gu5t9xGARNpq86cd98joQYCN3EXAMPLE".into(),
        }];
        for body in [&b"{}"[..], b"anything"] {
            let request = SignedRequest {
                method: &Method::POST,
                path: "/",
                query: "",
                headers: &headers,
                body,
            };
            assert_eq!(verify(request, "d", &credentials, 1_551_113_065), Ok(()));
        }
    }

    #[test]
    fn malformed_authorizations_say_what_is_wrong() {
        for (header, why) in [
            ("Bearer abc", "must start with TC3-HMAC-SHA256"),
            (
                "TC3-HMAC-SHA256 SignedHeaders=host, Signature=00",
                "Credential is missing",
            ),
            (
                "TC3-HMAC-SHA256 Credential=id/2019-02-25/cvm, SignedHeaders=host, Signature=00",
                "SecretId/YYYY-MM-DD/service/tc3_request",
            ),
            (
                "TC3-HMAC-SHA256 Credential=id/2019-02-25/cvm/tc3_request, Signature=00",
                "SignedHeaders is missing",
            ),
            ("TC3-HMAC-SHA256 garbage", "Name=value"),
        ] {
            let err = parse_authorization(header).unwrap_err().to_string();
            assert!(err.contains(why), "{header}: {err}");
        }
    }

    #[test]
    fn utc_days() {
        assert_eq!(utc_day(0), "1970-01-01");
        assert_eq!(utc_day(1_551_113_065), "2019-02-25");
        assert_eq!(utc_day(951_782_400), "2000-02-29");
        assert_eq!(utc_day(1_798_761_599), "2026-12-31");
        assert_eq!(utc_day(-1), "1969-12-31");
    }

    proptest::proptest! {
        /// Any header text parses or is refused, never panics.
        #[test]
        fn any_authorization_parses_or_refuses(header in ".{0,200}") {
            let _ = parse_authorization(&header);
        }
    }
}
