//! Filter expressions over JSON rows, for scan tables (sans-io).
//!
//! ```text
//! expr       := or
//! or         := and (OR and)*
//! and        := not (AND not)*
//! not        := NOT not | '(' expr ')' | comparison
//! comparison := field op literal
//! field      := name ('.' name)*        name: letters, digits, _ (or `quoted`)
//! op         := = | == | != | <> | < | <= | > | >=
//! literal    := 'text' | "text" | number | true | false | null
//! ```
//!
//! Keywords are case-insensitive. A comparison is true when the field
//! holds a value of the literal's kind that compares so: numbers as
//! numbers, text by bytes, booleans with `=` and `!=` only. A missing
//! field, or one of another kind, makes every comparison false, except
//! that `!=` is true for a present field of another kind, and `= null`
//! is true for a missing or null field (`!= null` for a present one).

use std::cmp::Ordering;
use std::fmt;

use serde_json::Value;

use crate::scan;

/// Longest expression accepted, in bytes.
pub const MAX_FILTER_BYTES: usize = 4096;

/// Deepest nesting of `NOT` and parentheses accepted.
pub const MAX_DEPTH: usize = 64;

/// A parsed filter.
#[derive(Debug, Clone, PartialEq)]
pub enum Filter {
    /// Both hold.
    And(Box<Filter>, Box<Filter>),
    /// Either holds.
    Or(Box<Filter>, Box<Filter>),
    /// It does not hold.
    Not(Box<Filter>),
    /// A field compared with a literal.
    Compare {
        /// The field's path: `temp`, or `loc.lat` inside objects.
        field: Vec<String>,
        /// The comparison.
        op: Op,
        /// What it is compared with.
        literal: Literal,
    },
}

/// A comparison operator.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    /// `=` or `==`.
    Eq,
    /// `!=` or `<>`.
    Ne,
    /// `<`.
    Lt,
    /// `<=`.
    Le,
    /// `>`.
    Gt,
    /// `>=`.
    Ge,
}

/// A literal of a comparison.
#[derive(Debug, Clone, PartialEq)]
pub enum Literal {
    /// A number.
    Number(f64),
    /// Text.
    Text(String),
    /// `true` or `false`.
    Bool(bool),
    /// `null`.
    Null,
}

/// Why an expression was refused: what and where (character offset).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("filter at character {position}: {message}")]
pub struct FilterError {
    /// Character offset of the fault.
    pub position: usize,
    /// What is wrong and what is accepted.
    pub message: String,
}

impl Filter {
    /// Parses an expression.
    ///
    /// # Errors
    /// [`FilterError`] naming the position and what was expected.
    pub fn parse(text: &str) -> Result<Self, FilterError> {
        if text.len() > MAX_FILTER_BYTES {
            return Err(FilterError {
                position: 0,
                message: format!(
                    "the expression is {} bytes; at most {MAX_FILTER_BYTES} are accepted",
                    text.len()
                ),
            });
        }
        let mut parser = Parser {
            tokens: tokenize(text)?,
            at: 0,
            end: text.chars().count(),
        };
        let filter = parser.or(0)?;
        if let Some((position, token)) = parser.tokens.get(parser.at) {
            return Err(FilterError {
                position: *position,
                message: format!("unexpected {} after the expression", token.show()),
            });
        }
        Ok(filter)
    }

    /// True when `row` passes.
    pub fn matches(&self, row: &Value) -> bool {
        match self {
            Self::And(a, b) => a.matches(row) && b.matches(row),
            Self::Or(a, b) => a.matches(row) || b.matches(row),
            Self::Not(f) => !f.matches(row),
            Self::Compare { field, op, literal } => {
                let value = field.iter().try_fold(row, |v, name| v.get(name));
                compare(value, *op, literal)
            }
        }
    }
}

