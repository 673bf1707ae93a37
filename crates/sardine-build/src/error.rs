//! Errors of builds, each saying what failed, on which file, image and step.

use std::path::PathBuf;

use sardine_vm::ImageError;

/// What can go wrong reading a build file or building its images.
#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    /// The file is not valid YAML or JSON, or does not follow the schema.
    #[error("{}: {what}", file.display())]
    Syntax {
        /// The build file.
        file: PathBuf,
        /// What is wrong, with its line where known.
        what: String,
    },
    /// An image's definition is wrong.
    #[error("{}: image {image}: {what}", file.display())]
    Invalid {
        /// The build file.
        file: PathBuf,
        /// The image.
        image: String,
        /// What is wrong.
        what: String,
    },
    /// Two images of the file have the same name.
    #[error("{}: two images are called {image}", file.display())]
    Duplicate {
        /// The build file.
        file: PathBuf,
        /// The name.
        image: String,
    },
    /// `-i` named an image the file does not have.
    #[error("{}: no image is called {image}", file.display())]
    NoSuchImage {
        /// The build file.
        file: PathBuf,
        /// The name asked for.
        image: String,
    },
    /// A parent is neither an image of the file nor one sarde can find.
    #[error(
        "image {image}: its parent {parent} is neither an image of the build file nor an image sarde can get"
    )]
    MissingParent {
        /// The image.
        image: String,
        /// Its parent as written.
        parent: String,
        /// Why the store or registry did not have it.
        #[source]
        source: Box<ImageError>,
    },
    /// Images derive from each other in a circle.
    #[error("images derive from each other in a cycle: {}", cycle.join(" -> "))]
    Cycle {
        /// The images of the cycle, the first again at the end.
        cycle: Vec<String>,
    },
    /// A host program the build needs is missing.
    #[error("`{program}` is not installed (image {image} needs it for {purpose})")]
    MissingProgram {
        /// The program.
        program: String,
        /// The Debian package that has it.
        package: String,
        /// The image.
        image: String,
        /// What for.
        purpose: String,
    },
    /// Offline builds mount file systems and chroot into them.
    #[error(
        "building image {image} without booting needs root (it mounts and chroots into its file system)"
    )]
    NeedsRoot {
        /// The image.
        image: String,
    },
    /// A step of an image's build failed.
    #[error("image {image}: {step} failed: {what}{}", if output.is_empty() { String::new() } else { format!("\n{output}") })]
    Step {
        /// The image.
        image: String,
        /// The step (`action 2 (run-command)`, `mmdebstrap`).
        step: String,
        /// How it failed.
        what: String,
        /// The end of its output.
        output: String,
    },
    /// A file of the build could not be read or written.
    #[error("{what} {}", path.display())]
    Io {
        /// What was done (`reading`, `writing`).
        what: &'static str,
        /// The file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// Exporting the built image, or getting its parent, failed.
    #[error(transparent)]
    Image(Box<ImageError>),
}

impl From<ImageError> for BuildError {
    fn from(error: ImageError) -> BuildError {
        BuildError::Image(Box::new(error))
    }
}

impl BuildError {
    /// What to do about it, where there is something to say.
    pub fn hint(&self) -> Option<String> {
        Some(match self {
            BuildError::MissingProgram { package, .. } => {
                format!("install it (`apt install {package}`)")
            }
            BuildError::NeedsRoot { .. } => "run the build as root (e.g. with sudo)".into(),
            BuildError::MissingParent { .. } => {
                "name an image of the file, or an image of the local store or a registry".into()
            }
            BuildError::Cycle { .. } => "make one of them a root image (`from:`)".into(),
            BuildError::Step { .. } => {
                "nothing was kept of this image; fix the step and build again (-v shows every command's output)".into()
            }
            BuildError::Syntax { .. } | BuildError::Invalid { .. } => {
                "docs/build.md describes the build file".into()
            }
            BuildError::Image(error) => return sardine_vm::hint_of(error.as_ref()),
            _ => return None,
        })
    }

    /// An I/O error on `path`.
    pub(crate) fn io(
        what: &'static str,
        path: impl Into<PathBuf>,
    ) -> impl FnOnce(std::io::Error) -> BuildError {
        let path = path.into();
        move |source| BuildError::Io { what, path, source }
    }
}
