//! Lists, maps and sets: go-cty's `collection.go`, `sequence.go` and
//! `set.go`, and buildx's `indexof`. hcl-rs has no set type: a set is a
//! list without duplicates in go-cty's order (strings sorted, numbers by
//! value), which is how buildx prints one.

use hcl::eval::{FuncArgs, FuncDef};
use hcl::Value;

use super::{
    equal, fixed, integer, list, number, object, sorted_object, string, to_string, type_name, unify, unify_strict,
    variadic, Result,
};

/// go-cty's `coalesce`: the first argument that is not null (an empty
/// string counts), converted to the arguments' common type.
pub(super) fn coalesce() -> FuncDef {
    variadic(0, |a| {
        let values = unify(a.to_vec());
        let kinds: std::collections::BTreeSet<&str> = values.iter().filter(|v| !v.is_null()).map(type_name).collect();
        if kinds.len() > 1 {
            return Err("all arguments must have the same type".into());
        }
        values.into_iter().find(|v| !v.is_null()).ok_or_else(|| "no non-null arguments".to_string())
    })
}

/// The first list argument that is not empty.
pub(super) fn coalescelist() -> FuncDef {
    variadic(0, |a| {
        if a.is_empty() {
            return Err("at least one argument is required".into());
        }
        for value in a.iter() {
            // An untyped null is not a list to go-cty either.
            match value {
                Value::Array(items) if items.is_empty() => {}
                Value::Array(_) => return Ok(value.clone()),
                _ => return Err("coalescelist arguments must be lists or tuples".into()),
            }
        }
        Err("no non-null arguments".into())
    })
}

/// Drops nulls and empty strings from a list of strings.
pub(super) fn compact() -> FuncDef {
    fixed(1, |a| {
        let mut out = Vec::new();
        for item in list(&a, 0)? {
            if item.is_null() {
                continue;
            }
            let text = to_string(&item)?;
            if !text.is_empty() {
                out.push(Value::from(text));
            }
        }
        Ok(Value::Array(out))
    })
}

pub(super) fn concat() -> FuncDef {
    variadic(0, |a| {
        if a.is_empty() {
            return Err("at least one argument is required".into());
        }
        let mut out = Vec::new();
        for i in 0..a.len() {
            out.extend(list(&a, i).map_err(|_| {
                format!("all arguments must be lists or tuples; argument {} is {}", i + 1, type_name(&a[i]))
            })?);
        }
        Ok(Value::Array(out))
    })
}

pub(super) fn contains() -> FuncDef {
    fixed(2, |a| match &a[0] {
        Value::Array(items) => Ok(Value::Bool(unify(items.clone()).iter().any(|v| equal(v, &a[1])))),
        Value::Null => Err("cannot search a nil list or set".into()),
        _ => Err("argument must be list, tuple, or set".into()),
    })
}

/// The list without repeated elements, first occurrences kept.
pub(super) fn distinct() -> FuncDef {
    fixed(1, |a| {
        let mut out: Vec<Value> = Vec::new();
        for item in unify_strict(list(&a, 0)?)? {
            if !out.iter().any(|v| equal(v, &item)) {
                out.push(item);
            }
        }
        Ok(Value::Array(out))
    })
}

/// `element(list, index)`: the index wraps around, negative ones from the end.
pub(super) fn element() -> FuncDef {
    fixed(2, |a| {
        let items = match &a[0] {
            Value::Array(items) => items.clone(),
            other => return Err(format!("cannot read elements from {}", type_name(other))),
        };
        let index = integer(&a, 1).map_err(|e| format!("invalid index: {e}"))?;
        if items.is_empty() {
            return Err("cannot use element function with an empty list".into());
        }
        Ok(items[index.rem_euclid(items.len() as i64) as usize].clone())
    })
}

/// Lists of lists into one list, at any depth.
pub(super) fn flatten() -> FuncDef {
    fixed(1, |a| {
        fn flat(items: Vec<Value>, out: &mut Vec<Value>) {
            for item in items {
                match item {
                    Value::Array(inner) => flat(inner, out),
                    other => out.push(other),
                }
            }
        }
        let items = list(&a, 0).map_err(|_| "can only flatten lists, sets and tuples".to_string())?;
        let mut out = Vec::new();
        flat(items, &mut out);
        Ok(Value::Array(out))
    })
}

