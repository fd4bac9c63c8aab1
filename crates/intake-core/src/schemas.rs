//! The schemas directory: where `protobuf` streams find the `.proto` files
//! their `schema_id` names.

use std::path::{Component, Path, PathBuf};

use intake_format::protobuf::SchemaFiles;

/// `.proto` files under one directory, by their path relative to it.
#[derive(Debug, Clone)]
pub struct SchemaDir {
    dir: PathBuf,
}

impl SchemaDir {
    /// The files under `dir` (which need not exist yet).
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        Self { dir: dir.into() }
    }
}

impl SchemaFiles for SchemaDir {
    fn read(&self, name: &str) -> Result<Option<String>, String> {
        let relative = Path::new(name);
        let plain = !name.is_empty()
            && relative
                .components()
                .all(|c| matches!(c, Component::Normal(_)));
        if !plain {
            return Err("only paths inside the schemas directory are read".to_owned());
        }
        match std::fs::read_to_string(self.dir.join(relative)) {
            Ok(text) => Ok(Some(text)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e.to_string()),
        }
    }

    fn describe(&self) -> String {
        format!("schemas directory {}", self.dir.display())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_inside_the_directory_only() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("common")).unwrap();
        std::fs::write(
            dir.path().join("common/units.proto"),
            "syntax = \"proto3\";",
        )
        .unwrap();
        std::fs::write(dir.path().join("secret.txt"), "no").unwrap();
        let schemas = SchemaDir::new(dir.path().join("common"));
        assert_eq!(
            schemas.read("units.proto").unwrap().as_deref(),
            Some("syntax = \"proto3\";")
        );
        assert_eq!(schemas.read("missing.proto").unwrap(), None);
        for escape in ["../secret.txt", "/etc/passwd", "./units.proto", ""] {
            assert!(schemas.read(escape).is_err(), "{escape}");
        }
    }
}
