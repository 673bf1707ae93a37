//! A libvirt connection and the lifecycle of its VMs.
//!
//! Wraps the `virt` crate with errors that say what we were doing, silences libvirt's habit of
//! printing every error to stderr, and adds the polling helpers the executor needs (waiting for
//! a guest address or for shut-off). All calls block; async callers use `spawn_blocking`.
//!
//! Fixes over sardinecake 0.4.2: [`Vm::uuid`] really returns the UUID (W11), undefining removes
//! the NVRAM file too, and addresses come from leases, ARP or the guest agent (W15).

use std::net::IpAddr;
use std::sync::Once;
use std::thread;
use std::time::{Duration, Instant};

use virt::connect::Connect;
use virt::domain::{Domain, DomainState};
use virt::enumutil::Enum;
use virt::error::ErrorNumber;

/// How often the wait helpers ask libvirt.
const POLL_INTERVAL: Duration = Duration::from_millis(250);

/// A failed libvirt operation.
#[derive(Debug, thiserror::Error)]
pub enum LibvirtError {
    /// libvirt refused or failed a call.
    #[error("libvirt failed {action}")]
    Call {
        /// What we were doing, e.g. "defining VM 'x'".
        action: String,
        /// libvirt's own error.
        #[source]
        source: virt::error::Error,
    },
    /// No IPv4 address appeared in time.
    #[error(
        "VM '{vm}' had no IPv4 address after {waited:?} (asked: {sources}); is the guest booting and does it get a DHCP lease on a libvirt network?"
    )]
    NoAddress {
        /// The VM's name.
        vm: String,
        /// How long we waited.
        waited: Duration,
        /// The address sources asked, and the last error of each.
        sources: String,
    },
    /// libvirt gave a definition of a VM that cannot be read.
    #[error("the definition libvirt has of VM '{vm}' cannot be read: {message}")]
    Definition {
        /// The VM's name.
        vm: String,
        /// What is wrong with it.
        message: String,
    },
    /// The VM did not shut off in time.
    #[error("VM '{vm}' was still running after {waited:?}")]
    StillRunning {
        /// The VM's name.
        vm: String,
        /// How long we waited.
        waited: Duration,
    },
}

impl LibvirtError {
    fn call(action: impl Into<String>) -> impl FnOnce(virt::error::Error) -> Self {
        let action = action.into();
        move |source| Self::Call { action, source }
    }

    /// Whether libvirt said the domain does not exist.
    pub fn is_no_domain(&self) -> bool {
        matches!(self, Self::Call { source, .. } if is_no_domain(source))
    }
}

fn is_no_domain(error: &virt::error::Error) -> bool {
    error.code().is(ErrorNumber::NoDomain)
}

/// Turns off libvirt's default error handler, which prints every error to stderr even when we
/// handle it; errors reach the user through [`LibvirtError`] instead.
fn silence_libvirt_errors() {
    static SILENCE: Once = Once::new();
    SILENCE.call_once(virt::error::clear_error_callback);
}

/// Formats libvirt's `major * 1_000_000 + minor * 1_000 + release` version numbers.
pub fn format_version(version: u32) -> String {
    format!(
        "{}.{}.{}",
        version / 1_000_000,
        version / 1_000 % 1_000,
        version % 1_000
    )
}

/// Where [`Vm::addresses`] asks for a guest's addresses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AddressSource {
    /// DHCP leases of libvirt's own networks.
    Lease,
    /// The host's ARP table.
    Arp,
    /// The QEMU guest agent inside the guest.
    Agent,
}

impl AddressSource {
    fn raw(self) -> virt::sys::virDomainInterfaceAddressesSource {
        match self {
            Self::Lease => virt::sys::VIR_DOMAIN_INTERFACE_ADDRESSES_SRC_LEASE,
            Self::Arp => virt::sys::VIR_DOMAIN_INTERFACE_ADDRESSES_SRC_ARP,
            Self::Agent => virt::sys::VIR_DOMAIN_INTERFACE_ADDRESSES_SRC_AGENT,
        }
    }

    /// The lower-case name (`lease`, `arp`, `agent`).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Lease => "lease",
            Self::Arp => "arp",
            Self::Agent => "agent",
        }
    }
}

/// A VM's run state, simplified.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VmState {
    /// Running (or blocked on a resource).
    Running,
    /// Paused or suspended.
    Paused,
    /// Not running.
    ShutOff,
    /// Shutting down, crashed, or a state libvirt did not name.
    Other,
}

