//! Label selectors: the string form (`a=b,c in (x,y),!d`) and the JSON form
//! (`matchLabels`/`matchExpressions`), parsed, validated and matched as upstream does.
//!
//! The parser follows upstream's lexer and recursive-descent parser token for token, so the same
//! inputs are accepted and rejected with the same messages (`unable to parse requirement: ...`,
//! `found '...', expected: ...`).

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fmt;

use serde_json::Value;

use crate::field_error::{aggregate, go_quote, BadValue, FieldError};
use crate::names::{is_label_key, is_label_value};

/// How a requirement relates a label's value to its values.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Operator {
    /// `key in (a,b)`: the label exists and its value is one of the values.
    In,
    /// `key notin (a,b)`: the label is absent or its value is none of the values.
    NotIn,
    /// `key=a`.
    Equals,
    /// `key==a` (same meaning as `=`; kept so the selector prints as written).
    DoubleEquals,
    /// `key!=a`: the label is absent or differs.
    NotEquals,
    /// `key`: the label exists.
    Exists,
    /// `!key`: the label does not exist.
    DoesNotExist,
    /// `key>1`: the label's value is an integer greater than the value.
    GreaterThan,
    /// `key<1`: the label's value is an integer less than the value.
    LessThan,
}

impl Operator {
    /// Upstream's name of the operator (`in`, `notin`, `=`, `==`, `!=`, `exists`, `!`, `gt`,
    /// `lt`).
    pub fn as_str(self) -> &'static str {
        match self {
            Operator::In => "in",
            Operator::NotIn => "notin",
            Operator::Equals => "=",
            Operator::DoubleEquals => "==",
            Operator::NotEquals => "!=",
            Operator::Exists => "exists",
            Operator::DoesNotExist => "!",
            Operator::GreaterThan => "gt",
            Operator::LessThan => "lt",
        }
    }
}

/// Why a label selector was rejected. The `Display` text is upstream's message.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum LabelSelectorError {
    /// The string form has a syntax error outside a requirement.
    #[error("{0}")]
    SyntaxInvalid(String),
    /// One requirement of the string form could not be parsed or is invalid.
    #[error("unable to parse requirement: {0}")]
    RequirementUnparsable(String),
    /// A requirement (from the JSON form) is invalid; the text is the aggregated field errors.
    #[error("{0}")]
    RequirementInvalid(String),
    /// A `matchExpressions` operator is not `In`, `NotIn`, `Exists` or `DoesNotExist`.
    #[error("{} is not a valid label selector operator", go_quote(.0))]
    OperatorUnknown(String),
    /// The JSON form is not shaped like a `LabelSelector`.
    #[error("{0}")]
    JsonMalformed(String),
}

/// A label lookup, so selectors can match any label container.
pub trait Labels {
    /// The value of label `key`, if set.
    fn get_label(&self, key: &str) -> Option<&str>;
}

impl Labels for BTreeMap<String, String> {
    fn get_label(&self, key: &str) -> Option<&str> {
        self.get(key).map(String::as_str)
    }
}

impl<S: std::hash::BuildHasher> Labels for HashMap<String, String, S> {
    fn get_label(&self, key: &str) -> Option<&str> {
        self.get(key).map(String::as_str)
    }
}

/// An object's `metadata.labels` as JSON; non-string values count as absent.
impl Labels for serde_json::Map<String, Value> {
    fn get_label(&self, key: &str) -> Option<&str> {
        self.get(key).and_then(Value::as_str)
    }
}

/// One requirement of a selector: a key, an operator and its values.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Requirement {
    key: String,
    operator: Operator,
    values: Vec<String>,
}

impl Requirement {
    /// A validated requirement (upstream `NewRequirement`): the key must be a valid label key,
    /// values valid label values, `in`/`notin` need values, `=`/`==`/`!=` exactly one, exists
    /// operators none, `gt`/`lt` exactly one integer.
    pub fn new(
        key: &str,
        operator: Operator,
        values: Vec<String>,
    ) -> Result<Self, LabelSelectorError> {
        Self::build(key, operator, values, false)
    }

