//! Unit tests for the sanitiser: an ordinary VM passes, and every rule refuses a hostile snippet.

use super::*;

const ORDINARY: &str = include_str!("../testdata/ordinary-vm.xml");

/// The files the test image provides.
fn image_files() -> Vec<String> {
    [
        "root.qcow2",
        "data.qcow2",
        "install.iso",
        "vmlinuz",
        "initrd.img",
        "board.dtb",
        "CODE.fd",
        "VARS.fd",
    ]
    .map(String::from)
    .to_vec()
}

/// A minimal safe domain with extra content at the root, in `<os>` and in `<devices>`.
fn domain(root: &str, os: &str, devices: &str) -> String {
    format!(
        "<domain type='kvm' xmlns:qemu='http://libvirt.org/schemas/domain/qemu/1.0'>\
         <name>vm</name><memory unit='MiB'>256</memory><os><type arch='x86_64'>hvm</type>{os}</os>{root}\
         <devices><disk type='file' device='disk'><driver name='qemu' type='qcow2'/><source file='root.qcow2'/>\
         <target dev='vda' bus='virtio'/></disk>{devices}</devices></domain>"
    )
}

fn violations_of(xml: &str) -> Vec<Violation> {
    check(
        &DomainXml::parse(xml).expect("test XML parses"),
        &image_files(),
    )
}

fn assert_safe(xml: &str) {
    let violations = violations_of(xml);
    assert!(
        violations.is_empty(),
        "unexpected violations {violations:#?} in\n{xml}"
    );
}

fn assert_refused(xml: &str, path: &str) {
    let violations = violations_of(xml);
    assert!(
        violations.iter().any(|v| v.path == path),
        "expected a violation at {path}, got {violations:#?} for\n{xml}"
    );
}

fn devices(fragment: &str) -> String {
    domain("", "", fragment)
}

fn root(fragment: &str) -> String {
    domain(fragment, "", "")
}

fn os(fragment: &str) -> String {
    domain("", fragment, "")
}

#[test]
fn the_minimal_domain_is_safe() {
    assert_safe(&domain("", "", ""));
}

#[test]
fn an_ordinary_vm_prepared_for_export_is_safe() {
    let mut xml = DomainXml::parse(ORDINARY).unwrap();
    xml.anonymize();
    xml.remove_backing_stores();
    xml.set_disk_source(0, "root.qcow2");
    assert_safe(&xml.to_xml().unwrap());
}

#[test]
fn an_ordinary_vm_straight_from_the_host_is_refused_for_its_host_state() {
    let violations = violations_of(ORDINARY);
    let paths: Vec<&str> = violations.iter().map(|v| v.path.as_str()).collect();
    for expected in [
        "/domain/devices/emulator",
        "/domain/os/loader",
        "/domain/os/nvram/@template",
        "/domain/devices/disk/source/@file",
        "/domain/devices/interface/target",
        "/domain/devices/interface/source/@portid",
        "/domain/devices/console/@tty",
        "/domain/devices/channel/source/@path",
        "/domain/devices/redirdev",
        "/domain/resource/partition",
    ] {
        assert!(paths.contains(&expected), "{expected} not in {paths:#?}");
    }
}

