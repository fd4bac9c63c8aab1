//! Protocol Buffers records.
//!
//! A `protobuf` stream names its message type with `schema_id = "file.Message"`
//! as eKuiper does: `file.proto` is read from the node's schemas directory
//! and compiled at run time by [protox] (pure Rust: no `protoc` on the
//! machine); `Message` is the message's name, fully qualified or relative
//! to the file's package. Each request body (or pushed item) is one encoded
//! message; it is stored as its JSON mapping, so that reads, tables, key and
//! timestamp fields and sinks see fields as for any JSON stream:
//!
//! - field names as written in the `.proto` file (`device_id`, not
//!   `deviceId`), every field present: unset scalars with their default,
//!   unset messages and oneof members as `null`;
//! - 64-bit integers as JSON numbers, enums by name, `bytes` as base64,
//!   maps as objects, nested messages as objects, repeated fields as arrays;
//!   the well-known types (`Timestamp`, `Duration`, wrappers...) per the
//!   canonical protobuf JSON mapping.
//!
//! Nothing here does I/O: the caller hands over a [`SchemaFiles`] that
//! returns the text of a `.proto` file by its name.

use std::sync::Arc;

use prost_reflect::prost::Message as _;
use prost_reflect::{DescriptorPool, DynamicMessage, MessageDescriptor, SerializeOptions};
use protox::file::{ChainFileResolver, File, FileResolver, GoogleFileResolver};
use serde_json::{Map, Value};

/// Where `.proto` files come from, by the name an import (or a schema id)
/// gives them, such as `sensor.proto` or `common/units.proto`.
pub trait SchemaFiles: Send + Sync + std::fmt::Debug {
    /// The text of the file, `None` when there is no such file.
    ///
    /// # Errors
    /// A message saying why an existing file cannot be read.
    fn read(&self, name: &str) -> Result<Option<String>, String>;

    /// Where the files are, for error messages (`"schemas directory
    /// /etc/intake/schemas"`).
    fn describe(&self) -> String;
}

/// No schema files at all (a node without a schemas directory).
#[derive(Debug, Clone, Copy, Default)]
pub struct NoSchemaFiles;

impl SchemaFiles for NoSchemaFiles {
    fn read(&self, _name: &str) -> Result<Option<String>, String> {
        Ok(None)
    }

    fn describe(&self) -> String {
        "schemas directory (none is configured)".to_owned()
    }
}

/// Serves protox the files of a [`SchemaFiles`].
#[derive(Debug)]
struct Resolver(Arc<dyn SchemaFiles>);

impl FileResolver for Resolver {
    fn open_file(&self, name: &str) -> Result<File, protox::Error> {
        match self.0.read(name) {
            Ok(Some(source)) => File::from_source(name, &source),
            Ok(None) => Err(protox::Error::file_not_found(name)),
            Err(reason) => Err(protox::Error::new(std::io::Error::other(format!(
                "{name}: {reason}"
            )))),
        }
    }
}

/// The JSON shape records are stored in.
const JSON_MAPPING: SerializeOptions = SerializeOptions::new()
    .use_proto_field_name(true)
    .skip_default_fields(false)
    .stringify_64_bit_integers(false);

/// One compiled message type: decodes its encoded messages into records.
#[derive(Debug, Clone)]
pub struct ProtoMessage {
    descriptor: MessageDescriptor,
}

impl ProtoMessage {
    /// Compiles the file a `schema_id` (`file.Message`) names and finds its
    /// message.
    ///
    /// # Errors
    /// A message saying what is wrong: a malformed id, a missing file, a
    /// compile error (with file, line and column), or an unknown message
    /// (listing the file's messages).
    pub fn resolve(schema_id: &str, files: Arc<dyn SchemaFiles>) -> Result<Self, String> {
        let Some((file, message)) = schema_id.split_once('.') else {
            return Err(format!(
                "{schema_id:?} is not of the form \"file.Message\" (file.proto in the schemas directory, then a message of it)"
            ));
        };
        if file.is_empty()
            || message.is_empty()
            || !file
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-'))
        {
            return Err(format!(
                "{schema_id:?} is not of the form \"file.Message\"; the file part may hold letters, digits, '_' and '-'"
            ));
        }
        let file_name = format!("{file}.proto");
        if files.read(&file_name)?.is_none() {
            return Err(format!("{file_name} is not in the {}", files.describe()));
        }
        let mut resolver = ChainFileResolver::new();
        resolver.add(Resolver(files));
        resolver.add(GoogleFileResolver::new());
        let mut compiler = protox::Compiler::with_file_resolver(resolver);
        compiler.include_imports(true);
        if let Err(e) = compiler.open_file(&file_name) {
            return Err(format!("{file_name} does not compile: {e}"));
        }
        let pool = compiler.descriptor_pool();
        Self::find(&pool, &file_name, message).map(|descriptor| Self { descriptor })
    }

    /// Finds `message` by its full name or by its name in `file`'s package.
    fn find(pool: &DescriptorPool, file: &str, message: &str) -> Result<MessageDescriptor, String> {
        let file_desc = pool
            .get_file_by_name(file)
            .ok_or_else(|| format!("{file} is missing from its own compilation"))?;
        let package = file_desc.package_name();
        let qualified = if package.is_empty() {
            message.to_owned()
        } else {
            format!("{package}.{message}")
        };
        pool.get_message_by_name(&qualified)
            .or_else(|| pool.get_message_by_name(message))
            .ok_or_else(|| {
                let known: Vec<String> = pool
                    .all_messages()
                    .filter(|m| m.parent_file().name() == file)
                    .map(|m| m.full_name().to_owned())
                    .collect();
                format!(
                    "message {message:?} is not in {file} (it has: {})",
                    if known.is_empty() {
                        "no messages".to_owned()
                    } else {
                        known.join(", ")
                    }
                )
            })
    }

