//! Pure edits and look-ups on an `index.json` [`Index`]: tag resolution and tag replacement.

use crate::manifest::{Descriptor, Index};
use crate::media_types::ANNOTATION_REF_NAME;
use crate::reference::sha256_hex;

/// The tag used when a reference has neither tag nor digest.
pub(crate) const DEFAULT_TAG: &str = "latest";

/// Why a look-up found nothing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Miss {
    /// No entry carries the tag.
    Tag,
    /// No entry has the digest.
    Digest,
    /// The index has no usable entry.
    Empty,
}

/// Entries with a usable sha256 digest (entries without one are ignored, never fatal).
fn usable(index: &Index) -> impl DoubleEndedIterator<Item = &Descriptor> {
    index
        .manifests
        .iter()
        .filter(|d| sha256_hex(&d.digest).is_some())
}

/// The 0.4.2 selection rules: a digest selects the entry with that digest (preferring one that
/// also carries `tag`); a tag selects the *last* entry with it; neither selects the last entry
/// tagged `latest`, or else the last entry.
pub(crate) fn resolve<'a>(
    index: &'a Index,
    tag: Option<&str>,
    digest: Option<&str>,
) -> Result<&'a Descriptor, Miss> {
    if let Some(digest) = digest {
        let matching: Vec<&Descriptor> = usable(index).filter(|d| d.digest == digest).collect();
        let tagged = tag.and_then(|tag| matching.iter().rev().find(|d| d.ref_name() == Some(tag)));
        return tagged.or(matching.last()).copied().ok_or(Miss::Digest);
    }
    if let Some(tag) = tag {
        return usable(index)
            .rev()
            .find(|d| d.ref_name() == Some(tag))
            .ok_or(Miss::Tag);
    }
    usable(index)
        .rev()
        .find(|d| d.ref_name() == Some(DEFAULT_TAG))
        .or_else(|| usable(index).next_back())
        .ok_or(Miss::Empty)
}

/// Points `tag` (or, with None, an untagged entry) at `new`, returning whether the index changed.
///
/// With a tag, every entry carrying it is removed, as is any untagged entry for the same digest,
/// and one entry is appended (last, so 0.4.2's "last match" rule agrees with skopeo's "first
/// match"). Without a tag, an entry is appended only if no entry has that digest yet.
pub(crate) fn set_tag(index: &mut Index, new: Descriptor, tag: Option<&str>) -> bool {
    let Some(tag) = tag else {
        if index.manifests.iter().any(|d| d.digest == new.digest) {
            return false;
        }
        index.manifests.push(new);
        return true;
    };
    let carrying: Vec<&Descriptor> = index
        .manifests
        .iter()
        .filter(|d| d.ref_name() == Some(tag))
        .collect();
    let untagged_same = index
        .manifests
        .iter()
        .any(|d| d.digest == new.digest && d.ref_name().is_none());
    if let [only] = carrying.as_slice()
        && only.digest == new.digest
        && only.size == new.size
        && !untagged_same
    {
        return false;
    }
    index.manifests.retain(|d| {
        d.ref_name() != Some(tag) && !(d.digest == new.digest && d.ref_name().is_none())
    });
    let mut entry = new;
    entry.set_annotation(ANNOTATION_REF_NAME, tag);
    index.manifests.push(entry);
    true
}

/// Removes every entry tagged `tag`; whether any was removed.
pub(crate) fn remove_tag(index: &mut Index, tag: &str) -> bool {
    let before = index.manifests.len();
    index.manifests.retain(|d| d.ref_name() != Some(tag));
    index.manifests.len() != before
}