/// `hasindex(list, index)`. go-cty also takes maps, but an HCL `{...}` is
/// an object, which it refuses; fbuild has no other kind, so it refuses
/// them all, as buildx does for every map a bake file can write.
pub(super) fn hasindex() -> FuncDef {
    fixed(2, |a| match &a[0] {
        Value::Array(items) => {
            Ok(Value::Bool(super::to_integer(&a[1]).is_ok_and(|i| i >= 0 && (i as usize) < items.len())))
        }
        _ => Err("collection must be a list, a map or a tuple".into()),
    })
}

/// `index(list, index)`: a list's element (objects refused, as in
/// [`hasindex`]).
pub(super) fn index() -> FuncDef {
    fixed(2, |a| match &a[0] {
        Value::Array(items) => {
            let i = integer(&a, 1).map_err(|_| "key for list must be number".to_string())?;
            usize::try_from(i).ok().and_then(|i| items.get(i)).cloned().ok_or_else(|| "invalid index".to_string())
        }
        _ => Err("collection must be a list, a map or a tuple".into()),
    })
}

/// buildx's `indexof(list, value)`: where the value first is.
pub(super) fn indexof() -> FuncDef {
    fixed(2, |a| {
        let Value::Array(items) = &a[0] else { return Err("argument must be a list or tuple".into()) };
        if items.is_empty() {
            return Err("cannot search an empty list".into());
        }
        items.iter().position(|v| equal(v, &a[1])).map(Value::from).ok_or_else(|| "item not found".to_string())
    })
}

pub(super) fn keys() -> FuncDef {
    fixed(1, |a| {
        let map = object(&a, 0).map_err(|_| "must have map or object type".to_string())?;
        let mut keys: Vec<String> = map.keys().cloned().collect();
        keys.sort();
        Ok(Value::Array(keys.into_iter().map(Value::from).collect()))
    })
}

/// The values of a map, in the order of its sorted keys.
pub(super) fn values() -> FuncDef {
    fixed(1, |a| {
        let map = object(&a, 0).map_err(|_| "values() requires a map as the first argument".to_string())?;
        let mut entries: Vec<(String, Value)> = map.into_iter().collect();
        entries.sort_by(|x, y| x.0.cmp(&y.0));
        Ok(Value::Array(entries.into_iter().map(|(_, v)| v).collect()))
    })
}

/// The number of elements of a list. go-cty refuses strings (`strlen`
/// counts those) and objects, which every `{...}` of a bake file is, so
/// `length(keys(m))` is the portable way to count a map's keys.
pub(super) fn length() -> FuncDef {
    fixed(1, |a| match &a[0] {
        Value::Array(items) => Ok(Value::from(items.len())),
        Value::Null => Err("argument must not be null".into()),
        Value::Object(_) => {
            Err("collection must be a list, a map or a tuple (for an object, use length(keys(...)))".into())
        }
        _ => Err("collection must be a list, a map or a tuple".into()),
    })
}

/// `lookup(map, key, default)`: the default when the key is missing
/// (buildx requires the default).
pub(super) fn lookup() -> FuncDef {
    fixed(3, |a| {
        let map = match &a[0] {
            Value::Object(map) => map,
            _ => return Err("lookup() requires a map as the first argument".into()),
        };
        let key = string(&a, 1)?;
        match (map.get(&key), a.get(2)) {
            (Some(value), _) => Ok(value.clone()),
            (None, Some(default)) => Ok(default.clone()),
            (None, None) => Err(format!("the given object has no attribute {key:?}")),
        }
    })
}

/// Maps merged left to right (later keys win); nulls are skipped.
pub(super) fn merge() -> FuncDef {
    variadic(0, |a| {
        let mut out: Vec<(String, Value)> = Vec::new();
        for value in a.iter() {
            match value {
                Value::Object(map) => {
                    for (k, v) in map {
                        out.retain(|(key, _)| key != k);
                        out.push((k.clone(), v.clone()));
                    }
                }
                Value::Null => {}
                other => return Err(format!("arguments must be maps or objects, got {:?}", type_name(other))),
            }
        }
        Ok(sorted_object(out))
    })
}

