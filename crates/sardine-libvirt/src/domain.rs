//! The libvirt domain XML as an editable tree.
//!
//! [`DomainXml`] parses a `<domain>` document, offers the few queries and edits sardinecake needs
//! (name, UUID, disks, boot files, interfaces, export anonymisation, clone rewriting) and
//! serialises everything else unchanged: unknown elements, attributes, comments and namespaced
//! elements such as `<qemu:commandline>` survive a round trip (attribute *prefixes* do not: the
//! tree keeps attributes by local name, so `foo:bar="x"` is written back as `bar="x"`; libvirt's
//! schema has no prefixed attributes, and the sanitiser judges exactly what is written).
//!
//! Fixes over sardinecake 0.4.2: [`DomainXml::set_name`] always renames (W22), the anonymiser
//! removes host-specific state (W3, W22: nvram paths, seclabels, log files, listen addresses) and
//! [`DomainXml::randomize_macs`] gives every interface its own MAC (W18).

use std::collections::HashSet;

use xmltree::{Element, EmitterConfig, ParserConfig, XMLNode};

use crate::xml::{
    attr, child, child_mut, children, children_mut, ensure_child, is_named, new_element,
    non_empty_text, remove_attr, remove_children, remove_descendants, set_attr, set_text,
};

/// The largest domain XML accepted, in bytes. Real domains are a few KiB.
pub const MAX_DOMAIN_XML_BYTES: usize = 1024 * 1024;

/// Why a domain XML could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum DomainError {
    /// The document is larger than [`MAX_DOMAIN_XML_BYTES`].
    #[error(
        "the domain XML is {size} bytes, more than the limit of {limit} bytes; is this really a libvirt domain?"
    )]
    TooLarge {
        /// The document's size.
        size: usize,
        /// The limit.
        limit: usize,
    },
    /// The document has a `<!DOCTYPE>` (which could declare entities); libvirt XML never has one.
    #[error(
        "the domain XML contains a document type declaration (<!DOCTYPE ...>), which libvirt domain XML never has"
    )]
    Doctype,
    /// The document is not well-formed XML.
    #[error("the domain XML is not well-formed")]
    Malformed(#[source] xmltree::ParseError),
    /// The document has no root element, or more than one.
    #[error("the domain XML must have exactly one root element, it has {count}")]
    RootCount {
        /// How many root elements there are.
        count: usize,
    },
    /// The root element is not `<domain>`.
    #[error(
        "the XML's root element is <{found}>, not <domain>; is this a libvirt domain definition?"
    )]
    NotADomain {
        /// The root element's name.
        found: String,
    },
    /// Writing the tree failed.
    #[error("could not serialise the domain XML")]
    Serialize(#[source] xmltree::Error),
}

/// What a disk looks like to the guest (`<disk device=...>`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DiskDevice {
    /// A hard disk (libvirt's default).
    Disk,
    /// A CD-ROM drive.
    Cdrom,
    /// A floppy drive.
    Floppy,
    /// A SCSI LUN passed through from the host.
    Lun,
    /// Anything else, verbatim.
    Other(String),
}

impl DiskDevice {
    fn parse(value: Option<&str>) -> Self {
        match value.unwrap_or("disk") {
            "disk" => Self::Disk,
            "cdrom" => Self::Cdrom,
            "floppy" => Self::Floppy,
            "lun" => Self::Lun,
            other => Self::Other(other.to_owned()),
        }
    }

    /// The libvirt spelling.
    pub fn as_str(&self) -> &str {
        match self {
            Self::Disk => "disk",
            Self::Cdrom => "cdrom",
            Self::Floppy => "floppy",
            Self::Lun => "lun",
            Self::Other(other) => other,
        }
    }
}

/// The XML namespace of sarde's own `<metadata>` records.
pub const SARDINE_NAMESPACE: &str = "https://sardinecake.iem.at/xmlns/domain/1";
/// The namespace of the owner record ([`DomainXml::set_owner`]).
pub const OWNER_NAMESPACE: &str = "https://sardinecake.iem.at/xmlns/owner/1";

/// Adds the `file` of `element`'s `<source>` and, recursively, of its `<backingStore>`s.
fn collect_sources(element: &Element, files: &mut Vec<String>) {
    if let Some(file) = child(element, "source").and_then(|s| attr(s, "file")) {
        files.push(file.to_owned());
    }
    for store in children(element, "backingStore") {
        collect_sources(store, files);
    }
}