fn compare(value: Option<&Value>, op: Op, literal: &Literal) -> bool {
    let ordering = match (value, literal) {
        (None | Some(Value::Null), Literal::Null) => return op == Op::Eq,
        (Some(_), Literal::Null) => return op == Op::Ne,
        (None, _) => return false,
        (Some(Value::Number(n)), Literal::Number(l)) => match n.as_f64() {
            Some(n) => n.partial_cmp(l),
            None => return false,
        },
        (Some(Value::String(s)), Literal::Text(l)) => Some(s.as_str().cmp(l.as_str())),
        (Some(Value::Bool(b)), Literal::Bool(l)) => {
            return match op {
                Op::Eq => b == l,
                Op::Ne => b != l,
                _ => false,
            };
        }
        (Some(_), _) => return op == Op::Ne,
    };
    let Some(ordering) = ordering else {
        return false;
    };
    match op {
        Op::Eq => ordering == Ordering::Equal,
        Op::Ne => ordering != Ordering::Equal,
        Op::Lt => ordering == Ordering::Less,
        Op::Le => ordering != Ordering::Greater,
        Op::Gt => ordering == Ordering::Greater,
        Op::Ge => ordering != Ordering::Less,
    }
}

impl fmt::Display for Op {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Eq => "=",
            Self::Ne => "!=",
            Self::Lt => "<",
            Self::Le => "<=",
            Self::Gt => ">",
            Self::Ge => ">=",
        })
    }
}

impl fmt::Display for Literal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Number(n) => write!(f, "{n}"),
            Self::Text(t) => write!(f, "'{}'", t.replace('\\', "\\\\").replace('\'', "\\'")),
            Self::Bool(b) => write!(f, "{b}"),
            Self::Null => f.write_str("null"),
        }
    }
}

/// Prints an expression that parses back to the same filter, with only the
/// parentheses the tree needs (so a long AND chain stays flat) and
/// backticks only around names that need them.
impl fmt::Display for Filter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        /// `inner`, in parentheses when `wrap`.
        fn part(f: &mut fmt::Formatter<'_>, inner: &Filter, wrap: bool) -> fmt::Result {
            if wrap {
                write!(f, "({inner})")
            } else {
                write!(f, "{inner}")
            }
        }
        let is_or = |x: &Filter| matches!(x, Filter::Or(..));
        let is_binary = |x: &Filter| matches!(x, Filter::Or(..) | Filter::And(..));
        match self {
            // Parsing is left-associative and AND binds tighter than OR.
            Self::Or(a, b) => {
                part(f, a, false)?;
                f.write_str(" OR ")?;
                part(f, b, is_or(b))
            }
            Self::And(a, b) => {
                part(f, a, is_or(a))?;
                f.write_str(" AND ")?;
                part(f, b, is_binary(b))
            }
            Self::Not(inner) => {
                f.write_str("NOT ")?;
                part(f, inner, is_binary(inner))
            }
            Self::Compare { field, op, literal } => {
                for (i, name) in field.iter().enumerate() {
                    if i > 0 {
                        f.write_str(".")?;
                    }
                    if plain_name(name) {
                        f.write_str(name)?;
                    } else {
                        write!(f, "`{name}`")?;
                    }
                }
                write!(f, " {op} {literal}")
            }
        }
    }
}

/// True when `name` reads back as itself without backticks.
fn plain_name(name: &str) -> bool {
    let mut chars = name.chars();
    let first_ok = chars.next().is_some_and(|c| c.is_alphabetic() || c == '_');
    first_ok
        && chars.all(scan::name_char)
        && !["and", "or", "not", "true", "false", "null"]
            .iter()
            .any(|k| name.eq_ignore_ascii_case(k))
}

#[derive(Debug, Clone, PartialEq)]
enum Token {
    Name(String),
    Quoted(String),
    Text(String),
    Number(f64),
    Op(Op),
    Open,
    Close,
    Dot,
}

impl Token {
    fn show(&self) -> String {
        match self {
            Self::Name(n) => format!("`{n}`"),
            Self::Quoted(n) => format!("`{n}` (quoted)"),
            Self::Text(t) => format!("the text {t:?}"),
            Self::Number(n) => format!("the number {n}"),
            Self::Op(op) => format!("`{op}`"),
            Self::Open => "`(`".into(),
            Self::Close => "`)`".into(),
            Self::Dot => "`.`".into(),
        }
    }

    fn keyword(&self, word: &str) -> bool {
        matches!(self, Self::Name(n) if n.eq_ignore_ascii_case(word))
    }
}

