//! Unit tests for the libvirt connection against libvirt's in-process `test:///default` driver.

use super::*;

const TEST_URI: &str = "test:///default";

fn connect() -> Libvirt {
    Libvirt::open(Some(TEST_URI)).expect("the test driver is always available")
}

/// A unique domain with a network interface, and its UUID.
fn test_domain(label: &str) -> (String, String, String) {
    let name = format!("sardine-unit-{label}-{}", uuid::Uuid::new_v4().simple());
    let uuid = uuid::Uuid::new_v4().to_string();
    let xml = format!(
        "<domain type='test'><name>{name}</name><uuid>{uuid}</uuid><memory unit='MiB'>64</memory>\
         <os><type>hvm</type></os><devices><interface type='network'><source network='default'/>\
         <mac address='52:54:00:aa:bb:01'/></interface></devices></domain>"
    );
    (name, uuid, xml)
}

#[test]
fn versions_and_uri_are_reported() {
    let libvirt = connect();
    assert_eq!(libvirt.uri(), TEST_URI);
    let (library, driver, hypervisor) = libvirt.versions().unwrap();
    assert!(
        library.split('.').count() == 3 && !library.starts_with("0."),
        "{library}"
    );
    assert_eq!(driver, "TEST");
    assert_eq!(hypervisor.split('.').count(), 3);
    assert!(libvirt.lib_version_number().unwrap() >= 1_000_000);
    assert!(format!("{libvirt:?}").contains(TEST_URI));
}

#[test]
fn format_version_splits_libvirt_numbers() {
    assert_eq!(format_version(9_010_002), "9.10.2");
    assert_eq!(format_version(7_002_000), "7.2.0");
}

#[test]
fn a_defined_vm_is_found_started_destroyed_and_undefined() {
    let libvirt = connect();
    let (name, uuid, xml) = test_domain("lifecycle");
    let vm = libvirt.define(&xml).unwrap();
    assert_eq!(vm.name(), name);
    assert_eq!(
        vm.uuid().to_string(),
        uuid,
        "regression W11: the UUID is the real one"
    );
    assert!(vm.is_persistent().unwrap());
    assert_eq!(vm.state().unwrap(), VmState::ShutOff);

    let by_name = libvirt.lookup(&name).unwrap().expect("found by name");
    let by_uuid = libvirt.lookup(&uuid).unwrap().expect("found by UUID");
    assert_eq!((by_name.uuid(), by_uuid.name()), (vm.uuid(), name.as_str()));
    assert!(libvirt.list().unwrap().iter().any(|v| v.name() == name));

    vm.start().unwrap();
    assert_eq!(vm.state().unwrap(), VmState::Running);
    assert!(vm.xml(false).unwrap().contains(&name));
    assert!(vm.xml(true).unwrap().contains(&uuid));
    let still = vm.wait_for_shutoff(Duration::from_millis(300)).unwrap_err();
    assert!(
        matches!(still, LibvirtError::StillRunning { .. }),
        "{still}"
    );
    vm.destroy().unwrap();
    vm.wait_for_shutoff(Duration::from_secs(5)).unwrap();
    vm.undefine().unwrap();
    assert!(libvirt.lookup(&name).unwrap().is_none());
    assert!(libvirt.lookup(&uuid).unwrap().is_none());
}

#[test]
fn a_transient_vm_runs_and_disappears_when_destroyed() {
    let libvirt = connect();
    let (name, _, xml) = test_domain("transient");
    let vm = libvirt.create_transient(&xml).unwrap();
    assert!(!vm.is_persistent().unwrap());
    assert_eq!(vm.state().unwrap(), VmState::Running);
    vm.destroy().unwrap();
    assert!(libvirt.lookup(&name).unwrap().is_none());
    vm.wait_for_shutoff(Duration::from_secs(1))
        .expect("a vanished transient VM counts as shut off");
}

#[test]
fn the_test_driver_reports_guest_addresses() {
    let libvirt = connect();
    let (_, _, xml) = test_domain("address");
    let vm = libvirt.create_transient(&xml).unwrap();
    let address = vm.wait_for_address(
        Duration::from_secs(5),
        &[AddressSource::Lease, AddressSource::Agent],
    );
    vm.destroy().unwrap();
    let address = address.unwrap();
    assert!(address.is_ipv4() && !address.is_loopback(), "{address}");
}

#[test]
fn waiting_for_an_address_times_out_with_the_sources_asked() {
    let libvirt = connect();
    let (name, _, xml) = test_domain("noaddress");
    let vm = libvirt.define(&xml).unwrap();
    // A VM that is not running has no addresses from any source.
    let error = vm
        .wait_for_address(Duration::from_millis(300), &[AddressSource::Arp])
        .unwrap_err();
    vm.undefine().unwrap();
    let message = error.to_string();
    assert!(matches!(error, LibvirtError::NoAddress { .. }), "{message}");
    assert!(
        message.contains(&name) && message.contains("arp"),
        "{message}"
    );
}

#[test]
fn missing_vms_are_none_not_errors() {
    let libvirt = connect();
    assert!(
        libvirt
            .lookup("sardine-unit-does-not-exist")
            .unwrap()
            .is_none()
    );
    assert!(
        libvirt
            .lookup(&uuid::Uuid::new_v4().to_string())
            .unwrap()
            .is_none()
    );
}

#[test]
fn libvirt_errors_say_what_we_were_doing() {
    let libvirt = connect();
    let error = libvirt
        .define("<domain type='test'><name>sardine-unit-broken</name></domain>")
        .unwrap_err();
    assert_eq!(
        error.to_string(),
        "libvirt failed defining VM 'sardine-unit-broken'"
    );
    let source = std::error::Error::source(&error).expect("libvirt's error is the source");
    assert!(!source.to_string().is_empty());
    assert!(!error.is_no_domain());
    let error = Libvirt::open(Some("sardine-no-such-driver:///x")).unwrap_err();
    assert!(
        error.to_string().contains("sardine-no-such-driver:///x"),
        "{error}"
    );
}
