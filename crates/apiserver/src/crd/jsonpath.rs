//! The JSONPath subset printer columns and scale paths use (client-go's `jsonpath` on
//! `{<path>}`): `.field`, `['field']`, `[n]`, `[*]`, and filters `[?(@.a.b=="x")]` with
//! `==`/`!=` against strings and numbers, or `[?(@.a)]` for presence.

use serde_json::Value;

#[derive(Clone, Debug, PartialEq)]
enum Step {
    Field(String),
    Index(i64),
    All,
    Filter {
        path: Vec<Step>,
        op: Option<(bool, Value)>,
    },
}

/// A parsed path.
#[derive(Clone, Debug, PartialEq)]
pub struct JsonPath(Vec<Step>);

impl JsonPath {
    /// Parses `.spec.replicas`, `{.spec.replicas}` or `spec.replicas`.
    pub fn parse(text: &str) -> Option<JsonPath> {
        let text = text.trim();
        let text = text
            .strip_prefix('{')
            .and_then(|t| t.strip_suffix('}'))
            .unwrap_or(text);
        let text = text.strip_prefix('$').unwrap_or(text);
        let mut chars = text.chars().peekable();
        let steps = parse_steps(&mut chars, false)?;
        chars.peek().is_none().then_some(JsonPath(steps))
    }

    /// Every value the path selects, in order.
    pub fn find<'a>(&self, root: &'a Value) -> Vec<&'a Value> {
        let mut current = vec![root];
        for step in &self.0 {
            current = apply(step, current);
        }
        current
    }

    /// The field names of a path made only of `.field` steps (scale paths), if it is one.
    pub fn fields(&self) -> Option<Vec<&str>> {
        self.0
            .iter()
            .map(|s| match s {
                Step::Field(f) => Some(f.as_str()),
                _ => None,
            })
            .collect()
    }
}

fn apply<'a>(step: &Step, values: Vec<&'a Value>) -> Vec<&'a Value> {
    let mut out = Vec::new();
    for v in values {
        match step {
            Step::Field(f) => {
                if let Some(x) = v.get(f.as_str()) {
                    out.push(x);
                }
            }
            Step::Index(i) => {
                if let Some(a) = v.as_array() {
                    let idx = if *i < 0 { a.len() as i64 + i } else { *i };
                    if let Some(x) = usize::try_from(idx).ok().and_then(|i| a.get(i)) {
                        out.push(x);
                    }
                }
            }
            Step::All => match v {
                Value::Array(a) => out.extend(a.iter()),
                Value::Object(m) => out.extend(m.values()),
                _ => {}
            },
            Step::Filter { path, op } => {
                let Some(items) = v.as_array() else { continue };
                for item in items {
                    let mut found = vec![item];
                    for s in path {
                        found = apply(s, found);
                    }
                    let keep = match op {
                        None => !found.is_empty(),
                        Some((equal, want)) => {
                            let hit = found.iter().any(|f| values_equal(f, want));
                            hit == *equal
                        }
                    };
                    if keep {
                        out.push(item);
                    }
                }
            }
        }
    }
    out
}

fn values_equal(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => x.as_f64() == y.as_f64(),
        _ => a == b,
    }
}

fn ident(chars: &mut std::iter::Peekable<std::str::Chars<'_>>) -> String {
    let mut name = String::new();
    while let Some(&c) = chars.peek() {
        if c == '.' || c == '[' || c == ')' || c == '=' || c == '!' || c == ' ' {
            break;
        }
        name.push(c);
        chars.next();
    }
    name
}

fn parse_steps(
    chars: &mut std::iter::Peekable<std::str::Chars<'_>>,
    in_filter: bool,
) -> Option<Vec<Step>> {
    let mut steps = Vec::new();
    let mut first = true;
    while let Some(&c) = chars.peek() {
        match c {
            '.' => {
                chars.next();
                let name = ident(chars);
                if !name.is_empty() {
                    steps.push(Step::Field(name));
                }
            }
            '[' => {
                chars.next();
                let mut inner = String::new();
                let mut depth = 0;
                loop {
                    let c = chars.next()?;
                    match c {
                        '[' => depth += 1,
                        ']' if depth == 0 => break,
                        ']' => depth -= 1,
                        _ => {}
                    }
                    inner.push(c);
                }
                steps.push(bracket(inner.trim())?);
            }
            ')' | '=' | '!' | ' ' if in_filter => break,
            _ if first => {
                let name = ident(chars);
                if name.is_empty() {
                    return None;
                }
                steps.push(Step::Field(name));
            }
            _ => return None,
        }
        first = false;
    }
    Some(steps)
}

fn bracket(inner: &str) -> Option<Step> {
    if inner == "*" {
        return Some(Step::All);
    }
    if let Ok(i) = inner.parse::<i64>() {
        return Some(Step::Index(i));
    }
    if let Some(quoted) = inner
        .strip_prefix('\'')
        .and_then(|s| s.strip_suffix('\''))
        .or_else(|| inner.strip_prefix('"').and_then(|s| s.strip_suffix('"')))
    {
        return Some(Step::Field(quoted.to_owned()));
    }
    let filter = inner.strip_prefix("?(")?.strip_suffix(')')?.trim();
    let rest = filter.strip_prefix('@')?;
    let mut chars = rest.chars().peekable();
    let path = parse_steps(&mut chars, true)?;
    let tail: String = chars.collect();
    let tail = tail.trim();
    if tail.is_empty() {
        return Some(Step::Filter { path, op: None });
    }
    let (equal, literal) = if let Some(l) = tail.strip_prefix("==") {
        (true, l.trim())
    } else if let Some(l) = tail.strip_prefix("!=") {
        (false, l.trim())
    } else {
        return None;
    };
    let value = if let Some(s) = literal
        .strip_prefix('"')
        .and_then(|s| s.strip_suffix('"'))
        .or_else(|| {
            literal
                .strip_prefix('\'')
                .and_then(|s| s.strip_suffix('\''))
        }) {
        Value::String(s.to_owned())
    } else {
        serde_json::from_str(literal).ok()?
    };
    Some(Step::Filter {
        path,
        op: Some((equal, value)),
    })
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn finds_like_client_go() {
        let obj = json!({"spec": {"replicas": 3, "list": [{"n": "a"}, {"n": "b"}]},
            "status": {"conditions": [{"type": "Ready", "status": "True"}, {"type": "Synced", "status": "False"}]}});
        let cases = [
            (".spec.replicas", vec![json!(3)]),
            ("{.spec.replicas}", vec![json!(3)]),
            (".spec.missing", vec![]),
            (".spec.list[1].n", vec![json!("b")]),
            (".spec.list[-1].n", vec![json!("b")]),
            (".spec.list[*].n", vec![json!("a"), json!("b")]),
            (".spec['replicas']", vec![json!(3)]),
            (
                r#".status.conditions[?(@.type=="Ready")].status"#,
                vec![json!("True")],
            ),
            (
                r#".status.conditions[?(@.type!="Ready")].type"#,
                vec![json!("Synced")],
            ),
        ];
        for (path, want) in cases {
            let p = JsonPath::parse(path).unwrap_or_else(|| panic!("parse {path}"));
            let got: Vec<Value> = p.find(&obj).into_iter().cloned().collect();
            assert_eq!(got, want, "{path}");
        }
        assert_eq!(
            JsonPath::parse(".spec.replicas").unwrap().fields(),
            Some(vec!["spec", "replicas"])
        );
        assert!(JsonPath::parse(".spec[").is_none());
    }
}
