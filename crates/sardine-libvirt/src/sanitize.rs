//! The import/clone policy for untrusted domain XML: an allow-list, not a deny-list.
//!
//! A container image's domain XML decides what libvirt does on the importing host. sardinecake
//! 0.4.2 defined it almost unchanged (W3): an image could attach host block devices, share host
//! directories, pass arbitrary QEMU arguments or write to any host file through a serial port.
//! [`check`] walks the whole tree against `RULES`, a table of the element paths a normal VM
//! needs with the attributes each may carry, and then checks the values that matter (disk sources
//! must be files of the image, character devices must not touch host files or sockets, ...).
//! Anything not in the table is a [`Violation`] that names it.
//!
//! The checked tree is the one that gets serialised and defined: callers must define
//! `DomainXml::to_xml()` of the very value they checked (plus their own path rewrites), never
//! the original text.

use std::fmt;

use xmltree::Element;

use crate::domain::{CHARACTER_DEVICES, DomainXml};
use crate::xml::{attr, children, elements, non_empty_text};

/// One thing in a domain XML that the policy does not allow.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Violation {
    /// Where: the element path, e.g. `/domain/devices/hostdev`, or `…/@attribute`.
    pub path: String,
    /// Why it is refused.
    pub reason: String,
}

impl fmt::Display for Violation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.path, self.reason)
    }
}

/// Returns everything in `xml` the policy refuses; empty means the domain is safe to define.
/// `image_files` are the plain file names the image provides (disks, kernels, firmware).
pub fn check(xml: &DomainXml, image_files: &[String]) -> Vec<Violation> {
    let mut walker = Walker {
        image_files,
        violations: Vec::new(),
        path: vec!["domain".to_owned()],
    };
    let root = xml.root();
    if let Some(rule) = find_rule(&walker.path) {
        walker.check_element(rule, root);
    }
    walker.violations
}

/// Which attributes an element may carry.
#[derive(Debug, Clone, Copy)]
enum Attrs {
    /// Only these.
    Only(&'static [&'static str]),
    /// Any (the element's values cannot reach the host).
    Any,
}

/// What may appear below an element.
#[derive(Debug, Clone, Copy)]
enum Content {
    /// Only children that have their own rule.
    Checked,
    /// Any libvirt (namespace-less) elements and attributes: subtrees such as `<features>` or
    /// `<cpu>` that only describe virtual hardware.
    Free,
    /// Anything, including other namespaces: `<metadata>`, which libvirt stores but never uses.
    Opaque,
}

/// One allowed element path. `*` in a path matches any single element name, `(chardev)` any
/// character device element (serial, console, parallel, channel).
#[derive(Debug, Clone, Copy)]
struct Rule {
    path: &'static str,
    attrs: Attrs,
    content: Content,
}