/// A connection to a libvirt daemon.
pub struct Libvirt {
    conn: Connect,
}

impl std::fmt::Debug for Libvirt {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Libvirt").field("uri", &self.uri()).finish()
    }
}

impl Libvirt {
    /// Opens a read-write connection; `None` means libvirt's default (`LIBVIRT_DEFAULT_URI`, the
    /// client configuration, or probing).
    pub fn open(uri: Option<&str>) -> Result<Self, LibvirtError> {
        silence_libvirt_errors();
        let conn = Connect::open(uri).map_err(LibvirtError::call(describe_open(uri, "")))?;
        Ok(Self { conn })
    }

    /// Opens a read-only connection (enough for lookups and XML).
    pub fn open_read_only(uri: Option<&str>) -> Result<Self, LibvirtError> {
        silence_libvirt_errors();
        let conn = Connect::open_read_only(uri)
            .map_err(LibvirtError::call(describe_open(uri, "read-only ")))?;
        Ok(Self { conn })
    }

    /// The URI libvirt actually connected to.
    pub fn uri(&self) -> String {
        self.conn
            .uri()
            .unwrap_or_else(|_| "(unknown libvirt URI)".to_owned())
    }

    /// `(library version, hypervisor driver type, hypervisor version)`, e.g.
    /// `("9.0.0", "QEMU", "7.2.0")`.
    pub fn versions(&self) -> Result<(String, String, String), LibvirtError> {
        let library = self.lib_version_number()?;
        let driver = self
            .conn
            .driver_type()
            .map_err(LibvirtError::call("asking for the hypervisor type"))?;
        let hypervisor = self
            .conn
            .hyp_version()
            .map_err(LibvirtError::call("asking for the hypervisor version"))?;
        Ok((format_version(library), driver, format_version(hypervisor)))
    }

    /// The libvirt library version as libvirt's number (`9_000_000` for 9.0.0).
    pub fn lib_version_number(&self) -> Result<u32, LibvirtError> {
        self.conn
            .lib_version()
            .map_err(LibvirtError::call("asking for the libvirt version"))
    }

    /// Finds a VM by name, then by UUID; `None` when there is none.
    pub fn lookup(&self, name_or_uuid: &str) -> Result<Option<Vm>, LibvirtError> {
        let action = || format!("looking up VM '{name_or_uuid}'");
        match self.conn.lookup_domain_by_name(name_or_uuid) {
            Ok(domain) => return Vm::new(domain).map(Some),
            Err(e) if is_no_domain(&e) => {}
            Err(e) => return Err(LibvirtError::call(action())(e)),
        }
        if uuid::Uuid::parse_str(name_or_uuid).is_err() {
            return Ok(None);
        }
        match self.conn.lookup_domain_by_uuid_string(name_or_uuid) {
            Ok(domain) => Vm::new(domain).map(Some),
            Err(e) if is_no_domain(&e) => Ok(None),
            Err(e) => Err(LibvirtError::call(action())(e)),
        }
    }

    /// Every VM, running or defined.
    pub fn list(&self) -> Result<Vec<Vm>, LibvirtError> {
        let domains = self
            .conn
            .list_all_domains(0)
            .map_err(LibvirtError::call("listing VMs"))?;
        domains.into_iter().map(Vm::new).collect()
    }

    /// Defines a persistent VM (not started).
    pub fn define(&self, xml: &str) -> Result<Vm, LibvirtError> {
        let action = format!("defining VM '{}'", name_in(xml));
        let domain = self
            .conn
            .define_domain_xml(xml)
            .map_err(LibvirtError::call(action))?;
        Vm::new(domain)
    }

    /// The running VMs other than `except` that `source` says hold `address` (a VM that
    /// cannot be asked makes no claim).
    pub fn holders_of(
        &self,
        address: IpAddr,
        except: &str,
        source: AddressSource,
    ) -> Result<Vec<String>, LibvirtError> {
        Ok(self
            .list()?
            .into_iter()
            .filter(|vm| vm.name() != except && vm.state().ok() == Some(VmState::Running))
            .filter(|vm| vm.addresses(source).is_ok_and(|a| a.contains(&address)))
            .map(|vm| vm.name().to_owned())
            .collect())
    }

    /// Creates and starts a transient VM, which disappears when it stops.
    pub fn create_transient(&self, xml: &str) -> Result<Vm, LibvirtError> {
        let action = format!("starting transient VM '{}'", name_in(xml));
        let domain = self
            .conn
            .create_domain_xml(xml, 0)
            .map_err(LibvirtError::call(action))?;
        Vm::new(domain)
    }
}

