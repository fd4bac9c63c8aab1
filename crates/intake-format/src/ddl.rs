//! eKuiper's stream DDL, parsed into intake's stream definitions (sans-io).
//!
//! ```text
//! CREATE STREAM name ( [field type, ...] ) WITH ( KEY = "value", ... ) [;]
//! CREATE TABLE  name ( [field type, ...] ) WITH ( ..., RETAIN_SIZE = "100" ) [;]
//! DROP STREAM name | DROP TABLE name
//! DESCRIBE STREAM name | DESCRIBE TABLE name
//! SHOW STREAMS | SHOW TABLES
//! ```
//!
//! Keywords, types and `WITH` keys are case-insensitive, as in eKuiper;
//! names keep their case (quote them with backticks for other characters).
//! Types: `bigint`, `float`, `string`, `datetime`, `boolean`, `bytea`,
//! `array(T)`, `struct(name T, ...)`. `WITH` keys: see [`WITH_KEYS`]; an
//! unknown key or type is refused with the accepted ones listed. `TYPE`
//! must be `httppush` (the only source intake is); `DATASOURCE` is the push
//! path (default `/api/data`, eKuiper's); the method comes from
//! `CONF_KEY` (resolved by the server, which knows the configured keys).

use crate::api::{DatasourceBinding, Format, StreamDefinition, StreamKind};
use crate::scan;
use crate::schema::{Field, FieldType};

/// The `WITH` keys accepted, upper case.
pub const WITH_KEYS: &[&str] = &[
    "DATASOURCE",
    "FORMAT",
    "TYPE",
    "KEY",
    "CONF_KEY",
    "SHARED",
    "STRICT_VALIDATION",
    "TIMESTAMP",
    "TIMESTAMP_FORMAT",
    "DELIMITER",
    "SCHEMAID",
    "RETAIN_SIZE",
];

/// The field types accepted.
pub const TYPES: &[&str] = &[
    "bigint", "float", "string", "datetime", "boolean", "bytea", "array", "struct",
];

/// eKuiper's default `DATASOURCE` of an httppush source.
pub const DEFAULT_DATASOURCE: &str = "/api/data";

/// Longest statement accepted, in bytes.
pub const MAX_STATEMENT_BYTES: usize = 64 * 1024;

/// Deepest nesting of `array(...)` and `struct(...)` accepted.
pub const MAX_TYPE_DEPTH: usize = 32;

/// One parsed statement.
#[derive(Debug, Clone, PartialEq)]
pub enum Statement {
    /// `CREATE STREAM|TABLE`.
    Create {
        /// The definition (its `kind` says stream or table).
        definition: Box<StreamDefinition>,
        /// `CONF_KEY`, when given: the server picks the method from it.
        conf_key: Option<String>,
    },
    /// `DROP STREAM|TABLE name`.
    Drop {
        /// Stream or table.
        kind: StreamKind,
        /// The name.
        name: String,
    },
    /// `DESCRIBE STREAM|TABLE name`.
    Describe {
        /// Stream or table.
        kind: StreamKind,
        /// The name.
        name: String,
    },
    /// `SHOW STREAMS|TABLES`.
    Show {
        /// Streams or tables.
        kind: StreamKind,
    },
}

/// Why a statement was refused: what was wrong and where (character
/// offset from 0).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("at character {position}: {message}")]
pub struct DdlError {
    /// Character offset of the fault.
    pub position: usize,
    /// What is wrong, and what is accepted.
    pub message: String,
}

