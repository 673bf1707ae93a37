//! Small helpers over `xmltree` elements that only ever match libvirt's own (namespace-less) elements.
//!
//! `xmltree`'s own `get_child` matches by local name and would happily return `<qemu:name>` for
//! `name`; everything in this crate goes through these helpers instead.

use xmltree::{Element, XMLNode};

/// Whether `element` is the libvirt element `name` (same local name, no namespace).
pub(crate) fn is_named(element: &Element, name: &str) -> bool {
    element.name == name && element.namespace.is_none()
}

/// The first libvirt child element called `name`.
pub(crate) fn child<'a>(parent: &'a Element, name: &str) -> Option<&'a Element> {
    elements(parent).find(|e| is_named(e, name))
}

/// The first libvirt child element called `name`, mutably.
pub(crate) fn child_mut<'a>(parent: &'a mut Element, name: &str) -> Option<&'a mut Element> {
    parent
        .children
        .iter_mut()
        .filter_map(XMLNode::as_mut_element)
        .find(|e| is_named(e, name))
}

/// All libvirt child elements called `name`, in document order.
pub(crate) fn children<'a>(
    parent: &'a Element,
    name: &'a str,
) -> impl Iterator<Item = &'a Element> {
    elements(parent).filter(move |e| is_named(e, name))
}

/// All libvirt child elements called `name`, in document order, mutably.
pub(crate) fn children_mut<'a>(
    parent: &'a mut Element,
    name: &'a str,
) -> impl Iterator<Item = &'a mut Element> {
    parent
        .children
        .iter_mut()
        .filter_map(XMLNode::as_mut_element)
        .filter(move |e| is_named(e, name))
}

/// All child elements (any name, any namespace).
pub(crate) fn elements(parent: &Element) -> impl Iterator<Item = &Element> {
    parent.children.iter().filter_map(XMLNode::as_element)
}

/// Removes every libvirt child element called `name`; returns how many were removed.
pub(crate) fn remove_children(parent: &mut Element, name: &str) -> usize {
    let before = parent.children.len();
    parent
        .children
        .retain(|node| !node.as_element().is_some_and(|e| is_named(e, name)));
    before - parent.children.len()
}

/// Removes libvirt elements called `name` anywhere below `parent`.
pub(crate) fn remove_descendants(parent: &mut Element, name: &str) {
    remove_children(parent, name);
    for node in &mut parent.children {
        if let XMLNode::Element(e) = node {
            remove_descendants(e, name);
        }
    }
}

/// The first libvirt child called `name`, appended when missing.
pub(crate) fn ensure_child<'a>(parent: &'a mut Element, name: &str) -> &'a mut Element {
    let position = parent
        .children
        .iter()
        .position(|node| node.as_element().is_some_and(|e| is_named(e, name)));
    let index = match position {
        Some(index) => index,
        None => {
            parent.children.push(XMLNode::Element(Element::new(name)));
            parent.children.len() - 1
        }
    };
    match &mut parent.children[index] {
        XMLNode::Element(e) => e,
        _ => unreachable!("index points at the element found or pushed above"),
    }
}

/// The element's text and CDATA content, concatenated (child elements are skipped).
pub(crate) fn text(element: &Element) -> String {
    element
        .children
        .iter()
        .filter_map(|node| match node {
            XMLNode::Text(t) | XMLNode::CData(t) => Some(t.as_str()),
            _ => None,
        })
        .collect()
}

/// The element's text, trimmed, or `None` when it is empty.
pub(crate) fn non_empty_text(element: &Element) -> Option<String> {
    let text = text(element);
    let trimmed = text.trim();
    (!trimmed.is_empty()).then(|| trimmed.to_owned())
}

/// Replaces the element's text and CDATA content with `value`, keeping child elements.
pub(crate) fn set_text(element: &mut Element, value: &str) {
    element
        .children
        .retain(|node| !matches!(node, XMLNode::Text(_) | XMLNode::CData(_)));
    if !value.is_empty() {
        element.children.insert(0, XMLNode::Text(value.to_owned()));
    }
}

/// An attribute's value.
pub(crate) fn attr<'a>(element: &'a Element, name: &str) -> Option<&'a str> {
    element.attributes.get(name).map(String::as_str)
}

/// Sets an attribute (keeping its position when it exists).
pub(crate) fn set_attr(element: &mut Element, name: &str, value: &str) {
    element.attributes.insert(name.to_owned(), value.to_owned());
}

/// Removes an attribute, keeping the order of the others.
pub(crate) fn remove_attr(element: &mut Element, name: &str) {
    element.attributes.shift_remove(name);
}

/// A new element with the given attributes.
pub(crate) fn new_element(name: &str, attributes: &[(&str, &str)]) -> Element {
    let mut element = Element::new(name);
    for (key, value) in attributes {
        set_attr(&mut element, key, value);
    }
    element
}
