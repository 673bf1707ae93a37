//! Unit tests for the domain XML model.

use super::*;

const ORDINARY: &str = include_str!("../testdata/ordinary-vm.xml");

fn ordinary() -> DomainXml {
    DomainXml::parse(ORDINARY).expect("the ordinary VM parses")
}

fn xml_of(domain: &DomainXml) -> String {
    domain.to_xml().expect("serialises")
}

#[test]
fn round_trip_keeps_unknown_content_namespaces_comments_and_attribute_order() {
    let input = r#"<?xml version="1.0"?>
<domain type='kvm' xmlns:qemu='http://libvirt.org/schemas/domain/qemu/1.0'>
  <name>vm</name>
  <!-- keep me -->
  <qemu:commandline><qemu:arg value='-foo'/></qemu:commandline>
  <futureElement zz='1' aa='2'>text &amp; more<child/></futureElement>
  <description><![CDATA[a <b> c]]></description>
</domain>"#;
    let first = xml_of(&DomainXml::parse(input).unwrap());
    assert!(
        first.contains(r#"xmlns:qemu="http://libvirt.org/schemas/domain/qemu/1.0""#),
        "{first}"
    );
    assert!(first.contains(r#"<qemu:arg value="-foo" />"#), "{first}");
    assert!(first.contains("<!-- keep me -->"), "{first}");
    assert!(
        first.contains(r#"<futureElement zz="1" aa="2">text &amp; more"#),
        "{first}"
    );
    assert!(first.contains("<![CDATA[a <b> c]]>"), "{first}");
    let second = xml_of(&DomainXml::parse(&first).unwrap());
    assert_eq!(first, second, "serialising is stable");
    assert_eq!(
        first.matches("xmlns:qemu").count(),
        1,
        "the namespace is declared once: {first}"
    );
}

#[test]
fn parse_refuses_what_is_not_a_small_domain() {
    assert!(
        matches!(DomainXml::parse("<network/>"), Err(DomainError::NotADomain { found }) if found == "network")
    );
    assert!(matches!(
        DomainXml::parse("<domain>"),
        Err(DomainError::Malformed(_))
    ));
    let doctype = r#"<!DOCTYPE d [<!ENTITY x "y">]><domain><name>&x;</name></domain>"#;
    assert!(matches!(
        DomainXml::parse(doctype),
        Err(DomainError::Doctype)
    ));
    let huge = format!(
        "<domain><description>{}</description></domain>",
        "x".repeat(MAX_DOMAIN_XML_BYTES)
    );
    assert!(matches!(
        DomainXml::parse(&huge),
        Err(DomainError::TooLarge { .. })
    ));
    assert!(matches!(
        DomainXml::parse("<d:domain xmlns:d='urn:x'/>"),
        Err(DomainError::NotADomain { .. })
    ));
}

#[test]
fn set_name_replaces_an_existing_name_regression_w22() {
    let mut domain =
        DomainXml::parse("<domain><uuid>u</uuid><name>old</name><name>dup</name></domain>")
            .unwrap();
    domain.set_name("new");
    assert_eq!(domain.name().as_deref(), Some("new"));
    let xml = xml_of(&domain);
    assert_eq!(xml.matches("<name>").count(), 1, "{xml}");
    assert!(
        xml.find("<uuid>") < xml.find("<name>"),
        "the name stays where it was: {xml}"
    );
}

#[test]
fn set_name_creates_a_missing_name_and_ignores_foreign_names() {
    let mut domain = DomainXml::parse(
        "<domain xmlns:x='urn:x'><x:name>foreign</x:name><memory>1</memory></domain>",
    )
    .unwrap();
    assert_eq!(domain.name(), None);
    domain.set_name("created");
    assert_eq!(domain.name().as_deref(), Some("created"));
    assert!(xml_of(&domain).contains("<x:name>foreign</x:name>"));
}

#[test]
fn uuid_is_read_replaced_and_removed() {
    let mut domain = ordinary();
    assert_eq!(
        domain.uuid().as_deref(),
        Some("2d6a4c3e-9d0e-4b7a-8a59-7b3c1f6c9e11")
    );
    domain.set_uuid(Some("11111111-2222-3333-4444-555555555555"));
    assert_eq!(
        domain.uuid().as_deref(),
        Some("11111111-2222-3333-4444-555555555555")
    );
    domain.set_uuid(None);
    assert_eq!(domain.uuid(), None);
    assert!(!xml_of(&domain).contains("<uuid>"));
}

#[test]
fn type_arch_and_os_id_are_read() {
    let domain = ordinary();
    assert_eq!(domain.domain_type().as_deref(), Some("kvm"));
    assert_eq!(domain.arch().as_deref(), Some("x86_64"));
    assert_eq!(
        domain.libosinfo_id().as_deref(),
        Some("http://debian.org/debian/12")
    );
}

#[test]
fn disks_describe_every_disk() {
    let xml = r#"<domain><devices>
      <disk type='file' device='disk'><driver name='qemu' type='qcow2'/><source file='/a/root.qcow2'/><target dev='vda' bus='virtio'/></disk>
      <disk type='block' device='lun'><source dev='/dev/sdb'/><target dev='sdb'/></disk>
      <disk device='cdrom'><driver type='raw'/><target dev='sda'/><readonly/></disk>
      <disk type='network' device='floppy'><source protocol='nbd' name='x'/></disk>
      <disk type='vhostuser' device='weird'/>
    </devices></domain>"#;
    let disks = DomainXml::parse(xml).unwrap().disks();
    assert_eq!(disks.len(), 5);
    assert_eq!(
        disks[0],
        Disk {
            index: 0,
            device: DiskDevice::Disk,
            kind: DiskKind::File,
            source: Some("/a/root.qcow2".into()),
            target: Some("vda".into()),
            driver_type: Some("qcow2".into()),
            readonly: false,
        }
    );
    assert_eq!(
        (
            disks[1].kind.clone(),
            disks[1].device.clone(),
            disks[1].source.clone()
        ),
        (DiskKind::Block, DiskDevice::Lun, None)
    );
    assert_eq!(
        (
            disks[2].kind.as_str(),
            disks[2].device.as_str(),
            disks[2].readonly
        ),
        ("file", "cdrom", true)
    );
    assert_eq!(disks[2].source, None);
    assert_eq!(
        (disks[3].kind.as_str(), disks[3].device.as_str()),
        ("network", "floppy")
    );
    assert_eq!(disks[4].kind, DiskKind::Other("vhostuser".into()));
    assert_eq!(disks[4].device, DiskDevice::Other("weird".into()));
    assert_eq!(disks[4].index, 4);
}

#[test]
fn set_disk_source_rewrites_or_creates_the_source() {
    let mut domain = ordinary();
    assert!(domain.set_disk_source(0, "/vms/sha256:abc/debian12.qcow2"));
    assert!(domain.set_disk_source(1, "install.iso"));
    assert!(!domain.set_disk_source(2, "nope"));
    let disks = domain.disks();
    assert_eq!(
        disks[0].source.as_deref(),
        Some("/vms/sha256:abc/debian12.qcow2")
    );
    assert_eq!(disks[1].source.as_deref(), Some("install.iso"));
}

#[test]
fn remove_backing_stores_removes_them_from_every_disk() {
    let mut domain = ordinary();
    assert!(xml_of(&domain).contains("<backingStore"));
    domain.remove_backing_stores();
    assert!(!xml_of(&domain).contains("<backingStore"));
}

#[test]
fn set_backing_chain_writes_nested_stores_ending_in_an_empty_one() {
    let mut domain = DomainXml::parse(
        "<domain><devices><disk type='file'><source file='/c/top.qcow2'/><backingStore/><target dev='vda'/></disk></devices></domain>",
    )
    .unwrap();
    let chain = [
        ("/b/mid.qcow2".to_owned(), "qcow2".to_owned()),
        ("/a/base.img".to_owned(), "raw".to_owned()),
    ];
    assert!(domain.set_backing_chain(0, &chain));
    assert!(!domain.set_backing_chain(1, &chain));
    let expected = r#"      <source file="/c/top.qcow2" />
      <backingStore type="file">
        <format type="qcow2" />
        <source file="/b/mid.qcow2" />
        <backingStore type="file">
          <format type="raw" />
          <source file="/a/base.img" />
          <backingStore />
        </backingStore>
      </backingStore>
      <target dev="vda" />"#;
    let xml = xml_of(&domain);
    assert!(xml.contains(expected), "{xml}");
}

#[test]
fn an_empty_backing_chain_is_a_single_empty_store() {
    let mut domain =
        DomainXml::parse("<domain><devices><disk><source file='x'/></disk></devices></domain>")
            .unwrap();
    assert!(domain.set_backing_chain(0, &[]));
    let xml = xml_of(&domain);
    assert!(
        xml.contains("<source file=\"x\" />\n      <backingStore />"),
        "{xml}"
    );
}

#[test]
fn boot_files_are_read() {
    let domain = DomainXml::parse(
        "<domain><os><type>hvm</type><kernel>vmlinuz</kernel><initrd> initrd.img </initrd><dtb>x.dtb</dtb>\
         <loader readonly='yes' type='pflash'>/fw/CODE.fd</loader><nvram template='/fw/VARS.fd'>/var/vm_VARS.fd</nvram></os></domain>",
    )
    .unwrap();
    assert_eq!(
        domain.boot_files(),
        BootFiles {
            kernel: Some("vmlinuz".into()),
            initrd: Some("initrd.img".into()),
            dtb: Some("x.dtb".into()),
            loader: Some("/fw/CODE.fd".into()),
            loader_readonly: Some("yes".into()),
            loader_type: Some("pflash".into()),
            nvram: Some("/var/vm_VARS.fd".into()),
            nvram_template: Some("/fw/VARS.fd".into()),
            has_nvram: true,
        }
    );
    assert_eq!(
        DomainXml::parse("<domain/>").unwrap().boot_files(),
        BootFiles::default()
    );
}

#[test]
fn set_boot_file_sets_and_removes() {
    let mut domain = ordinary();
    domain.set_boot_file(BootFile::Kernel, Some("/vms/x/vmlinuz"));
    domain.set_boot_file(BootFile::Nvram, Some("/vms/x/VARS.fd"));
    domain.set_boot_file(BootFile::NvramTemplate, None);
    let files = domain.boot_files();
    assert_eq!(files.kernel.as_deref(), Some("/vms/x/vmlinuz"));
    assert_eq!(files.nvram.as_deref(), Some("/vms/x/VARS.fd"));
    assert_eq!(files.nvram_template, None);
    domain.set_boot_file(BootFile::Kernel, None);
    domain.set_boot_file(BootFile::Loader, None);
    let files = domain.boot_files();
    assert_eq!((files.kernel, files.loader), (None, None));
    assert_eq!(
        files.loader_type.as_deref(),
        Some("pflash"),
        "the loader's attributes stay"
    );
    let mut efi = DomainXml::parse("<domain><os firmware='efi'/></domain>").unwrap();
    efi.set_boot_file(BootFile::Loader, Some("/vms/x/CODE.fd"));
    assert!(
        !xml_of(&efi).contains("firmware="),
        "an explicit loader ends auto-selection"
    );
}

#[test]
fn anonymize_removes_host_specific_state() {
    let mut domain = ordinary();
    domain.anonymize();
    let xml = xml_of(&domain);
    for gone in [
        "<uuid>",
        "id=\"7\"",
        "52:54:00:12:34:56",
        "<seclabel",
        "/dev/pts",
        "tty=",
        "<emulator>",
        "OVMF",
        "debian12_VARS",
        "<partition>",
        "itco",
        "vnet3",
        "portid",
        "virbr0",
        "/run/libvirt",
        "127.0.0.1",
        "<redirdev",
        "index=\"2\"",
        // libvirt 9.0 refuses loader attributes with firmware auto-selection.
        "<loader",
    ] {
        assert!(!xml.contains(gone), "{gone} is still there:\n{xml}");
    }
    for kept in [
        "<name>debian12</name>",
        "<nvram />",
        "<os firmware=\"efi\">",
        r#"<source network="default" />"#,
        r#"<channel type="unix">"#,
        r#"<source mode="bind" />"#,
        r#"<serial type="pty">"#,
        r#"<graphics type="spice" port="5900" autoport="yes">"#,
        "libosinfo",
        "/dev/urandom",
    ] {
        assert!(xml.contains(kept), "{kept} is missing:\n{xml}");
    }
}

#[test]
fn auto_selected_firmware_keeps_no_loader_and_secure_boot_becomes_a_feature() {
    let mut domain = DomainXml::parse(
        "<domain><os><type>hvm</type>\
         <loader readonly='yes' secure='yes' type='pflash'>/fw/CODE.secboot.fd</loader></os></domain>",
    )
    .unwrap();
    domain.anonymize();
    let xml = xml_of(&domain);
    assert!(
        xml.contains(r#"<os firmware="efi">"#) && !xml.contains("<loader"),
        "{xml}"
    );
    assert!(
        xml.contains(r#"<feature enabled="yes" name="secure-boot" />"#),
        "{xml}"
    );
    domain.anonymize();
    assert_eq!(xml_of(&domain), xml, "anonymising twice changes nothing");
    // Already auto-selected, with attributes that libvirt 9.0 would refuse.
    let mut efi = DomainXml::parse(
        "<domain><os firmware='efi'><loader readonly='yes' type='pflash'/></os></domain>",
    )
    .unwrap();
    efi.anonymize();
    assert!(!xml_of(&efi).contains("<loader"), "{}", xml_of(&efi));
    // A BIOS loader given by path becomes auto-selected BIOS.
    let mut bios =
        DomainXml::parse("<domain><os><loader>/usr/share/seabios/bios.bin</loader></os></domain>")
            .unwrap();
    bios.anonymize();
    assert!(
        xml_of(&bios).contains(r#"<os firmware="bios" />"#),
        "{}",
        xml_of(&bios)
    );
}

#[test]
fn anonymize_keeps_a_plainly_named_nvram_and_is_idempotent() {
    let mut domain = DomainXml::parse(
        "<domain><os><type>hvm</type><loader type='pflash'>/fw/CODE.fd</loader>\
         <nvram template='/fw/VARS.fd'>vm_VARS.fd</nvram></os></domain>",
    )
    .unwrap();
    domain.anonymize();
    let once = xml_of(&domain);
    assert_eq!(domain.boot_files().nvram.as_deref(), Some("vm_VARS.fd"));
    assert!(!once.contains("/fw/"), "{once}");
    domain.anonymize();
    assert_eq!(xml_of(&domain), once);
    for hostile in [
        "../VARS.fd",
        ".VARS.fd",
        "/var/lib/libvirt/qemu/nvram/x_VARS.fd",
    ] {
        let mut domain = DomainXml::parse(&format!(
            "<domain><os><type>hvm</type><nvram>{hostile}</nvram></os></domain>"
        ))
        .unwrap();
        domain.anonymize();
        assert_eq!(domain.boot_files().nvram, None, "{hostile}");
        assert!(domain.boot_files().has_nvram);
    }
}

#[test]
fn anonymize_turns_host_facing_character_devices_into_ptys() {
    let mut domain = DomainXml::parse(
        r#"<domain><devices>
          <serial type='file'><source path='/var/log/x.log'/><target port='0'/><log file='/tmp/l' append='on'/></serial>
          <serial type='tcp'><source mode='connect' host='10.0.0.1' service='22'/><protocol type='raw'/></serial>
          <console type='unix'><source mode='bind' path='/tmp/s'/></console>
          <parallel type='dev'><source path='/dev/parport0'/></parallel>
          <channel type='pipe'><source path='/tmp/p'/><target type='virtio' name='x'/></channel>
          <channel type='spicevmc'><target type='virtio' name='com.redhat.spice.0'/></channel>
        </devices></domain>"#,
    )
    .unwrap();
    domain.anonymize();
    let xml = xml_of(&domain);
    for gone in [
        "/var/log",
        "/tmp",
        "10.0.0.1",
        "parport",
        "<log",
        "<protocol",
        "type=\"file\"",
        "type=\"tcp\"",
        "type=\"unix\"",
        "type=\"dev\"",
        "type=\"pipe\"",
    ] {
        assert!(!xml.contains(gone), "{gone} is still there:\n{xml}");
    }
    assert_eq!(xml.matches("type=\"pty\"").count(), 5, "{xml}");
    assert!(xml.contains("<channel type=\"spicevmc\">"), "{xml}");
    assert!(xml.contains("<target port=\"0\" />"), "{xml}");
}

#[test]
fn anonymize_removes_graphics_listeners_and_passwords() {
    let mut domain = DomainXml::parse(
        "<domain><devices><graphics type='vnc' listen='0.0.0.0' passwd='secret' socket='/tmp/vnc'><listen type='address' address='0.0.0.0'/></graphics></devices></domain>",
    )
    .unwrap();
    domain.anonymize();
    assert!(
        xml_of(&domain).contains("<graphics type=\"vnc\" />"),
        "{}",
        xml_of(&domain)
    );
}

#[test]
fn interfaces_are_described() {
    let domain = DomainXml::parse(
        "<domain><devices><interface type='network'><mac address='52:54:00:aa:bb:cc'/><source network='default'/><model type='virtio'/></interface>\
         <interface type='bridge'><source bridge='br0'/></interface></devices></domain>",
    )
    .unwrap();
    assert_eq!(
        domain.interfaces(),
        vec![
            Interface {
                kind: "network".into(),
                mac: Some("52:54:00:aa:bb:cc".into()),
                source_network: Some("default".into()),
                source_bridge: None,
                model: Some("virtio".into()),
            },
            Interface {
                kind: "bridge".into(),
                mac: None,
                source_network: None,
                source_bridge: Some("br0".into()),
                model: None
            },
        ]
    );
}

#[test]
fn randomize_macs_gives_each_interface_its_own_local_mac_regression_w18() {
    let nics = "<interface type='network'><mac address='52:54:00:00:00:01'/><source network='default'/></interface>".repeat(20);
    let mut domain =
        DomainXml::parse(&format!("<domain><devices>{nics}</devices></domain>")).unwrap();
    domain.randomize_macs();
    let macs: Vec<String> = domain
        .interfaces()
        .into_iter()
        .map(|i| i.mac.expect("every NIC has a MAC"))
        .collect();
    assert_eq!(macs.len(), 20);
    let distinct: HashSet<&String> = macs.iter().collect();
    assert_eq!(distinct.len(), 20, "{macs:?}");
    for mac in &macs {
        assert!(mac.starts_with("52:54:00:") && mac.len() == 17, "{mac}");
        assert_ne!(mac, "52:54:00:00:00:01");
    }
    assert_eq!(xml_of(&domain).matches("<mac ").count(), 20);
}

#[test]
fn memory_and_vcpus_are_overridden() {
    let mut domain = ordinary();
    domain.set_memory_mib(512);
    domain.set_vcpus(4);
    let xml = xml_of(&domain);
    assert!(xml.contains(r#"<memory unit="MiB">512</memory>"#), "{xml}");
    assert!(
        xml.contains(r#"<currentMemory unit="MiB">512</currentMemory>"#),
        "{xml}"
    );
    assert!(
        xml.contains(r#"<vcpu placement="static">4</vcpu>"#),
        "{xml}"
    );
    assert!(
        xml.contains(r#"<topology sockets="1" dies="1" cores="4" threads="1" />"#),
        "{xml}"
    );

    let mut bare = DomainXml::parse(
        "<domain><vcpu current='1'>2</vcpu><vcpus><vcpu id='0'/></vcpus></domain>",
    )
    .unwrap();
    bare.set_vcpus(3);
    bare.set_memory_mib(256);
    let xml = xml_of(&bare);
    assert!(
        xml.contains("<vcpu>3</vcpu>")
            && !xml.contains("<vcpus>")
            && !xml.contains("currentMemory"),
        "{xml}"
    );
    assert!(xml.contains(r#"<memory unit="MiB">256</memory>"#), "{xml}");
}

#[test]
fn image_metadata_round_trips_and_is_replaced() {
    let mut domain = DomainXml::parse("<domain type='qemu'><name>a</name></domain>").unwrap();
    assert_eq!(domain.image_metadata(), None);
    let image = |reference: &str, id: &str, store: Option<&str>| ImageMetadata {
        reference: reference.into(),
        id: id.into(),
        store: store.map(Into::into),
        manifest: store.map(|_| "sha256:cc".into()),
    };
    domain.set_image_metadata(&image("localhost:5000/vm:1", "sha256:aa", None));
    domain.set_image_metadata(&image("localhost:5000/vm:2", "sha256:bb", Some("/var/oci")));
    let xml = domain.to_xml().unwrap();
    let again = DomainXml::parse(&xml).unwrap();
    assert_eq!(
        again.image_metadata(),
        Some(image("localhost:5000/vm:2", "sha256:bb", Some("/var/oci")))
    );
    assert_eq!(xml.matches("sardine:image").count(), 1, "{xml}");
}

#[test]
fn the_owner_is_kept_next_to_the_image_record() {
    let mut domain = DomainXml::parse("<domain type='qemu'><name>a</name></domain>").unwrap();
    assert_eq!(domain.owner(), None);
    domain.set_image_metadata(&ImageMetadata {
        reference: "r/vm:1".into(),
        id: "sha256:aa".into(),
        store: None,
        manifest: None,
    });
    domain.set_owner("gitlab-sardinecake-executor");
    let again = DomainXml::parse(&domain.to_xml().unwrap()).unwrap();
    assert_eq!(again.owner(), Some("gitlab-sardinecake-executor"));
    assert!(again.image_metadata().is_some(), "both records stay");
    let xml = again.to_xml().unwrap();
    assert!(
        xml.contains(OWNER_NAMESPACE) && xml.contains(SARDINE_NAMESPACE),
        "one namespace each, as libvirt keeps one element per namespace: {xml}"
    );
    let mut imported = again;
    imported.clear_owner();
    assert_eq!(imported.owner(), None);
    assert!(imported.image_metadata().is_some());
}

#[test]
fn all_disk_files_follow_backing_stores_and_driver_type_is_set() {
    let mut domain = DomainXml::parse(
        "<domain><devices><disk type='file' device='disk'><source file='/c/top.qcow2'/>\
         <backingStore type='file'><source file='/b/base.qcow2'/><backingStore/></backingStore>\
         <target dev='vda'/></disk></devices></domain>",
    )
    .unwrap();
    assert_eq!(
        domain.all_disk_files(),
        vec!["/c/top.qcow2".to_owned(), "/b/base.qcow2".to_owned()]
    );
    assert!(domain.set_disk_driver_type(0, "qcow2"));
    assert_eq!(domain.disks()[0].driver_type.as_deref(), Some("qcow2"));
    assert!(!domain.set_disk_driver_type(5, "qcow2"));
}

#[test]
fn strip_host_state_leaves_host_facing_devices_for_the_policy() {
    let mut domain = DomainXml::parse(
        "<domain type='qemu'><name>a</name><uuid>8a6ef7b6-0cbb-4a5e-9b5f-1f0d1c3f2e11</uuid>\
         <devices><emulator>/usr/bin/qemu-system-x86_64</emulator>\
         <serial type='file'><source path='/tmp/x'/><target port='0'/></serial>\
         <console type='pty' tty='/dev/pts/3'><source path='/dev/pts/3'/><target type='serial' port='0'/></console>\
         </devices></domain>",
    )
    .unwrap();
    domain.strip_host_state();
    let xml = domain.to_xml().unwrap();
    assert!(
        xml.contains("/tmp/x"),
        "a host file device must stay for the policy to refuse: {xml}"
    );
    assert!(
        !xml.contains("/dev/pts/3") && !xml.contains("uuid") && !xml.contains("emulator"),
        "{xml}"
    );
    domain.anonymize();
    assert!(!domain.to_xml().unwrap().contains("/tmp/x"));
}

#[test]
fn memory_and_vcpus_are_read_in_libvirts_units() {
    let domain = |memory: &str| {
        DomainXml::parse(&format!(
            "<domain><name>a</name>{memory}<vcpu placement='static'>4</vcpu></domain>"
        ))
        .unwrap()
    };
    assert_eq!(domain("<memory>1048576</memory>").memory_mib(), Some(1024));
    assert_eq!(
        domain("<memory unit='GiB'>2</memory>").memory_mib(),
        Some(2048)
    );
    assert_eq!(
        domain("<memory unit='MiB'>300</memory>").memory_mib(),
        Some(300)
    );
    assert_eq!(
        domain("<memory unit='parsec'>1</memory>").memory_mib(),
        None
    );
    assert_eq!(domain("").vcpus(), Some(4));
}

#[test]
fn attach_interfaces_puts_every_nic_on_the_given_network_with_the_filter() {
    let mut domain = DomainXml::parse(
        "<domain><devices>\
         <interface type='bridge'><mac address='52:54:00:aa:bb:cc'/><source bridge='br0'/><model type='virtio'/>\
           <virtualport type='openvswitch'/><target dev='tap7'/><filterref filter='allow-all'/></interface>\
         <interface type='direct' trustGuestRxFilters='yes'><source dev='eth0' mode='bridge'/></interface>\
         <interface type='user'><ip address='10.0.2.15' family='ipv4'/><backend type='passt'/></interface>\
         </devices></domain>",
    )
    .unwrap();
    domain.attach_interfaces("jobs", Some("clean-traffic"));
    let interfaces = domain.interfaces();
    assert_eq!(interfaces.len(), 3);
    for interface in &interfaces {
        assert_eq!(interface.kind, "network");
        assert_eq!(interface.source_network.as_deref(), Some("jobs"));
        assert_eq!(interface.source_bridge, None);
    }
    assert_eq!(interfaces[0].mac.as_deref(), Some("52:54:00:aa:bb:cc"));
    assert_eq!(interfaces[0].model.as_deref(), Some("virtio"));
    let xml = xml_of(&domain);
    for gone in [
        "br0",
        "openvswitch",
        "tap7",
        "allow-all",
        "eth0",
        "trustGuestRxFilters",
        "passt",
        "10.0.2.15",
    ] {
        assert!(!xml.contains(gone), "{gone} left in {xml}");
    }
    assert_eq!(
        xml.matches("<filterref filter=\"clean-traffic\"").count(),
        3,
        "{xml}"
    );
}
