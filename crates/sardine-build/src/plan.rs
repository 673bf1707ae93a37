//! Which images a build makes, in which order: the images asked for (all by default) and the
//! parents of the file they derive from, parents first. Duplicate names, unknown `-i` names and
//! cycles are errors before any work.

use std::collections::HashMap;

use crate::error::BuildError;
use crate::spec::{BuildFile, Origin};

/// The images to build, parents before children (indices into `file.images`).
pub fn order(file: &BuildFile, wanted: &[String]) -> Result<Vec<usize>, BuildError> {
    let mut index = HashMap::new();
    for (i, image) in file.images.iter().enumerate() {
        if index.insert(image.name.as_str(), i).is_some() {
            return Err(BuildError::Duplicate {
                file: file.path.clone(),
                image: image.name.clone(),
            });
        }
    }
    let roots: Vec<usize> = if wanted.is_empty() {
        (0..file.images.len()).collect()
    } else {
        wanted
            .iter()
            .map(|name| {
                index
                    .get(name.as_str())
                    .copied()
                    .ok_or_else(|| BuildError::NoSuchImage {
                        file: file.path.clone(),
                        image: name.clone(),
                    })
            })
            .collect::<Result<_, _>>()?
    };
    let mut state = vec![Mark::New; file.images.len()];
    let mut order = Vec::new();
    for root in roots {
        visit(file, &index, root, &mut state, &mut Vec::new(), &mut order)?;
    }
    Ok(order)
}

#[derive(Clone, Copy, PartialEq)]
enum Mark {
    New,
    Visiting,
    Done,
}

/// Depth-first: parents first; `path` is the chain being visited (for the cycle's message).
fn visit(
    file: &BuildFile,
    index: &HashMap<&str, usize>,
    at: usize,
    state: &mut [Mark],
    path: &mut Vec<usize>,
    order: &mut Vec<usize>,
) -> Result<(), BuildError> {
    match state[at] {
        Mark::Done => return Ok(()),
        Mark::Visiting => {
            let start = path.iter().position(|&i| i == at).unwrap_or(0);
            let mut cycle: Vec<String> = path[start..]
                .iter()
                .map(|&i| file.images[i].name.clone())
                .collect();
            cycle.push(file.images[at].name.clone());
            return Err(BuildError::Cycle { cycle });
        }
        Mark::New => {}
    }
    state[at] = Mark::Visiting;
    path.push(at);
    if let Some(parent) = parent_in_file(file, index, at) {
        visit(file, index, parent, state, path, order)?;
    }
    path.pop();
    state[at] = Mark::Done;
    order.push(at);
    Ok(())
}

/// The index of the image's parent if it is an image of the file.
pub fn parent_in_file(file: &BuildFile, index: &HashMap<&str, usize>, at: usize) -> Option<usize> {
    match &file.images[at].origin {
        Origin::Parent(name) => index.get(name.as_str()).copied(),
        Origin::Debian(_) => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    fn file(text: &str) -> BuildFile {
        crate::yaml::parse(text, Path::new("b.yaml")).unwrap()
    }

    #[test]
    fn parents_come_first_and_only_what_is_needed() {
        let f = file(
            "images:\n - {name: c, parent: b}\n - {name: b, parent: a}\n - {name: a, from: 'debian:sid'}\n - {name: x, from: 'debian:sid'}\n",
        );
        assert_eq!(order(&f, &[]).unwrap(), [2, 1, 0, 3]);
        assert_eq!(order(&f, &["b".into()]).unwrap(), [2, 1]);
        let error = order(&f, &["nope".into()]).unwrap_err().to_string();
        assert_eq!(error, "b.yaml: no image is called nope");
    }

    #[test]
    fn cycles_and_duplicates_are_errors() {
        let f = file(
            "images:\n - {name: a, parent: b}\n - {name: b, parent: c}\n - {name: c, parent: a}\n",
        );
        let error = order(&f, &[]).unwrap_err().to_string();
        assert_eq!(
            error,
            "images derive from each other in a cycle: a -> b -> c -> a"
        );
        let f =
            file("images:\n - {name: a, from: 'debian:sid'}\n - {name: a, from: 'debian:sid'}\n");
        assert!(
            order(&f, &[])
                .unwrap_err()
                .to_string()
                .contains("two images are called a")
        );
    }
}
