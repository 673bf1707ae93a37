//! Credential lookup through the environment (one test: it changes process-wide variables).

use std::os::unix::fs::PermissionsExt as _;

use sardine_oci::credentials;
use sardine_oci::registry::Credentials;

#[test]
fn store_lookup_and_remove_through_the_environment() {
    let dir = tempfile::tempdir().unwrap();
    let auth_file = dir.path().join("containers/auth.json");
    let docker_dir = dir.path().join("docker");
    fs_err::create_dir(&docker_dir).unwrap();
    fs_err::write(
        docker_dir.join("config.json"),
        r#"{"auths":{"https://docker-only.example:5000":{"auth":"ZDpkcA=="}}}"#,
    )
    .unwrap();
    // SAFETY: this is the only test in this binary, so no other thread reads the environment.
    unsafe {
        std::env::set_var("REGISTRY_AUTH_FILE", &auth_file);
        std::env::set_var("DOCKER_CONFIG", &docker_dir);
        std::env::remove_var("SARDE_REGISTRY_USERNAME");
        std::env::remove_var("SARDE_REGISTRY_PASSWORD");
    }
    assert_eq!(credentials::auth_file_path(), auth_file);
    assert_eq!(credentials::lookup("127.0.0.1:5000").unwrap(), None);

    let creds = Credentials {
        username: "user".into(),
        password: "secret".into(),
    };
    assert_eq!(
        credentials::store("127.0.0.1:5000", &creds).unwrap(),
        auth_file
    );
    let mode = fs_err::metadata(&auth_file).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);
    let dir_mode = fs_err::metadata(auth_file.parent().unwrap())
        .unwrap()
        .permissions()
        .mode()
        & 0o777;
    assert_eq!(dir_mode, 0o700);
    assert_eq!(
        credentials::lookup("127.0.0.1:5000").unwrap(),
        Some(creds.clone())
    );

    // docker's config is the fallback.
    let docker = credentials::lookup("docker-only.example:5000")
        .unwrap()
        .unwrap();
    assert_eq!(
        (docker.username.as_str(), docker.password.as_str()),
        ("d", "dp")
    );

    // The environment's credentials go only to the registry SARDE_REGISTRY names, and there
    // they win over files.
    unsafe {
        std::env::set_var("SARDE_REGISTRY_USERNAME", "envuser");
        std::env::set_var("SARDE_REGISTRY_PASSWORD", "envpass");
    }
    let user_for = |registry: &str| credentials::lookup(registry).unwrap().map(|c| c.username);
    assert_eq!(
        user_for("127.0.0.1:5000").as_deref(),
        Some("user"),
        "without SARDE_REGISTRY they go nowhere"
    );
    unsafe { std::env::set_var("SARDE_REGISTRY", "127.0.0.1:5000") };
    assert_eq!(user_for("127.0.0.1:5000").as_deref(), Some("envuser"));
    assert_eq!(
        user_for("evil.example").as_deref(),
        None,
        "an image on another registry gets nothing"
    );
    unsafe {
        std::env::remove_var("SARDE_REGISTRY");
        std::env::remove_var("SARDE_REGISTRY_USERNAME");
        std::env::remove_var("SARDE_REGISTRY_PASSWORD");
    }

    assert!(credentials::remove("127.0.0.1:5000").unwrap());
    assert!(!credentials::remove("127.0.0.1:5000").unwrap());
    assert_eq!(credentials::lookup("127.0.0.1:5000").unwrap(), None);
    assert_eq!(
        fs_err::metadata(&auth_file).unwrap().permissions().mode() & 0o777,
        0o600
    );

    credentials::store("a.example", &creds).unwrap();
    credentials::store("b.example", &creds).unwrap();
    credentials::remove_all().unwrap();
    assert_eq!(credentials::lookup("a.example").unwrap(), None);
    assert_eq!(credentials::lookup("b.example").unwrap(), None);
}
