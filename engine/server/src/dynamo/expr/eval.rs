//! Evaluating expressions against an item: conditions, updates and projections.

use std::cmp::Ordering;

use super::{Cmp, Cond, Operand, Path, SetValue, Step, Term, Update};
use crate::dynamo::error::DynamoError;
use crate::dynamo::value::{Item, Number, Value};

/// The value at `path` in `item`, if there is one.
pub fn resolve<'a>(item: &'a Item, path: &Path) -> Option<&'a Value> {
    let mut steps = path.0.iter();
    let mut at = item.get(path.root())?;
    steps.next();
    for step in steps {
        at = match (step, at) {
            (Step::Attr(name), Value::M(map)) => map.get(name)?,
            (Step::Index(i), Value::L(list)) => list.get(*i)?,
            _ => return None,
        };
    }
    Some(at)
}

fn operand(item: &Item, op: &Operand) -> Result<Option<Value>, DynamoError> {
    Ok(match op {
        Operand::Value(v) => Some(v.clone()),
        Operand::Path(p) => resolve(item, p).cloned(),
        Operand::Size(p) => match resolve(item, p) {
            None => None,
            Some(v) => {
                let size = match v {
                    Value::S(s) => s.chars().count(),
                    Value::B(b) => b.len(),
                    Value::L(l) => l.len(),
                    Value::M(m) => m.len(),
                    Value::Ss(s) => s.len(),
                    Value::Ns(n) => n.len(),
                    Value::Bs(b) => b.len(),
                    other => {
                        return Err(DynamoError::validation(format!(
                            "Invalid ConditionExpression: Incorrect operand type for operator or function; operator or function: size, operand type: {}",
                            other.type_name()
                        )));
                    }
                };
                Some(Value::N(Number::parse(&size.to_string())?))
            }
        },
    })
}

fn ordered(a: &Value, b: &Value) -> Option<Ordering> {
    a.compare(b)
}

/// Whether `cond` holds for `item` (an absent item is the empty item).
pub fn evaluate(cond: &Cond, item: &Item) -> Result<bool, DynamoError> {
    Ok(match cond {
        Cond::And(a, b) => evaluate(a, item)? && evaluate(b, item)?,
        Cond::Or(a, b) => evaluate(a, item)? || evaluate(b, item)?,
        Cond::Not(a) => !evaluate(a, item)?,
        Cond::Exists(p) => resolve(item, p).is_some(),
        Cond::NotExists(p) => resolve(item, p).is_none(),
        Cond::Compare(a, cmp, b) => {
            let (a, b) = (operand(item, a)?, operand(item, b)?);
            match (cmp, a, b) {
                (Cmp::Eq, Some(a), Some(b)) => a == b,
                (Cmp::Ne, a, b) => a != b,
                (_, Some(a), Some(b)) => match ordered(&a, &b) {
                    None => false,
                    Some(order) => match cmp {
                        Cmp::Lt => order == Ordering::Less,
                        Cmp::Le => order != Ordering::Greater,
                        Cmp::Gt => order == Ordering::Greater,
                        Cmp::Ge => order != Ordering::Less,
                        Cmp::Eq | Cmp::Ne => unreachable!("handled above"),
                    },
                },
                _ => false,
            }
        }
        Cond::Between(a, low, high) => {
            let (Some(a), Some(low), Some(high)) =
                (operand(item, a)?, operand(item, low)?, operand(item, high)?)
            else {
                return Ok(false);
            };
            if ordered(&low, &high) == Some(Ordering::Greater) {
                return Err(DynamoError::validation(
                    "Invalid expression: The BETWEEN operator requires upper bound to be greater than or equal to lower bound",
                ));
            }
            matches!(ordered(&a, &low), Some(Ordering::Greater | Ordering::Equal))
                && matches!(ordered(&a, &high), Some(Ordering::Less | Ordering::Equal))
        }
        Cond::In(a, list) => {
            let Some(a) = operand(item, a)? else { return Ok(false) };
            for candidate in list {
                if operand(item, candidate)?.as_ref() == Some(&a) {
                    return Ok(true);
                }
            }
            false
        }
        Cond::Type(p, t) => {
            let Some(Value::S(wanted)) = operand(item, t)? else {
                return Err(DynamoError::validation(
                    "Invalid ConditionExpression: attribute_type takes a string type name",
                ));
            };
            const TYPES: [&str; 10] = ["S", "N", "B", "BOOL", "NULL", "L", "M", "SS", "NS", "BS"];
            if !TYPES.contains(&wanted.as_str()) {
                return Err(DynamoError::validation(format!(
                    "Invalid ConditionExpression: Invalid attribute type name found; type: {wanted}, valid types: {{B,NULL,SS,BOOL,L,BS,N,NS,S,M}}"
                )));
            }
            resolve(item, p).is_some_and(|v| v.type_name() == wanted)
        }
        Cond::BeginsWith(a, prefix) => match (operand(item, a)?, operand(item, prefix)?) {
            (Some(Value::S(a)), Some(Value::S(p))) => a.starts_with(&p),
            (Some(Value::B(a)), Some(Value::B(p))) => a.starts_with(&p),
            _ => false,
        },
        Cond::Contains(a, needle) => match (operand(item, a)?, operand(item, needle)?) {
            (Some(Value::S(a)), Some(Value::S(n))) => a.contains(&n),
            (Some(Value::B(a)), Some(Value::B(n))) => {
                n.is_empty() || a.windows(n.len()).any(|w| w == n.as_slice())
            }
            (Some(Value::Ss(set)), Some(Value::S(n))) => set.contains(&n),
            (Some(Value::Ns(set)), Some(Value::N(n))) => set.contains(&n),
            (Some(Value::Bs(set)), Some(Value::B(n))) => set.contains(&n),
            (Some(Value::L(list)), Some(n)) => list.contains(&n),
            _ => false,
        },
    })
}