    /// The message's full name (`package.Message`).
    pub fn full_name(&self) -> &str {
        self.descriptor.full_name()
    }

    /// The names of the message's fields, as records hold them.
    pub fn field_names(&self) -> Vec<String> {
        self.descriptor
            .fields()
            .map(|f| f.name().to_owned())
            .collect()
    }

    /// Decodes one encoded message into its record.
    ///
    /// # Errors
    /// A message saying why the bytes are not a message of this type.
    pub fn decode(&self, bytes: &[u8]) -> Result<Map<String, Value>, String> {
        let message = DynamicMessage::decode(self.descriptor.clone(), bytes)
            .map_err(|e| format!("not a protobuf {}: {e}", self.full_name()))?;
        match message.serialize_with_options(serde_json::value::Serializer, &JSON_MAPPING) {
            Ok(Value::Object(mut record)) => {
                // Unset message and oneof fields have no JSON default.
                for field in self.descriptor.fields() {
                    if !record.contains_key(field.name()) {
                        record.insert(field.name().to_owned(), Value::Null);
                    }
                }
                Ok(record)
            }
            Ok(other) => Err(format!(
                "{} maps to {other} instead of an object",
                self.full_name()
            )),
            Err(e) => Err(format!("{} has no JSON form: {e}", self.full_name())),
        }
    }

    /// Encodes a record (the JSON form [`ProtoMessage::decode`] gives, or
    /// the canonical protobuf JSON) as a message of this type: what a client
    /// sends.
    ///
    /// # Errors
    /// A message saying which field does not fit.
    pub fn encode(&self, record: &Value) -> Result<Vec<u8>, String> {
        let message = DynamicMessage::deserialize(self.descriptor.clone(), record)
            .map_err(|e| format!("not a {}: {e}", self.full_name()))?;
        Ok(message.encode_to_vec())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    /// Files held in memory.
    #[derive(Debug)]
    struct Files(HashMap<&'static str, &'static str>);

    impl SchemaFiles for Files {
        fn read(&self, name: &str) -> Result<Option<String>, String> {
            Ok(self.0.get(name).map(|s| (*s).to_owned()))
        }
        fn describe(&self) -> String {
            "test files".to_owned()
        }
    }

    fn files(list: &[(&'static str, &'static str)]) -> Arc<dyn SchemaFiles> {
        Arc::new(Files(list.iter().copied().collect()))
    }

    const SENSOR: &str = r#"
        syntax = "proto3";
        package iot;
        import "units.proto";
        import "google/protobuf/timestamp.proto";
        message Reading {
          string device_id = 1;
          double temperature = 2;
          int64 seq = 3;
          Unit unit = 4;
          google.protobuf.Timestamp at = 5;
        }
    "#;
    const UNITS: &str = r#"
        syntax = "proto3";
        package iot;
        enum Unit { CELSIUS = 0; FAHRENHEIT = 1; }
    "#;

    #[test]
    fn resolves_by_relative_or_full_name_with_imports() {
        let fs = files(&[("sensor.proto", SENSOR), ("units.proto", UNITS)]);
        for id in ["sensor.Reading", "sensor.iot.Reading"] {
            let m = ProtoMessage::resolve(id, Arc::clone(&fs)).unwrap();
            assert_eq!(m.full_name(), "iot.Reading");
        }
        let m = ProtoMessage::resolve("sensor.Reading", fs).unwrap();
        let record = serde_json::json!({
            "device_id": "d-1", "temperature": 21.5, "seq": 9007199254740993_i64,
            "unit": "FAHRENHEIT", "at": "2026-12-04T10:00:00Z"
        });
        let bytes = m.encode(&record).unwrap();
        assert_eq!(Value::Object(m.decode(&bytes).unwrap()), record);
        let defaults = m.decode(&[]).unwrap();
        assert_eq!(
            Value::Object(defaults),
            serde_json::json!({"device_id": "", "temperature": 0.0, "seq": 0, "unit": "CELSIUS", "at": null})
        );
    }

    #[test]
    fn clear_errors() {
        let fs = files(&[("sensor.proto", SENSOR), ("units.proto", UNITS)]);
        let err = |id: &str, fs: &Arc<dyn SchemaFiles>| {
            ProtoMessage::resolve(id, Arc::clone(fs)).unwrap_err()
        };
        assert!(err("Reading", &fs).contains("not of the form"));
        assert!(err("../x.Reading", &fs).contains("not of the form"));
        assert_eq!(
            err("nope.Reading", &fs),
            "nope.proto is not in the test files"
        );
        assert_eq!(
            err("sensor.Missing", &fs),
            "message \"Missing\" is not in sensor.proto (it has: iot.Reading)"
        );
        let broken = files(&[("sensor.proto", SENSOR)]);
        let e = err("sensor.Reading", &broken);
        assert!(e.starts_with("sensor.proto does not compile"), "{e}");
        assert!(e.contains("units.proto"), "{e}");
        let bad = files(&[("bad.proto", "message M { int32 x = ; }")]);
        let e = err("bad.M", &bad);
        assert!(e.starts_with("bad.proto does not compile"), "{e}");
        let m = ProtoMessage::resolve("sensor.Reading", fs).unwrap();
        let e = m.decode(b"\xff\xff\xff").unwrap_err();
        assert!(e.starts_with("not a protobuf iot.Reading: "), "{e}");
    }
}
