//! Changes a user asks for when starting a throwaway VM (`sarde run`): a kernel command line, a
//! host directory shared into the guest (virtiofs), an extra disk, and the serial console's log.
//!
//! These come from the person at the keyboard, not from an image, so the sanitiser's policy
//! does not apply to them: they are applied to a clone after its base VM passed it.

use xmltree::{Element, XMLNode};

use super::DomainXml;
use crate::xml::{
    attr, child, children, children_mut, ensure_child, is_named, new_element, remove_children,
    set_text,
};

impl DomainXml {
    /// Sets `<os><cmdline>` (the kernel's command line of a direct kernel boot).
    pub fn set_cmdline(&mut self, cmdline: &str) {
        let os = ensure_child(&mut self.root, "os");
        set_text(ensure_child(os, "cmdline"), cmdline);
    }

    /// Shares the host directory `source` (absolute) into the guest with virtiofs under the
    /// mount tag `tag` (`mount -t virtiofs TAG DIR` in the guest). libvirt starts a
    /// `virtiofsd` for it; guest memory becomes shared (`memfd`), which virtiofs needs. Files
    /// keep their owners (`accessmode='passthrough'`). libvirt's virtiofs has no read-only
    /// mode: a read-only share is mounted so by the guest.
    pub fn add_host_share(&mut self, source: &str, tag: &str) {
        let backing = ensure_child(&mut self.root, "memoryBacking");
        remove_children(backing, "source");
        remove_children(backing, "access");
        push(backing, new_element("source", &[("type", "memfd")]));
        push(backing, new_element("access", &[("mode", "shared")]));
        let mut share = new_element(
            "filesystem",
            &[("type", "mount"), ("accessmode", "passthrough")],
        );
        push(&mut share, new_element("driver", &[("type", "virtiofs")]));
        push(&mut share, new_element("source", &[("dir", source)]));
        push(&mut share, new_element("target", &[("dir", tag)]));
        push(ensure_child(&mut self.root, "devices"), share);
    }

    /// Adds the file `path` (absolute, of format `format`) as a virtio disk, read-only when
    /// `readonly`; returns its target device name (`vdb`, `vdc`, … the first one free).
    pub fn add_disk_file(&mut self, path: &str, format: &str, readonly: bool) -> String {
        let used: Vec<String> = self.disks().into_iter().filter_map(|d| d.target).collect();
        let dev = (b'b'..=b'z')
            .map(|letter| format!("vd{}", char::from(letter)))
            .find(|name| !used.contains(name))
            .unwrap_or_else(|| format!("vd{}", used.len() + 1));
        let mut disk = new_element("disk", &[("type", "file"), ("device", "disk")]);
        push(
            &mut disk,
            new_element("driver", &[("name", "qemu"), ("type", format)]),
        );
        push(&mut disk, new_element("source", &[("file", path)]));
        push(
            &mut disk,
            new_element("target", &[("dev", &dev), ("bus", "virtio")]),
        );
        if readonly {
            push(&mut disk, Element::new("readonly"));
        }
        push(ensure_child(&mut self.root, "devices"), disk);
        dev
    }

    /// Writes what the guest prints on its first serial port to the file `path` (truncated at
    /// start): the serial port becomes a pty (also what `virsh console` attaches to) with a
    /// `<log>`, and one is added when the domain has none.
    pub fn set_console_log(&mut self, path: &str) {
        let devices = ensure_child(&mut self.root, "devices");
        let has_serial = children(devices, "serial").next().is_some();
        if !has_serial {
            let mut serial = new_element("serial", &[("type", "pty")]);
            push(&mut serial, new_element("target", &[("port", "0")]));
            push(devices, serial);
        }
        if let Some(serial) = children_mut(devices, "serial").next() {
            serial.attributes.clear();
            serial.attributes.insert("type".into(), "pty".into());
            serial.children.retain(|node| {
                node.as_element()
                    .is_some_and(|e| is_named(e, "target") || is_named(e, "alias"))
            });
            push(
                serial,
                new_element("log", &[("file", path), ("append", "off")]),
            );
        }
        // A <console> that names a file or another source would compete with the serial port.
        for console in children_mut(devices, "console") {
            if attr(console, "type") != Some("pty") {
                console.attributes.clear();
                console.attributes.insert("type".into(), "pty".into());
                remove_children(console, "source");
            }
        }
    }