fn invalid_update(why: impl std::fmt::Display) -> DynamoError {
    DynamoError::validation(format!("Invalid UpdateExpression: {why}"))
}

fn term(item: &Item, t: &Term) -> Result<Value, DynamoError> {
    match t {
        Term::Operand(op) => operand(item, op)?.ok_or_else(|| {
            DynamoError::validation(
                "The provided expression refers to an attribute that does not exist in the item",
            )
        }),
        Term::IfNotExists(path, fallback) => match resolve(item, path) {
            Some(v) => Ok(v.clone()),
            None => term(item, fallback),
        },
        Term::ListAppend(a, b) => match (term(item, a)?, term(item, b)?) {
            (Value::L(mut a), Value::L(b)) => {
                a.extend(b);
                Ok(Value::L(a))
            }
            _ => Err(invalid_update(
                "Incorrect operand type for operator or function; operator or function: list_append",
            )),
        },
    }
}

fn arithmetic(a: Value, b: Value, plus: bool) -> Result<Value, DynamoError> {
    let (Value::N(a), Value::N(b)) = (a, b) else {
        return Err(invalid_update(format!(
            "Incorrect operand type for operator or function; operator: {}, operand type: not N",
            if plus { "+" } else { "-" }
        )));
    };
    let sum = if plus { a.decimal() + b.decimal() } else { a.decimal() - b.decimal() };
    Ok(Value::N(Number::from_decimal(sum)?))
}

fn set_value(item: &Item, v: &SetValue) -> Result<Value, DynamoError> {
    match v {
        SetValue::Term(t) => term(item, t),
        SetValue::Plus(a, b) => arithmetic(term(item, a)?, term(item, b)?, true),
        SetValue::Minus(a, b) => arithmetic(term(item, a)?, term(item, b)?, false),
    }
}

/// The slot a path names, creating nothing: the container and the last step.
fn parent_mut<'a>(item: &'a mut Item, path: &'a Path) -> Option<(&'a mut Value, &'a Step)> {
    let (last, middle) = path.0[1..].split_last()?;
    let mut at = item.get_mut(path.root())?;
    for step in middle {
        at = match (step, at) {
            (Step::Attr(name), Value::M(map)) => map.get_mut(name)?,
            (Step::Index(i), Value::L(list)) => list.get_mut(*i)?,
            _ => return None,
        };
    }
    Some((at, last))
}

fn assign(item: &mut Item, path: &Path, value: Value) -> Result<(), DynamoError> {
    if path.0.len() == 1 {
        item.insert(path.root().to_owned(), value);
        return Ok(());
    }
    let invalid = || {
        DynamoError::validation(
            "The document path provided in the update expression is invalid for update",
        )
    };
    match parent_mut(item, path).ok_or_else(invalid)? {
        (Value::M(map), Step::Attr(name)) => {
            map.insert(name.clone(), value);
        }
        (Value::L(list), Step::Index(i)) => {
            if *i < list.len() {
                list[*i] = value;
            } else {
                list.push(value);
            }
        }
        _ => return Err(invalid()),
    }
    Ok(())
}

fn remove(item: &mut Item, path: &Path) {
    if path.0.len() == 1 {
        item.remove(path.root());
        return;
    }
    match parent_mut(item, path) {
        Some((Value::M(map), Step::Attr(name))) => {
            map.remove(name);
        }
        Some((Value::L(list), Step::Index(i))) if *i < list.len() => {
            list.remove(*i);
        }
        _ => {}
    }
}

fn overlaps(a: &Path, b: &Path) -> bool {
    a.0.iter().zip(&b.0).all(|(x, y)| x == y)
}