#[test]
fn a_virt_install_style_domain_with_common_devices_is_safe() {
    let xml = domain(
        "<vcpu placement='static'>2</vcpu><cpu mode='host-model'><topology sockets='1' cores='2' threads='1'/></cpu>\
         <features><acpi/><apic/><hyperv mode='custom'><relaxed state='on'/></hyperv></features>\
         <clock offset='localtime'><timer name='hpet' present='no'/></clock><on_crash>destroy</on_crash>\
         <pm><suspend-to-mem enabled='no'/></pm><sysinfo type='smbios'><system><entry name='serial'>42</entry></system></sysinfo>\
         <memoryBacking><source type='memfd'/><access mode='shared'/></memoryBacking>\
         <metadata><x:anything xmlns:x='urn:x'><x:deep attr='1'/></x:anything></metadata>\
         <seclabel type='dynamic' model='dac' relabel='yes'/>",
        "<boot dev='hd'/><bootmenu enable='yes'/><smbios mode='sysinfo'/>",
        "<disk type='file' device='cdrom'><driver name='qemu' type='raw'/><target dev='sda' bus='sata'/><readonly/></disk>\
         <disk type='file' device='cdrom'><source file='install.iso'/><target dev='sdb' bus='sata'/><readonly/></disk>\
         <controller type='usb' index='0' model='qemu-xhci' ports='15'><address type='pci' bus='0x02' slot='0x00'/></controller>\
         <controller type='pci' index='1' model='pcie-root-port'><model name='pcie-root-port'/><target chassis='1' port='0x10'/></controller>\
         <interface type='network'><mac address='52:54:00:01:02:03'/><source network='default'/><model type='virtio'/><link state='up'/></interface>\
         <interface type='user'><model type='e1000e'/></interface>\
         <interface type='bridge'><source bridge='br0'/><model type='virtio'/><driver name='vhost' queues='2'/></interface>\
         <serial type='pty'><target type='isa-serial' port='0'><model name='isa-serial'/></target></serial>\
         <console type='pty'><target type='serial' port='0'/></console>\
         <channel type='unix'><source mode='bind'/><target type='virtio' name='org.qemu.guest_agent.0'/><address type='virtio-serial' controller='0' bus='0' port='1'/></channel>\
         <channel type='spicevmc'><target type='virtio' name='com.redhat.spice.0'/></channel>\
         <input type='tablet' bus='usb'/><input type='keyboard' bus='ps2'/>\
         <graphics type='vnc' port='-1' autoport='yes' listen='127.0.0.1'><listen type='address' address='127.0.0.1'/></graphics>\
         <graphics type='spice' autoport='yes'><listen type='address'/><image compression='off'/><gl enable='no'/></graphics>\
         <graphics type='spice'><listen type='none'/></graphics>\
         <video><model type='virtio' heads='1' primary='yes'><acceleration accel3d='no'/></model><alias name='video0'/></video>\
         <sound model='ich9'><audio id='1'/></sound><audio id='1' type='spice'/>\
         <memballoon model='virtio'><stats period='5'/></memballoon>\
         <rng model='virtio'><backend model='random'>/dev/urandom</backend><rate bytes='1024' period='1000'/></rng>\
         <watchdog model='i6300esb' action='reset'/><tpm model='tpm-crb'><backend type='emulator' version='2.0'/></tpm>\
         <panic model='isa'/><hub type='usb'/>",
    );
    assert_safe(&xml);
}

#[test]
fn boot_files_of_the_image_are_safe() {
    assert_safe(&os(
        "<kernel>vmlinuz</kernel><initrd>initrd.img</initrd><dtb>board.dtb</dtb><cmdline>console=ttyS0</cmdline>\
         <loader readonly='yes' type='pflash'>CODE.fd</loader><nvram>VARS.fd</nvram>",
    ));
    assert_safe(
        &domain("", "<loader secure='yes'/><nvram/>", "").replace("<os>", "<os firmware='efi'>"),
    );
}

#[test]
fn qemu_passthrough_and_every_foreign_namespace_are_refused() {
    assert_refused(
        &root("<qemu:commandline><qemu:arg value='-chardev'/></qemu:commandline>"),
        "/domain/qemu:commandline",
    );
    assert_refused(
        &root("<qemu:capabilities><qemu:add capability='x'/></qemu:capabilities>"),
        "/domain/qemu:capabilities",
    );
    assert_refused(&root("<qemu:override/>"), "/domain/qemu:override");
    assert_refused(
        &devices("<x:thing xmlns:x='urn:evil'/>"),
        "/domain/devices/x:thing",
    );
    assert_refused(
        &root("<features><acpi/><x:f xmlns:x='urn:evil'/></features>"),
        "/domain/features/x:f",
    );
    assert_refused(
        &root("<cpu><y:z xmlns:y='urn:evil'/></cpu>"),
        "/domain/cpu/y:z",
    );
}

