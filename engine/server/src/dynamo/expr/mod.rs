//! DynamoDB expressions: condition, key condition, filter, update and projection, with
//! `#name` and `:value` placeholders.
//!
//! ```text
//! condition  = or ; or = and {OR and} ; and = not {AND not} ; not = NOT not | primary
//! primary    = "(" condition ")" | function | operand cmp operand
//!            | operand BETWEEN operand AND operand | operand IN "(" operand {"," operand} ")"
//! function   = attribute_exists(path) | attribute_not_exists(path) | attribute_type(path, op)
//!            | begins_with(path, op) | contains(path, op)
//! operand    = path | :value | size(path)
//! path       = name {"." name | "[" index "]"}          name = identifier | #placeholder
//! update     = {SET set {"," set} | REMOVE path {"," path} | ADD path :v {"," ...} | DELETE path :v {...}}
//! set        = path "=" value ; value = term ["+" term | "-" term]
//! term       = operand | if_not_exists(path, term) | list_append(term, term)
//! ```
//! Keywords are case-insensitive. Attribute names that DynamoDB reserves (`name`, `status`, ...)
//! are accepted bare here; DynamoDB asks for a `#placeholder`.

mod eval;
mod parse;

pub use eval::{apply_update, evaluate, project, resolve};
pub use parse::{Placeholders, parse_condition, parse_projection, parse_update};

use super::value::Value;

#[derive(Debug, Clone, PartialEq)]
pub enum Step {
    Attr(String),
    Index(usize),
}

/// A document path: `a.b[2].c`.
#[derive(Debug, Clone, PartialEq)]
pub struct Path(pub Vec<Step>);

impl Path {
    /// The top-level attribute the path starts at.
    pub fn root(&self) -> &str {
        match &self.0[0] {
            Step::Attr(name) => name,
            Step::Index(_) => unreachable!("paths start with a name"),
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub enum Operand {
    Path(Path),
    Value(Value),
    Size(Path),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cmp {
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Cond {
    Compare(Operand, Cmp, Operand),
    Between(Operand, Operand, Operand),
    In(Operand, Vec<Operand>),
    Exists(Path),
    NotExists(Path),
    Type(Path, Operand),
    BeginsWith(Operand, Operand),
    Contains(Operand, Operand),
    And(Box<Cond>, Box<Cond>),
    Or(Box<Cond>, Box<Cond>),
    Not(Box<Cond>),
}

#[derive(Debug, Clone, PartialEq)]
pub enum Term {
    Operand(Operand),
    IfNotExists(Path, Box<Term>),
    ListAppend(Box<Term>, Box<Term>),
}

#[derive(Debug, Clone, PartialEq)]
pub enum SetValue {
    Term(Term),
    Plus(Term, Term),
    Minus(Term, Term),
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct Update {
    pub set: Vec<(Path, SetValue)>,
    pub remove: Vec<Path>,
    pub add: Vec<(Path, Operand)>,
    pub delete: Vec<(Path, Operand)>,
}

impl Cond {
    /// The top-level attributes the condition reads.
    pub fn roots(&self) -> Vec<&str> {
        fn operand<'a>(op: &'a Operand, out: &mut Vec<&'a str>) {
            match op {
                Operand::Path(p) | Operand::Size(p) => out.push(p.root()),
                Operand::Value(_) => {}
            }
        }
        fn walk<'a>(cond: &'a Cond, out: &mut Vec<&'a str>) {
            match cond {
                Cond::Compare(a, _, b) | Cond::BeginsWith(a, b) | Cond::Contains(a, b) => {
                    operand(a, out);
                    operand(b, out);
                }
                Cond::Between(a, b, c) => [a, b, c].into_iter().for_each(|o| operand(o, out)),
                Cond::In(a, list) => std::iter::once(a).chain(list).for_each(|o| operand(o, out)),
                Cond::Exists(p) | Cond::NotExists(p) => out.push(p.root()),
                Cond::Type(p, t) => {
                    out.push(p.root());
                    operand(t, out);
                }
                Cond::And(a, b) | Cond::Or(a, b) => {
                    walk(a, out);
                    walk(b, out);
                }
                Cond::Not(a) => walk(a, out),
            }
        }
        let mut out = Vec::new();
        walk(self, &mut out);
        out
    }
}

impl Update {
    /// Every path the update writes.
    pub fn targets(&self) -> impl Iterator<Item = &Path> {
        self.set
            .iter()
            .map(|(p, _)| p)
            .chain(&self.remove)
            .chain(self.add.iter().map(|(p, _)| p))
            .chain(self.delete.iter().map(|(p, _)| p))
    }
}