/// Where a disk's data lives on the host (`<disk type=...>`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DiskKind {
    /// An image file (libvirt's default).
    File,
    /// A host block device.
    Block,
    /// A network protocol (NBD, iSCSI, RBD, ...).
    Network,
    /// A volume of a libvirt storage pool.
    Volume,
    /// A host directory presented as a FAT disk.
    Dir,
    /// Anything else (nvme, vhostuser, ...), verbatim.
    Other(String),
}

impl DiskKind {
    fn parse(value: Option<&str>) -> Self {
        match value.unwrap_or("file") {
            "file" => Self::File,
            "block" => Self::Block,
            "network" => Self::Network,
            "volume" => Self::Volume,
            "dir" => Self::Dir,
            other => Self::Other(other.to_owned()),
        }
    }

    /// The libvirt spelling.
    pub fn as_str(&self) -> &str {
        match self {
            Self::File => "file",
            Self::Block => "block",
            Self::Network => "network",
            Self::Volume => "volume",
            Self::Dir => "dir",
            Self::Other(other) => other,
        }
    }
}

/// One `<devices><disk>`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Disk {
    /// Position among the domain's `<disk>` elements (what the `set_disk_*` methods take).
    pub index: usize,
    /// `device=` (default `disk`).
    pub device: DiskDevice,
    /// `type=` (default `file`).
    pub kind: DiskKind,
    /// `<source file=...>`; only set for [`DiskKind::File`] disks.
    pub source: Option<String>,
    /// `<target dev=...>`, e.g. `vda`.
    pub target: Option<String>,
    /// `<driver type=...>`, e.g. `qcow2` or `raw`.
    pub driver_type: Option<String>,
    /// Whether the disk has `<readonly/>`.
    pub readonly: bool,
}

/// The files `<os>` boots from.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BootFiles {
    /// `<kernel>` (direct kernel boot).
    pub kernel: Option<String>,
    /// `<initrd>`.
    pub initrd: Option<String>,
    /// `<dtb>`.
    pub dtb: Option<String>,
    /// `<loader>`'s path (firmware image).
    pub loader: Option<String>,
    /// `<loader readonly=...>`.
    pub loader_readonly: Option<String>,
    /// `<loader type=...>` (`rom` or `pflash`).
    pub loader_type: Option<String>,
    /// `<nvram>`'s path (the VM's UEFI variable store).
    pub nvram: Option<String>,
    /// `<nvram template=...>` (the host file a new variable store is copied from).
    pub nvram_template: Option<String>,
    /// Whether there is an `<nvram>` element at all (it stays, emptied, after anonymising).
    pub has_nvram: bool,
}

/// Which boot file [`DomainXml::set_boot_file`] changes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BootFile {
    /// `<os><kernel>`.
    Kernel,
    /// `<os><initrd>`.
    Initrd,
    /// `<os><dtb>`.
    Dtb,
    /// `<os><loader>` (its text; the attributes stay).
    Loader,
    /// `<os><nvram>` (its text; the attributes stay).
    Nvram,
    /// `<os><nvram template=...>`.
    NvramTemplate,
}

impl BootFile {
    fn element(self) -> &'static str {
        match self {
            Self::Kernel => "kernel",
            Self::Initrd => "initrd",
            Self::Dtb => "dtb",
            Self::Loader => "loader",
            Self::Nvram | Self::NvramTemplate => "nvram",
        }
    }
}

/// One `<devices><interface>`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Interface {
    /// `type=`, e.g. `network`, `bridge`, `user`.
    pub kind: String,
    /// `<mac address=...>`.
    pub mac: Option<String>,
    /// `<source network=...>`.
    pub source_network: Option<String>,
    /// `<source bridge=...>`.
    pub source_bridge: Option<String>,
    /// `<model type=...>`, e.g. `virtio`.
    pub model: Option<String>,
}

/// The image a VM comes from, as `import` records it in the domain's `<metadata>`:
/// `<sardine:image reference="…" id="sha256:…" store="/path/of/the/ocidir"/>`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageMetadata {
    /// The image reference it was imported as.
    pub reference: String,
    /// The image ID (config digest).
    pub id: String,
    /// The store it was imported from (absolute); `None` in VMs imported before sarde recorded it.
    pub store: Option<String>,
    /// The digest of the manifest it was made from; `None` in VMs imported before sarde
    /// recorded it.
    pub manifest: Option<String>,
}