fn describe_open(uri: Option<&str>, mode: &str) -> String {
    match uri {
        Some(uri) => format!("opening a {mode}connection to '{uri}'"),
        None => format!("opening a {mode}connection to the default libvirt URI"),
    }
}

/// The domain name in `xml`, for messages.
fn name_in(xml: &str) -> String {
    crate::DomainXml::parse(xml)
        .ok()
        .and_then(|d| d.name())
        .unwrap_or_else(|| "(unnamed)".to_owned())
}

/// One libvirt domain.
pub struct Vm {
    domain: Domain,
    name: String,
    uuid: uuid::Uuid,
}

impl std::fmt::Debug for Vm {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Vm")
            .field("name", &self.name)
            .field("uuid", &self.uuid)
            .finish()
    }
}

impl Vm {
    fn new(domain: Domain) -> Result<Self, LibvirtError> {
        let name = domain
            .name()
            .map_err(LibvirtError::call("reading a VM's name"))?;
        let uuid = domain.uuid().map_err(LibvirtError::call(format!(
            "reading the UUID of VM '{name}'"
        )))?;
        Ok(Self { domain, name, uuid })
    }

    fn call(&self, what: &str) -> impl FnOnce(virt::error::Error) -> LibvirtError {
        LibvirtError::call(format!("{what} VM '{}'", self.name))
    }

    /// The VM's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The VM's UUID.
    pub fn uuid(&self) -> uuid::Uuid {
        self.uuid
    }

    /// The domain XML: the persistent definition with `inactive`, otherwise the live one.
    pub fn xml(&self, inactive: bool) -> Result<String, LibvirtError> {
        let flags = if inactive {
            virt::sys::VIR_DOMAIN_XML_INACTIVE
        } else {
            0
        };
        self.domain
            .xml_desc(flags)
            .map_err(self.call("reading the XML of"))
    }

    /// The current run state.
    pub fn state(&self) -> Result<VmState, LibvirtError> {
        // virt 0.5 ignores virDomainGetState's failure and reports the state as unknown -1.
        let (state, _) = self
            .domain
            .state()
            .map_err(self.call("reading the state of"))?;
        Ok(match state {
            Enum::Known(DomainState::Running | DomainState::Blocked) => VmState::Running,
            Enum::Known(DomainState::Paused | DomainState::PMSuspended) => VmState::Paused,
            Enum::Known(DomainState::Shutoff) => VmState::ShutOff,
            Enum::Known(_) => VmState::Other,
            Enum::Unknown(_) => {
                // Ask again in a way that does report errors (e.g. the domain vanished).
                self.domain
                    .is_active()
                    .map_err(self.call("reading the state of"))?;
                VmState::Other
            }
        })
    }

    /// Whether the VM stays defined when it stops.
    pub fn is_persistent(&self) -> Result<bool, LibvirtError> {
        self.domain
            .is_persistent()
            .map_err(self.call("checking persistence of"))
    }

    /// Starts a defined VM.
    pub fn start(&self) -> Result<(), LibvirtError> {
        self.domain
            .create()
            .map(drop)
            .map_err(self.call("starting"))
    }

    /// Asks the guest to shut down (ACPI or agent); see [`Vm::wait_for_shutoff`].
    pub fn shutdown(&self) -> Result<(), LibvirtError> {
        self.domain
            .shutdown()
            .map(drop)
            .map_err(self.call("shutting down"))
    }

    /// Stops the VM at once (pulls the plug). A transient VM disappears.
    pub fn destroy(&self) -> Result<(), LibvirtError> {
        self.domain
            .destroy()
            .map(drop)
            .map_err(self.call("destroying"))
    }

    /// Removes the persistent definition, with its NVRAM file and managed-save image. Falls back
    /// to a plain undefine for drivers that do not know these flags.
    pub fn undefine(&self) -> Result<(), LibvirtError> {
        let flags =
            virt::sys::VIR_DOMAIN_UNDEFINE_NVRAM | virt::sys::VIR_DOMAIN_UNDEFINE_MANAGED_SAVE;
        match self.domain.undefine_flags(flags) {
            Ok(_) => Ok(()),
            Err(e) if unsupported(&e) => {
                tracing::debug!(vm = %self.name, error = %e, "undefine with NVRAM flags unsupported, retrying without");
                self.domain
                    .undefine()
                    .map(drop)
                    .map_err(self.call("undefining"))
            }
            Err(e) => Err(self.call("undefining")(e)),
        }
    }