const fn only(path: &'static str, attrs: &'static [&'static str]) -> Rule {
    Rule {
        path,
        attrs: Attrs::Only(attrs),
        content: Content::Checked,
    }
}

const fn free(path: &'static str) -> Rule {
    Rule {
        path,
        attrs: Attrs::Any,
        content: Content::Free,
    }
}

const DISK_DRIVER_ATTRS: &[&str] = &[
    "name",
    "type",
    "cache",
    "io",
    "discard",
    "detect_zeroes",
    "iothread",
    "queues",
    "queue_size",
    "error_policy",
    "rerror_policy",
    "copy_on_read",
    "ioeventfd",
    "event_idx",
    "iommu",
    "ats",
    "packed",
    "page_per_vq",
    "discard_no_unref",
];

const GRAPHICS_ATTRS: &[&str] = &[
    "type",
    "port",
    "autoport",
    "websocket",
    "listen",
    "keymap",
    "sharePolicy",
    "passwd",
    "passwdValidTo",
    "connected",
    "defaultMode",
    "tlsPort",
    "powerControl",
];

/// The allow-list: every element path a VM built from an image may use, with its attributes.
/// Generous for what `virsh dumpxml` prints for ordinary QEMU/KVM guests; nothing that names a
/// host file, device, socket, secret or program.
const RULES: &[Rule] = &[
    only("/domain", &["type", "id"]),
    only("/domain/name", &[]),
    only("/domain/uuid", &[]),
    only("/domain/genid", &[]),
    only("/domain/title", &[]),
    only("/domain/description", &[]),
    Rule {
        path: "/domain/metadata",
        attrs: Attrs::Only(&[]),
        content: Content::Opaque,
    },
    only("/domain/maxMemory", &["slots", "unit"]),
    only("/domain/memory", &["unit", "dumpCore"]),
    only("/domain/currentMemory", &["unit"]),
    // Host resources: only limits of the VM itself, never a claim on the host's memory, CPUs
    // or schedulers that other VMs share (hugepages, locked memory, preallocation, pinning,
    // real-time scheduling, CPU weights, NUMA bindings, cache reservations).
    only("/domain/memtune", &[]),
    only("/domain/memtune/hard_limit", &["unit"]),
    only("/domain/memtune/soft_limit", &["unit"]),
    only("/domain/memtune/swap_hard_limit", &["unit"]),
    only("/domain/memoryBacking", &[]),
    only("/domain/memoryBacking/nosharepages", &[]),
    only("/domain/memoryBacking/source", &["type"]),
    only("/domain/memoryBacking/access", &["mode"]),
    only("/domain/memoryBacking/allocation", &["mode"]),
    only("/domain/memoryBacking/discard", &[]),
    only("/domain/vcpu", &["placement", "current"]),
    free("/domain/vcpus"),
    only("/domain/iothreads", &[]),
    free("/domain/iothreadids"),
    only("/domain/cputune", &[]),
    only("/domain/cputune/period", &[]),
    only("/domain/cputune/quota", &[]),
    only("/domain/cputune/global_period", &[]),
    only("/domain/cputune/global_quota", &[]),
    only("/domain/cputune/emulator_period", &[]),
    only("/domain/cputune/emulator_quota", &[]),
    only("/domain/cputune/iothread_period", &[]),
    only("/domain/cputune/iothread_quota", &[]),
    only("/domain/cputune/vcpusched", &["vcpus", "scheduler"]),
    only("/domain/cputune/iothreadsched", &["iothreads", "scheduler"]),
    only("/domain/cputune/emulatorsched", &["scheduler"]),
    only("/domain/resource", &[]),
    only("/domain/sysinfo", &["type"]),
    // SMBIOS strings only: fw_cfg entries (`<entry file=...>`) would read host files.
    only("/domain/sysinfo/*", &[]),
    only("/domain/sysinfo/*/entry", &["name"]),
    only("/domain/os", &["firmware"]),
    only("/domain/os/type", &["arch", "machine"]),
    free("/domain/os/firmware"),
    only(
        "/domain/os/loader",
        &["readonly", "type", "secure", "stateless", "format"],
    ),
    only("/domain/os/nvram", &["format"]),
    only("/domain/os/kernel", &[]),
    only("/domain/os/initrd", &[]),
    only("/domain/os/dtb", &[]),
    only("/domain/os/cmdline", &[]),
    only("/domain/os/boot", &["dev"]),
    only("/domain/os/bootmenu", &["enable", "timeout"]),
    only("/domain/os/smbios", &["mode"]),
    only("/domain/os/bios", &["useserial", "rebootTimeout"]),
    free("/domain/features"),
    free("/domain/cpu"),
    free("/domain/clock"),
    only("/domain/on_poweroff", &[]),
    only("/domain/on_reboot", &[]),
    only("/domain/on_crash", &[]),
    only("/domain/on_lockfailure", &[]),
    free("/domain/pm"),
    free("/domain/keywrap"),
    only("/domain/seclabel", &["type", "model", "relabel"]),
    only("/domain/seclabel/label", &[]),
    only("/domain/seclabel/imagelabel", &[]),
    only("/domain/seclabel/baselabel", &[]),
    only("/domain/devices", &[]),
    // Every device may have a guest address, an alias and (most) a virtio driver tuning.
    free("/domain/devices/*/address"),
    only("/domain/devices/*/alias", &["name"]),
    only("/domain/devices/*/boot", &["order", "loadparm"]),
    only("/domain/devices/*/acpi", &["index"]),
    // Disks: only files of the image.
    only(
        "/domain/devices/disk",
        &["type", "device", "snapshot", "model"],
    ),
    only("/domain/devices/disk/driver", DISK_DRIVER_ATTRS),
    only(
        "/domain/devices/disk/source",
        &["file", "startupPolicy", "index"],
    ),
    only(
        "/domain/devices/disk/source/seclabel",
        &["model", "relabel"],
    ),
    only("/domain/devices/disk/backingStore", &[]),
    only(
        "/domain/devices/disk/target",
        &["dev", "bus", "tray", "removable", "rotation_rate"],
    ),
    only("/domain/devices/disk/readonly", &[]),
    only("/domain/devices/disk/shareable", &[]),
    only("/domain/devices/disk/transient", &["shareBacking"]),
    only("/domain/devices/disk/serial", &[]),
    only("/domain/devices/disk/wwn", &[]),
    only("/domain/devices/disk/vendor", &[]),
    only("/domain/devices/disk/product", &[]),
    only(
        "/domain/devices/disk/blockio",
        &[
            "logical_block_size",
            "physical_block_size",
            "discard_granularity",
        ],
    ),
    only(
        "/domain/devices/disk/geometry",
        &["cyls", "heads", "secs", "trans"],
    ),
    free("/domain/devices/disk/iotune"),
    // Controllers only describe virtual buses.
    only(
        "/domain/devices/controller",
        &[
            "type",
            "index",
            "model",
            "ports",
            "vectors",
            "maxGrantFrames",
            "maxEventChannels",
        ],
    ),
    only("/domain/devices/controller/model", &["name"]),
    free("/domain/devices/controller/target"),
    free("/domain/devices/controller/driver"),
    only("/domain/devices/controller/pcihole64", &["unit"]),
    // Network interfaces: libvirt networks, user-mode networking, bridges without scripts.
    only(
        "/domain/devices/interface",
        &["type", "trustGuestRxFilters"],
    ),
    only(
        "/domain/devices/interface/mac",
        &["address", "type", "check"],
    ),
    only(
        "/domain/devices/interface/source",
        &["network", "bridge", "portgroup"],
    ),
    only("/domain/devices/interface/model", &["type"]),
    free("/domain/devices/interface/driver"),
    only("/domain/devices/interface/link", &["state"]),
    only("/domain/devices/interface/mtu", &["size"]),
    only("/domain/devices/interface/rom", &["bar", "enabled"]),
    only("/domain/devices/interface/filterref", &["filter"]),
    only(
        "/domain/devices/interface/filterref/parameter",
        &["name", "value"],
    ),
    free("/domain/devices/interface/bandwidth"),
    free("/domain/devices/interface/coalesce"),
    free("/domain/devices/interface/tune"),
    only("/domain/devices/interface/guest", &["dev", "actual"]),
    only(
        "/domain/devices/interface/ip",
        &["address", "family", "prefix", "peer"],
    ),
    only(
        "/domain/devices/interface/route",
        &["family", "address", "prefix", "gateway"],
    ),
    // Character devices: only types without a host end (checked by value below).
    only("/domain/devices/serial", &["type"]),
    only("/domain/devices/console", &["type"]),
    only("/domain/devices/parallel", &["type"]),
    only("/domain/devices/channel", &["type"]),
    only(
        "/domain/devices/(chardev)/target",
        &["type", "port", "name", "state"],
    ),
    only("/domain/devices/(chardev)/target/model", &["name"]),
    only("/domain/devices/(chardev)/source", &["mode"]),
    only("/domain/devices/(chardev)/source/clipboard", &["copypaste"]),
    only("/domain/devices/(chardev)/source/mouse", &["mode"]),
    only("/domain/devices/input", &["type", "bus", "model"]),
    free("/domain/devices/input/driver"),
    only("/domain/devices/graphics", GRAPHICS_ATTRS),
    only("/domain/devices/graphics/listen", &["type", "address"]),
    only("/domain/devices/graphics/image", &["compression"]),
    only("/domain/devices/graphics/jpeg", &["compression"]),
    only("/domain/devices/graphics/zlib", &["compression"]),
    only("/domain/devices/graphics/playback", &["compression"]),
    only("/domain/devices/graphics/streaming", &["mode"]),
    only("/domain/devices/graphics/mouse", &["mode"]),
    only("/domain/devices/graphics/clipboard", &["copypaste"]),
    only("/domain/devices/graphics/filetransfer", &["enable"]),
    only("/domain/devices/graphics/gl", &["enable"]),
    only("/domain/devices/graphics/channel", &["name", "mode"]),
    only("/domain/devices/graphics/audio", &["id"]),
    only("/domain/devices/video", &[]),
    only(
        "/domain/devices/video/model",
        &[
            "type", "vram", "ram", "vgamem", "heads", "primary", "vram64", "blob", "edid",
        ],
    ),
    only(
        "/domain/devices/video/model/acceleration",
        &["accel3d", "accel2d"],
    ),
    only("/domain/devices/video/model/resolution", &["x", "y"]),
    only(
        "/domain/devices/video/driver",
        &["name", "iommu", "ats", "packed"],
    ),
    only(
        "/domain/devices/sound",
        &["model", "multichannel", "streams"],
    ),
    only("/domain/devices/sound/codec", &["type"]),
    only("/domain/devices/sound/audio", &["id"]),
    only("/domain/devices/audio", &["id", "type", "timerPeriod"]),
    free("/domain/devices/audio/input"),
    free("/domain/devices/audio/output"),
    only(
        "/domain/devices/memballoon",
        &["model", "autodeflate", "freePageReporting"],
    ),
    only("/domain/devices/memballoon/stats", &["period"]),
    free("/domain/devices/memballoon/driver"),
    only("/domain/devices/rng", &["model"]),
    only("/domain/devices/rng/rate", &["period", "bytes"]),
    only("/domain/devices/rng/backend", &["model"]),
    free("/domain/devices/rng/driver"),
    only("/domain/devices/watchdog", &["model", "action"]),
    only("/domain/devices/tpm", &["model"]),
    only(
        "/domain/devices/tpm/backend",
        &["type", "version", "persistent_state", "debug"],
    ),
    free("/domain/devices/tpm/backend/active_pcr_banks"),
    only("/domain/devices/panic", &["model"]),
    only("/domain/devices/hub", &["type"]),
    only("/domain/devices/iommu", &["model"]),
    free("/domain/devices/iommu/driver"),
];

/// Finds the rule for an element path (given as its element names from the root).
fn find_rule(path: &[String]) -> Option<&'static Rule> {
    RULES.iter().find(|rule| {
        let mut parts = rule.path.split('/').skip(1);
        let mut names = path.iter();
        loop {
            match (parts.next(), names.next()) {
                (None, None) => return true,
                (Some(part), Some(name)) if matches_part(part, name) => {}
                _ => return false,
            }
        }
    })
}