/// Applies `update` to `item`. Every operand reads the item as it was before the update.
pub fn apply_update(
    item: &mut Item,
    update: &Update,
    key_names: &[&str],
) -> Result<(), DynamoError> {
    let targets: Vec<&Path> = update.targets().collect();
    for (i, a) in targets.iter().enumerate() {
        if key_names.contains(&a.root()) {
            return Err(DynamoError::validation(format!(
                "One or more parameter values were invalid: Cannot update attribute {}. This attribute is part of the key",
                a.root()
            )));
        }
        if targets[i + 1..].iter().any(|b| overlaps(a, b)) {
            return Err(invalid_update("Two document paths overlap with each other"));
        }
    }
    let before = item.clone();
    for (path, value) in &update.set {
        let value = set_value(&before, value)?;
        assign(item, path, value)?;
    }
    for (path, value) in &update.add {
        let Some(value) = operand(&before, value)? else { continue };
        let current = resolve(&before, path).cloned();
        let updated = match (current, value) {
            (None, v @ (Value::N(_) | Value::Ss(_) | Value::Ns(_) | Value::Bs(_))) => v,
            (Some(a @ Value::N(_)), b @ Value::N(_)) => arithmetic(a, b, true)?,
            (Some(Value::Ss(mut a)), Value::Ss(b)) => {
                a.extend(b);
                Value::Ss(sorted_unique(a))
            }
            (Some(Value::Ns(mut a)), Value::Ns(b)) => {
                a.extend(b);
                Value::Ns(sorted_unique(a))
            }
            (Some(Value::Bs(mut a)), Value::Bs(b)) => {
                a.extend(b);
                Value::Bs(sorted_unique(a))
            }
            _ => {
                return Err(invalid_update(
                    "Incorrect operand type for operator or function; operator: ADD",
                ));
            }
        };
        assign(item, path, updated)?;
    }
    for (path, value) in &update.delete {
        let Some(value) = operand(&before, value)? else { continue };
        let updated = match (resolve(&before, path).cloned(), value) {
            (None, Value::Ss(_) | Value::Ns(_) | Value::Bs(_)) => continue,
            (Some(Value::Ss(a)), Value::Ss(b)) => {
                Some(Value::Ss(a.into_iter().filter(|x| !b.contains(x)).collect()))
            }
            (Some(Value::Ns(a)), Value::Ns(b)) => {
                Some(Value::Ns(a.into_iter().filter(|x| !b.contains(x)).collect()))
            }
            (Some(Value::Bs(a)), Value::Bs(b)) => {
                Some(Value::Bs(a.into_iter().filter(|x| !b.contains(x)).collect()))
            }
            _ => {
                return Err(invalid_update(
                    "Incorrect operand type for operator or function; operator: DELETE",
                ));
            }
        };
        match updated {
            Some(Value::Ss(s)) if s.is_empty() => remove(item, path),
            Some(Value::Ns(s)) if s.is_empty() => remove(item, path),
            Some(Value::Bs(s)) if s.is_empty() => remove(item, path),
            Some(v) => assign(item, path, v)?,
            None => {}
        }
    }
    // Remove list elements from the highest index down so earlier removals do not shift later
    // ones.
    let mut removals: Vec<&Path> = update.remove.iter().collect();
    removals.sort_by(|a, b| b.0.len().cmp(&a.0.len()).then_with(|| index_of(b).cmp(&index_of(a))));
    for path in removals {
        remove(item, path);
    }
    Ok(())
}

fn index_of(path: &Path) -> usize {
    match path.0.last() {
        Some(Step::Index(i)) => *i,
        _ => 0,
    }
}

pub(crate) fn sorted_unique<T: Ord>(mut v: Vec<T>) -> Vec<T> {
    v.sort();
    v.dedup();
    v
}

/// The item cut down to `paths` (ProjectionExpression).
pub fn project(item: &Item, paths: &[Path]) -> Item {
    let mut out = Item::new();
    for path in paths {
        let Some(value) = resolve(item, path) else { continue };
        let mut tree = value.clone();
        // Rebuild the path's containers from the leaf up; list positions are kept in order.
        for step in path.0[1..].iter().rev() {
            tree = match step {
                Step::Attr(name) => Value::M(Item::from([(name.clone(), tree)])),
                Step::Index(_) => Value::L(vec![tree]),
            };
        }
        merge_into(out.entry(path.root().to_owned()).or_insert(Value::Null), tree);
    }
    out
}