/// A libvirt domain definition.
#[derive(Debug, Clone, PartialEq)]
pub struct DomainXml {
    root: Element,
}

impl DomainXml {
    /// Parses a domain definition; refuses documents over [`MAX_DOMAIN_XML_BYTES`], with a
    /// `<!DOCTYPE>`, or whose root is not `<domain>`.
    pub fn parse(xml: &str) -> Result<Self, DomainError> {
        if xml.len() > MAX_DOMAIN_XML_BYTES {
            return Err(DomainError::TooLarge {
                size: xml.len(),
                limit: MAX_DOMAIN_XML_BYTES,
            });
        }
        if xml.contains("<!DOCTYPE") {
            return Err(DomainError::Doctype);
        }
        let config = ParserConfig::new().ignore_comments(false);
        let nodes = Element::parse_all_with_config(xml.as_bytes(), config)
            .map_err(DomainError::Malformed)?;
        let mut roots: Vec<Element> = nodes
            .into_iter()
            .filter_map(|node| match node {
                XMLNode::Element(e) => Some(e),
                _ => None,
            })
            .collect();
        if roots.len() != 1 {
            return Err(DomainError::RootCount { count: roots.len() });
        }
        let root = roots.remove(0);
        if root.name != "domain" || root.namespace.is_some() {
            return Err(DomainError::NotADomain { found: root.name });
        }
        Ok(Self { root })
    }

    /// Serialises the definition (indented, without an XML declaration, ending in a newline).
    pub fn to_xml(&self) -> Result<String, DomainError> {
        let config = EmitterConfig::new()
            .perform_indent(true)
            .indent_string("  ")
            .write_document_declaration(false);
        let mut out = Vec::new();
        self.root
            .write_with_config(&mut out, config)
            .map_err(DomainError::Serialize)?;
        out.push(b'\n');
        // The emitter writes the UTF-8 it was given; anything else is a bug in the emitter.
        Ok(String::from_utf8_lossy(&out).into_owned())
    }

    /// The root element, for the sanitiser.
    pub(crate) fn root(&self) -> &Element {
        &self.root
    }

    /// `<name>`.
    pub fn name(&self) -> Option<String> {
        child(&self.root, "name").and_then(non_empty_text)
    }

    /// Replaces the root's `<name>` (creating it when missing); extra `<name>`s are removed.
    pub fn set_name(&mut self, name: &str) {
        self.set_unique_root_text("name", Some(name));
    }

    /// `<uuid>`.
    pub fn uuid(&self) -> Option<String> {
        child(&self.root, "uuid").and_then(non_empty_text)
    }

    /// Sets `<uuid>`, or removes it (libvirt then generates one) with `None`.
    pub fn set_uuid(&mut self, uuid: Option<&str>) {
        self.set_unique_root_text("uuid", uuid);
    }

    fn set_unique_root_text(&mut self, name: &str, value: Option<&str>) {
        let Some(value) = value else {
            remove_children(&mut self.root, name);
            return;
        };
        let first = self
            .root
            .children
            .iter()
            .position(|node| node.as_element().is_some_and(|e| is_named(e, name)));
        let mut element = Element::new(name);
        set_text(&mut element, value);
        remove_children(&mut self.root, name);
        let at = first.unwrap_or(0).min(self.root.children.len());
        self.root.children.insert(at, XMLNode::Element(element));
    }

    /// `<domain type=...>`, e.g. `kvm` or `qemu`.
    pub fn domain_type(&self) -> Option<String> {
        attr(&self.root, "type").map(str::to_owned)
    }

    /// `<os><type arch=...>`, e.g. `x86_64`.
    pub fn arch(&self) -> Option<String> {
        let os = child(&self.root, "os")?;
        attr(child(os, "type")?, "arch").map(str::to_owned)
    }

    /// The `libosinfo:os id` from `<metadata>`, e.g. `http://debian.org/debian/12`.
    pub fn libosinfo_id(&self) -> Option<String> {
        let metadata = child(&self.root, "metadata")?;
        crate::xml::elements(metadata)
            .filter(|e| e.name == "libosinfo")
            .flat_map(crate::xml::elements)
            .find(|e| e.name == "os")
            .and_then(|os| attr(os, "id").map(str::to_owned))
    }