#[test]
fn host_devices_and_shares_are_refused() {
    let cases = [
        (
            "<hostdev mode='subsystem' type='pci' managed='yes'><source><address bus='0x01'/></source></hostdev>",
            "/domain/devices/hostdev",
        ),
        (
            "<filesystem type='mount'><source dir='/'/><target dir='root'/></filesystem>",
            "/domain/devices/filesystem",
        ),
        (
            "<redirdev bus='usb' type='tcp'><source mode='connect' host='1.2.3.4' service='4000'/></redirdev>",
            "/domain/devices/redirdev",
        ),
        ("<smartcard mode='host'/>", "/domain/devices/smartcard"),
        (
            "<shmem name='x'><model type='ivshmem-plain'/></shmem>",
            "/domain/devices/shmem",
        ),
        (
            "<memory model='nvdimm'><source><path>/dev/pmem0</path></source></memory>",
            "/domain/devices/memory",
        ),
        (
            "<vsock model='virtio'><cid auto='yes'/></vsock>",
            "/domain/devices/vsock",
        ),
        (
            "<emulator>/tmp/evil-qemu</emulator>",
            "/domain/devices/emulator",
        ),
        (
            "<lease><lockspace>x</lockspace><key>y</key><target path='/etc/shadow'/></lease>",
            "/domain/devices/lease",
        ),
        (
            "<tpm model='tpm-tis'><backend type='passthrough'><device path='/dev/tpm0'/></backend></tpm>",
            "/domain/devices/tpm/backend/@type",
        ),
        (
            "<tpm model='tpm-tis'><backend type='emulator'><encryption secret='u'/></backend></tpm>",
            "/domain/devices/tpm/backend/encryption",
        ),
        (
            "<input type='passthrough' bus='virtio'><source evdev='/dev/input/event1'/></input>",
            "/domain/devices/input/@type",
        ),
        (
            "<video><model type='virtio'/><driver name='vhostuser'/></video>",
            "/domain/devices/video/driver/@name",
        ),
        (
            "<graphics type='spice'><gl enable='yes' rendernode='/dev/dri/renderD128'/></graphics>",
            "/domain/devices/graphics/gl/@rendernode",
        ),
        (
            "<rng model='virtio'><backend model='egd' type='tcp'><source mode='connect' host='1.2.3.4'/></backend></rng>",
            "/domain/devices/rng/backend/@model",
        ),
        (
            "<rng model='virtio'><backend model='random'>/dev/hwrng</backend></rng>",
            "/domain/devices/rng/backend",
        ),
        (
            "<audio id='1' type='file' path='/tmp/audio.wav'/>",
            "/domain/devices/audio/@type",
        ),
        (
            "<audio id='1' type='pulseaudio' serverName='unix:/run/pulse'/>",
            "/domain/devices/audio/@type",
        ),
        (
            "<watchdog model='i6300esb' action='dump'/>",
            "/domain/devices/watchdog/@action",
        ),
        (
            "<crypto model='virtio' type='qemu'><backend model='builtin'/></crypto>",
            "/domain/devices/crypto",
        ),
    ];
    for (fragment, path) in cases {
        assert_refused(&devices(fragment), path);
    }
}

#[test]
fn disks_that_are_not_files_of_the_image_are_refused() {
    let disk = |attrs: &str, inner: &str| {
        devices(&format!("<disk {attrs}>{inner}<target dev='vdb'/></disk>"))
    };
    for kind in ["block", "network", "volume", "dir", "nvme", "vhostuser"] {
        assert_refused(
            &disk(
                &format!("type='{kind}' device='disk'"),
                "<source dev='/dev/sda'/>",
            ),
            "/domain/devices/disk/@type",
        );
    }
    let file = |source: &str| {
        disk(
            "type='file' device='disk'",
            &format!("<source file='{source}'/>"),
        )
    };
    for source in [
        "/etc/shadow",
        "../root.qcow2",
        "sub/root.qcow2",
        "..",
        "other.qcow2",
        "",
    ] {
        assert_refused(&file(source), "/domain/devices/disk/source/@file");
    }
    assert_refused(
        &disk("type='file' device='cdrom'", "<source file='/dev/sr0'/>"),
        "/domain/devices/disk/source/@file",
    );
    assert_refused(
        &disk("type='file' device='floppy'", "<source file='/boot/x'/>"),
        "/domain/devices/disk/source/@file",
    );
    assert_refused(
        &disk("device='lun' rawio='yes'", "<source file='data.qcow2'/>"),
        "/domain/devices/disk/@device",
    );
    assert_refused(
        &disk("device='lun' rawio='yes'", "<source file='data.qcow2'/>"),
        "/domain/devices/disk/@rawio",
    );
    assert_refused(&disk("device='disk'", ""), "/domain/devices/disk");
    assert_refused(
        &disk(
            "device='disk'",
            "<source file='data.qcow2'/><driver type='vmdk'/>",
        ),
        "/domain/devices/disk/driver/@type",
    );
    assert_refused(
        &disk(
            "device='disk'",
            "<source file='data.qcow2'/><backingStore type='file'><format type='raw'/><source file='/etc/shadow'/></backingStore>",
        ),
        "/domain/devices/disk/backingStore/@type",
    );
    assert_refused(
        &disk(
            "device='disk'",
            "<source file='data.qcow2'><reservations managed='no'><source type='unix' path='/run/x'/></reservations></source>",
        ),
        "/domain/devices/disk/source/reservations",
    );
    assert_refused(
        &disk(
            "device='disk'",
            "<source file='data.qcow2'/><auth username='x'/>",
        ),
        "/domain/devices/disk/auth",
    );
    assert_refused(
        &disk(
            "device='disk'",
            "<source file='data.qcow2'/><mirror file='/tmp/m'/>",
        ),
        "/domain/devices/disk/mirror",
    );
    assert_refused(
        &disk(
            "device='disk'",
            "<source file='data.qcow2'><seclabel model='dac' relabel='no'/></source>",
        ),
        "/domain/devices/disk/source/seclabel/@relabel",
    );
    assert_safe(&disk(
        "type='file' device='disk'",
        "<driver name='qemu' type='raw'/><source file='data.qcow2'/><backingStore/>",
    ));
    assert_safe(&disk("type='file' device='floppy'", ""));
}