    /// The MAC addresses of the VM's interfaces (lower case), from its live definition.
    pub fn mac_addresses(&self) -> Result<Vec<String>, LibvirtError> {
        let xml = self.xml(false)?;
        let domain = crate::DomainXml::parse(&xml).map_err(|e| LibvirtError::Definition {
            vm: self.name.clone(),
            message: e.to_string(),
        })?;
        Ok(domain
            .interfaces()
            .into_iter()
            .filter_map(|interface| interface.mac)
            .map(|mac| mac.to_ascii_lowercase())
            .collect())
    }

    /// The guest's IP addresses according to `source`, on interfaces with one of the VM's own
    /// MAC addresses only: a guest agent may report any interface (or lie), and an address is
    /// this VM's only if it belongs to an interface libvirt gave it.
    pub fn addresses(&self, source: AddressSource) -> Result<Vec<IpAddr>, LibvirtError> {
        let macs = self.mac_addresses()?;
        let interfaces = self
            .domain
            .interface_addresses(source.raw(), 0)
            .map_err(self.call(&format!(
                "asking ({}) for the addresses of",
                source.as_str()
            )))?;
        Ok(interfaces
            .iter()
            .filter(|interface| {
                interface
                    .hwaddr
                    .as_ref()
                    .is_some_and(|mac| macs.contains(&mac.to_ascii_lowercase()))
            })
            .flat_map(|interface| &interface.addrs)
            .filter_map(|address| address.addr.parse().ok())
            .collect())
    }

    /// Polls `sources` in order every 250 ms until one reports a usable IPv4 address (not
    /// loopback, not link-local) or `timeout` passes.
    pub fn wait_for_address(
        &self,
        timeout: Duration,
        sources: &[AddressSource],
    ) -> Result<IpAddr, LibvirtError> {
        let start = Instant::now();
        let mut last_errors: Vec<(AddressSource, String)> = Vec::new();
        loop {
            for &source in sources {
                match self.addresses(source) {
                    Ok(addresses) => {
                        if let Some(address) = addresses.into_iter().find(is_usable_ipv4) {
                            return Ok(address);
                        }
                    }
                    Err(e) => {
                        last_errors.retain(|(s, _)| *s != source);
                        last_errors.push((source, short_message(&e)));
                    }
                }
            }
            if start.elapsed() >= timeout {
                return Err(LibvirtError::NoAddress {
                    vm: self.name.clone(),
                    waited: start.elapsed(),
                    sources: describe_sources(sources, &last_errors),
                });
            }
            thread::sleep(POLL_INTERVAL);
        }
    }

    /// Polls every 250 ms until the VM is shut off (or, for a transient VM, gone).
    pub fn wait_for_shutoff(&self, timeout: Duration) -> Result<(), LibvirtError> {
        let start = Instant::now();
        loop {
            match self.state() {
                Ok(VmState::ShutOff) => return Ok(()),
                Err(e) if e.is_no_domain() => return Ok(()),
                Err(e) => return Err(e),
                Ok(_) => {}
            }
            if start.elapsed() >= timeout {
                return Err(LibvirtError::StillRunning {
                    vm: self.name.clone(),
                    waited: start.elapsed(),
                });
            }
            thread::sleep(POLL_INTERVAL);
        }
    }
}

fn unsupported(error: &virt::error::Error) -> bool {
    error.code().is_any(vec![
        ErrorNumber::NoSupport,
        ErrorNumber::ArgumentUnsupported,
        ErrorNumber::InvalidArg,
    ])
}

fn is_usable_ipv4(address: &IpAddr) -> bool {
    matches!(address, IpAddr::V4(v4) if !v4.is_loopback() && !v4.is_link_local() && !v4.is_unspecified())
}

fn short_message(error: &LibvirtError) -> String {
    match error {
        LibvirtError::Call { source, .. } => source.message().to_owned(),
        other => other.to_string(),
    }
}

fn describe_sources(sources: &[AddressSource], errors: &[(AddressSource, String)]) -> String {
    sources
        .iter()
        .map(|source| match errors.iter().find(|(s, _)| s == source) {
            Some((_, error)) => format!("{} (last error: {error})", source.as_str()),
            None => source.as_str().to_owned(),
        })
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
mod tests;
