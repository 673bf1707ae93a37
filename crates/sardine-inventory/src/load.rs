//! Reading a registry: one file, stdin, or a glob (`registry/**/*.yaml`) whose files are read
//! in sorted order and merged ([`crate::merge`]) into one document, then checked.

use std::io::Read as _;
use std::path::{Path, PathBuf};

use serde_json::{Map, Value};

use crate::error::InventoryError;
use crate::merge::strategic_merge;
use crate::model::Registry;

/// Reads the registry at `path` (a file or a glob), or from stdin when `None`.
pub fn load(path: Option<&str>) -> Result<Registry, InventoryError> {
    let merged = match path {
        Some(pattern) => load_glob(pattern)?,
        None => {
            let mut text = String::new();
            std::io::stdin()
                .read_to_string(&mut text)
                .map_err(|source| InventoryError::Read {
                    path: PathBuf::from("-"),
                    source,
                })?;
            parse_document(&text, "stdin")?
        }
    };
    typed(merged, "the merged registry")
}

/// The files a glob names, sorted, merged.
fn load_glob(pattern: &str) -> Result<Map<String, Value>, InventoryError> {
    let paths = glob::glob(pattern).map_err(|e| InventoryError::Glob {
        what: format!("{pattern:?} is not a valid glob: {e}"),
    })?;
    let mut files: Vec<PathBuf> = paths
        .filter_map(Result::ok)
        .filter(|p| p.is_file())
        .collect();
    files.sort();
    if files.is_empty() {
        return Err(InventoryError::Glob {
            what: format!("no registry file matches {pattern:?}"),
        });
    }
    let mut merged = Map::new();
    for file in files {
        let document = load_file(&file)?;
        merged = strategic_merge(&merged, &document);
    }
    Ok(merged)
}

/// One registry file's document (checked only once merged: a file may add to another's items).
pub fn load_file(path: &Path) -> Result<Map<String, Value>, InventoryError> {
    let text = fs_err::read_to_string(path).map_err(|e| InventoryError::Read {
        path: path.to_path_buf(),
        source: e,
    })?;
    let origin = path.display().to_string();
    parse_document(&text, &origin)
}

/// A YAML document that is a map (empty documents are empty maps).
pub fn parse_document(text: &str, origin: &str) -> Result<Map<String, Value>, InventoryError> {
    let value: Value = yaml_serde::from_str(text).map_err(|e| InventoryError::Invalid {
        origin: origin.to_owned(),
        what: e.to_string(),
    })?;
    match value {
        Value::Object(map) => Ok(map),
        Value::Null => Ok(Map::new()),
        _ => Err(InventoryError::Invalid {
            origin: origin.to_owned(),
            what: "the document is not a map of nodes, images, templates and vms".into(),
        }),
    }
}

/// The document as a [`Registry`] (unknown keys refused).
fn typed(document: Map<String, Value>, origin: &str) -> Result<Registry, InventoryError> {
    let registry: Registry =
        serde_json::from_value(Value::Object(document)).map_err(|e| InventoryError::Invalid {
            origin: origin.to_owned(),
            what: e.to_string(),
        })?;
    for (kind, list) in [("template", &registry.templates), ("VM", &registry.vms)] {
        if let Some(unnamed) = list
            .iter()
            .position(|t| !matches!(t.get("name"), Some(Value::String(_))))
        {
            return Err(InventoryError::Invalid {
                origin: origin.to_owned(),
                what: format!("{kind} {} has no name", unnamed + 1),
            });
        }
    }
    Ok(registry)
}