    /// As [`Requirement::new`]; `nil_values` marks values that were Go's nil slice (the JSON
    /// form with no or empty `values`), which messages print as `[]string(nil)`.
    fn build(
        key: &str,
        operator: Operator,
        values: Vec<String>,
        nil_values: bool,
    ) -> Result<Self, LabelSelectorError> {
        let mut errs = Vec::new();
        let key_errs = is_label_key(key);
        if !key_errs.is_empty() {
            errs.push(FieldError::invalid("key", key, &key_errs.join("; ")));
        }
        let shown_values = || BadValue::string_slice((!nil_values).then_some(values.as_slice()));
        match operator {
            Operator::In | Operator::NotIn => {
                if values.is_empty() {
                    errs.push(FieldError::invalid(
                        "values",
                        shown_values(),
                        "for 'in', 'notin' operators, values set can't be empty",
                    ));
                }
            }
            Operator::Equals | Operator::DoubleEquals | Operator::NotEquals => {
                if values.len() != 1 {
                    errs.push(FieldError::invalid(
                        "values",
                        shown_values(),
                        "exact-match compatibility requires one single value",
                    ));
                }
            }
            Operator::Exists | Operator::DoesNotExist => {
                if !values.is_empty() {
                    errs.push(FieldError::invalid(
                        "values",
                        shown_values(),
                        "values set must be empty for exists and does not exist",
                    ));
                }
            }
            Operator::GreaterThan | Operator::LessThan => {
                if values.len() != 1 {
                    errs.push(FieldError::invalid(
                        "values",
                        shown_values(),
                        "for 'Gt', 'Lt' operators, exactly one value is required",
                    ));
                }
                for (i, v) in values.iter().enumerate() {
                    if parse_go_int(v).is_err() {
                        errs.push(FieldError::invalid(
                            &format!("values[{i}]"),
                            v.as_str(),
                            "for 'Gt', 'Lt' operators, the value must be an integer",
                        ));
                    }
                }
            }
        }
        for (i, v) in values.iter().enumerate() {
            let value_errs = is_label_value(v);
            if !value_errs.is_empty() {
                errs.push(FieldError::invalid(
                    &format!("values[{i}][{key}]"),
                    v.as_str(),
                    &value_errs.join("; "),
                ));
            }
        }
        if errs.is_empty() {
            Ok(Self {
                key: key.to_string(),
                operator,
                values,
            })
        } else {
            Err(LabelSelectorError::RequirementInvalid(aggregate(&errs)))
        }
    }

    /// The label key.
    pub fn key(&self) -> &str {
        &self.key
    }

    /// The operator.
    pub fn operator(&self) -> Operator {
        self.operator
    }

    /// The values, in the order given.
    pub fn values(&self) -> &[String] {
        &self.values
    }

    fn has_value(&self, value: &str) -> bool {
        self.values.iter().any(|v| v == value)
    }

    /// Whether `labels` satisfy this requirement.
    pub fn matches<L: Labels + ?Sized>(&self, labels: &L) -> bool {
        match self.operator {
            Operator::In | Operator::Equals | Operator::DoubleEquals => labels
                .get_label(&self.key)
                .is_some_and(|v| self.has_value(v)),
            Operator::NotIn | Operator::NotEquals => labels
                .get_label(&self.key)
                .is_none_or(|v| !self.has_value(v)),
            Operator::Exists => labels.get_label(&self.key).is_some(),
            Operator::DoesNotExist => labels.get_label(&self.key).is_none(),
            Operator::GreaterThan | Operator::LessThan => {
                let Some(Ok(have)) = labels.get_label(&self.key).map(parse_go_int) else {
                    return false;
                };
                let [want] = self.values.as_slice() else {
                    return false;
                };
                let Ok(want) = parse_go_int(want) else {
                    return false;
                };
                if self.operator == Operator::GreaterThan {
                    have > want
                } else {
                    have < want
                }
            }
        }
    }
}

/// Parses a decimal `i64` as Go's `strconv.ParseInt(s, 10, 64)` does (an optional sign, then
/// digits).
fn parse_go_int(s: &str) -> Result<i64, std::num::ParseIntError> {
    s.parse::<i64>()
}

impl fmt::Display for Requirement {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.operator == Operator::DoesNotExist {
            f.write_str("!")?;
        }
        f.write_str(&self.key)?;
        let op = match self.operator {
            Operator::Exists | Operator::DoesNotExist => return Ok(()),
            Operator::Equals => "=",
            Operator::DoubleEquals => "==",
            Operator::NotEquals => "!=",
            Operator::In => " in ",
            Operator::NotIn => " notin ",
            Operator::GreaterThan => ">",
            Operator::LessThan => "<",
        };
        f.write_str(op)?;
        let set = matches!(self.operator, Operator::In | Operator::NotIn);
        if set {
            f.write_str("(")?;
        }
        // Values print sorted, whatever order they were given in.
        let mut values: Vec<&str> = self.values.iter().map(String::as_str).collect();
        values.sort_unstable();
        f.write_str(&values.join(","))?;
        if set {
            f.write_str(")")?;
        }
        Ok(())
    }
}

