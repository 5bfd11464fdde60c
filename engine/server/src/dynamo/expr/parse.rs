//! Tokenizer and recursive-descent parsers for the expression grammar.

use std::cell::RefCell;
use std::collections::{BTreeSet, HashMap};

use super::{Cmp, Cond, Operand, Path, SetValue, Step, Term, Update};
use crate::dynamo::error::DynamoError;
use crate::dynamo::value::Value;

/// ExpressionAttributeNames and ExpressionAttributeValues of a request, and which were used.
#[derive(Debug, Default)]
pub struct Placeholders {
    names: HashMap<String, String>,
    values: HashMap<String, Value>,
    used_names: RefCell<BTreeSet<String>>,
    used_values: RefCell<BTreeSet<String>>,
}

impl Placeholders {
    pub fn new(
        names: Option<HashMap<String, String>>,
        values: Option<HashMap<String, Value>>,
    ) -> Self {
        Self {
            names: names.unwrap_or_default(),
            values: values.unwrap_or_default(),
            ..Self::default()
        }
    }

    fn name(&self, placeholder: &str) -> Result<String, DynamoError> {
        self.used_names.borrow_mut().insert(placeholder.to_owned());
        self.names.get(placeholder).cloned().ok_or_else(|| {
            DynamoError::validation(format!("Value provided in ExpressionAttributeNames unused in expressions: An expression attribute name used in the document path is not defined; attribute name: {placeholder}"))
        })
    }

    fn value(&self, placeholder: &str) -> Result<Value, DynamoError> {
        self.used_values.borrow_mut().insert(placeholder.to_owned());
        self.values.get(placeholder).cloned().ok_or_else(|| {
            DynamoError::validation(format!("An expression attribute value used in expression is not defined; attribute value: {placeholder}"))
        })
    }

    /// DynamoDB refuses placeholders that no expression used.
    pub fn check_all_used(&self) -> Result<(), DynamoError> {
        let used = self.used_names.borrow();
        if let Some(unused) = self.names.keys().find(|k| !used.contains(*k)) {
            return Err(DynamoError::validation(format!(
                "Value provided in ExpressionAttributeNames unused in expressions: keys: {{{unused}}}"
            )));
        }
        let used = self.used_values.borrow();
        if let Some(unused) = self.values.keys().find(|k| !used.contains(*k)) {
            return Err(DynamoError::validation(format!(
                "Value provided in ExpressionAttributeValues unused in expressions: keys: {{{unused}}}"
            )));
        }
        Ok(())
    }
}

#[derive(Debug, Clone, PartialEq)]
enum Token {
    Ident(String),
    Name(String),
    Value(String),
    Int(usize),
    Sym(&'static str),
}

fn tokenize(text: &str) -> Result<Vec<Token>, DynamoError> {
    let bad = |why: String| DynamoError::validation(format!("Invalid expression: {why}: {text:?}"));
    let chars: Vec<char> = text.chars().collect();
    let mut tokens = Vec::new();
    let mut i = 0;
    let word = |start: usize| {
        let mut end = start;
        while end < chars.len() && (chars[end].is_alphanumeric() || chars[end] == '_') {
            end += 1;
        }
        end
    };
    while i < chars.len() {
        let c = chars[i];
        if c.is_whitespace() {
            i += 1;
            continue;
        }
        let two: String = chars[i..(i + 2).min(chars.len())].iter().collect();
        if let Some(sym) = ["<>", "<=", ">="].into_iter().find(|s| *s == two) {
            tokens.push(Token::Sym(sym));
            i += 2;
            continue;
        }
        if let Some(sym) = ["(", ")", "[", "]", ",", ".", "=", "<", ">", "+", "-"]
            .into_iter()
            .find(|s| s.starts_with(c))
        {
            tokens.push(Token::Sym(sym));
            i += 1;
            continue;
        }
        if c == '#' || c == ':' {
            let end = word(i + 1);
            if end == i + 1 {
                return Err(bad(format!("empty placeholder at {i}")));
            }
            let text: String = chars[i..end].iter().collect();
            tokens.push(if c == '#' { Token::Name(text) } else { Token::Value(text) });
            i = end;
            continue;
        }
        if c.is_ascii_digit() {
            let mut end = i;
            while end < chars.len() && chars[end].is_ascii_digit() {
                end += 1;
            }
            let n: String = chars[i..end].iter().collect();
            tokens.push(Token::Int(n.parse().map_err(|_| bad(format!("bad index {n}")))?));
            i = end;
            continue;
        }
        if c.is_alphabetic() || c == '_' {
            let end = word(i);
            tokens.push(Token::Ident(chars[i..end].iter().collect()));
            i = end;
            continue;
        }
        return Err(bad(format!("unexpected character {c:?}")));
    }
    Ok(tokens)
}

struct Parser<'a> {
    tokens: Vec<Token>,
    pos: usize,
    ph: &'a Placeholders,
    text: &'a str,
}