/// Whether one component of a rule path matches an element name.
fn matches_part(part: &str, name: &str) -> bool {
    match part {
        "*" => true,
        "(chardev)" => CHARACTER_DEVICES.contains(&name),
        _ => part == name,
    }
}

/// Why well-known dangerous elements are refused (anything else unknown gets a generic reason).
fn known_danger(name: &str) -> Option<&'static str> {
    Some(match name {
        "hostdev" => "passes a host device (PCI, USB, SCSI, mediated) into the VM",
        "filesystem" => "shares a host directory with the VM",
        "redirdev" => "redirects USB devices from the host or the network into the VM",
        "smartcard" => "gives the VM the host's smartcard or certificate files",
        "shmem" => "shares host memory with the VM",
        "memory" => "adds memory devices that can be backed by host files",
        "emulator" => "runs an emulator binary chosen by the image",
        "script" => "runs a host script",
        "lease" => "takes locks in a host lockspace",
        "blkiotune" => "tunes host block devices by path",
        "vsock" => "opens a socket channel between the VM and the host",
        "crypto" => "connects the VM to host crypto backends",
        "backend" => "names host device nodes or log files",
        "portForward" => "forwards host ports into the VM",
        "encryption" | "auth" => "uses secrets stored on the host",
        "reservations" => "connects to a host persistent-reservation helper socket",
        "log" => "writes a log file on the host",
        "protocol" => "is only used with network character devices",
        "acpi" => "loads ACPI tables from host files",
        "idmap" | "init" | "initarg" | "initenv" | "initdir" | "initdev" => {
            "is for containers, not VMs"
        }
        "launchSecurity" => "configures host memory encryption",
        "mirror" => "copies the disk to another host location",
        "hugepages" => "takes the host's huge pages, which other VMs need",
        "locked" => "locks all of the VM's memory in host RAM (never swapped)",
        "min_guarantee" => "reserves host memory for the VM",
        "numatune" => "binds the VM's memory to host NUMA nodes",
        "vcpupin" | "emulatorpin" | "iothreadpin" => "pins the VM to host CPUs",
        "shares" => "raises the VM's CPU weight against other VMs on the host",
        "cachetune" | "memorytune" => "reserves host CPU cache or memory bandwidth",
        "perf" => "enables host performance counters for the VM",
        "virtualport" | "vlan" | "teaming" => "configures host network devices",
        _ => return None,
    })
}