    /// Records in `<metadata>` which image the VM comes from (`sarde ssh` finds the image's
    /// credentials through it, `sarde prune` judges imported VMs by it; clones inherit it).
    /// Replaces an earlier record.
    pub fn set_image_metadata(&mut self, image: &ImageMetadata) {
        let mut attrs = vec![
            ("reference", image.reference.as_str()),
            ("id", image.id.as_str()),
        ];
        if let Some(store) = &image.store {
            attrs.push(("store", store.as_str()));
        }
        if let Some(manifest) = &image.manifest {
            attrs.push(("manifest", manifest.as_str()));
        }
        self.set_sardine_element(SARDINE_NAMESPACE, "sardine", "image", &attrs);
    }

    /// The image recorded by [`DomainXml::set_image_metadata`], if any.
    pub fn image_metadata(&self) -> Option<ImageMetadata> {
        let image = self.sardine_element(SARDINE_NAMESPACE, "image")?;
        Some(ImageMetadata {
            reference: attr(image, "reference")?.to_owned(),
            id: attr(image, "id")?.to_owned(),
            store: attr(image, "store").map(str::to_owned),
            manifest: attr(image, "manifest").map(str::to_owned),
        })
    }

    /// Records which program made this VM for itself (`<owner:owner name=>`, in a namespace
    /// of its own: libvirt keeps one metadata element per namespace), so that it only ever
    /// destroys VMs it made: the GitLab executor's job VMs.
    pub fn set_owner(&mut self, owner: &str) {
        self.set_sardine_element(OWNER_NAMESPACE, "owner", "owner", &[("name", owner)]);
    }

    /// Drops an owner record (an image must not claim to be some program's own VM).
    pub fn clear_owner(&mut self) {
        if let Some(metadata) = child_mut(&mut self.root, "metadata") {
            metadata.children.retain(|node| {
                !matches!(node, xmltree::XMLNode::Element(e)
                    if e.namespace.as_deref() == Some(OWNER_NAMESPACE))
            });
        }
    }

    /// The owner recorded by [`DomainXml::set_owner`], if any.
    pub fn owner(&self) -> Option<&str> {
        attr(self.sardine_element(OWNER_NAMESPACE, "owner")?, "name")
    }

    /// Replaces the `<metadata>` element `name` of `namespace` (written with `prefix`).
    fn set_sardine_element(
        &mut self,
        namespace: &str,
        prefix: &str,
        name: &str,
        attrs: &[(&str, &str)],
    ) {
        let metadata = ensure_child(&mut self.root, "metadata");
        metadata.children.retain(|node| {
            !matches!(node, xmltree::XMLNode::Element(e)
                if e.name == name && e.namespace.as_deref() == Some(namespace))
        });
        let mut element = new_element(name, attrs);
        element.prefix = Some(prefix.to_owned());
        element.namespace = Some(namespace.to_owned());
        let mut namespaces = xmltree::Namespace::empty();
        namespaces.put(prefix, namespace);
        element.namespaces = Some(namespaces);
        metadata.children.push(xmltree::XMLNode::Element(element));
    }

    /// The `<metadata>` element `name` of `namespace`.
    fn sardine_element(&self, namespace: &str, name: &str) -> Option<&Element> {
        crate::xml::elements(child(&self.root, "metadata")?)
            .find(|e| e.name == name && e.namespace.as_deref() == Some(namespace))
    }

    fn devices(&self) -> Option<&Element> {
        child(&self.root, "devices")
    }

    fn devices_mut(&mut self) -> Option<&mut Element> {
        child_mut(&mut self.root, "devices")
    }

    fn disk_mut(&mut self, index: usize) -> Option<&mut Element> {
        children_mut(self.devices_mut()?, "disk").nth(index)
    }

    /// Every `<devices><disk>`, in document order.
    pub fn disks(&self) -> Vec<Disk> {
        let Some(devices) = self.devices() else {
            return Vec::new();
        };
        children(devices, "disk")
            .enumerate()
            .map(|(index, disk)| describe_disk(index, disk))
            .collect()
    }

    /// Points disk `index` at the image file `path` (`<source file=...>`). Returns false when
    /// there is no such disk.
    pub fn set_disk_source(&mut self, index: usize, path: &str) -> bool {
        let Some(disk) = self.disk_mut(index) else {
            return false;
        };
        let source = ensure_child(disk, "source");
        set_attr(source, "file", path);
        true
    }