/// Parses one statement.
///
/// # Errors
/// [`DdlError`] naming the position and what was expected.
pub fn parse(sql: &str) -> Result<Statement, DdlError> {
    if sql.len() > MAX_STATEMENT_BYTES {
        return Err(DdlError {
            position: 0,
            message: format!(
                "the statement is {} bytes; at most {MAX_STATEMENT_BYTES} are accepted",
                sql.len()
            ),
        });
    }
    let mut p = Parser {
        tokens: tokenize(sql)?,
        at: 0,
        end: sql.chars().count(),
    };
    let statement = p.statement()?;
    if p.peek_is(&Token::Semicolon) {
        p.at += 1;
    }
    if let Some((position, token)) = p.tokens.get(p.at) {
        return Err(DdlError {
            position: *position,
            message: format!("unexpected {} after the end of the statement", token.show()),
        });
    }
    Ok(statement)
}

#[derive(Debug, Clone, PartialEq)]
enum Token {
    Word(String),
    Quoted(String),
    Text(String),
    Number(String),
    Open,
    Close,
    Comma,
    Equals,
    Semicolon,
}

impl Token {
    fn show(&self) -> String {
        match self {
            Self::Word(w) => format!("`{w}`"),
            Self::Quoted(w) => format!("`{w}` (quoted)"),
            Self::Text(t) => format!("the string {t:?}"),
            Self::Number(n) => format!("the number {n}"),
            Self::Open => "`(`".into(),
            Self::Close => "`)`".into(),
            Self::Comma => "`,`".into(),
            Self::Equals => "`=`".into(),
            Self::Semicolon => "`;`".into(),
        }
    }
}

fn tokenize(sql: &str) -> Result<Vec<(usize, Token)>, DdlError> {
    let chars: Vec<char> = sql.chars().collect();
    let mut tokens = Vec::new();
    let mut i = 0;
    while let Some(&c) = chars.get(i) {
        let start = i;
        let fail = |message: String| DdlError {
            position: start,
            message,
        };
        let token = match c {
            c if c.is_whitespace() => {
                i += 1;
                continue;
            }
            '(' => Token::Open,
            ')' => Token::Close,
            ',' => Token::Comma,
            '=' => Token::Equals,
            ';' => Token::Semicolon,
            '"' | '\'' | '`' => {
                let (text, end) = scan::quoted(&chars, i).map_err(fail)?;
                i = end;
                if c == '`' {
                    Token::Quoted(text)
                } else {
                    Token::Text(text)
                }
            }
            c if c.is_ascii_digit() || c == '-' => {
                let (text, end) = scan::run(&chars, i, |d| d.is_ascii_digit() || d == '.');
                i = end;
                Token::Number(text)
            }
            c if c.is_alphabetic() || c == '_' => {
                let (word, end) = scan::run(&chars, i, scan::name_char);
                i = end;
                Token::Word(word)
            }
            other => return Err(fail(format!("unexpected character {other:?}"))),
        };
        tokens.push((start, token));
        i += 1;
    }
    Ok(tokens)
}

struct Parser {
    tokens: Vec<(usize, Token)>,
    at: usize,
    /// Character length of the statement, for errors at its end.
    end: usize,
}

impl Parser {
    fn position(&self) -> usize {
        self.tokens.get(self.at).map_or(self.end, |(p, _)| *p)
    }

    fn fail<T>(&self, message: impl Into<String>) -> Result<T, DdlError> {
        Err(DdlError {
            position: self.position(),
            message: message.into(),
        })
    }

    fn found(&self) -> String {
        self.tokens
            .get(self.at)
            .map_or_else(|| "the end of the statement".into(), |(_, t)| t.show())
    }

    fn peek_is(&self, token: &Token) -> bool {
        self.tokens.get(self.at).is_some_and(|(_, t)| t == token)
    }

    fn expect(&mut self, token: &Token) -> Result<(), DdlError> {
        if self.peek_is(token) {
            self.at += 1;
            Ok(())
        } else {
            self.fail(format!("expected {}, found {}", token.show(), self.found()))
        }
    }