    /// The shared host directories: `(source dir, tag)`.
    pub fn host_shares(&self) -> Vec<(String, String)> {
        let Some(devices) = self.devices() else {
            return Vec::new();
        };
        children(devices, "filesystem")
            .map(|fs| {
                let of = |name: &str, key: &str| {
                    child(fs, name)
                        .and_then(|e| attr(e, key))
                        .unwrap_or_default()
                        .to_owned()
                };
                (of("source", "dir"), of("target", "dir"))
            })
            .collect()
    }
}

fn push(parent: &mut Element, element: Element) {
    parent.children.push(XMLNode::Element(element));
}

#[cfg(test)]
mod tests {
    use crate::DomainXml;

    const DOMAIN: &str = "<domain type='qemu'><name>t</name><os><type>hvm</type>\
        <kernel>/k</kernel><cmdline>console=ttyS0</cmdline></os><devices>\
        <disk type='file' device='disk'><source file='/a.qcow2'/><target dev='vda' bus='virtio'/></disk>\
        <serial type='file'><source path='/old.log'/><target port='0'/></serial>\
        <console type='file'><source path='/old.log'/></console>\
        </devices></domain>";

    #[test]
    fn cmdline_is_replaced() {
        let mut domain = DomainXml::parse(DOMAIN).unwrap();
        domain.set_cmdline("console=ttyS0 quiet sarde=1");
        let xml = domain.to_xml().unwrap();
        assert!(
            xml.contains("<cmdline>console=ttyS0 quiet sarde=1</cmdline>"),
            "{xml}"
        );
        assert_eq!(xml.matches("<cmdline>").count(), 1);
    }

    #[test]
    fn shares_and_disks_are_added_with_free_targets() {
        let mut domain = DomainXml::parse(DOMAIN).unwrap();
        domain.add_host_share("/srv/data", "host0");
        assert_eq!(domain.add_disk_file("/x.raw", "raw", true), "vdb");
        assert_eq!(domain.add_disk_file("/y.qcow2", "qcow2", false), "vdc");
        assert_eq!(
            domain.host_shares(),
            vec![("/srv/data".to_owned(), "host0".to_owned())]
        );
        let xml = domain.to_xml().unwrap();
        assert!(xml.contains("<source type=\"memfd\""), "{xml}");
        assert!(xml.contains("<driver type=\"virtiofs\""), "{xml}");
        let disks = domain.disks();
        assert_eq!(disks.len(), 3);
        assert!(disks[1].readonly && !disks[2].readonly);
        assert_eq!(disks[2].driver_type.as_deref(), Some("qcow2"));
        // What was added survives a round trip through the text.
        let again = DomainXml::parse(&domain.to_xml().unwrap()).unwrap();
        assert_eq!(again.disks().len(), 3);
        assert_eq!(again.host_shares().len(), 1);
    }

    #[test]
    fn console_log_turns_the_serial_port_into_a_logged_pty() {
        let mut domain = DomainXml::parse(DOMAIN).unwrap();
        domain.set_console_log("/run/c.log");
        let xml = domain.to_xml().unwrap();
        assert!(xml.contains("<serial type=\"pty\">"), "{xml}");
        assert!(
            xml.contains("<log file=\"/run/c.log\" append=\"off\""),
            "{xml}"
        );
        assert!(!xml.contains("/old.log"), "{xml}");
        let mut bare = DomainXml::parse("<domain><name>b</name><devices/></domain>").unwrap();
        bare.set_console_log("/l");
        assert!(bare.to_xml().unwrap().contains("<target port=\"0\""));
    }
}