    /// Sets the image format libvirt opens disk `index` with (`<driver type=...>`). Returns
    /// false when there is no such disk.
    pub fn set_disk_driver_type(&mut self, index: usize, format: &str) -> bool {
        let Some(disk) = self.disk_mut(index) else {
            return false;
        };
        let driver = ensure_child(disk, "driver");
        if attr(driver, "name").is_none() {
            set_attr(driver, "name", "qemu");
        }
        set_attr(driver, "type", format);
        true
    }

    /// Every file a disk of this domain uses: the disks' sources and the files of their
    /// `<backingStore>` chains (how one VM's disks are found to be the base of another's).
    pub fn all_disk_files(&self) -> Vec<String> {
        let mut files = Vec::new();
        let Some(devices) = self.devices() else {
            return files;
        };
        for disk in children(devices, "disk") {
            collect_sources(disk, &mut files);
        }
        files
    }

    /// Removes every `<backingStore>` of every disk (libvirt then reads the chain from the images).
    pub fn remove_backing_stores(&mut self) {
        if let Some(devices) = self.devices_mut() {
            for disk in children_mut(devices, "disk") {
                remove_children(disk, "backingStore");
            }
        }
    }

    /// Writes `chain` (backing files, nearest first, as `(path, format)`) as nested
    /// `<backingStore type='file'><format type='..'/><source file='..'/>…</backingStore>` under disk
    /// `index`, ending with an empty `<backingStore/>`. Returns false when there is no such disk.
    pub fn set_backing_chain(&mut self, index: usize, chain: &[(String, String)]) -> bool {
        let Some(disk) = self.disk_mut(index) else {
            return false;
        };
        remove_children(disk, "backingStore");
        let mut store = Element::new("backingStore");
        for (path, format) in chain.iter().rev() {
            let mut outer = new_element("backingStore", &[("type", "file")]);
            outer
                .children
                .push(XMLNode::Element(new_element("format", &[("type", format)])));
            outer
                .children
                .push(XMLNode::Element(new_element("source", &[("file", path)])));
            outer.children.push(XMLNode::Element(store));
            store = outer;
        }
        let after_source = disk
            .children
            .iter()
            .position(|node| node.as_element().is_some_and(|e| is_named(e, "source")))
            .map_or(disk.children.len(), |i| i + 1);
        disk.children.insert(after_source, XMLNode::Element(store));
        true
    }

    /// The files `<os>` boots from.
    pub fn boot_files(&self) -> BootFiles {
        let Some(os) = child(&self.root, "os") else {
            return BootFiles::default();
        };
        let text_of = |name: &str| child(os, name).and_then(non_empty_text);
        let attr_of = |name: &str, attribute: &str| {
            child(os, name)
                .and_then(|e| attr(e, attribute))
                .map(str::to_owned)
        };
        BootFiles {
            kernel: text_of("kernel"),
            initrd: text_of("initrd"),
            dtb: text_of("dtb"),
            loader: text_of("loader"),
            loader_readonly: attr_of("loader", "readonly"),
            loader_type: attr_of("loader", "type"),
            nvram: text_of("nvram"),
            nvram_template: attr_of("nvram", "template"),
            has_nvram: child(os, "nvram").is_some(),
        }
    }

    /// Sets (or with `None` removes) one boot file. Removing the loader or nvram path keeps the
    /// element and its attributes, so firmware selection still works; setting a loader path
    /// turns off firmware auto-selection (`<os firmware=...>`).
    pub fn set_boot_file(&mut self, which: BootFile, path: Option<&str>) {
        let os = ensure_child(&mut self.root, "os");
        match (which, path) {
            (BootFile::NvramTemplate, Some(path)) => {
                set_attr(ensure_child(os, "nvram"), "template", path)
            }
            (BootFile::NvramTemplate, None) => {
                if let Some(nvram) = child_mut(os, "nvram") {
                    remove_attr(nvram, "template");
                }
            }
            (BootFile::Loader | BootFile::Nvram, None) => {
                if let Some(element) = child_mut(os, which.element()) {
                    set_text(element, "");
                }
            }
            (_, None) => {
                remove_children(os, which.element());
            }
            (BootFile::Loader, Some(path)) => {
                // An explicit firmware file replaces libvirt's auto-selection.
                remove_attr(os, "firmware");
                set_text(ensure_child(os, "loader"), path);
            }
            (_, Some(path)) => set_text(ensure_child(os, which.element()), path),
        }
    }