impl<'a> Parser<'a> {
    fn new(text: &'a str, ph: &'a Placeholders) -> Result<Self, DynamoError> {
        Ok(Self { tokens: tokenize(text)?, pos: 0, ph, text })
    }

    fn error(&self, what: &str) -> DynamoError {
        let near =
            self.tokens.get(self.pos).map_or("end of input".to_owned(), |t| format!("{t:?}"));
        DynamoError::validation(format!("Invalid expression: {what} near {near}: {:?}", self.text))
    }

    fn peek(&self) -> Option<&Token> {
        self.tokens.get(self.pos)
    }

    fn next(&mut self) -> Option<Token> {
        let t = self.tokens.get(self.pos).cloned();
        self.pos += 1;
        t
    }

    fn keyword(&self, word: &str) -> bool {
        matches!(self.peek(), Some(Token::Ident(w)) if w.eq_ignore_ascii_case(word))
    }

    fn eat_keyword(&mut self, word: &str) -> bool {
        let yes = self.keyword(word);
        if yes {
            self.pos += 1;
        }
        yes
    }

    fn sym(&self, s: &str) -> bool {
        matches!(self.peek(), Some(Token::Sym(x)) if *x == s)
    }

    fn expect(&mut self, s: &'static str) -> Result<(), DynamoError> {
        if self.sym(s) {
            self.pos += 1;
            Ok(())
        } else {
            Err(self.error(&format!("expected {s:?}")))
        }
    }

    fn done(&self) -> Result<(), DynamoError> {
        if self.pos < self.tokens.len() {
            return Err(self.error("unexpected token"));
        }
        Ok(())
    }

    fn path(&mut self) -> Result<Path, DynamoError> {
        let mut steps = vec![Step::Attr(self.name()?)];
        loop {
            if self.sym(".") {
                self.pos += 1;
                steps.push(Step::Attr(self.name()?));
            } else if self.sym("[") {
                self.pos += 1;
                let Some(Token::Int(i)) = self.next() else {
                    return Err(self.error("expected a list index"));
                };
                self.expect("]")?;
                steps.push(Step::Index(i));
            } else {
                return Ok(Path(steps));
            }
        }
    }

    fn name(&mut self) -> Result<String, DynamoError> {
        match self.next() {
            Some(Token::Ident(n)) => Ok(n),
            Some(Token::Name(p)) => self.ph.name(&p),
            _ => {
                self.pos -= 1;
                Err(self.error("expected an attribute name"))
            }
        }
    }

    fn is_function(&self, name: &str) -> bool {
        self.keyword(name) && matches!(self.tokens.get(self.pos + 1), Some(Token::Sym("(")))
    }

    fn operand(&mut self) -> Result<Operand, DynamoError> {
        if let Some(Token::Value(v)) = self.peek().cloned() {
            self.pos += 1;
            return Ok(Operand::Value(self.ph.value(&v)?));
        }
        if self.is_function("size") {
            self.pos += 2;
            let path = self.path()?;
            self.expect(")")?;
            return Ok(Operand::Size(path));
        }
        Ok(Operand::Path(self.path()?))
    }