/// `range([start,] limit [, step])`: at most 1024 numbers.
pub(super) fn range() -> FuncDef {
    variadic(0, |a| {
        let nums: Vec<f64> = (0..a.len()).map(|i| super::float(&a, i)).collect::<Result<_>>()?;
        let all_int = (0..a.len()).all(|i| number(&a, i).is_ok_and(|n| !n.is_f64()));
        let (start, end, step) = match nums.as_slice() {
            [end] => (0.0, *end, if *end < 0.0 { -1.0 } else { 1.0 }),
            [start, end] => (*start, *end, if end < start { -1.0 } else { 1.0 }),
            [start, end, step] => (*start, *end, *step),
            _ => return Err("must have one, two, or three arguments".into()),
        };
        if step == 0.0 {
            return Err("step must not be zero".into());
        }
        if step < 0.0 && end > start {
            return Err("end must be less than start when step is negative".into());
        }
        if step > 0.0 && end < start {
            return Err("end must be greater than start when step is positive".into());
        }
        let mut out = Vec::new();
        let mut n = start;
        while (step > 0.0 && n < end) || (step < 0.0 && n > end) {
            if out.len() >= 1024 {
                return Err("more than 1024 values were generated; either decrease the difference between start and end or use a smaller step".into());
            }
            out.push(if all_int { Value::from(n as i64) } else { super::float_value(n)? });
            n += step;
        }
        Ok(Value::Array(out))
    })
}

pub(super) fn reverselist() -> FuncDef {
    fixed(1, |a| match &a[0] {
        Value::Array(items) => Ok(Value::Array(items.iter().rev().cloned().collect())),
        other => Err(format!("can only reverse list or tuple values, not {}", type_name(other))),
    })
}

/// `slice(list, start, end)`: elements `start` up to, not including, `end`.
pub(super) fn slice() -> FuncDef {
    fixed(3, |a| {
        let Value::Array(items) = &a[0] else { return Err("must be a list or tuple value".into()) };
        let start = integer(&a, 1).map_err(|e| format!("invalid start index: {e}"))?;
        let end = integer(&a, 2).map_err(|e| format!("invalid end index: {e}"))?;
        let len = items.len() as i64;
        if start < 0 {
            return Err("start index must not be less than zero".into());
        }
        if start > len {
            return Err("start index must not be greater than the length of the list".into());
        }
        if end < 0 {
            return Err("end index must not be less than zero".into());
        }
        if end > len {
            return Err("end index must not be greater than the length of the list".into());
        }
        if start > end {
            return Err("start index must not be greater than end index".into());
        }
        Ok(Value::Array(items[start as usize..end as usize].to_vec()))
    })
}

/// A list of strings in lexical (byte) order.
pub(super) fn sort() -> FuncDef {
    fixed(1, |a| {
        let mut texts = Vec::new();
        for (i, item) in list(&a, 0)?.iter().enumerate() {
            if item.is_null() {
                return Err(format!("given list element {i} is null; a null string cannot be sorted"));
            }
            texts.push(to_string(item)?);
        }
        texts.sort();
        Ok(Value::Array(texts.into_iter().map(Value::from).collect()))
    })
}

/// `zipmap(keys, values)`: a map from two lists of one length.
pub(super) fn zipmap() -> FuncDef {
    fixed(2, |a| {
        let keys = list(&a, 0)?;
        let values = list(&a, 1).map_err(|_| "values argument must be a list or tuple value".to_string())?;
        if keys.len() != values.len() {
            return Err(format!("number of keys ({}) does not match number of values ({})", keys.len(), values.len()));
        }
        let mut out = Vec::new();
        for (i, (key, value)) in keys.iter().zip(values).enumerate() {
            if key.is_null() {
                return Err(format!("keys list has null value at index {i}"));
            }
            out.push((to_string(key)?, value));
        }
        Ok(sorted_object(out))
    })
}