/// A label selector: the AND of its requirements. No requirements selects everything.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct LabelSelector {
    /// The requirements, sorted by key.
    pub requirements: Vec<Requirement>,
}

impl LabelSelector {
    /// The selector that matches every object.
    pub fn everything() -> Self {
        Self::default()
    }

    /// Whether the selector has no requirements (and so matches everything).
    pub fn is_empty(&self) -> bool {
        self.requirements.is_empty()
    }

    /// Parses the string form as upstream's `labels.Parse`.
    pub fn parse(selector: &str) -> Result<Self, LabelSelectorError> {
        let mut parser = Parser::new(selector);
        let mut requirements = parser.parse()?;
        requirements.sort_by(|a, b| a.key.cmp(&b.key));
        Ok(Self { requirements })
    }

    /// A selector requiring every label of `set` to equal its value (upstream
    /// `ValidatedSelectorFromSet`).
    pub fn from_set(set: &BTreeMap<String, String>) -> Result<Self, LabelSelectorError> {
        let requirements = set
            .iter()
            .map(|(k, v)| Requirement::new(k, Operator::Equals, vec![v.clone()]))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Self { requirements })
    }

    /// Builds a selector from the JSON form (`metav1.LabelSelector`) as upstream's
    /// `LabelSelectorAsSelector`. `null` gives `None`: a null selector selects nothing, while
    /// `{}` selects everything.
    pub fn from_json(value: &Value) -> Result<Option<Self>, LabelSelectorError> {
        let obj = match value {
            Value::Null => return Ok(None),
            Value::Object(obj) => obj,
            other => {
                return Err(LabelSelectorError::JsonMalformed(format!(
                    "a label selector must be an object, not {other}"
                )))
            }
        };
        let mut requirements = Vec::new();
        match obj.get("matchLabels") {
            None | Some(Value::Null) => {}
            Some(Value::Object(labels)) => {
                let sorted: BTreeMap<&String, &Value> = labels.iter().collect();
                for (k, v) in sorted {
                    let v = v.as_str().ok_or_else(|| {
                        LabelSelectorError::JsonMalformed(format!(
                            "matchLabels[{k}] must be a string"
                        ))
                    })?;
                    requirements.push(Requirement::new(k, Operator::Equals, vec![v.to_string()])?);
                }
            }
            Some(_) => {
                return Err(LabelSelectorError::JsonMalformed(
                    "matchLabels must be an object".to_string(),
                ))
            }
        }
        match obj.get("matchExpressions") {
            None | Some(Value::Null) => {}
            Some(Value::Array(exprs)) => {
                for expr in exprs {
                    requirements.push(expression(expr)?);
                }
            }
            Some(_) => {
                return Err(LabelSelectorError::JsonMalformed(
                    "matchExpressions must be a list".to_string(),
                ))
            }
        }
        requirements.sort_by(|a, b| a.key.cmp(&b.key));
        Ok(Some(Self { requirements }))
    }

    /// Whether `labels` satisfy every requirement.
    pub fn matches<L: Labels + ?Sized>(&self, labels: &L) -> bool {
        self.requirements.iter().all(|r| r.matches(labels))
    }

    /// If the selector requires label `key` to have exactly one value (`=`, `==`, or `in` with
    /// one value), that value; used to narrow a list by an indexed label.
    pub fn requires_exact_match(&self, key: &str) -> Option<&str> {
        let r = self.requirements.iter().find(|r| r.key == key)?;
        match (r.operator, r.values.as_slice()) {
            (Operator::Equals | Operator::DoubleEquals | Operator::In, [v]) => Some(v),
            _ => None,
        }
    }
}

impl fmt::Display for LabelSelector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, r) in self.requirements.iter().enumerate() {
            if i > 0 {
                f.write_str(",")?;
            }
            write!(f, "{r}")?;
        }
        Ok(())
    }
}

