//! Unit tests for the sanitiser.

use super::*;
use crate::DomainXml;

#[test]
fn placeholder_parses() {
    assert!(DomainXml::parse("<domain/>").is_ok());
}