    /// Every `<devices><interface>`.
    pub fn interfaces(&self) -> Vec<Interface> {
        let Some(devices) = self.devices() else {
            return Vec::new();
        };
        children(devices, "interface")
            .map(|interface| {
                let source = child(interface, "source");
                let source_attr =
                    |name: &str| source.and_then(|s| attr(s, name)).map(str::to_owned);
                Interface {
                    kind: attr(interface, "type").unwrap_or_default().to_owned(),
                    mac: child(interface, "mac")
                        .and_then(|m| attr(m, "address"))
                        .map(str::to_owned),
                    source_network: source_attr("network"),
                    source_bridge: source_attr("bridge"),
                    model: child(interface, "model")
                        .and_then(|m| attr(m, "type"))
                        .map(str::to_owned),
                }
            })
            .collect()
    }

    /// Gives every interface a new random, distinct, locally administered unicast MAC address
    /// in libvirt's `52:54:00` range.
    pub fn randomize_macs(&mut self) {
        let Some(devices) = self.devices_mut() else {
            return;
        };
        let mut used = HashSet::new();
        for interface in children_mut(devices, "interface") {
            let mac = loop {
                let candidate = random_mac();
                if used.insert(candidate.clone()) {
                    break candidate;
                }
            };
            remove_children(interface, "mac");
            interface.children.insert(
                0,
                XMLNode::Element(new_element("mac", &[("address", &mac)])),
            );
        }
    }

    /// Puts every interface on the libvirt network `network`, whatever the image said (a
    /// `bridge`, `direct` or `user` interface included): `type='network'` with only
    /// `<source network=…>`, and `<filterref filter=…>` when `filter` is given (libvirt's
    /// `clean-traffic` stops MAC, IP and ARP spoofing). The MAC, model, addressing on the
    /// guest's bus and boot order stay; everything else that picks a host-side endpoint
    /// (`<target>`, `<virtualport>`, `<backend>`, `<ip>`, `<route>`, `<tune>`, …) goes.
    pub fn attach_interfaces(&mut self, network: &str, filter: Option<&str>) {
        const KEPT: [&str; 6] = ["mac", "model", "address", "boot", "alias", "driver"];
        let Some(devices) = self.devices_mut() else {
            return;
        };
        for interface in children_mut(devices, "interface") {
            interface.attributes.retain(|name, _| name == "type");
            set_attr(interface, "type", "network");
            interface.children.retain(|node| {
                node.as_element()
                    .is_some_and(|e| KEPT.iter().any(|kept| is_named(e, kept)))
            });
            interface.children.push(XMLNode::Element(new_element(
                "source",
                &[("network", network)],
            )));
            if let Some(filter) = filter {
                interface.children.push(XMLNode::Element(new_element(
                    "filterref",
                    &[("filter", filter)],
                )));
            }
        }
    }

    /// Sets `<memory>` and `<currentMemory>` (when present) to `mib` MiB.
    pub fn set_memory_mib(&mut self, mib: u64) {
        let value = mib.to_string();
        let memory = ensure_child(&mut self.root, "memory");
        memory.attributes.clear();
        set_attr(memory, "unit", "MiB");
        set_text(memory, &value);
        if let Some(current) = child_mut(&mut self.root, "currentMemory") {
            current.attributes.clear();
            set_attr(current, "unit", "MiB");
            set_text(current, &value);
        }
    }

    /// `<memory>` in MiB (rounded up; libvirt's units, KiB when none is given).
    pub fn memory_mib(&self) -> Option<u64> {
        let memory = child(&self.root, "memory")?;
        let value: u64 = crate::xml::text(memory).trim().parse().ok()?;
        let kib_per_unit: u64 = match attr(memory, "unit").unwrap_or("KiB") {
            "b" | "bytes" => return Some(value.div_ceil(1 << 20)),
            "KB" => return Some((value * 1000).div_ceil(1 << 20)),
            "k" | "KiB" => 1,
            "M" | "MiB" => 1 << 10,
            "G" | "GiB" => 1 << 20,
            "T" | "TiB" => 1 << 30,
            _ => return None,
        };
        Some(value.saturating_mul(kib_per_unit).div_ceil(1 << 10))
    }