impl std::str::FromStr for LabelSelector {
    type Err = LabelSelectorError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

/// One `matchExpressions` entry as a requirement.
fn expression(expr: &Value) -> Result<Requirement, LabelSelectorError> {
    let malformed = |what: &str| LabelSelectorError::JsonMalformed(what.to_string());
    let obj = expr
        .as_object()
        .ok_or_else(|| malformed("matchExpressions entries must be objects"))?;
    let key = match obj.get("key") {
        None | Some(Value::Null) => "",
        Some(Value::String(k)) => k,
        Some(_) => return Err(malformed("matchExpressions key must be a string")),
    };
    let op = match obj.get("operator") {
        None | Some(Value::Null) => "",
        Some(Value::String(op)) => op,
        Some(_) => return Err(malformed("matchExpressions operator must be a string")),
    };
    let operator = match op {
        "In" => Operator::In,
        "NotIn" => Operator::NotIn,
        "Exists" => Operator::Exists,
        "DoesNotExist" => Operator::DoesNotExist,
        other => return Err(LabelSelectorError::OperatorUnknown(other.to_string())),
    };
    let values = match obj.get("values") {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::Array(vs)) => vs
            .iter()
            .map(|v| v.as_str().map(str::to_string))
            .collect::<Option<Vec<_>>>()
            .ok_or_else(|| malformed("matchExpressions values must be strings"))?,
        Some(_) => return Err(malformed("matchExpressions values must be a list")),
    };
    // Upstream copies the values with `append([]string(nil), ...)`, which is nil when empty.
    let nil_values = values.is_empty();
    Requirement::build(key, operator, values, nil_values)
}

/// The lexer's tokens (upstream `labels.Token`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Token {
    Error,
    EndOfString,
    ClosedPar,
    Comma,
    DoesNotExist,
    DoubleEquals,
    Equals,
    GreaterThan,
    Identifier,
    In,
    LessThan,
    NotEquals,
    NotIn,
    OpenPar,
}

fn literal_token(s: &[u8]) -> Option<Token> {
    Some(match s {
        b")" => Token::ClosedPar,
        b"," => Token::Comma,
        b"!" => Token::DoesNotExist,
        b"==" => Token::DoubleEquals,
        b"=" => Token::Equals,
        b">" => Token::GreaterThan,
        b"in" => Token::In,
        b"<" => Token::LessThan,
        b"!=" => Token::NotEquals,
        b"notin" => Token::NotIn,
        b"(" => Token::OpenPar,
        _ => return None,
    })
}

fn is_whitespace(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\r' | b'\n')
}

fn is_special_symbol(b: u8) -> bool {
    matches!(b, b'=' | b'!' | b'(' | b')' | b',' | b'>' | b'<')
}

/// Upstream's byte lexer. A NUL byte reads like the end of the input, as in upstream.
struct Lexer<'a> {
    s: &'a [u8],
    pos: usize,
}

impl Lexer<'_> {
    fn read(&mut self) -> u8 {
        if self.pos < self.s.len() {
            let b = self.s[self.pos];
            self.pos += 1;
            b
        } else {
            0
        }
    }

    fn unread(&mut self) {
        self.pos -= 1;
    }

    fn lex(&mut self) -> (Token, String) {
        let mut ch = self.read();
        while is_whitespace(ch) {
            ch = self.read();
        }
        if ch == 0 {
            (Token::EndOfString, String::new())
        } else if is_special_symbol(ch) {
            self.unread();
            self.scan_special_symbol()
        } else {
            self.unread();
            self.scan_id_or_keyword()
        }
    }

    fn scan_id_or_keyword(&mut self) -> (Token, String) {
        let start = self.pos;
        let mut end;
        loop {
            end = self.pos;
            let ch = self.read();
            if ch == 0 {
                break;
            }
            if is_special_symbol(ch) || is_whitespace(ch) {
                self.unread();
                break;
            }
        }
        let buffer = &self.s[start..end];
        let literal = String::from_utf8_lossy(buffer).into_owned();
        match literal_token(buffer) {
            Some(token) => (token, literal),
            None => (Token::Identifier, literal),
        }
    }

    fn scan_special_symbol(&mut self) -> (Token, String) {
        let start = self.pos;
        let mut last: Option<(Token, usize)> = None;
        loop {
            let ch = self.read();
            if ch == 0 {
                break;
            }
            if is_special_symbol(ch) {
                let buffer = &self.s[start..self.pos];
                if let Some(token) = literal_token(buffer) {
                    last = Some((token, self.pos));
                } else if last.is_some() {
                    self.unread();
                    break;
                }
            } else {
                self.unread();
                break;
            }
        }
        match last {
            Some((token, end)) => (
                token,
                String::from_utf8_lossy(&self.s[start..end]).into_owned(),
            ),
            None => (
                Token::Error,
                format!(
                    "error expected: keyword found '{}'",
                    String::from_utf8_lossy(&self.s[start..self.pos])
                ),
            ),
        }
    }
}

