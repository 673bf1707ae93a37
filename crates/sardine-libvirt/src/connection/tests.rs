//! Unit tests for the libvirt connection (test driver).

use super::*;
use crate::DomainXml;

#[test]
fn placeholder_parses() {
    assert!(DomainXml::parse("<domain/>").is_ok());
}