#[test]
fn character_devices_with_a_host_end_are_refused() {
    for element in ["serial", "console", "parallel", "channel"] {
        for kind in ["file", "tcp", "udp", "pipe", "dev", "stdio", "nmdm"] {
            assert_refused(
                &devices(&format!(
                    "<{element} type='{kind}'><target port='0'/></{element}>"
                )),
                &format!("/domain/devices/{element}/@type"),
            );
        }
        assert_safe(&devices(&format!(
            "<{element} type='pty'><target port='0'/></{element}>"
        )));
        assert_safe(&devices(&format!("<{element} type='null'/>")));
        assert_refused(
            &devices(&format!(
                "<{element} type='pty'><source path='/dev/pts/1'/></{element}>"
            )),
            &format!("/domain/devices/{element}/source/@path"),
        );
        assert_refused(
            &devices(&format!(
                "<{element} type='pty'><log file='/etc/cron.d/x'/></{element}>"
            )),
            &format!("/domain/devices/{element}/log"),
        );
    }
    assert_refused(
        &devices("<serial type='unix'><source mode='bind'/></serial>"),
        "/domain/devices/serial/@type",
    );
    assert_refused(
        &devices(
            "<channel type='unix'><source mode='bind' path='/root/.ssh/x'/><target type='virtio' name='a'/></channel>",
        ),
        "/domain/devices/channel/source/@path",
    );
    assert_refused(
        &devices(
            "<channel type='unix'><source mode='connect'/><target type='virtio' name='a'/></channel>",
        ),
        "/domain/devices/channel/source/@mode",
    );
    assert_refused(
        &devices(
            "<serial type='tcp'><source mode='bind' host='0.0.0.0' service='23'/><protocol type='telnet'/></serial>",
        ),
        "/domain/devices/serial/protocol",
    );
}

#[test]
fn interfaces_that_touch_the_host_directly_are_refused() {
    for kind in [
        "direct",
        "hostdev",
        "ethernet",
        "vhostuser",
        "server",
        "client",
        "mcast",
        "udp",
        "vdpa",
        "null",
    ] {
        assert_refused(
            &devices(&format!("<interface type='{kind}'/>")),
            "/domain/devices/interface/@type",
        );
    }
    assert_safe(&devices("<interface/>"));
    let bridge = |inner: &str| {
        devices(&format!(
            "<interface type='bridge'><source bridge='br0'/>{inner}</interface>"
        ))
    };
    assert_refused(
        &bridge("<script path='/tmp/x.sh'/>"),
        "/domain/devices/interface/script",
    );
    assert_refused(
        &bridge("<target dev='eth0' managed='no'/>"),
        "/domain/devices/interface/target",
    );
    assert_refused(
        &bridge("<virtualport type='openvswitch'/>"),
        "/domain/devices/interface/virtualport",
    );
    assert_refused(
        &bridge("<rom file='/etc/shadow'/>"),
        "/domain/devices/interface/rom/@file",
    );
    assert_refused(
        &devices(
            "<interface type='user'><backend type='passt' logFile='/etc/x'/><portForward proto='tcp'/></interface>",
        ),
        "/domain/devices/interface/backend",
    );
    assert_refused(
        &devices(
            "<interface type='user'><portForward proto='tcp'><range start='22'/></portForward></interface>",
        ),
        "/domain/devices/interface/portForward",
    );
    assert_refused(
        &devices("<interface type='network'><source network='default' dev='eth0'/></interface>"),
        "/domain/devices/interface/source/@dev",
    );
}