/// Whether `in`/`notin` are read as operators or as plain values.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Context {
    KeyAndOperator,
    Values,
}

struct Parser {
    items: Vec<(Token, String)>,
    position: usize,
}

impl Parser {
    fn new(selector: &str) -> Self {
        let mut lexer = Lexer {
            s: selector.as_bytes(),
            pos: 0,
        };
        let mut items = Vec::new();
        loop {
            let (token, literal) = lexer.lex();
            items.push((token, literal));
            if token == Token::EndOfString {
                break;
            }
        }
        Self { items, position: 0 }
    }

    fn item(&self, index: usize, context: Context) -> (Token, String) {
        let (token, literal) = self
            .items
            .get(index)
            .cloned()
            .unwrap_or((Token::EndOfString, String::new()));
        let token = match (context, token) {
            (Context::Values, Token::In | Token::NotIn) => Token::Identifier,
            _ => token,
        };
        (token, literal)
    }

    fn lookahead(&self, context: Context) -> (Token, String) {
        self.item(self.position, context)
    }

    fn consume(&mut self, context: Context) -> (Token, String) {
        self.position += 1;
        self.item(self.position - 1, context)
    }

    fn parse(&mut self) -> Result<Vec<Requirement>, LabelSelectorError> {
        let mut requirements = Vec::new();
        loop {
            let (token, literal) = self.lookahead(Context::Values);
            match token {
                Token::Identifier | Token::DoesNotExist => {
                    let r = self
                        .parse_requirement()
                        .map_err(|e| LabelSelectorError::RequirementUnparsable(e.message()))?;
                    requirements.push(r);
                    let (t, l) = self.consume(Context::Values);
                    match t {
                        Token::EndOfString => return Ok(requirements),
                        Token::Comma => {
                            let (t2, l2) = self.lookahead(Context::Values);
                            if t2 != Token::Identifier && t2 != Token::DoesNotExist {
                                return Err(LabelSelectorError::SyntaxInvalid(format!(
                                    "found '{l2}', expected: identifier after ','"
                                )));
                            }
                        }
                        _ => {
                            return Err(LabelSelectorError::SyntaxInvalid(format!(
                                "found '{l}', expected: ',' or 'end of string'"
                            )))
                        }
                    }
                }
                Token::EndOfString => return Ok(requirements),
                _ => {
                    return Err(LabelSelectorError::SyntaxInvalid(format!(
                        "found '{literal}', expected: !, identifier, or 'end of string'"
                    )))
                }
            }
        }
    }

    fn parse_requirement(&mut self) -> Result<Requirement, RequirementError> {
        let (key, operator) = self.parse_key_and_infer_operator()?;
        if let Some(op @ (Operator::Exists | Operator::DoesNotExist)) = operator {
            return Requirement::new(&key, op, Vec::new()).map_err(RequirementError::Invalid);
        }
        let operator = self.parse_operator()?;
        let values = match operator {
            Operator::In | Operator::NotIn => self.parse_values()?,
            _ => self.parse_exact_value()?,
        };
        Requirement::new(&key, operator, values.into_iter().collect())
            .map_err(RequirementError::Invalid)
    }

    fn parse_key_and_infer_operator(
        &mut self,
    ) -> Result<(String, Option<Operator>), RequirementError> {
        let mut operator = None;
        let (mut token, mut literal) = self.consume(Context::Values);
        if token == Token::DoesNotExist {
            operator = Some(Operator::DoesNotExist);
            (token, literal) = self.consume(Context::Values);
        }
        if token != Token::Identifier {
            return Err(RequirementError::Syntax(format!(
                "found '{literal}', expected: identifier"
            )));
        }
        let key_errs = is_label_key(&literal);
        if !key_errs.is_empty() {
            // Upstream validates with a nil field path here, which prints as `<nil>`.
            let err = FieldError::invalid("<nil>", literal.as_str(), &key_errs.join("; "));
            return Err(RequirementError::Syntax(err.to_string()));
        }
        let (next, _) = self.lookahead(Context::Values);
        if matches!(next, Token::EndOfString | Token::Comma) && operator.is_none() {
            operator = Some(Operator::Exists);
        }
        Ok((literal, operator))
    }

    fn parse_operator(&mut self) -> Result<Operator, RequirementError> {
        let (token, literal) = self.consume(Context::KeyAndOperator);
        Ok(match token {
            Token::In => Operator::In,
            Token::Equals => Operator::Equals,
            Token::DoubleEquals => Operator::DoubleEquals,
            Token::GreaterThan => Operator::GreaterThan,
            Token::LessThan => Operator::LessThan,
            Token::NotIn => Operator::NotIn,
            Token::NotEquals => Operator::NotEquals,
            _ => {
                return Err(RequirementError::Syntax(format!(
                    "found '{literal}', expected: in, notin, =, ==, !=, gt, lt"
                )))
            }
        })
    }

