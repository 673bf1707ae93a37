//! Python's `str.format_map`, as vm-provisioner-libvirt expands `{NAME}` in its registry:
//! `{NAME}` is replaced by the value of `NAME`, `{{` and `}}` stand for `{` and `}`. Field
//! names with attributes, indexes, conversions or format specs (`{a.b}`, `{a!r}`, `{a:>3}`) are
//! refused: no registry of vmp's needs them.

/// What went wrong expanding a string.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FormatError {
    /// A `{NAME}` whose name has no value.
    #[error("unresolved variable {{{0}}}")]
    Unknown(String),
    /// A `{` without its `}`, or a single `}`.
    #[error("unbalanced braces in {0:?} (write {{{{ and }}}} for literal braces)")]
    Unbalanced(String),
    /// A field that is more than a name.
    #[error("{{{0}}} is not a plain variable name")]
    Unsupported(String),
    /// Variables that refer to each other.
    #[error("variables refer to each other in a cycle: {}", .0.join(" -> "))]
    Cycle(Vec<String>),
}

/// Expands `text`, looking each name up with `lookup` (which may fail, e.g. on a cycle).
pub fn format_with(
    text: &str,
    lookup: &mut dyn FnMut(&str) -> Result<Option<String>, FormatError>,
) -> Result<String, FormatError> {
    let mut out = String::with_capacity(text.len());
    let mut chars = text.char_indices().peekable();
    while let Some((at, c)) = chars.next() {
        match c {
            '{' if matches!(chars.peek(), Some((_, '{'))) => {
                chars.next();
                out.push('{');
            }
            '{' => {
                let rest = &text[at + 1..];
                let end = rest
                    .find('}')
                    .ok_or_else(|| FormatError::Unbalanced(text.to_owned()))?;
                let name = &rest[..end];
                if name.is_empty() || !name.chars().all(|c| c.is_alphanumeric() || c == '_') {
                    return Err(FormatError::Unsupported(name.to_owned()));
                }
                let value = lookup(name)?.ok_or_else(|| FormatError::Unknown(name.to_owned()))?;
                out.push_str(&value);
                for _ in 0..=name.chars().count() {
                    chars.next();
                }
            }
            '}' if matches!(chars.peek(), Some((_, '}'))) => {
                chars.next();
                out.push('}');
            }
            '}' => return Err(FormatError::Unbalanced(text.to_owned())),
            c => out.push(c),
        }
    }
    Ok(out)
}

/// Expands `text` with the values of `vars` (not themselves expanded).
pub fn format_map(
    text: &str,
    vars: &std::collections::BTreeMap<String, String>,
) -> Result<String, FormatError> {
    format_with(text, &mut |name| Ok(vars.get(name).cloned()))
}

/// Every variable expanded with the others, recursively, as vmp's `RecursiveMapping` does; a
/// variable that (through others) refers to itself is an error.
pub fn expand_vars(
    vars: &std::collections::BTreeMap<String, String>,
) -> Result<std::collections::BTreeMap<String, String>, FormatError> {
    let mut done = std::collections::BTreeMap::new();
    for key in vars.keys() {
        expand_one(key, vars, &mut done, &mut Vec::new())?;
    }
    Ok(done)
}

fn expand_one(
    key: &str,
    vars: &std::collections::BTreeMap<String, String>,
    done: &mut std::collections::BTreeMap<String, String>,
    path: &mut Vec<String>,
) -> Result<Option<String>, FormatError> {
    if let Some(value) = done.get(key) {
        return Ok(Some(value.clone()));
    }
    let Some(raw) = vars.get(key) else {
        return Ok(None);
    };
    if path.iter().any(|p| p == key) {
        let mut cycle = path.clone();
        cycle.push(key.to_owned());
        return Err(FormatError::Cycle(cycle));
    }
    path.push(key.to_owned());
    let value = format_with(raw, &mut |name| expand_one(name, vars, done, path))?;
    path.pop();
    done.insert(key.to_owned(), value.clone());
    Ok(Some(value))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    fn vars(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn formats_as_python_does() {
        let v = vars(&[("A", "1"), ("B", "two")]);
        assert_eq!(format_map("x{A}y{B}", &v).unwrap(), "x1ytwo");
        assert_eq!(format_map("{{A}} {A}", &v).unwrap(), "{A} 1");
        assert_eq!(format_map("a}}b", &v).unwrap(), "a}b");
        assert_eq!(format_map("{C}", &v), Err(FormatError::Unknown("C".into())));
        assert!(matches!(
            format_map("{A", &v),
            Err(FormatError::Unbalanced(_))
        ));
        assert!(matches!(
            format_map("a}b", &v),
            Err(FormatError::Unbalanced(_))
        ));
        assert!(matches!(
            format_map("{A:>3}", &v),
            Err(FormatError::Unsupported(_))
        ));
        assert_eq!(format_map("é{A}ü", &v).unwrap(), "é1ü");
    }

    #[test]
    fn expands_recursively_and_finds_cycles() {
        let v = vars(&[
            ("DIR", "{BASE}/images"),
            ("BASE", "/srv/{NAME}"),
            ("NAME", "vm1"),
        ]);
        assert_eq!(expand_vars(&v).unwrap()["DIR"], "/srv/vm1/images");
        let cyclic = vars(&[("A", "{B}"), ("B", "{A}")]);
        assert_eq!(
            expand_vars(&cyclic),
            Err(FormatError::Cycle(vec!["A".into(), "B".into(), "A".into()]))
        );
    }
}