#[test]
fn boot_files_outside_the_image_are_refused() {
    for element in ["kernel", "initrd", "dtb", "loader", "nvram"] {
        for path in ["/boot/vmlinuz", "../vmlinuz", "x/vmlinuz", "missing.bin"] {
            assert_refused(
                &os(&format!("<{element}>{path}</{element}>")),
                &format!("/domain/os/{element}"),
            );
        }
    }
    assert_refused(
        &os("<nvram template='/etc/shadow'/>"),
        "/domain/os/nvram/@template",
    );
    assert_refused(
        &os("<nvram type='network'><source protocol='iscsi'/></nvram>"),
        "/domain/os/nvram/@type",
    );
    assert_refused(
        &os("<acpi><table type='slic'>/etc/shadow</table></acpi>"),
        "/domain/os/acpi",
    );
    assert_refused(&os("<smbios mode='host'/>"), "/domain/os/smbios/@mode");
    assert_refused(&os("<init>/bin/sh</init>"), "/domain/os/init");
}

#[test]
fn weakened_confinement_is_refused() {
    assert_refused(&root("<seclabel type='none'/>"), "/domain/seclabel/@type");
    assert_refused(
        &root("<seclabel type='dynamic' model='selinux' relabel='no'/>"),
        "/domain/seclabel/@relabel",
    );
    assert_refused(
        &root(
            "<seclabel type='static' model='selinux'><label>system_u:system_r:unconfined_t:s0</label></seclabel>",
        ),
        "/domain/seclabel/@type",
    );
}

#[test]
fn graphics_listening_beyond_loopback_are_refused() {
    assert_refused(
        &devices("<graphics type='vnc' listen='0.0.0.0'/>"),
        "/domain/devices/graphics/@listen",
    );
    assert_refused(
        &devices("<graphics type='vnc'><listen type='address' address='::'/></graphics>"),
        "/domain/devices/graphics/listen/@address",
    );
    assert_refused(
        &devices("<graphics type='vnc'><listen type='address' address='192.168.1.5'/></graphics>"),
        "/domain/devices/graphics/listen/@address",
    );
    assert_refused(
        &devices("<graphics type='vnc'><listen type='network' network='default'/></graphics>"),
        "/domain/devices/graphics/listen/@type",
    );
    assert_refused(
        &devices("<graphics type='vnc'><listen type='socket' socket='/root/x'/></graphics>"),
        "/domain/devices/graphics/listen/@socket",
    );
    assert_refused(
        &devices("<graphics type='vnc' socket='/root/x'/>"),
        "/domain/devices/graphics/@socket",
    );
    assert_refused(
        &devices("<graphics type='sdl' display=':0' xauth='/root/.Xauthority'/>"),
        "/domain/devices/graphics/@type",
    );
    assert_safe(&devices(
        "<graphics type='vnc' listen='::1'><listen type='socket'/></graphics>",
    ));
}

#[test]
fn host_resources_named_by_the_image_are_refused() {
    assert_refused(
        &root("<memoryBacking><source type='file'/></memoryBacking>"),
        "/domain/memoryBacking/source/@type",
    );
    assert_refused(
        &root("<resource><partition>/machine/evil</partition></resource>"),
        "/domain/resource/partition",
    );
    assert_refused(
        &root("<blkiotune><device><path>/dev/sda</path><weight>1000</weight></device></blkiotune>"),
        "/domain/blkiotune",
    );
    assert_refused(
        &root("<sysinfo type='fwcfg'><entry name='opt/x' file='/etc/shadow'/></sysinfo>"),
        "/domain/sysinfo/@type",
    );
    assert_refused(
        &root(
            "<sysinfo type='smbios'><oemStrings><entry file='/etc/shadow'/></oemStrings></sysinfo>",
        ),
        "/domain/sysinfo/oemStrings/entry/@file",
    );
    assert_refused(
        &root("<idmap><uid start='0' target='1000' count='10'/></idmap>"),
        "/domain/idmap",
    );
    assert_refused(
        &root("<launchSecurity type='sev'/>"),
        "/domain/launchSecurity",
    );
}

