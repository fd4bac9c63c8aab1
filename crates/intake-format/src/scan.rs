//! Character scanning shared by the DDL and filter parsers.

/// Reads the quoted text whose opening quote (`'`, `"` or a backtick) is
/// at `chars[start]`. A backslash takes the next character as it is,
/// except between backticks. Returns the text and the index of the
/// closing quote.
///
/// # Errors
/// `Q is never closed` when the text ends first.
pub(crate) fn quoted(chars: &[char], start: usize) -> Result<(String, usize), String> {
    let quote = chars.get(start).copied().unwrap_or('"');
    let never_closed = || format!("{quote} is never closed");
    let mut text = String::new();
    let mut i = start + 1;
    loop {
        match chars.get(i) {
            None => return Err(never_closed()),
            Some('\\') if quote != '`' => {
                text.push(*chars.get(i + 1).ok_or_else(never_closed)?);
                i += 2;
            }
            Some(&q) if q == quote => return Ok((text, i)),
            Some(&other) => {
                text.push(other);
                i += 1;
            }
        }
    }
}

/// The run of characters from `chars[start]` on while `more` holds for
/// those after the first; returns it and the index of its last character.
pub(crate) fn run(chars: &[char], start: usize, more: impl Fn(char) -> bool) -> (String, usize) {
    let mut text: String = chars.get(start).into_iter().collect();
    let mut i = start;
    while let Some(&c) = chars.get(i + 1).filter(|c| more(**c)) {
        text.push(c);
        i += 1;
    }
    (text, i)
}

/// True for the characters of a name after its first.
pub(crate) fn name_char(c: char) -> bool {
    c.is_alphanumeric() || c == '_'
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quoted_texts_and_runs() {
        let chars: Vec<char> = r#"'a\'b' `c\d` "open"#.chars().collect();
        assert_eq!(quoted(&chars, 0), Ok(("a'b".into(), 5)));
        assert_eq!(quoted(&chars, 7), Ok(("c\\d".into(), 11)));
        assert_eq!(quoted(&chars, 13), Err("\" is never closed".into()));
        let chars: Vec<char> = "abc_1 x".chars().collect();
        assert_eq!(run(&chars, 0, name_char), ("abc_1".into(), 4));
    }
}