/// `chunklist(list, size)`: consecutive pieces of `size` elements; size 0
/// gives the whole list as one piece.
pub(super) fn chunklist() -> FuncDef {
    fixed(2, |a| {
        let items = list(&a, 0)?;
        let size = integer(&a, 1).map_err(|e| format!("invalid size: {e}"))?;
        if size < 0 {
            return Err("the size argument must be positive".into());
        }
        if items.is_empty() {
            return Ok(Value::Array(Vec::new()));
        }
        if size == 0 {
            return Ok(Value::Array(vec![Value::Array(items)]));
        }
        Ok(Value::Array(items.chunks(size as usize).map(|c| Value::Array(c.to_vec())).collect()))
    })
}

/// A set as go-cty orders one: unified elements, duplicates dropped,
/// numbers by value, strings (and anything else, by its JSON) lexically.
fn set(items: Vec<Value>) -> Result<Vec<Value>> {
    let mut out: Vec<Value> = Vec::new();
    for item in unify_strict(items)? {
        if !out.iter().any(|v| equal(v, &item)) {
            out.push(item);
        }
    }
    out.sort_by(|x, y| match (x, y) {
        (Value::Number(a), Value::Number(b)) => {
            a.as_f64().partial_cmp(&b.as_f64()).unwrap_or(std::cmp::Ordering::Equal)
        }
        (Value::String(a), Value::String(b)) => a.cmp(b),
        (Value::Bool(a), Value::Bool(b)) => a.cmp(b),
        _ => serde_json::to_string(x).unwrap_or_default().cmp(&serde_json::to_string(y).unwrap_or_default()),
    });
    Ok(out)
}

fn sets(args: &FuncArgs) -> Result<Vec<Vec<Value>>> {
    (0..args.len()).map(|i| list(args, i).and_then(set)).collect()
}

pub(super) fn sethaselement() -> FuncDef {
    fixed(2, |a| Ok(Value::Bool(set(list(&a, 0)?)?.iter().any(|v| equal(v, &a[1])))))
}

pub(super) fn setunion() -> FuncDef {
    variadic(1, |a| Ok(Value::Array(set(sets(&a)?.concat())?)))
}

pub(super) fn setintersection() -> FuncDef {
    variadic(1, |a| {
        let all = sets(&a)?;
        let first = set(all.concat())?.into_iter().filter(|v| all.iter().all(|s| s.iter().any(|w| equal(v, w))));
        Ok(Value::Array(first.collect()))
    })
}

pub(super) fn setsubtract() -> FuncDef {
    fixed(2, |a| {
        let all = sets(&a)?;
        let both = set(all.concat())?;
        Ok(Value::Array(
            both.into_iter()
                .filter(|v| all[0].iter().any(|w| equal(v, w)) && !all[1].iter().any(|w| equal(v, w)))
                .collect(),
        ))
    })
}

pub(super) fn setsymmetricdifference() -> FuncDef {
    variadic(1, |a| {
        let all = sets(&a)?;
        let everything = set(all.concat())?;
        Ok(Value::Array(
            everything
                .into_iter()
                .filter(|v| all.iter().filter(|s| s.iter().any(|w| equal(v, w))).count() % 2 == 1)
                .collect(),
        ))
    })
}

/// Every combination of one element from each list, in order.
pub(super) fn setproduct() -> FuncDef {
    variadic(0, |a| {
        if a.len() < 2 {
            return Err("at least two arguments are required".into());
        }
        let lists: Vec<Vec<Value>> = (0..a.len())
            .map(|i| list(&a, i).map_err(|_| format!("argument {}: a set or a list is required", i + 1)))
            .collect::<Result<_>>()?;
        let mut out: Vec<Vec<Value>> = vec![Vec::new()];
        for items in &lists {
            out = out
                .into_iter()
                .flat_map(|prefix| {
                    items.iter().map(move |item| {
                        let mut next = prefix.clone();
                        next.push(item.clone());
                        next
                    })
                })
                .collect();
        }
        Ok(Value::Array(out.into_iter().map(Value::Array).collect()))
    })
}

/// A list as the set go-cty would make of it (for `convert(..., set(...))`).
pub(super) fn as_set(value: Value) -> Result<Value> {
    match value {
        Value::Array(items) => Ok(Value::Array(set(items)?)),
        other => Err(format!("set required, got {}", type_name(&other))),
    }
}