    /// A keyword, case-insensitive; returns it upper case.
    fn keyword(&mut self, accepted: &[&str]) -> Result<String, DdlError> {
        if let Some((_, Token::Word(w))) = self.tokens.get(self.at) {
            let upper = w.to_ascii_uppercase();
            if accepted.contains(&upper.as_str()) {
                self.at += 1;
                return Ok(upper);
            }
        }
        self.fail(format!(
            "expected {}, found {}",
            accepted.join(" or "),
            self.found()
        ))
    }

    /// A name: a word or a backtick-quoted text.
    fn name(&mut self, what: &str) -> Result<String, DdlError> {
        match self.tokens.get(self.at) {
            Some((_, Token::Word(w) | Token::Quoted(w))) if !w.is_empty() => {
                let name = w.clone();
                self.at += 1;
                Ok(name)
            }
            _ => self.fail(format!("expected {what}, found {}", self.found())),
        }
    }

    fn kind(&mut self, plural: bool) -> Result<StreamKind, DdlError> {
        let accepted: &[&str] = if plural {
            &["STREAMS", "TABLES"]
        } else {
            &["STREAM", "TABLE"]
        };
        Ok(match self.keyword(accepted)?.as_str() {
            "STREAM" | "STREAMS" => StreamKind::Stream,
            _ => StreamKind::Table,
        })
    }

    fn statement(&mut self) -> Result<Statement, DdlError> {
        match self
            .keyword(&["CREATE", "DROP", "DESCRIBE", "SHOW"])?
            .as_str()
        {
            "CREATE" => self.create(),
            "DROP" => {
                let kind = self.kind(false)?;
                let name = self.name("a name")?;
                Ok(Statement::Drop { kind, name })
            }
            "DESCRIBE" => {
                let kind = self.kind(false)?;
                let name = self.name("a name")?;
                Ok(Statement::Describe { kind, name })
            }
            _ => Ok(Statement::Show {
                kind: self.kind(true)?,
            }),
        }
    }

    fn create(&mut self) -> Result<Statement, DdlError> {
        let kind = self.kind(false)?;
        let name_at = self.position();
        let name = self.name("a name")?;
        crate::api::check_stream_name(&name).map_err(|e| DdlError {
            position: name_at,
            message: e.to_string(),
        })?;
        self.expect(&Token::Open)?;
        let fields = self.fields(0)?;
        let mut definition = StreamDefinition::new(name);
        definition.kind = kind;
        if !fields.is_empty() {
            definition.schema = Some(fields);
        }
        let mut conf_key = None;
        if self
            .tokens
            .get(self.at)
            .is_some_and(|(_, t)| t != &Token::Semicolon)
        {
            self.keyword(&["WITH"])?;
            self.expect(&Token::Open)?;
            let mut seen: Vec<String> = Vec::new();
            let mut datasource = None;
            let mut shared = false;
            loop {
                let key_at = self.position();
                let key = match self.tokens.get(self.at) {
                    Some((_, Token::Word(w))) => w.to_ascii_uppercase(),
                    _ => return self.fail(format!("expected a WITH key, found {}", self.found())),
                };
                if !WITH_KEYS.contains(&key.as_str()) {
                    return self.fail(format!(
                        "unknown WITH key {key}; accepted: {}",
                        WITH_KEYS.join(", ")
                    ));
                }
                if seen.contains(&key) {
                    return self.fail(format!("{key} is given twice"));
                }
                self.at += 1;
                self.expect(&Token::Equals)?;
                let value = match self.tokens.get(self.at) {
                    Some((_, Token::Text(t) | Token::Number(t))) => t.clone(),
                    _ => {
                        return self.fail(format!(
                            "expected a quoted value for {key}, found {}",
                            self.found()
                        ));
                    }
                };
                self.at += 1;
                let bad = |message: String| DdlError {
                    position: key_at,
                    message: format!("{key}: {message}"),
                };
                apply(
                    &key,
                    value,
                    &mut definition,
                    &mut datasource,
                    &mut shared,
                    &mut conf_key,
                )
                .map_err(bad)?;
                seen.push(key);
                if self.peek_is(&Token::Comma) {
                    self.at += 1;
                    continue;
                }
                self.expect(&Token::Close)?;
                break;
            }
            if kind == StreamKind::Table && definition.retain_size.is_none() {
                return self.fail("a table needs RETAIN_SIZE");
            }
            if kind == StreamKind::Stream && definition.retain_size.is_some() {
                return self.fail("RETAIN_SIZE is for tables (CREATE TABLE)");
            }
            definition.bindings.datasource = Some(DatasourceBinding {
                path: datasource.unwrap_or_else(|| DEFAULT_DATASOURCE.to_owned()),
                method: "POST".to_owned(),
                shared,
            });
        } else {
            return self.fail("expected WITH (...): intake serves httppush streams, which need at least TYPE=\"httppush\" or FORMAT");
        }
        Ok(Statement::Create {
            definition: Box::new(definition),
            conf_key,
        })
    }