    /// `<vcpu>`: the number of virtual CPUs.
    pub fn vcpus(&self) -> Option<u32> {
        crate::xml::text(child(&self.root, "vcpu")?)
            .trim()
            .parse()
            .ok()
    }

    /// Sets `<vcpu>` to `count`; drops `current=` and the per-vCPU `<vcpus>` list, and makes an
    /// existing `<cpu><topology>` match (one socket with `count` cores).
    pub fn set_vcpus(&mut self, count: u32) {
        let value = count.to_string();
        let vcpu = ensure_child(&mut self.root, "vcpu");
        remove_attr(vcpu, "current");
        set_text(vcpu, &value);
        remove_children(&mut self.root, "vcpus");
        let topology = child_mut(&mut self.root, "cpu").and_then(|cpu| child_mut(cpu, "topology"));
        if let Some(topology) = topology {
            for optional in ["dies", "clusters"] {
                if attr(topology, optional).is_some() {
                    set_attr(topology, optional, "1");
                }
            }
            set_attr(topology, "sockets", "1");
            set_attr(topology, "cores", &value);
            set_attr(topology, "threads", "1");
        }
    }

    /// Removes what ties the definition to the exporting host, for export.
    ///
    /// Removed: `<uuid>`, the `id` attribute, interface MACs, host tap names (`<target>`) and
    /// runtime network details (`portid`, a libvirt network's `bridge`), every `<seclabel>`,
    /// `<emulator>`, `<resource>` (cgroup partition), `<redirdev>`s (SPICE USB redirection), the
    /// auto-added iTCO watchdog, `<log>` files, runtime disk `index`es, graphics listen
    /// addresses, sockets and passwords. A firmware `<loader>` path becomes libvirt's firmware
    /// auto-selection (`<os firmware='efi'>` for pflash, `'bios'` otherwise). Character
    /// devices that write to the host (file, pipe, dev, tcp, udp, unix, ...) become `pty`, except
    /// `unix` channels, which lose only their path (libvirt picks one; the guest agent needs them).
    /// The nvram path and template are dropped, leaving an empty `<nvram/>` as a marker: read
    /// [`DomainXml::boot_files`] first if the variable store should be exported. An nvram that
    /// is a plain file name (no directory: a file of the image) stays. Disk and boot file paths
    /// are left for the caller to rewrite. Anonymising twice changes nothing more.
    pub fn anonymize(&mut self) {
        self.anonymize_with(true);
    }

    /// What import does to an image's XML before the security policy judges it: removes the
    /// exporting host's identity and live-only state (UUID, `id`, seclabels, emulator path, pty
    /// paths, tap names, firmware paths), like [`DomainXml::anonymize`], but leaves character
    /// devices that reach host files, sockets or pipes as they are, so that the policy refuses
    /// them by name instead of them silently becoming ptys.
    pub fn strip_host_state(&mut self) {
        self.anonymize_with(false);
    }

    fn anonymize_with(&mut self, neutralize_host_devices: bool) {
        remove_children(&mut self.root, "uuid");
        remove_attr(&mut self.root, "id");
        remove_children(&mut self.root, "resource");
        remove_descendants(&mut self.root, "seclabel");
        if let Some(os) = child_mut(&mut self.root, "os") {
            anonymize_firmware(os);
        }
        let Some(devices) = self.devices_mut() else {
            return;
        };
        remove_children(devices, "emulator");
        remove_children(devices, "redirdev");
        for disk in children_mut(devices, "disk") {
            for source in children_mut(disk, "source") {
                remove_attr(source, "index");
            }
        }
        devices.children.retain(|node| {
            !node
                .as_element()
                .is_some_and(|e| is_named(e, "watchdog") && attr(e, "model") == Some("itco"))
        });
        for interface in children_mut(devices, "interface") {
            remove_children(interface, "mac");
            remove_children(interface, "target");
            let is_network = attr(interface, "type") == Some("network");
            for source in children_mut(interface, "source") {
                // Both are filled in by libvirt for a running VM on a libvirt network.
                remove_attr(source, "portid");
                if is_network {
                    remove_attr(source, "bridge");
                }
            }
        }
        for kind in CHARACTER_DEVICES {
            for device in children_mut(devices, kind) {
                anonymize_character_device(device, kind == "channel", neutralize_host_devices);
            }
        }
        for graphics in children_mut(devices, "graphics") {
            for key in ["listen", "socket", "passwd", "passwdValidTo"] {
                remove_attr(graphics, key);
            }
            remove_children(graphics, "listen");
        }
    }
}