    fn parse_values(&mut self) -> Result<BTreeSet<String>, RequirementError> {
        let (token, literal) = self.consume(Context::Values);
        if token != Token::OpenPar {
            return Err(RequirementError::Syntax(format!(
                "found '{literal}' expected: '('"
            )));
        }
        let (token, literal) = self.lookahead(Context::Values);
        match token {
            Token::Identifier | Token::Comma => {
                let set = self.parse_identifiers_list()?;
                let (token, _) = self.consume(Context::Values);
                if token != Token::ClosedPar {
                    return Err(RequirementError::Syntax(format!(
                        "found '{literal}', expected: ')'"
                    )));
                }
                Ok(set)
            }
            Token::ClosedPar => {
                self.consume(Context::Values);
                Ok(BTreeSet::from([String::new()]))
            }
            _ => Err(RequirementError::Syntax(format!(
                "found '{literal}', expected: ',', ')' or identifier"
            ))),
        }
    }

    fn parse_identifiers_list(&mut self) -> Result<BTreeSet<String>, RequirementError> {
        let mut set = BTreeSet::new();
        loop {
            let (token, literal) = self.consume(Context::Values);
            match token {
                Token::Identifier => {
                    set.insert(literal);
                    let (token2, literal2) = self.lookahead(Context::Values);
                    match token2 {
                        Token::Comma => continue,
                        Token::ClosedPar => return Ok(set),
                        _ => {
                            return Err(RequirementError::Syntax(format!(
                                "found '{literal2}', expected: ',' or ')'"
                            )))
                        }
                    }
                }
                Token::Comma => {
                    if set.is_empty() {
                        set.insert(String::new());
                    }
                    let (token2, _) = self.lookahead(Context::Values);
                    if token2 == Token::ClosedPar {
                        set.insert(String::new());
                        return Ok(set);
                    }
                    if token2 == Token::Comma {
                        set.insert(String::new());
                    }
                }
                _ => {
                    return Err(RequirementError::Syntax(format!(
                        "found '{literal}', expected: ',', or identifier"
                    )))
                }
            }
        }
    }

    fn parse_exact_value(&mut self) -> Result<BTreeSet<String>, RequirementError> {
        let (token, _) = self.lookahead(Context::Values);
        if matches!(token, Token::EndOfString | Token::Comma) {
            return Ok(BTreeSet::from([String::new()]));
        }
        let (token, literal) = self.consume(Context::Values);
        if token == Token::Identifier {
            Ok(BTreeSet::from([literal]))
        } else {
            Err(RequirementError::Syntax(format!(
                "found '{literal}', expected: identifier"
            )))
        }
    }
}

/// An error inside one requirement, before upstream wraps it in `unable to parse requirement`.
enum RequirementError {
    Syntax(String),
    Invalid(LabelSelectorError),
}