/// The state of one [`check`] run.
struct Walker<'a> {
    image_files: &'a [String],
    violations: Vec<Violation>,
    path: Vec<String>,
}

impl Walker<'_> {
    fn path_string(&self) -> String {
        format!("/{}", self.path.join("/"))
    }

    fn refuse(&mut self, suffix: Option<&str>, reason: impl Into<String>) {
        let mut path = self.path_string();
        if let Some(suffix) = suffix {
            path.push('/');
            path.push_str(suffix);
        }
        self.violations.push(Violation {
            path,
            reason: reason.into(),
        });
    }

    fn check_element(&mut self, rule: &Rule, element: &Element) {
        if let Attrs::Only(allowed) = rule.attrs {
            for name in element.attributes.keys() {
                if !allowed.contains(&name.as_str()) {
                    self.refuse(
                        Some(&format!("@{name}")),
                        "attribute is not in the list of attributes known to be safe here",
                    );
                }
            }
        }
        self.check_values(element);
        match rule.content {
            Content::Checked => self.check_children(element),
            Content::Free => self.check_free(element),
            Content::Opaque => {}
        }
    }

    fn check_children(&mut self, element: &Element) {
        for child in elements(element) {
            if self.refuse_namespaced(child) {
                continue;
            }
            self.path.push(child.name.clone());
            match find_rule(&self.path) {
                Some(rule) => self.check_element(rule, child),
                None => {
                    let reason = known_danger(&child.name)
                        .unwrap_or("element is not in the list of elements known to be safe here");
                    self.refuse(None, reason);
                }
            }
            self.path.pop();
        }
    }

    /// In free subtrees only namespaced (non-libvirt) elements are refused.
    fn check_free(&mut self, element: &Element) {
        for child in elements(element) {
            if self.refuse_namespaced(child) {
                continue;
            }
            self.path.push(child.name.clone());
            self.check_free(child);
            self.path.pop();
        }
    }

    fn refuse_namespaced(&mut self, element: &Element) -> bool {
        let Some(namespace) = &element.namespace else {
            return false;
        };
        let name = match &element.prefix {
            Some(prefix) => format!("{prefix}:{}", element.name),
            None => element.name.clone(),
        };
        self.refuse(
            Some(&name),
            format!("element of namespace '{namespace}' is not libvirt's own; such elements (e.g. qemu:commandline) pass options straight to the hypervisor"),
        );
        true
    }

    /// Checks the attribute values and texts that decide whether an allowed element is safe.
    fn check_values(&mut self, element: &Element) {
        let path = self.path_string();
        let device = self.path.get(2).map(String::as_str).unwrap_or_default();
        match path.as_str() {
            "/domain/os/kernel" | "/domain/os/initrd" | "/domain/os/dtb" | "/domain/os/loader"
            | "/domain/os/nvram" => {
                if let Some(file) = non_empty_text(element) {
                    self.check_image_file(None, &file);
                }
            }
            "/domain/os/smbios" => {
                self.refuse_value(
                    element,
                    "mode",
                    &["host"],
                    "copies the host's SMBIOS data into the VM",
                );
            }
            "/domain/sysinfo" => self.require_value(element, "type", Some("smbios"), &["smbios"]),
            "/domain/memoryBacking/source" => {
                self.require_value(element, "type", None, &["anonymous", "memfd"]);
            }
            // Preallocating all memory at start takes it from the host at once.
            "/domain/memoryBacking/allocation" => {
                self.require_value(element, "mode", None, &["ondemand"]);
            }
            // A QEMU core dump with the guest's memory fills the host's disk.
            "/domain/memory" => self.require_value(element, "dumpCore", None, &["off"]),
            "/domain/cputune/vcpusched"
            | "/domain/cputune/iothreadsched"
            | "/domain/cputune/emulatorsched" => {
                // Real-time schedulers (fifo, rr) can starve the host.
                self.require_value(element, "scheduler", None, &["other", "batch", "idle"]);
            }
            "/domain/on_poweroff" | "/domain/on_reboot" | "/domain/on_crash" => {
                // coredump-* writes the guest's memory to the host's disk.
                self.require_text(
                    element,
                    &["destroy", "restart", "preserve", "rename-restart"],
                );
            }
            "/domain/on_lockfailure" => {
                self.require_text(element, &["poweroff", "restart", "pause", "ignore"]);
            }
            "/domain/seclabel" | "/domain/devices/disk/source/seclabel" => {
                self.check_seclabel(element)
            }
            "/domain/devices/disk" => self.check_disk(element),
            "/domain/devices/disk/source" => {
                if let Some(file) = attr(element, "file") {
                    self.check_image_file(Some("@file"), file);
                }
            }
            "/domain/devices/disk/driver" => {
                self.require_value(element, "type", None, &["qcow2", "raw"]);
                self.require_value(element, "name", None, &["qemu"]);
            }
            "/domain/devices/interface" => {
                self.require_value(
                    element,
                    "type",
                    Some("user"),
                    &["network", "user", "bridge"],
                );
            }
            "/domain/devices/serial"
            | "/domain/devices/console"
            | "/domain/devices/parallel"
            | "/domain/devices/channel" => {
                self.check_character_device(element, device == "channel")
            }
            "/domain/devices/input" => {
                self.require_value(element, "type", None, &["tablet", "mouse", "keyboard"]);
            }
            "/domain/devices/graphics" => {
                self.require_value(element, "type", None, &["vnc", "spice"]);
                if let Some(listen) = attr(element, "listen") {
                    self.check_listen_address(Some("@listen"), listen);
                }
            }
            "/domain/devices/graphics/listen" => self.check_graphics_listen(element),
            "/domain/devices/video/driver" => {
                self.refuse_value(
                    element,
                    "name",
                    &["vhostuser"],
                    "runs a host vhost-user GPU process",
                );
            }
            "/domain/devices/audio" => {
                self.require_value(element, "type", None, &["none", "spice"])
            }
            "/domain/devices/rng/backend" => self.check_rng_backend(element),
            "/domain/devices/watchdog" => {
                self.refuse_value(
                    element,
                    "action",
                    &["dump"],
                    "writes memory dumps to the host",
                );
            }
            "/domain/devices/tpm/backend" => {
                self.require_value(element, "type", None, &["emulator"])
            }
            _ if CHARACTER_DEVICES.contains(&device)
                && self.path.len() == 4
                && element.name == "source" =>
            {
                self.check_character_source(element);
            }
            _ => {}
        }
    }

    /// Refuses when attribute `name` has a value other than `allowed` (`default` when absent;
    /// `None` means absent is fine).
    fn require_value(
        &mut self,
        element: &Element,
        name: &str,
        default: Option<&str>,
        allowed: &[&str],
    ) {
        let Some(value) = attr(element, name).or(default) else {
            return;
        };
        if !allowed.contains(&value) {
            self.refuse(
                Some(&format!("@{name}")),
                format!(
                    "{name}='{value}' is not allowed (allowed: {})",
                    allowed.join(", ")
                ),
            );
        }
    }

    /// Refuses when the element's text is not one of `allowed`.
    fn require_text(&mut self, element: &Element, allowed: &[&str]) {
        let text = non_empty_text(element).unwrap_or_default();
        if !allowed.contains(&text.as_str()) {
            self.refuse(
                None,
                format!(
                    "'{}' is not allowed (allowed: {})",
                    text.escape_debug(),
                    allowed.join(", ")
                ),
            );
        }
    }

    fn refuse_value(&mut self, element: &Element, name: &str, refused: &[&str], why: &str) {
        if let Some(value) = attr(element, name)
            && refused.contains(&value)
        {
            self.refuse(Some(&format!("@{name}")), format!("{name}='{value}' {why}"));
        }
    }

    fn check_image_file(&mut self, suffix: Option<&str>, file: &str) {
        let problem = if file.starts_with('/') {
            "is an absolute host path"
        } else if file.contains('/') {
            "names a path, not a plain file name"
        } else if file == "." || file == ".." {
            "is not a file name"
        } else if !self.image_files.iter().any(|f| f == file) {
            "is not one of the image's files"
        } else {
            return;
        };
        self.refuse(
            suffix,
            format!("'{file}' {problem}; only the image's own files may be used"),
        );
    }

    fn check_seclabel(&mut self, element: &Element) {
        self.refuse_value(
            element,
            "type",
            &["none", "static"],
            "turns off or overrides the host's confinement of the VM",
        );
        self.refuse_value(
            element,
            "relabel",
            &["no"],
            "keeps host file labels, so the VM may use files it should not",
        );
    }

    fn check_disk(&mut self, element: &Element) {
        let kind = attr(element, "type").unwrap_or("file");
        if kind != "file" {
            self.refuse(
                Some("@type"),
                format!(
                    "disk type '{kind}' uses host storage; only files of the image are allowed"
                ),
            );
        }
        self.require_value(element, "device", None, &["disk", "cdrom", "floppy"]);
        let device = attr(element, "device").unwrap_or("disk");
        let has_file = children(element, "source").any(|s| attr(s, "file").is_some());
        if device == "disk" && kind == "file" && !has_file {
            self.refuse(None, "disk has no <source file=...>");
        }
    }

    fn check_character_device(&mut self, element: &Element, is_channel: bool) {
        let kind = attr(element, "type").unwrap_or("pty");
        let allowed = ["pty", "null", "vc", "spicevmc", "spiceport", "qemu-vdagent"];
        if allowed.contains(&kind) || kind == "unix" && is_channel {
            return;
        }
        self.refuse(
            Some("@type"),
            format!("type='{kind}' connects the device to host files, devices, sockets or the network (allowed: {}, and unix channels without a path)", allowed.join(", ")),
        );
    }

    /// `<source>` of a character device: only the path-less `<source mode='bind'/>` of a unix
    /// channel (libvirt picks the socket path), or the options of qemu-vdagent.
    fn check_character_source(&mut self, element: &Element) {
        if attr(element, "mode").is_some_and(|mode| mode != "bind") {
            self.refuse(
                Some("@mode"),
                "only mode='bind' (libvirt's own socket) is allowed",
            );
        }
    }

    fn check_graphics_listen(&mut self, element: &Element) {
        match attr(element, "type").unwrap_or("address") {
            // Without an address the host's own configured default applies (127.0.0.1 unless
            // the host's administrator chose otherwise): the image does not choose.
            "address" => {
                if let Some(address) = attr(element, "address") {
                    self.check_listen_address(Some("@address"), address);
                }
            }
            "none" | "socket" => {}
            other => self.refuse(
                Some("@type"),
                format!("listen type '{other}' listens on host networks"),
            ),
        }
    }

    fn check_listen_address(&mut self, suffix: Option<&str>, address: &str) {
        let local = address == "localhost"
            || address
                .parse::<std::net::IpAddr>()
                .is_ok_and(|ip| ip.is_loopback());
        if !local {
            self.refuse(suffix, format!("listening on '{address}' exposes the console beyond this host; only loopback is allowed"));
        }
    }

    fn check_rng_backend(&mut self, element: &Element) {
        match attr(element, "model").unwrap_or("random") {
            "builtin" => {}
            "random" => {
                let source = non_empty_text(element).unwrap_or_default();
                if !["", "/dev/urandom", "/dev/random"].contains(&source.as_str()) {
                    self.refuse(
                        None,
                        format!("random source '{source}' is not /dev/urandom or /dev/random"),
                    );
                }
            }
            other => self.refuse(
                Some("@model"),
                format!("rng backend '{other}' connects to host sockets or devices"),
            ),
        }
    }
}

#[cfg(test)]
mod tests;