    /// `field type, ...` up to and including `)`.
    fn fields(&mut self, depth: usize) -> Result<Vec<Field>, DdlError> {
        let mut fields: Vec<Field> = Vec::new();
        if self.peek_is(&Token::Close) {
            self.at += 1;
            return Ok(fields);
        }
        loop {
            let at = self.position();
            let name = self.name("a field name")?;
            if fields.iter().any(|f| f.name == name) {
                return Err(DdlError {
                    position: at,
                    message: format!("field {name:?} is declared twice"),
                });
            }
            let ty = self.field_type(depth)?;
            fields.push(Field { name, ty });
            if self.peek_is(&Token::Comma) {
                self.at += 1;
                continue;
            }
            self.expect(&Token::Close)?;
            return Ok(fields);
        }
    }

    fn field_type(&mut self, depth: usize) -> Result<FieldType, DdlError> {
        if depth >= MAX_TYPE_DEPTH {
            return self.fail(format!("types nest at most {MAX_TYPE_DEPTH} deep"));
        }
        let word = match self.tokens.get(self.at) {
            Some((_, Token::Word(w))) => w.to_ascii_lowercase(),
            _ => return self.fail(format!("expected a type, found {}", self.found())),
        };
        let ty = match word.as_str() {
            "bigint" => FieldType::Bigint,
            "float" => FieldType::Float,
            "string" => FieldType::String,
            "datetime" => FieldType::Datetime,
            "boolean" => FieldType::Boolean,
            "bytea" => FieldType::Bytea,
            "array" => {
                self.at += 1;
                self.expect(&Token::Open)?;
                let items = self.field_type(depth + 1)?;
                self.expect(&Token::Close)?;
                return Ok(FieldType::Array {
                    items: Box::new(items),
                });
            }
            "struct" => {
                self.at += 1;
                self.expect(&Token::Open)?;
                let fields = self.fields(depth + 1)?;
                return Ok(FieldType::Struct { fields });
            }
            other => {
                return self.fail(format!(
                    "unknown type {other}; accepted: {}",
                    TYPES.join(", ")
                ));
            }
        };
        self.at += 1;
        Ok(ty)
    }
}