#[test]
fn unknown_elements_and_attributes_are_refused() {
    assert_refused(&root("<somethingNew/>"), "/domain/somethingNew");
    assert_refused(&devices("<newdevice/>"), "/domain/devices/newdevice");
    assert_refused(
        &root("<memoryBacking><surprise/></memoryBacking>"),
        "/domain/memoryBacking/surprise",
    );
    assert_refused(
        &domain("", "", "").replace("<domain type='kvm'", "<domain type='kvm' extra='1'"),
        "/domain/@extra",
    );
    let violation = &violations_of(&root("<somethingNew/>"))[0];
    assert!(violation.reason.contains("not in the list"), "{violation}");
}

#[test]
fn host_resources_the_vm_would_take_from_others_are_refused() {
    for (fragment, path) in [
        ("<on_crash>coredump-destroy</on_crash>", "/domain/on_crash"),
        ("<on_crash>coredump-restart</on_crash>", "/domain/on_crash"),
        (
            "<on_reboot>coredump-restart</on_reboot>",
            "/domain/on_reboot",
        ),
        ("<on_poweroff>anything</on_poweroff>", "/domain/on_poweroff"),
        (
            "<on_lockfailure>x</on_lockfailure>",
            "/domain/on_lockfailure",
        ),
        (
            "<cputune><vcpusched vcpus='0' scheduler='fifo' priority='99'/></cputune>",
            "/domain/cputune/vcpusched/@scheduler",
        ),
        (
            "<cputune><vcpusched vcpus='0' scheduler='rr' priority='1'/></cputune>",
            "/domain/cputune/vcpusched/@priority",
        ),
        (
            "<cputune><iothreadsched iothreads='1' scheduler='fifo'/></cputune>",
            "/domain/cputune/iothreadsched/@scheduler",
        ),
        (
            "<cputune><emulatorsched scheduler='rr'/></cputune>",
            "/domain/cputune/emulatorsched/@scheduler",
        ),
        (
            "<cputune><vcpupin vcpu='0' cpuset='0'/></cputune>",
            "/domain/cputune/vcpupin",
        ),
        (
            "<cputune><shares>262144</shares></cputune>",
            "/domain/cputune/shares",
        ),
        (
            "<cputune><cachetune vcpus='0'><cache id='0' level='3' type='both' size='3' unit='MiB'/></cachetune></cputune>",
            "/domain/cputune/cachetune",
        ),
        ("<cputune><unknown/></cputune>", "/domain/cputune/unknown"),
        (
            "<memoryBacking><locked/></memoryBacking>",
            "/domain/memoryBacking/locked",
        ),
        (
            "<memoryBacking><hugepages><page size='1' unit='G'/></hugepages></memoryBacking>",
            "/domain/memoryBacking/hugepages",
        ),
        (
            "<memoryBacking><allocation mode='immediate'/></memoryBacking>",
            "/domain/memoryBacking/allocation/@mode",
        ),
        (
            "<memoryBacking><allocation mode='ondemand' threads='64'/></memoryBacking>",
            "/domain/memoryBacking/allocation/@threads",
        ),
        (
            "<memoryBacking><source type='file'/></memoryBacking>",
            "/domain/memoryBacking/source/@type",
        ),
        (
            "<memtune><min_guarantee unit='GiB'>64</min_guarantee></memtune>",
            "/domain/memtune/min_guarantee",
        ),
        (
            "<numatune><memory mode='strict' nodeset='0'/></numatune>",
            "/domain/numatune",
        ),
        (
            "<perf><event name='cmt' enabled='yes'/></perf>",
            "/domain/perf",
        ),
        ("<vcpu cpuset='0'>2</vcpu>", "/domain/vcpu/@cpuset"),
    ] {
        assert_refused(&root(fragment), path);
    }
    let dump_core =
        domain("", "", "").replace("<memory unit='MiB'>", "<memory unit='MiB' dumpCore='on'>");
    assert_refused(&dump_core, "/domain/memory/@dumpCore");
}

#[test]
fn limits_of_the_vm_itself_are_safe() {
    assert_safe(&root(
        "<on_poweroff>destroy</on_poweroff><on_reboot>restart</on_reboot><on_crash>preserve</on_crash>\
         <on_lockfailure>poweroff</on_lockfailure>\
         <cputune><period>100000</period><quota>50000</quota><emulator_period>100000</emulator_period>\
         <vcpusched vcpus='0-1' scheduler='batch'/><emulatorsched scheduler='idle'/></cputune>\
         <memtune><hard_limit unit='GiB'>2</hard_limit><soft_limit unit='GiB'>1</soft_limit></memtune>\
         <memoryBacking><nosharepages/><allocation mode='ondemand'/><discard/></memoryBacking>",
    ));
}
