//! Errors of loading and resolving an inventory, each naming the file, VM, image or variable.

use std::path::PathBuf;

use crate::format::FormatError;

/// What can go wrong with an inventory.
#[derive(Debug, thiserror::Error)]
pub enum InventoryError {
    /// A file could not be read.
    #[error("reading {}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// The registry path is not a valid glob, or matches nothing.
    #[error("{what}")]
    Glob {
        /// What is wrong.
        what: String,
    },
    /// A file is not YAML, or not what the registry format allows.
    #[error("{origin}: {what}")]
    Invalid {
        /// The file (or `the merged registry`, `VM x`).
        origin: String,
        /// What is wrong, with its line where known.
        what: String,
    },
    /// A name that nothing in the registry has.
    #[error("no {kind} is called {name}{}", context.as_ref().map(|c| format!(" ({c})")).unwrap_or_default())]
    NotFound {
        /// `VM`, `node`, `image`, `template`.
        kind: &'static str,
        /// The name.
        name: String,
        /// Who asked for it.
        context: Option<String>,
    },
    /// No tag pattern of an image matches the tag.
    #[error("image {image}: no tag pattern matches the tag {tag:?}")]
    NoTag {
        /// The image.
        image: String,
        /// The tag.
        tag: String,
    },
    /// Templates inherit from each other in a circle.
    #[error("templates inherit from each other in a cycle: {}", .0.join(" -> "))]
    TemplateCycle(Vec<String>),
    /// A variable could not be expanded.
    #[error("{origin}: {source}")]
    Format {
        /// Where (`VM vm1`, `image debian tag 12`).
        origin: String,
        /// What.
        #[source]
        source: FormatError,
    },
}

impl InventoryError {
    /// What to do about it.
    pub fn hint(&self) -> Option<&'static str> {
        Some(match self {
            InventoryError::Glob { .. } => {
                "give --registry a file or a glob such as 'registry/**/*.yaml' (or set VMP_REGISTRY)"
            }
            InventoryError::Invalid { .. } => {
                "docs/inventory.md describes the registry format (vm-provisioner-libvirt's)"
            }
            InventoryError::NotFound { .. } => {
                "`sarde inventory list` shows the VMs; check the names of nodes, images and templates"
            }
            InventoryError::NoTag { .. } => "add a tag pattern that matches it, or use another tag",
            InventoryError::TemplateCycle(_) => "one of them must not inherit",
            InventoryError::Format { .. } => {
                "define the variable in the node's, image's or VM's vars, or write {{ }} for literal braces"
            }
            InventoryError::Read { .. } => return None,
        })
    }
}