impl RequirementError {
    fn message(self) -> String {
        match self {
            RequirementError::Syntax(m) => m,
            RequirementError::Invalid(e) => e.to_string(),
        }
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;
    use serde_json::json;

    use super::*;

    fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn parse(s: &str) -> LabelSelector {
        LabelSelector::parse(s).unwrap_or_else(|e| panic!("{s:?}: {e}"))
    }

    fn err(s: &str) -> String {
        LabelSelector::parse(s).unwrap_err().to_string()
    }

    #[test]
    fn parses_every_form() {
        let cases = [
            ("", ""),
            ("x=a", "x=a"),
            ("x==a", "x==a"),
            ("x!=a", "x!=a"),
            ("x", "x"),
            ("!x", "!x"),
            ("x>1", "x>1"),
            ("x<1", "x<1"),
            (" x = a , y ", "x=a,y"),
            ("x in (b,a)", "x in (a,b)"),
            ("x notin (a)", "x notin (a)"),
            (
                "x in (foo,,baz),y,z notin ()",
                "x in (,baz,foo),y,z notin ()",
            ),
            ("b=1,a=2", "a=2,b=1"),
            ("x=", "x="),
            ("x=,y", "x=,y"),
            ("x in (in,notin)", "x in (in,notin)"),
            ("example.com/x=a", "example.com/x=a"),
            ("x=a\t,\ny", "x=a,y"),
        ];
        for (input, display) in cases {
            assert_eq!(parse(input).to_string(), display, "{input:?}");
        }
    }

    #[test]
    fn rejects_with_upstream_messages() {
        assert_eq!(err("x=a,"), "found '', expected: identifier after ','");
        assert_eq!(
            err("x=a y=b"),
            "found 'y', expected: ',' or 'end of string'"
        );
        assert_eq!(
            err("=a"),
            "found '=', expected: !, identifier, or 'end of string'"
        );
        assert_eq!(
            err(","),
            "found ',', expected: !, identifier, or 'end of string'"
        );
        assert_eq!(
            err("x in a"),
            "unable to parse requirement: found 'a' expected: '('"
        );
        assert_eq!(
            err("x in (a"),
            "unable to parse requirement: found '', expected: ',' or ')'"
        );
        assert_eq!(
            err("x in (a b)"),
            "unable to parse requirement: found 'b', expected: ',' or ')'"
        );
        assert_eq!(
            err("x in (="),
            "unable to parse requirement: found '=', expected: ',', ')' or identifier"
        );
        assert_eq!(
            err("x y"),
            "unable to parse requirement: found 'y', expected: in, notin, =, ==, !=, gt, lt"
        );
        assert_eq!(
            err("x=("),
            "unable to parse requirement: found '(', expected: identifier"
        );
        assert_eq!(
            err("!"),
            "unable to parse requirement: found '', expected: identifier"
        );
        assert_eq!(
            err("x>a"),
            "unable to parse requirement: values[0]: Invalid value: \"a\": for 'Gt', 'Lt' operators, the value must be an integer"
        );
        assert_eq!(err("x=a b"), "found 'b', expected: ',' or 'end of string'");
        assert_eq!(
            err("x=-a"),
            "unable to parse requirement: values[0][x]: Invalid value: \"-a\": a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyValue',  or 'my_value',  or '12345', regex used for validation is '(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?')"
        );
        assert_eq!(
            err("-x"),
            "unable to parse requirement: <nil>: Invalid value: \"-x\": name part must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyName',  or 'my.name',  or '123-abc', regex used for validation is '([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]')"
        );
    }

    #[test]
    fn special_symbols_lex_greedily() {
        // `!=` is one token; `!!` is two `!`.
        assert_eq!(
            parse("x!=a").requirements[0].operator(),
            Operator::NotEquals
        );
        assert_eq!(
            err("!!x"),
            "unable to parse requirement: found '!', expected: identifier"
        );
        assert_eq!(
            err("x=!a"),
            "unable to parse requirement: found '!', expected: identifier"
        );
    }

    #[test]
    fn matches_like_upstream() {
        let l = labels(&[("app", "web"), ("tier", "front"), ("n", "5")]);
        for (selector, want) in [
            ("", true),
            ("app=web", true),
            ("app==web", true),
            ("app!=web", false),
            ("app!=db", true),
            ("missing!=x", true),
            ("app in (web,db)", true),
            ("app notin (web)", false),
            ("missing notin (x)", true),
            ("missing in (x)", false),
            ("app", true),
            ("!app", false),
            ("!missing", true),
            ("n>4", true),
            ("n>5", false),
            ("n<6", true),
            ("app>1", false),
            ("missing<1", false),
            ("app=web,tier=back", false),
        ] {
            assert_eq!(parse(selector).matches(&l), want, "{selector}");
        }
    }

    #[test]
    fn builds_from_json() {
        let s = LabelSelector::from_json(&json!({
            "matchLabels": {"b": "2", "a": "1"},
            "matchExpressions": [
                {"key": "c", "operator": "In", "values": ["x", "y"]},
                {"key": "d", "operator": "DoesNotExist"}
            ]
        }))
        .unwrap()
        .unwrap();
        assert_eq!(s.to_string(), "a=1,b=2,c in (x,y),!d");
        assert!(s.matches(&labels(&[("a", "1"), ("b", "2"), ("c", "y")])));
        assert!(!s.matches(&labels(&[("a", "1"), ("b", "2"), ("c", "y"), ("d", "")])));

        assert_eq!(LabelSelector::from_json(&Value::Null).unwrap(), None);
        let everything = LabelSelector::from_json(&json!({})).unwrap().unwrap();
        assert!(everything.is_empty());
        assert!(everything.matches(&labels(&[])));
    }

    #[test]
    fn json_errors_match_upstream() {
        let e = LabelSelector::from_json(&json!({
            "matchExpressions": [{"key": "a", "operator": "Gt", "values": ["1"]}]
        }))
        .unwrap_err();
        assert_eq!(
            e.to_string(),
            r#""Gt" is not a valid label selector operator"#
        );
        let e = LabelSelector::from_json(&json!({
            "matchExpressions": [{"key": "a", "operator": "In"}]
        }))
        .unwrap_err();
        assert_eq!(
            e.to_string(),
            "values: Invalid value: []string(nil): for 'in', 'notin' operators, values set can't be empty"
        );
        let e = LabelSelector::from_json(&json!({
            "matchExpressions": [{"key": "a", "operator": "Exists", "values": ["x"]}]
        }))
        .unwrap_err();
        assert_eq!(
            e.to_string(),
            r#"values: Invalid value: []string{"x"}: values set must be empty for exists and does not exist"#
        );
        let e = LabelSelector::from_json(&json!({"matchLabels": {"a b": "x"}})).unwrap_err();
        assert!(e
            .to_string()
            .starts_with(r#"key: Invalid value: "a b": name part must consist"#));
        let e = LabelSelector::from_json(&json!({"matchLabels": {"/": "x!"}})).unwrap_err();
        assert!(e.to_string().starts_with("[key: Invalid value: \"/\": prefix part must be non-empty; name part must be non-empty; "));
    }

    #[test]
    fn exact_matches() {
        let s = parse("a=1,b in (2),c in (3,4),d!=5");
        assert_eq!(s.requires_exact_match("a"), Some("1"));
        assert_eq!(s.requires_exact_match("b"), Some("2"));
        assert_eq!(s.requires_exact_match("c"), None);
        assert_eq!(s.requires_exact_match("d"), None);
        assert_eq!(s.requires_exact_match("e"), None);
    }

    #[test]
    fn json_labels_match() {
        let obj = json!({"app": "web", "n": 3});
        let map = obj.as_object().unwrap();
        assert!(parse("app=web").matches(map));
        assert!(!parse("n").matches(map));
    }

    fn label_name() -> impl Strategy<Value = String> {
        "[a-zA-Z0-9]([-a-zA-Z0-9_.]{0,10}[a-zA-Z0-9])?"
    }

    fn key() -> impl Strategy<Value = String> {
        (
            proptest::option::of("[a-z0-9]([-a-z0-9]{0,5}[a-z0-9])?(\\.[a-z0-9]{1,4}){0,2}"),
            label_name(),
        )
            .prop_filter("not a keyword", |(_, n)| n != "in" && n != "notin")
            .prop_map(|(prefix, name)| match prefix {
                Some(p) => format!("{p}/{name}"),
                None => name,
            })
    }

    fn value() -> impl Strategy<Value = String> {
        prop_oneof![Just(String::new()), label_name()]
    }

    fn requirement() -> impl Strategy<Value = Requirement> {
        let set = proptest::collection::btree_set(value(), 1..4)
            .prop_map(|s| s.into_iter().collect::<Vec<_>>());
        (key(), 0..9u8, set, value(), -1000i64..1000).prop_map(|(key, op, set, one, n)| {
            let (operator, values) = match op {
                0 => (Operator::In, set),
                1 => (Operator::NotIn, set),
                2 => (Operator::Equals, vec![one]),
                3 => (Operator::DoubleEquals, vec![one]),
                4 => (Operator::NotEquals, vec![one]),
                5 => (Operator::Exists, vec![]),
                6 => (Operator::DoesNotExist, vec![]),
                7 => (Operator::GreaterThan, vec![n.abs().to_string()]),
                _ => (Operator::LessThan, vec![n.abs().to_string()]),
            };
            Requirement::new(&key, operator, values).expect("generated requirement is valid")
        })
    }

    proptest! {
        #[test]
        fn parsing_never_panics(s in any::<String>()) {
            let _ = LabelSelector::parse(&s);
        }

        #[test]
        fn parsing_selector_like_input_never_panics(s in "[a-z!=(),<> \t/.-]{0,30}") {
            let _ = LabelSelector::parse(&s);
        }

        #[test]
        fn display_round_trips(mut reqs in proptest::collection::vec(requirement(), 0..5)) {
            reqs.sort_by(|a, b| a.key.cmp(&b.key));
            let selector = LabelSelector { requirements: reqs };
            let text = selector.to_string();
            let parsed = LabelSelector::parse(&text).map_err(|e| TestCaseError::fail(format!("{text:?}: {e}")))?;
            prop_assert_eq!(parsed.to_string(), text);
            prop_assert_eq!(parsed, selector);
        }
    }
}