    fn condition(&mut self) -> Result<Cond, DynamoError> {
        let mut left = self.and()?;
        while self.eat_keyword("OR") {
            left = Cond::Or(Box::new(left), Box::new(self.and()?));
        }
        Ok(left)
    }

    fn and(&mut self) -> Result<Cond, DynamoError> {
        let mut left = self.not()?;
        while self.eat_keyword("AND") {
            left = Cond::And(Box::new(left), Box::new(self.not()?));
        }
        Ok(left)
    }

    fn not(&mut self) -> Result<Cond, DynamoError> {
        if self.eat_keyword("NOT") {
            return Ok(Cond::Not(Box::new(self.not()?)));
        }
        self.primary()
    }

    fn primary(&mut self) -> Result<Cond, DynamoError> {
        if self.sym("(") {
            self.pos += 1;
            let inner = self.condition()?;
            self.expect(")")?;
            return Ok(inner);
        }
        for function in [
            "attribute_exists",
            "attribute_not_exists",
            "attribute_type",
            "begins_with",
            "contains",
        ] {
            if self.is_function(function) {
                self.pos += 2;
                let cond = match function {
                    "attribute_exists" => Cond::Exists(self.path()?),
                    "attribute_not_exists" => Cond::NotExists(self.path()?),
                    _ => {
                        let first = self.operand()?;
                        self.expect(",")?;
                        let second = self.operand()?;
                        match (function, first) {
                            ("attribute_type", Operand::Path(p)) => Cond::Type(p, second),
                            ("attribute_type", _) => {
                                return Err(self.error("attribute_type takes a path"));
                            }
                            ("begins_with", first) => Cond::BeginsWith(first, second),
                            (_, first) => Cond::Contains(first, second),
                        }
                    }
                };
                self.expect(")")?;
                return Ok(cond);
            }
        }
        let left = self.operand()?;
        if self.eat_keyword("BETWEEN") {
            let low = self.operand()?;
            if !self.eat_keyword("AND") {
                return Err(self.error("expected AND in BETWEEN"));
            }
            return Ok(Cond::Between(left, low, self.operand()?));
        }
        if self.eat_keyword("IN") {
            self.expect("(")?;
            let mut list = vec![self.operand()?];
            while self.sym(",") {
                self.pos += 1;
                list.push(self.operand()?);
            }
            self.expect(")")?;
            return Ok(Cond::In(left, list));
        }
        let cmp = match self.next() {
            Some(Token::Sym("=")) => Cmp::Eq,
            Some(Token::Sym("<>")) => Cmp::Ne,
            Some(Token::Sym("<")) => Cmp::Lt,
            Some(Token::Sym("<=")) => Cmp::Le,
            Some(Token::Sym(">")) => Cmp::Gt,
            Some(Token::Sym(">=")) => Cmp::Ge,
            _ => {
                self.pos -= 1;
                return Err(self.error("expected a comparison"));
            }
        };
        Ok(Cond::Compare(left, cmp, self.operand()?))
    }

    fn term(&mut self) -> Result<Term, DynamoError> {
        if self.is_function("if_not_exists") {
            self.pos += 2;
            let path = self.path()?;
            self.expect(",")?;
            let fallback = self.term()?;
            self.expect(")")?;
            return Ok(Term::IfNotExists(path, Box::new(fallback)));
        }
        if self.is_function("list_append") {
            self.pos += 2;
            let a = self.term()?;
            self.expect(",")?;
            let b = self.term()?;
            self.expect(")")?;
            return Ok(Term::ListAppend(Box::new(a), Box::new(b)));
        }
        Ok(Term::Operand(self.operand()?))
    }