fn merge_into(slot: &mut Value, tree: Value) {
    match (slot, tree) {
        (Value::M(existing), Value::M(new)) => {
            for (k, v) in new {
                match existing.get_mut(&k) {
                    Some(slot) => merge_into(slot, v),
                    None => {
                        existing.insert(k, v);
                    }
                }
            }
        }
        (Value::L(existing), Value::L(new)) => existing.extend(new),
        (slot, tree) => *slot = tree,
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;
    use crate::dynamo::expr::{Placeholders, parse_condition, parse_projection, parse_update};

    fn item(json: &str) -> Item {
        serde_json::from_str(json).unwrap()
    }

    fn values(json: &str) -> Placeholders {
        let values: HashMap<String, Value> = serde_json::from_str(json).unwrap();
        Placeholders::new(None, Some(values))
    }

    #[test]
    fn conditions_follow_dynamodb_semantics() {
        let it = item(
            r#"{"n":{"N":"5"},"s":{"S":"hello"},"tags":{"SS":["a","b"]},"l":{"L":[{"N":"1"}]},"m":{"M":{"x":{"S":"y"}}}}"#,
        );
        let ph = values(
            r#"{":five":{"N":"5"},":two":{"N":"2"},":ten":{"N":"10"},":he":{"S":"he"},":a":{"S":"a"},":one":{"N":"1"},":t":{"S":"SS"},":y":{"S":"y"}}"#,
        );
        let check = |text: &str| evaluate(&parse_condition(text, &ph).unwrap(), &it).unwrap();
        assert!(check("n = :five AND n BETWEEN :two AND :ten"));
        assert!(check("n > :two AND n >= :five AND n < :ten AND n <= :five"));
        assert!(!check("s = :five"), "different types are never equal");
        assert!(!check("s < :five"), "different types do not order");
        assert!(check("missing <> :five"), "an absent attribute differs from every value");
        assert!(!check("missing = :five"));
        assert!(check("begins_with(s, :he) AND contains(s, :he) AND contains(tags, :a)"));
        assert!(check("contains(l, :one) AND m.x = :y AND l[0] = :one"));
        assert!(check("attribute_type(tags, :t) AND size(s) = :five AND n IN (:two, :five)"));
        assert!(check("attribute_exists(m.x) AND attribute_not_exists(m.z) AND NOT s = :he"));
        let between = parse_condition("n BETWEEN :ten AND :two", &ph).unwrap();
        assert!(evaluate(&between, &it).is_err(), "reversed bounds are an error");
    }

    #[test]
    fn updates_read_the_old_item_and_apply_every_clause() {
        let mut it = item(
            r#"{"id":{"S":"k"},"n":{"N":"5"},"l":{"L":[{"N":"0"},{"N":"1"},{"N":"2"}]},"s":{"SS":["a","b"]},"d":{"SS":["a","z"]},"m":{"M":{}}}"#,
        );
        let ph = values(
            r#"{":one":{"N":"1"},":more":{"L":[{"N":"3"}]},":a":{"SS":["a"]},":c":{"SS":["c"]},":x":{"S":"x"}}"#,
        );
        let update = parse_update(
            "SET n = n + :one, m.inner = :x, fresh = if_not_exists(fresh, :one), l = list_append(l, :more) REMOVE l[0], l[2] ADD s :c, counter :one DELETE d :a",
            &ph,
        );
        // l is both SET and REMOVEd: paths overlap.
        assert!(apply_update(&mut it.clone(), &update.unwrap(), &["id"]).is_err());
        let update = parse_update("SET n = n + :one, m.inner = :x, fresh = if_not_exists(fresh, :one) REMOVE l[0], l[2] ADD s :c, counter :one DELETE d :a", &ph).unwrap();
        apply_update(&mut it, &update, &["id"]).unwrap();
        let expected = item(
            r#"{"id":{"S":"k"},"n":{"N":"6"},"l":{"L":[{"N":"1"}]},"s":{"SS":["a","b","c"]},"d":{"SS":["z"]},"m":{"M":{"inner":{"S":"x"}}},"fresh":{"N":"1"},"counter":{"N":"1"}}"#,
        );
        assert_eq!(it, expected);
        let key_update = parse_update("SET id = :x", &values(r#"{":x":{"S":"x"}}"#)).unwrap();
        assert!(apply_update(&mut it, &key_update, &["id"]).is_err(), "keys cannot change");
        let nested = parse_update("SET nope.deeper = :x", &values(r#"{":x":{"S":"x"}}"#)).unwrap();
        assert!(apply_update(&mut it, &nested, &["id"]).is_err(), "the parent must exist");
    }

    #[test]
    fn projections_keep_only_named_paths() {
        let it = item(
            r#"{"a":{"S":"1"},"b":{"M":{"c":{"N":"2"},"d":{"N":"3"}}},"l":{"L":[{"S":"x"},{"S":"y"}]}}"#,
        );
        let paths = parse_projection("a, b.c, l[1], missing", &Placeholders::default()).unwrap();
        assert_eq!(
            project(&it, &paths),
            item(r#"{"a":{"S":"1"},"b":{"M":{"c":{"N":"2"}}},"l":{"L":[{"S":"y"}]}}"#)
        );
    }
}
