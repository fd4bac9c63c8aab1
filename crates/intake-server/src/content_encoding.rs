//! Undoing `Content-Encoding: gzip | deflate | zstd` within a limit.
//!
//! The compressed body is already bounded by `limits.max_body_bytes`; the
//! decoder reads it as a stream and stops one byte past
//! `limits.max_decompressed_bytes`, so a decompression bomb (a few KiB that
//! inflate to gigabytes) costs at most the limit in memory and time before
//! it is answered 413. Decoding runs on the blocking pool.

use std::io::Read;

use axum::http::HeaderMap;
use axum::http::header::CONTENT_ENCODING;
use bytes::Bytes;

use crate::error::ApiError;

/// A coding this node undoes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Coding {
    Gzip,
    Deflate,
    Zstd,
}

/// The coding named by `Content-Encoding`, `None` for none or `identity`.
fn coding(headers: &HeaderMap) -> Result<Option<Coding>, ApiError> {
    let Some(value) = headers.get(CONTENT_ENCODING) else {
        return Ok(None);
    };
    let text = value.to_str().unwrap_or("(not text)").trim();
    match text.to_ascii_lowercase().as_str() {
        "" | "identity" => Ok(None),
        "gzip" | "x-gzip" => Ok(Some(Coding::Gzip)),
        "deflate" => Ok(Some(Coding::Deflate)),
        "zstd" => Ok(Some(Coding::Zstd)),
        _ => Err(ApiError::UnsupportedEncoding {
            got: text.to_owned(),
        }),
    }
}

/// `body` with its `Content-Encoding` undone, at most `limit` bytes.
///
/// # Errors
/// 415 for an unknown coding, 413 past `limit`, 400 for corrupt data.
pub(crate) async fn decode(
    headers: &HeaderMap,
    body: Bytes,
    limit: usize,
) -> Result<Bytes, ApiError> {
    let Some(coding) = coding(headers)? else {
        return Ok(body);
    };
    tokio::task::spawn_blocking(move || decode_blocking(coding, &body, limit))
        .await
        .map_err(|e| ApiError::BadRequest(format!("could not decode the body: {e}")))?
}

fn decode_blocking(coding: Coding, body: &[u8], limit: usize) -> Result<Bytes, ApiError> {
    let reader: Box<dyn Read + '_> = match coding {
        Coding::Gzip => Box::new(flate2::read::MultiGzDecoder::new(body)),
        // HTTP's "deflate" is zlib-wrapped; some clients send raw deflate.
        Coding::Deflate if body.first().is_some_and(|b| b & 0x0f == 8) => {
            Box::new(flate2::read::ZlibDecoder::new(body))
        }
        Coding::Deflate => Box::new(flate2::read::DeflateDecoder::new(body)),
        Coding::Zstd => Box::new(
            zstd::stream::read::Decoder::with_buffer(body).map_err(|e| corrupt(coding, &e))?,
        ),
    };
    let mut out = Vec::with_capacity(body.len().saturating_mul(4).min(limit));
    let cap = u64::try_from(limit).unwrap_or(u64::MAX).saturating_add(1);
    reader
        .take(cap)
        .read_to_end(&mut out)
        .map_err(|e| corrupt(coding, &e))?;
    if out.len() > limit {
        return Err(ApiError::DecompressedTooLarge { limit });
    }
    Ok(Bytes::from(out))
}

fn corrupt(coding: Coding, e: &std::io::Error) -> ApiError {
    ApiError::BadRequest(format!(
        "the body is not valid {} data: {e}",
        format!("{coding:?}").to_ascii_lowercase()
    ))
}

#[cfg(test)]
mod tests {
    use std::io::Write;

    use axum::http::HeaderValue;

    use super::*;

    fn headers(coding: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(CONTENT_ENCODING, HeaderValue::from_str(coding).unwrap());
        h
    }

    fn gzip(data: &[u8]) -> Bytes {
        let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
        e.write_all(data).unwrap();
        e.finish().unwrap().into()
    }

    fn zlib(data: &[u8]) -> Bytes {
        let mut e = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::best());
        e.write_all(data).unwrap();
        e.finish().unwrap().into()
    }

    fn raw_deflate(data: &[u8]) -> Bytes {
        let mut e = flate2::write::DeflateEncoder::new(Vec::new(), flate2::Compression::best());
        e.write_all(data).unwrap();
        e.finish().unwrap().into()
    }

    fn zstd(data: &[u8]) -> Bytes {
        zstd::encode_all(data, 19).unwrap().into()
    }

    #[tokio::test]
    async fn every_coding_at_and_past_the_limit() {
        let data = vec![b'a'; 1000];
        for (name, encoded) in [
            ("gzip", gzip(&data)),
            ("x-gzip", gzip(&data)),
            ("deflate", zlib(&data)),
            ("deflate", raw_deflate(&data)),
            ("zstd", zstd(&data)),
        ] {
            let at = decode(&headers(name), encoded.clone(), 1000).await.unwrap();
            assert_eq!(at, data, "{name}");
            let past = decode(&headers(name), encoded, 999).await.unwrap_err();
            assert!(
                matches!(past, ApiError::DecompressedTooLarge { limit: 999 }),
                "{name}: {past:?}"
            );
        }
    }

    #[tokio::test]
    async fn a_bomb_stops_at_the_limit() {
        // 1 GiB of zeros compresses to about 1 MiB of gzip; the decoder must
        // stop after 1 MiB + 1 byte of output.
        let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
        let zeros = vec![0u8; 1 << 20];
        for _ in 0..1024 {
            e.write_all(&zeros).unwrap();
        }
        let bomb: Bytes = e.finish().unwrap().into();
        assert!(bomb.len() < 2 << 20, "{}", bomb.len());
        let started = std::time::Instant::now();
        let err = decode(&headers("gzip"), bomb, 1 << 20).await.unwrap_err();
        assert!(
            matches!(err, ApiError::DecompressedTooLarge { .. }),
            "{err:?}"
        );
        assert!(started.elapsed() < std::time::Duration::from_secs(2));
    }

    #[tokio::test]
    async fn identity_unknown_and_corrupt() {
        let body = Bytes::from_static(b"plain");
        assert_eq!(
            decode(&HeaderMap::new(), body.clone(), 1).await.unwrap(),
            body
        );
        assert_eq!(
            decode(&headers("identity"), body.clone(), 1).await.unwrap(),
            body
        );
        let err = decode(&headers("br"), body.clone(), 10).await.unwrap_err();
        assert_eq!(err.status(), 415);
        let err = decode(&headers("gzip"), body, 10).await.unwrap_err();
        assert_eq!(err.status(), 400, "{err}");
    }
}