/// Applies one `WITH` key to the definition.
fn apply(
    key: &str,
    value: String,
    def: &mut StreamDefinition,
    datasource: &mut Option<String>,
    shared: &mut bool,
    conf_key: &mut Option<String>,
) -> Result<(), String> {
    let boolean = |v: &str| match v.to_ascii_lowercase().as_str() {
        "true" => Ok(true),
        "false" => Ok(false),
        _ => Err(format!("expected \"true\" or \"false\", got {v:?}")),
    };
    match key {
        "DATASOURCE" => {
            if !value.starts_with('/') {
                return Err(format!(
                    "an httppush DATASOURCE is a URL path starting with /, got {value:?}"
                ));
            }
            *datasource = Some(value);
        }
        "FORMAT" => {
            def.format = match value.to_ascii_lowercase().as_str() {
                "json" => Format::Json,
                "ndjson" => Format::Ndjson,
                "delimited" => Format::Delimited,
                "binary" => Format::Binary,
                "protobuf" => Format::Protobuf,
                _ => {
                    return Err(format!(
                        "unknown format {value:?}; accepted: json, ndjson, delimited, binary, protobuf"
                    ));
                }
            }
        }
        "TYPE" => {
            if !value.eq_ignore_ascii_case("httppush") {
                return Err(format!(
                    "intake is an httppush source; TYPE {value:?} is not served here (accepted: httppush)"
                ));
            }
        }
        "KEY" => def.key_field = Some(value),
        "CONF_KEY" => *conf_key = Some(value),
        "SHARED" => *shared = boolean(&value)?,
        "STRICT_VALIDATION" => def.strict_validation = boolean(&value)?,
        "TIMESTAMP" => def.timestamp_field = Some(value),
        "TIMESTAMP_FORMAT" => def.timestamp_format = Some(value),
        "DELIMITER" => def.delimiter = value,
        "SCHEMAID" => def.schema_id = Some(value),
        "RETAIN_SIZE" => {
            let n: u64 = value
                .parse()
                .ok()
                .filter(|n| *n > 0)
                .ok_or_else(|| format!("expected a positive number of rows, got {value:?}"))?;
            def.retain_size = Some(n);
        }
        other => return Err(format!("unknown WITH key {other}")),
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn created(sql: &str) -> StreamDefinition {
        match parse(sql).unwrap() {
            Statement::Create { definition, .. } => *definition,
            other => panic!("not a create: {other:?}"),
        }
    }

    #[test]
    fn the_seed_statements_parse_verbatim() {
        let def = created(r#"CREATE STREAM httpDemo() WITH (FORMAT="json", TYPE="httppush")"#);
        assert_eq!(def.name, "httpDemo");
        assert_eq!(def.schema, None);
        assert_eq!(def.format, Format::Json);
        let binding = def.bindings.datasource.unwrap();
        assert_eq!(binding.path, "/api/data");
        assert_eq!(binding.method, "POST");
        let def = created(
            r#"CREATE STREAM httpDemo() WITH (DATASOURCE="/api/data", FORMAT="json", TYPE="httppush")"#,
        );
        assert_eq!(def.bindings.datasource.unwrap().path, "/api/data");
    }

    #[test]
    fn fields_types_and_keys() {
        let def = created(
            "create stream my_stream (id bigint, name string, score float, ok BOOLEAN, at datetime, raw bytea, \
             tags array(string), loc struct(lat float, lon float, hist array(struct(t bigint)))) \
             with (datasource = \"/in\", FORMAT = \"json\", KEY = \"id\", shared=\"TRUE\", \
             Strict_Validation=\"true\", TIMESTAMP=\"at\", TIMESTAMP_FORMAT=\"yyyy-MM-dd HH:mm:ss\", \
             DELIMITER=\";\");",
        );
        let schema = def.schema.unwrap();
        let described: Vec<String> = schema
            .iter()
            .map(|f| format!("{} {}", f.name, f.ty.describe()))
            .collect();
        assert_eq!(
            described,
            [
                "id bigint",
                "name string",
                "score float",
                "ok boolean",
                "at datetime",
                "raw bytea",
                "tags array(string)",
                "loc struct(lat float, lon float, hist array(struct(t bigint)))"
            ]
        );
        assert_eq!(def.key_field.as_deref(), Some("id"));
        assert!(def.strict_validation);
        assert_eq!(def.timestamp_field.as_deref(), Some("at"));
        assert_eq!(def.delimiter, ";");
        let binding = def.bindings.datasource.unwrap();
        assert_eq!((binding.path.as_str(), binding.shared), ("/in", true));
    }

    #[test]
    fn tables_and_other_statements() {
        let def = created(
            r#"CREATE TABLE t1 (id bigint) WITH (TYPE="httppush", KEY="id", RETAIN_SIZE="100")"#,
        );
        assert_eq!((def.kind, def.retain_size), (StreamKind::Table, Some(100)));
        assert_eq!(
            parse("drop STREAM `my-stream`;").unwrap(),
            Statement::Drop {
                kind: StreamKind::Stream,
                name: "my-stream".into()
            }
        );
        assert_eq!(
            parse("DESCRIBE TABLE t1").unwrap(),
            Statement::Describe {
                kind: StreamKind::Table,
                name: "t1".into()
            }
        );
        assert_eq!(
            parse("show tables").unwrap(),
            Statement::Show {
                kind: StreamKind::Table
            }
        );
        match parse(r#"CREATE STREAM s () WITH (CONF_KEY="application_conf")"#).unwrap() {
            Statement::Create { conf_key, .. } => {
                assert_eq!(conf_key.as_deref(), Some("application_conf"));
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn faults_are_named_with_their_position() {
        let msg = |sql: &str| parse(sql).unwrap_err().to_string();
        assert_eq!(
            msg(r#"CREATE STREAM s () WITH (COLOR="red")"#),
            "at character 25: unknown WITH key COLOR; accepted: DATASOURCE, FORMAT, TYPE, KEY, CONF_KEY, SHARED, STRICT_VALIDATION, TIMESTAMP, TIMESTAMP_FORMAT, DELIMITER, SCHEMAID, RETAIN_SIZE"
        );
        assert_eq!(
            msg("CREATE STREAM s (a decimal) WITH (TYPE=\"httppush\")"),
            "at character 19: unknown type decimal; accepted: bigint, float, string, datetime, boolean, bytea, array, struct"
        );
        assert!(msg(r#"CREATE STREAM s () WITH (TYPE="mqtt")"#).contains("TYPE \"mqtt\""));
        assert!(msg("CREATE STREAM ../etc () WITH (TYPE=\"httppush\")").contains("character 14"));
        assert!(msg(r#"CREATE TABLE t () WITH (TYPE="httppush")"#).contains("RETAIN_SIZE"));
        assert!(
            msg(r#"CREATE STREAM s () WITH (TYPE="httppush"); DROP STREAM x"#)
                .contains("after the end of the statement")
        );
        assert!(msg(r#"CREATE STREAM s () WITH (KEY="a", KEY="b")"#).contains("twice"));
        assert!(msg(r#"CREATE STREAM s (a bigint, a string) WITH (KEY="a")"#).contains("twice"));
        assert!(msg(r#"CREATE STREAM s () WITH (FORMAT="json"#).contains("never closed"));
        assert!(msg("SELECT a FROM s").contains("expected CREATE or DROP"));
        let deep = format!(
            "CREATE STREAM s (a {}bigint{}) WITH (TYPE=\"httppush\")",
            "array(".repeat(40),
            ")".repeat(40)
        );
        assert!(msg(&deep).contains("nest at most"));
    }

    proptest! {
        /// Any text parses or is refused with a position inside it.
        #[test]
        fn any_text_parses_or_refuses(sql in ".{0,200}") {
            if let Err(e) = parse(&sql) {
                prop_assert!(e.position <= sql.chars().count());
            }
        }

        /// Generated field lists come back as declared.
        #[test]
        fn declared_fields_come_back(names in proptest::collection::btree_set("[a-z][a-z0-9_]{0,8}", 1..8)) {
            let fields: Vec<String> = names.iter().map(|n| format!("{n} float")).collect();
            let sql = format!("CREATE STREAM s ({}) WITH (TYPE=\"httppush\")", fields.join(", "));
            let def = created(&sql);
            let got: Vec<String> = def.schema.unwrap().into_iter().map(|f| f.name).collect();
            prop_assert_eq!(got, names.into_iter().collect::<Vec<_>>());
        }
    }
}