/// Removes every entry for `digest`; whether any was removed.
pub(crate) fn remove_digest(index: &mut Index, digest: &str) -> bool {
    let before = index.manifests.len();
    index.manifests.retain(|d| d.digest != digest);
    index.manifests.len() != before
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::media_types::OCI_MANIFEST;

    fn digest(n: u8) -> String {
        format!("sha256:{}", format!("{n:02x}").repeat(32))
    }

    fn entry(n: u8, tag: Option<&str>) -> Descriptor {
        let mut d = Descriptor::new(OCI_MANIFEST, &digest(n), 100 + u64::from(n));
        if let Some(tag) = tag {
            d.set_annotation(ANNOTATION_REF_NAME, tag);
        }
        d
    }

    fn index_of(entries: Vec<Descriptor>) -> Index {
        Index {
            manifests: entries,
            ..Index::new()
        }
    }

    fn tags(index: &Index) -> Vec<(Option<String>, String)> {
        index
            .manifests
            .iter()
            .map(|d| (d.ref_name().map(str::to_owned), d.digest.clone()))
            .collect()
    }

    #[test]
    fn resolves_like_0_4_2_with_duplicate_tags() {
        // An index.json as 0.4.2 leaves it after exporting twice to :latest and once to :v1.
        let index = index_of(vec![
            entry(1, Some("latest")),
            entry(2, Some("v1")),
            entry(3, Some("latest")),
            entry(4, None),
        ]);
        assert_eq!(
            resolve(&index, Some("latest"), None).unwrap().digest,
            digest(3)
        );
        assert_eq!(resolve(&index, Some("v1"), None).unwrap().digest, digest(2));
        assert_eq!(resolve(&index, None, None).unwrap().digest, digest(3));
        assert_eq!(
            resolve(&index, None, Some(&digest(1))).unwrap().digest,
            digest(1)
        );
        assert_eq!(resolve(&index, Some("nope"), None), Err(Miss::Tag));
        assert_eq!(resolve(&index, None, Some(&digest(9))), Err(Miss::Digest));
    }

    #[test]
    fn resolve_without_latest_takes_last_and_skips_broken_entries() {
        let mut broken = entry(5, Some("latest"));
        broken.digest = String::new();
        let index = index_of(vec![entry(1, Some("a")), entry(2, None), broken]);
        assert_eq!(resolve(&index, None, None).unwrap().digest, digest(2));
        assert_eq!(resolve(&index_of(vec![]), None, None), Err(Miss::Empty));
    }

    #[test]
    fn digest_with_tag_prefers_the_tagged_entry() {
        let index = index_of(vec![
            entry(1, Some("a")),
            entry(1, Some("b")),
            entry(1, None),
        ]);
        assert_eq!(
            resolve(&index, Some("a"), Some(&digest(1)))
                .unwrap()
                .ref_name(),
            Some("a")
        );
        assert_eq!(
            resolve(&index, None, Some(&digest(1))).unwrap().ref_name(),
            None
        );
    }

    #[test]
    fn retagging_replaces_and_cleans_duplicates() {
        let mut index = index_of(vec![
            entry(1, Some("latest")),
            entry(2, Some("v1")),
            entry(3, Some("latest")),
            entry(4, None),
        ]);
        assert!(set_tag(&mut index, entry(4, None), Some("latest")));
        assert_eq!(
            tags(&index),
            vec![
                (Some("v1".into()), digest(2)),
                (Some("latest".into()), digest(4))
            ]
        );
        assert!(
            !set_tag(&mut index, entry(4, None), Some("latest")),
            "unchanged re-tag must not rewrite"
        );
        assert!(set_tag(&mut index, entry(2, None), Some("latest")));
        assert_eq!(
            tags(&index),
            vec![
                (Some("v1".into()), digest(2)),
                (Some("latest".into()), digest(2))
            ]
        );
    }

    #[test]
    fn untagged_entries_are_unique_per_digest() {
        let mut index = index_of(vec![entry(1, Some("a"))]);
        assert!(!set_tag(&mut index, entry(1, None), None));
        assert!(set_tag(&mut index, entry(2, None), None));
        assert!(!set_tag(&mut index, entry(2, None), None));
        assert_eq!(index.manifests.len(), 2);
    }

    #[test]
    fn removes_tags_and_digests() {
        let mut index = index_of(vec![
            entry(1, Some("a")),
            entry(1, Some("b")),
            entry(2, Some("a")),
        ]);
        assert!(remove_tag(&mut index, "a"));
        assert!(!remove_tag(&mut index, "a"));
        assert_eq!(tags(&index), vec![(Some("b".into()), digest(1))]);
        assert!(remove_digest(&mut index, &digest(1)));
        assert!(index.manifests.is_empty());
    }
}
