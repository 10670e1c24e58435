//! String functions for Qlik charts and load scripts: case, replacement and regular expressions.

use std::cell::RefCell;
use std::collections::HashMap;

use regex::Regex;
use sse_guest::Function;

/// Qlik's boolean convention: true is -1, false is 0.
const QLIK_TRUE: f64 = -1.0;

thread_local! {
    // Patterns repeat on every row of a call; compiling each once keeps a column's cost linear.
    static PATTERNS: RefCell<HashMap<String, Regex>> = RefCell::new(HashMap::new());
}

/// Runs `f` with the compiled `pattern`, or fails with the regex error.
fn with_regex<T>(pattern: &str, f: impl FnOnce(&Regex) -> T) -> Result<T, String> {
    PATTERNS.with_borrow_mut(|patterns| {
        if !patterns.contains_key(pattern) {
            if patterns.len() > 1024 {
                patterns.clear();
            }
            let regex = Regex::new(pattern).map_err(|e| format!("invalid pattern {pattern:?}: {e}"))?;
            patterns.insert(pattern.to_owned(), regex);
        }
        Ok(f(&patterns[pattern]))
    })
}

fn upper(text: String) -> String {
    text.to_uppercase()
}

fn lower(text: String) -> String {
    text.to_lowercase()
}

fn replace(text: String, from: String, to: String) -> String {
    if from.is_empty() { text } else { text.replace(&from, &to) }
}

fn regex_match(text: String, pattern: String) -> Result<f64, String> {
    with_regex(&pattern, |re| if re.is_match(&text) { QLIK_TRUE } else { 0.0 })
}

fn regex_extract(text: String, pattern: String) -> Result<String, String> {
    with_regex(&pattern, |re| {
        re.captures(&text)
            .map(|c| c.get(1).or_else(|| c.get(0)).map_or("", |m| m.as_str()).to_owned())
            .unwrap_or_default()
    })
}

fn regex_replace(text: String, pattern: String, replacement: String) -> Result<String, String> {
    with_regex(&pattern, |re| re.replace_all(&text, replacement.as_str()).into_owned())
}

sse_guest::export_functions![
    Function::scalar("Upper", upper).params(["text"]).describe("The text in upper case (Unicode-aware)"),
    Function::scalar("Lower", lower).params(["text"]).describe("The text in lower case (Unicode-aware)"),
    Function::scalar("Replace", replace)
        .params(["text", "from", "to"])
        .describe("Replaces every occurrence of `from` with `to`"),
    Function::scalar("RegexMatch", regex_match)
        .params(["text", "pattern"])
        .describe("-1 (Qlik's true) when the pattern matches somewhere in the text, else 0"),
    Function::scalar("RegexExtract", regex_extract)
        .params(["text", "pattern"])
        .describe("The first capture group of the first match (the whole match without groups), or \"\""),
    Function::scalar("RegexReplace", regex_replace)
        .params(["text", "pattern", "replacement"])
        .describe("Replaces every match; $1, $name refer to groups"),
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn regexes() {
        assert_eq!(regex_match("order-123".into(), r"\d+$".into()), Ok(QLIK_TRUE));
        assert_eq!(regex_extract("order-123".into(), r"-(\d+)".into()), Ok("123".into()));
        assert_eq!(regex_replace("a1b22".into(), r"\d+".into(), "#".into()), Ok("a#b#".into()));
        assert!(regex_match("x".into(), "(".into()).unwrap_err().contains("invalid pattern"));
    }
}
