//! Records/s of intake's json and delimited decoders with schema
//! validation, against plain `serde_json` parsing of the same records, in
//! one run (`bench/decode.sh` runs it in release):
//!
//! ```text
//! decode_throughput [SECONDS_PER_ROUND] [ROUNDS]
//! ```
//!
//! The records: `{"id": N, "temp": 21.5, "name": "sensor-N", "ok": true}`,
//! 100 per body as a push would carry them. Rounds
//! alternate the three measurements; each line is one round, and the last
//! two lines give the median ratios. The baseline parses each JSON body
//! into a `serde_json::Value` and does nothing else; intake's json decoder
//! splits the body into records, parses and checks each against a
//! four-field schema (strict) and keeps its bytes; the delimited decoder
//! reads `N,21.5,sensor-N,true` lines into the same records (as JSON
//! objects, which is what it stores).

use std::error::Error;
use std::hint::black_box;
use std::time::{Duration, Instant};

use bytes::Bytes;
use intake_format::api::{Format, StreamDefinition};
use intake_format::schema::{Field, FieldType};
use intake_format::{Framing, RecordCodec};

const PER_BODY: usize = 100;
const BODIES: usize = 200;

fn main() -> Result<(), Box<dyn Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let seconds: f64 = args.first().map_or(Ok(2.0), |s| s.parse())?;
    let rounds: usize = args.get(1).map_or(Ok(3), |s| s.parse())?;
    let round = Duration::from_secs_f64(seconds);

    let schema = vec![
        field("id", FieldType::Bigint),
        field("temp", FieldType::Float),
        field("name", FieldType::String),
        field("ok", FieldType::Boolean),
    ];
    let mut json_def = StreamDefinition::new("bench");
    json_def.schema = Some(schema.clone());
    json_def.strict_validation = true;
    let json_codec = RecordCodec::new(&json_def)?;
    let mut delimited_def = json_def.clone();
    delimited_def.format = Format::Delimited;
    delimited_def.strict_validation = false;
    let delimited_codec = RecordCodec::new(&delimited_def)?;

    let json_bodies: Vec<Bytes> = (0..BODIES)
        .map(|b| {
            let records: Vec<String> = (0..PER_BODY)
                .map(|i| {
                    let n = b * PER_BODY + i;
                    format!(r#"{{"id": {n}, "temp": 21.5, "name": "sensor-{n}", "ok": true}}"#)
                })
                .collect();
            Bytes::from(format!("[{}]", records.join(",")))
        })
        .collect();
    let delimited_bodies: Vec<Bytes> = (0..BODIES)
        .map(|b| {
            let lines: Vec<String> = (0..PER_BODY)
                .map(|i| {
                    let n = b * PER_BODY + i;
                    format!("{n},21.5,sensor-{n},true")
                })
                .collect();
            Bytes::from(lines.join("\n"))
        })
        .collect();
    // Both decoders accept their inputs before anything is timed.
    for body in &json_bodies {
        check(&json_codec, body, Framing::Json)?;
    }
    for body in &delimited_bodies {
        check(&delimited_codec, body, Framing::Raw)?;
    }

    let mut json_ratios = Vec::new();
    let mut delimited_ratios = Vec::new();
    for r in 1..=rounds {
        let baseline = rate(round, &json_bodies, |body| {
            let value: serde_json::Value = serde_json::from_slice(body).unwrap_or_default();
            black_box(value);
        });
        let json = rate(round, &json_bodies, |body| {
            decode(&json_codec, body, Framing::Json);
        });
        let delimited = rate(round, &delimited_bodies, |body| {
            decode(&delimited_codec, body, Framing::Raw);
        });
        println!(
            "round {r}: serde_json {baseline:.0} records/s, json+schema {json:.0} ({:.2}), delimited+schema {delimited:.0} ({:.2})",
            json / baseline,
            delimited / baseline
        );
        json_ratios.push(json / baseline);
        delimited_ratios.push(delimited / baseline);
    }
    println!(
        "median ratio json+schema / serde_json: {:.2}",
        median(&mut json_ratios)
    );
    println!(
        "median ratio delimited+schema / serde_json: {:.2}",
        median(&mut delimited_ratios)
    );
    Ok(())
}

fn field(name: &str, ty: FieldType) -> Field {
    Field {
        name: name.to_owned(),
        ty,
    }
}

fn check(codec: &RecordCodec, body: &Bytes, framing: Framing) -> Result<(), Box<dyn Error>> {
    for (i, item) in codec.split(body, framing)?.into_iter().enumerate() {
        codec.decode(i, item, framing == Framing::Json)?;
    }
    Ok(())
}

fn decode(codec: &RecordCodec, body: &Bytes, framing: Framing) {
    if let Ok(items) = codec.split(body, framing) {
        for (i, item) in items.into_iter().enumerate() {
            black_box(codec.decode(i, item, framing == Framing::Json).ok());
        }
    }
}

/// Records per second of `work` over `bodies`, for about `round`.
fn rate(round: Duration, bodies: &[Bytes], mut work: impl FnMut(&Bytes)) -> f64 {
    let started = Instant::now();
    let mut records = 0usize;
    while started.elapsed() < round {
        for body in bodies {
            work(body);
        }
        records += bodies.len() * PER_BODY;
    }
    records as f64 / started.elapsed().as_secs_f64()
}

fn median(values: &mut [f64]) -> f64 {
    values.sort_by(f64::total_cmp);
    values.get(values.len() / 2).copied().unwrap_or(f64::NAN)
}
