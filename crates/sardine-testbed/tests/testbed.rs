//! The test bed itself works: a guest boots through libvirt and answers SSH, and blobs go
//! through a real registry with and without authentication.

use std::time::Duration;

use sardine_oci::registry::{ClientOptions, Credentials, RegistryClient};
use sardine_testbed::{Registry, RegistryAuth, TestVm, VmOptions};

#[test]
fn guest_boots_gets_a_lease_and_runs_commands_over_ssh() {
    let vm = TestVm::create(&VmOptions {
        label: "boot".into(),
        ..VmOptions::default()
    })
    .unwrap();
    vm.start().unwrap();
    let address = vm.wait_for_ip(Duration::from_secs(60)).unwrap();
    assert!(address.is_ipv4(), "{address}");

    let output = vm
        .ssh("uname -s; cat /data/README; echo written > /data/probe; sync; cat /data/probe")
        .unwrap();
    assert_eq!(
        output.code,
        Some(0),
        "{output:?}\nconsole:\n{}",
        vm.console_log()
    );
    assert!(output.stdout.contains("Linux"), "{output:?}");
    assert!(
        output.stdout.contains("sardinecake test guest data disk"),
        "{output:?}"
    );
    assert!(output.stdout.ends_with("written\n"), "{output:?}");

    let failing = vm.ssh("exit 7").unwrap();
    assert_eq!(failing.code, Some(7));

    vm.shutdown(Duration::from_secs(60)).unwrap();
}

#[test]
fn guest_with_a_backing_chain_boots() {
    let vm = TestVm::create(&VmOptions {
        label: "chain".into(),
        backing_chain: true,
        ..VmOptions::default()
    })
    .unwrap();
    assert!(vm.dir().join("base.qcow2").exists());
    vm.start().unwrap();
    let output = vm.ssh("cat /data/README").unwrap();
    assert!(
        output.stdout.contains("sardinecake test guest data disk"),
        "{output:?}"
    );
}

fn blob(size: usize) -> (bytes::Bytes, sardine_oci::Digest) {
    let data: Vec<u8> = (0..size).map(|i| (i * 7 % 251) as u8).collect();
    let digest = sardine_oci::Digest::of(&data);
    (data.into(), digest)
}

async fn round_trip(registry: &Registry, credentials: Option<Credentials>) {
    let client = RegistryClient::new(
        &registry.host(),
        ClientOptions {
            credentials,
            ..ClientOptions::default()
        },
    )
    .unwrap();
    client.ping().await.unwrap();
    let (data, digest) = blob(3 << 20);
    assert_eq!(
        client.blob_exists("testbed/blob", &digest).await.unwrap(),
        None
    );
    client
        .push_blob_bytes("testbed/blob", &digest, data.clone())
        .await
        .unwrap();
    assert_eq!(
        client.blob_exists("testbed/blob", &digest).await.unwrap(),
        Some(data.len() as u64)
    );

    let dir = tempfile::tempdir().unwrap();
    let partial = dir.path().join("blob.partial");
    client
        .fetch_blob(
            "testbed/blob",
            &digest,
            data.len() as u64,
            &partial,
            &|_| {},
        )
        .await
        .unwrap();
    assert_eq!(std::fs::read(&partial).unwrap(), data);
    assert_eq!(registry.completed_uploads(), 1, "{}", registry.log());
}

#[tokio::test]
async fn registry_moves_blobs_anonymously() {
    sardine_testbed::require();
    let registry = Registry::start(RegistryAuth::Anonymous).unwrap();
    round_trip(&registry, None).await;
}

#[tokio::test]
async fn registry_moves_blobs_with_htpasswd_authentication() {
    sardine_testbed::require();
    let auth = RegistryAuth::Htpasswd {
        user: "sardine".into(),
        password: "s3cret pass".into(),
    };
    let registry = Registry::start(auth).unwrap();
    let good = Credentials {
        username: "sardine".into(),
        password: "s3cret pass".into(),
    };
    round_trip(&registry, Some(good)).await;

    let bad = Credentials {
        username: "sardine".into(),
        password: "wrong".into(),
    };
    let client = RegistryClient::new(
        &registry.host(),
        ClientOptions {
            credentials: Some(bad),
            ..ClientOptions::default()
        },
    )
    .unwrap();
    let error = client.ping().await.unwrap_err();
    assert!(
        !format!("{error:#}").contains("wrong"),
        "the password leaked into: {error:#}"
    );
    let anonymous = RegistryClient::new(&registry.host(), ClientOptions::default()).unwrap();
    assert!(anonymous.ping().await.is_err());
}