    fn update(&mut self) -> Result<Update, DynamoError> {
        let mut update = Update::default();
        let mut seen = BTreeSet::new();
        while self.peek().is_some() {
            let Some(Token::Ident(clause)) = self.next() else {
                return Err(self.error("expected SET, REMOVE, ADD or DELETE"));
            };
            let clause = clause.to_ascii_uppercase();
            if !seen.insert(clause.clone()) {
                return Err(self.error(&format!("the {clause} section may appear only once")));
            }
            loop {
                match clause.as_str() {
                    "SET" => {
                        let path = self.path()?;
                        self.expect("=")?;
                        let left = self.term()?;
                        let value = if self.sym("+") {
                            self.pos += 1;
                            SetValue::Plus(left, self.term()?)
                        } else if self.sym("-") {
                            self.pos += 1;
                            SetValue::Minus(left, self.term()?)
                        } else {
                            SetValue::Term(left)
                        };
                        update.set.push((path, value));
                    }
                    "REMOVE" => update.remove.push(self.path()?),
                    "ADD" | "DELETE" => {
                        let path = self.path()?;
                        let value = self.operand()?;
                        if clause == "ADD" {
                            update.add.push((path, value))
                        } else {
                            update.delete.push((path, value))
                        }
                    }
                    _ => {
                        self.pos -= 1;
                        return Err(self.error("expected SET, REMOVE, ADD or DELETE"));
                    }
                }
                if !self.sym(",") {
                    break;
                }
                self.pos += 1;
            }
        }
        if seen.is_empty() {
            return Err(self.error("the update expression is empty"));
        }
        Ok(update)
    }
}

pub fn parse_condition(text: &str, ph: &Placeholders) -> Result<Cond, DynamoError> {
    let mut parser = Parser::new(text, ph)?;
    let cond = parser.condition()?;
    parser.done()?;
    Ok(cond)
}

pub fn parse_update(text: &str, ph: &Placeholders) -> Result<Update, DynamoError> {
    let mut parser = Parser::new(text, ph)?;
    let update = parser.update()?;
    parser.done()?;
    Ok(update)
}

pub fn parse_projection(text: &str, ph: &Placeholders) -> Result<Vec<Path>, DynamoError> {
    let mut parser = Parser::new(text, ph)?;
    let mut paths = vec![parser.path()?];
    while parser.sym(",") {
        parser.pos += 1;
        paths.push(parser.path()?);
    }
    parser.done()?;
    Ok(paths)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dynamo::value::Number;

    fn ph() -> Placeholders {
        let names = HashMap::from([("#s".to_owned(), "status".to_owned())]);
        let values = HashMap::from([
            (":v".to_owned(), Value::N(Number::parse("5").unwrap())),
            (":t".to_owned(), Value::S("S".into())),
        ]);
        Placeholders::new(Some(names), Some(values))
    }

    #[test]
    fn conditions_parse_with_precedence() {
        let p = ph();
        let c = parse_condition("a = :v OR NOT #s < :v AND attribute_exists(b.c[2])", &p).unwrap();
        let Cond::Or(_, right) = c else { panic!("OR binds loosest") };
        assert!(matches!(*right, Cond::And(..)));
        assert!(parse_condition("x BETWEEN :v AND :v", &p).is_ok());
        assert!(parse_condition("x IN (:v, :v)", &p).is_ok());
        assert!(parse_condition("size(x) > :v and begins_with(y, :t)", &p).is_ok());
        assert!(parse_condition("attribute_type(x, :t)", &p).is_ok());
        p.check_all_used().unwrap();
        for bad in ["a =", "a = :missing", "(a = :v", "a ! :v", "#nope = :v", "a = :v extra"] {
            assert!(parse_condition(bad, &ph()).is_err(), "{bad}");
        }
    }

    #[test]
    fn updates_parse_every_clause_once() {
        let p = ph();
        let u = parse_update("SET a = a + :v, b = if_not_exists(b, :v), c = list_append(c, :v) REMOVE d[1] ADD e :v DELETE f :t", &p).unwrap();
        assert_eq!((u.set.len(), u.remove.len(), u.add.len(), u.delete.len()), (3, 1, 1, 1));
        assert!(parse_update("SET a = :v SET b = :v", &p).is_err());
        assert!(parse_update("", &p).is_err());
        assert!(parse_update("UPSERT a = :v", &p).is_err());
    }

    #[test]
    fn unused_placeholders_are_refused() {
        let p = ph();
        parse_condition("a = :v", &p).unwrap();
        assert!(p.check_all_used().is_err());
    }
}