fn tokenize(text: &str) -> Result<Vec<(usize, Token)>, FilterError> {
    let chars: Vec<char> = text.chars().collect();
    let mut tokens = Vec::new();
    let mut i = 0;
    while let Some(&c) = chars.get(i) {
        let start = i;
        let fail = |message: String| FilterError {
            position: start,
            message,
        };
        let next = chars.get(i + 1).copied();
        let token = match c {
            c if c.is_whitespace() => {
                i += 1;
                continue;
            }
            '(' => Token::Open,
            ')' => Token::Close,
            '.' if !next.is_some_and(|d| d.is_ascii_digit()) => Token::Dot,
            '=' if next == Some('=') => {
                i += 1;
                Token::Op(Op::Eq)
            }
            '=' => Token::Op(Op::Eq),
            '!' if next == Some('=') => {
                i += 1;
                Token::Op(Op::Ne)
            }
            '<' if next == Some('>') => {
                i += 1;
                Token::Op(Op::Ne)
            }
            '<' if next == Some('=') => {
                i += 1;
                Token::Op(Op::Le)
            }
            '<' => Token::Op(Op::Lt),
            '>' if next == Some('=') => {
                i += 1;
                Token::Op(Op::Ge)
            }
            '>' => Token::Op(Op::Gt),
            '\'' | '"' | '`' => {
                let (value, end) = scan::quoted(&chars, i).map_err(fail)?;
                i = end;
                if c == '`' {
                    Token::Quoted(value)
                } else {
                    Token::Text(value)
                }
            }
            c if c.is_ascii_digit() || c == '-' || c == '.' => {
                let (number, end) = scan::run(&chars, i, |d| {
                    d.is_ascii_digit() || matches!(d, '.' | 'e' | 'E' | '+')
                });
                i = end;
                match number.parse::<f64>() {
                    Ok(n) if n.is_finite() => Token::Number(n),
                    _ => return Err(fail(format!("{number:?} is not a number"))),
                }
            }
            c if c.is_alphabetic() || c == '_' => {
                let (name, end) = scan::run(&chars, i, scan::name_char);
                i = end;
                Token::Name(name)
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
    end: usize,
}

impl Parser {
    fn peek(&self) -> Option<&Token> {
        self.tokens.get(self.at).map(|(_, t)| t)
    }

    fn fail<T>(&self, expected: &str) -> Result<T, FilterError> {
        let (position, found) = match self.tokens.get(self.at) {
            Some((p, t)) => (*p, t.show()),
            None => (self.end, "the end of the expression".into()),
        };
        Err(FilterError {
            position,
            message: format!("expected {expected}, found {found}"),
        })
    }

    fn or(&mut self, depth: usize) -> Result<Filter, FilterError> {
        let mut left = self.and(depth)?;
        while self.peek().is_some_and(|t| t.keyword("OR")) {
            self.at += 1;
            let right = self.and(depth)?;
            left = Filter::Or(Box::new(left), Box::new(right));
        }
        Ok(left)
    }

    fn and(&mut self, depth: usize) -> Result<Filter, FilterError> {
        let mut left = self.not(depth)?;
        while self.peek().is_some_and(|t| t.keyword("AND")) {
            self.at += 1;
            let right = self.not(depth)?;
            left = Filter::And(Box::new(left), Box::new(right));
        }
        Ok(left)
    }

    fn not(&mut self, depth: usize) -> Result<Filter, FilterError> {
        if depth >= MAX_DEPTH {
            return self.fail(&format!(
                "a shallower expression (NOT and parentheses nest at most {MAX_DEPTH} deep)"
            ));
        }
        match self.peek() {
            Some(t) if t.keyword("NOT") => {
                self.at += 1;
                Ok(Filter::Not(Box::new(self.not(depth + 1)?)))
            }
            Some(Token::Open) => {
                self.at += 1;
                let inner = self.or(depth + 1)?;
                if self.peek() != Some(&Token::Close) {
                    return self.fail("`)`");
                }
                self.at += 1;
                Ok(inner)
            }
            _ => self.comparison(),
        }
    }

    fn comparison(&mut self) -> Result<Filter, FilterError> {
        let mut field = Vec::new();
        loop {
            match self.peek() {
                Some(Token::Name(n) | Token::Quoted(n))
                    if !(["AND", "OR", "NOT"]
                        .iter()
                        .any(|k| n.eq_ignore_ascii_case(k))
                        && matches!(self.peek(), Some(Token::Name(_)))) =>
                {
                    field.push(n.clone());
                    self.at += 1;
                }
                _ => return self.fail("a field name"),
            }
            if self.peek() == Some(&Token::Dot) {
                self.at += 1;
            } else {
                break;
            }
        }
        let op = match self.peek() {
            Some(Token::Op(op)) => *op,
            _ => return self.fail("a comparison (= != < <= > >=)"),
        };
        self.at += 1;
        let literal = match self.peek() {
            Some(Token::Number(n)) => Literal::Number(*n),
            Some(Token::Text(t)) => Literal::Text(t.clone()),
            Some(t) if t.keyword("true") => Literal::Bool(true),
            Some(t) if t.keyword("false") => Literal::Bool(false),
            Some(t) if t.keyword("null") => Literal::Null,
            _ => return self.fail("a literal: 'text', a number, true, false or null"),
        };
        self.at += 1;
        Ok(Filter::Compare { field, op, literal })
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;
    use serde_json::json;

    use super::*;

    fn passes(expr: &str, row: &Value) -> bool {
        Filter::parse(expr).unwrap().matches(row)
    }

    #[test]
    fn comparisons_and_logic() {
        let row =
            json!({"temp": 21.5, "name": "kitchen", "on": true, "loc": {"lat": 48.1}, "n": null});
        for (expr, expected) in [
            ("temp > 20", true),
            ("temp >= 21.5 AND temp <= 21.5", true),
            ("temp < 21.5", false),
            ("temp = 21.5", true),
            ("temp == 21.5", true),
            ("temp <> 21.5", false),
            ("name = 'kitchen'", true),
            ("name = \"kitchen\"", true),
            ("name > 'a' and name < 'l'", true),
            ("on = true", true),
            ("on != false", true),
            ("on > false", false),
            ("loc.lat > 48", true),
            ("`loc`.`lat` < 48", false),
            ("missing = 1", false),
            ("missing != 1", false),
            ("missing = null", true),
            ("n = null", true),
            ("temp != null", true),
            ("name = 21.5", false),
            ("name != 21.5", true),
            ("NOT temp > 20", false),
            ("not (temp > 30 or name = 'kitchen')", false),
            ("temp > 30 OR name = 'kitchen' AND on = true", true),
            ("(temp > 30 OR name = 'kitchen') AND on = false", false),
            ("temp > -1e3", true),
        ] {
            assert_eq!(passes(expr, &row), expected, "{expr}");
        }
    }

    #[test]
    fn bad_expressions_name_the_fault() {
        let msg = |e: &str| Filter::parse(e).unwrap_err().to_string();
        assert_eq!(
            msg("temp >"),
            "filter at character 6: expected a literal: 'text', a number, true, false or null, found the end of the expression"
        );
        assert_eq!(
            msg("temp ~ 3"),
            "filter at character 5: unexpected character '~'"
        );
        assert!(msg("(temp > 1").contains("expected `)`"));
        assert!(msg("temp > 1 temp").contains("unexpected `temp` after the expression"));
        assert!(msg("name = 'open").contains("never closed"));
        assert!(msg("= 3").contains("expected a field name"));
        assert!(msg("temp > 1 AND").contains("expected a field name"));
        assert!(
            msg(&format!("{}a = 1{}", "(".repeat(100), ")".repeat(100))).contains("nest at most")
        );
        assert!(msg(&"x".repeat(MAX_FILTER_BYTES + 1)).contains("at most"));
    }

    #[test]
    fn filters_print_with_only_the_parentheses_they_need() {
        let chain: Vec<String> = (0..200).map(|i| format!("a{i} = {i}")).collect();
        let chain = chain.join(" AND ");
        assert_eq!(Filter::parse(&chain).unwrap().to_string(), chain);
        for text in [
            "a = 1 OR b = 2 AND c = 3",
            "(a = 1 OR b = 2) AND c = 3",
            "a = 1 OR (b = 2 OR c = 3)",
            "NOT (a = 1 AND b = 2)",
            "NOT NOT `and` = 'x' AND `x y`.z != null",
        ] {
            assert_eq!(Filter::parse(text).unwrap().to_string(), text);
        }
    }

    fn literal() -> impl Strategy<Value = Literal> {
        prop_oneof![
            (-1.0e6f64..1.0e6).prop_map(Literal::Number),
            "[a-z '\\\\]{0,6}".prop_map(Literal::Text),
            any::<bool>().prop_map(Literal::Bool),
            Just(Literal::Null),
        ]
    }

    fn filter() -> impl Strategy<Value = Filter> {
        let op = prop_oneof![
            Just(Op::Eq),
            Just(Op::Ne),
            Just(Op::Lt),
            Just(Op::Le),
            Just(Op::Gt),
            Just(Op::Ge)
        ];
        let leaf = (prop::collection::vec("[a-c]", 1..3), op, literal())
            .prop_map(|(field, op, literal)| Filter::Compare { field, op, literal });
        leaf.prop_recursive(4, 32, 2, |inner| {
            prop_oneof![
                (inner.clone(), inner.clone())
                    .prop_map(|(a, b)| Filter::And(Box::new(a), Box::new(b))),
                (inner.clone(), inner.clone())
                    .prop_map(|(a, b)| Filter::Or(Box::new(a), Box::new(b))),
                inner.prop_map(|f| Filter::Not(Box::new(f))),
            ]
        })
    }

    fn row() -> impl Strategy<Value = Value> {
        let scalar = prop_oneof![
            (-1.0e6f64..1.0e6).prop_map(|n| json!(n)),
            "[a-z ]{0,4}".prop_map(Value::from),
            any::<bool>().prop_map(Value::from),
            Just(Value::Null),
        ];
        prop::collection::btree_map("[a-c]", scalar, 0..3).prop_map(|m| {
            let mut row = serde_json::Map::new();
            for (k, v) in m {
                row.insert(k.clone(), v.clone());
                row.insert(format!("{k}{k}"), json!({ k.clone(): v }));
            }
            Value::Object(row)
        })
    }

    proptest! {
        /// Printing a filter and parsing it back gives the same filter.
        #[test]
        fn printed_filters_parse_back(f in filter()) {
            prop_assert_eq!(Filter::parse(&f.to_string()).unwrap(), f);
        }

        /// The logic holds: NOT, AND and OR agree with Rust's, and De
        /// Morgan's laws hold on every row.
        #[test]
        fn logic_agrees_with_booleans(a in filter(), b in filter(), row in row()) {
            let (x, y) = (a.matches(&row), b.matches(&row));
            let not_a = Filter::Not(Box::new(a.clone()));
            prop_assert_eq!(not_a.matches(&row), !x);
            let and = Filter::And(Box::new(a.clone()), Box::new(b.clone()));
            let or = Filter::Or(Box::new(a.clone()), Box::new(b.clone()));
            prop_assert_eq!(and.matches(&row), x && y);
            prop_assert_eq!(or.matches(&row), x || y);
            let de_morgan = Filter::Or(
                Box::new(Filter::Not(Box::new(a))),
                Box::new(Filter::Not(Box::new(b))),
            );
            prop_assert_eq!(Filter::Not(Box::new(and)).matches(&row), de_morgan.matches(&row));
        }

        /// Numeric comparisons agree with f64's.
        #[test]
        fn numbers_compare_as_numbers(v in -1.0e6f64..1.0e6, l in -1.0e6f64..1.0e6) {
            let row = json!({"x": v});
            let lit = Literal::Number(l);
            for (op, expected) in [
                (Op::Eq, v == l), (Op::Ne, v != l), (Op::Lt, v < l),
                (Op::Le, v <= l), (Op::Gt, v > l), (Op::Ge, v >= l),
            ] {
                let f = Filter::Compare { field: vec!["x".into()], op, literal: lit.clone() };
                prop_assert_eq!(f.matches(&row), expected);
            }
        }

        /// Any text parses or is refused with a position inside it.
        #[test]
        fn any_text_parses_or_refuses(text in ".{0,100}") {
            if let Err(e) = Filter::parse(&text) {
                prop_assert!(e.position <= text.chars().count());
            }
        }
    }
}