/// The elements that hold a character device.
pub(crate) const CHARACTER_DEVICES: [&str; 4] = ["serial", "console", "channel", "parallel"];

/// Character device types that never touch host files or sockets.
const HOSTLESS_CHARACTER_TYPES: [&str; 6] =
    ["pty", "null", "vc", "spicevmc", "spiceport", "qemu-vdagent"];

/// Replaces host firmware paths by libvirt's firmware auto-selection and leaves an empty
/// `<nvram/>` as the marker that the VM had a variable store. A variable store named plainly
/// (a file of the image, as export writes it) is no host path and stays, so that anonymising
/// an image's XML again (import does) keeps it.
///
/// With auto-selection the `<loader>` element goes: libvirt 9.0 refuses every loader attribute
/// then (`readonly`, `type`, `secure`: the chosen firmware's descriptor implies them), and
/// `secure='yes'` becomes the `secure-boot` firmware feature, which it accepts.
fn anonymize_firmware(os: &mut Element) {
    if let Some(nvram) = child_mut(os, "nvram") {
        let plain = non_empty_text(nvram).filter(|path| is_plain_file_name(path));
        *nvram = Element::new("nvram");
        if let Some(name) = plain {
            set_text(nvram, &name);
        }
    }
    let Some(loader) = child(os, "loader") else {
        return;
    };
    let has_path = non_empty_text(loader).is_some();
    let pflash = attr(loader, "type") == Some("pflash");
    let secure = attr(loader, "secure") == Some("yes");
    if has_path && attr(os, "firmware").is_none() {
        set_attr(os, "firmware", if pflash { "efi" } else { "bios" });
    }
    if attr(os, "firmware").is_none() {
        return;
    }
    remove_children(os, "loader");
    if secure && !has_firmware_feature(os, "secure-boot") {
        let features = ensure_child(os, "firmware");
        let feature = new_element("feature", &[("enabled", "yes"), ("name", "secure-boot")]);
        features.children.push(xmltree::XMLNode::Element(feature));
    }
}

/// Whether `<os><firmware>` names `feature`.
fn has_firmware_feature(os: &Element, feature: &str) -> bool {
    child(os, "firmware").is_some_and(|firmware| {
        crate::xml::elements(firmware)
            .any(|f| f.name == "feature" && attr(f, "name") == Some(feature))
    })
}

/// A file name without any directory (what export makes of every file the image carries).
fn is_plain_file_name(path: &str) -> bool {
    !path.is_empty() && !path.contains('/') && !path.starts_with('.')
}

fn anonymize_character_device(device: &mut Element, is_channel: bool, neutralize: bool) {
    remove_attr(device, "tty");
    let kind = attr(device, "type").unwrap_or("pty").to_owned();
    if !neutralize && kind != "pty" && !(kind == "unix" && is_channel) {
        // Left for the security policy to judge (and refuse, if it reaches the host).
        return;
    }
    remove_children(device, "log");
    if kind == "unix" && is_channel {
        for source in children_mut(device, "source") {
            remove_attr(source, "path");
        }
        return;
    }
    if kind == "pty" || !HOSTLESS_CHARACTER_TYPES.contains(&kind.as_str()) {
        set_attr(device, "type", "pty");
        remove_children(device, "source");
        remove_children(device, "protocol");
    }
}

fn describe_disk(index: usize, disk: &Element) -> Disk {
    let kind = DiskKind::parse(attr(disk, "type"));
    let source = match kind {
        DiskKind::File => child(disk, "source")
            .and_then(|s| attr(s, "file"))
            .map(str::to_owned),
        _ => None,
    };
    Disk {
        index,
        device: DiskDevice::parse(attr(disk, "device")),
        kind,
        source,
        target: child(disk, "target")
            .and_then(|t| attr(t, "dev"))
            .map(str::to_owned),
        driver_type: child(disk, "driver")
            .and_then(|d| attr(d, "type"))
            .map(str::to_owned),
        readonly: child(disk, "readonly").is_some(),
    }
}

fn random_mac() -> String {
    let bytes: [u8; 3] = rand::random();
    format!(
        "52:54:00:{:02x}:{:02x}:{:02x}",
        bytes[0], bytes[1], bytes[2]
    )
}

mod overrides;

#[cfg(test)]
mod tests;
