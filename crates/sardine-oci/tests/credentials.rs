//! Credential lookup through the environment (one test: it changes process-wide variables),
//! credential helpers speaking the docker-credential protocol (a small shell helper), and the
//! containers-auth.json(5) order of files.

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
        credentials::Stored::File(auth_file.clone())
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

    // A credsStore helper: login stores through it (nothing in the file), lookups ask it,
    // logout erases there.
    let bin = dir.path().join("bin");
    fs_err::create_dir(&bin).unwrap();
    let vault = dir.path().join("vault.json");
    let helper = bin.join("docker-credential-sardetest");
    fs_err::write(
        &helper,
        format!(
            "#!/bin/sh\nvault='{}'\ncase \"$1\" in\n\
             store) cat > \"$vault\" ;;\n\
             get) [ -f \"$vault\" ] || {{ echo 'credentials not found in native keychain'; exit 1; }}\n\
             \x20 cat \"$vault\" ;;\n\
             erase) [ -f \"$vault\" ] || {{ echo 'credentials not found in native keychain'; exit 1; }}\n\
             \x20 rm \"$vault\" ;;\n\
             *) exit 2 ;;\nesac\n",
            vault.display()
        ),
    )
    .unwrap();
    fs_err::set_permissions(&helper, std::fs::Permissions::from_mode(0o755)).unwrap();
    let path = format!(
        "{}:{}",
        bin.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    unsafe { std::env::set_var("PATH", path) };
    fs_err::write(&auth_file, r#"{"credsStore":"sardetest","auths":{}}"#).unwrap();
    let stored = credentials::store("vault.example", &creds).unwrap();
    assert!(
        matches!(&stored, credentials::Stored::Helper { helper, .. } if helper == "sardetest"),
        "{stored:?}"
    );
    let in_file = fs_err::read_to_string(&auth_file).unwrap();
    assert!(!in_file.contains("vault.example"), "{in_file}");
    let saved = fs_err::read_to_string(&vault).unwrap();
    assert!(
        saved.contains("\"Secret\":\"secret\""),
        "the helper got the secret: {saved}"
    );
    assert_eq!(
        credentials::lookup("vault.example").unwrap(),
        Some(creds.clone())
    );
    assert!(credentials::remove("vault.example").unwrap());
    assert!(!vault.exists(), "logout did not erase the helper's entry");
    assert!(!credentials::remove("vault.example").unwrap());

    // Without REGISTRY_AUTH_FILE, $XDG_CONFIG_HOME/containers/auth.json is read after the
    // runtime auth file.
    let config_home = dir.path().join("config");
    fs_err::create_dir_all(config_home.join("containers")).unwrap();
    fs_err::write(
        config_home.join("containers/auth.json"),
        r#"{"auths":{"xdg.example":{"auth":"eDp4cA=="}}}"#,
    )
    .unwrap();
    unsafe {
        std::env::remove_var("REGISTRY_AUTH_FILE");
        std::env::set_var("XDG_RUNTIME_DIR", dir.path().join("runtime"));
        std::env::set_var("XDG_CONFIG_HOME", &config_home);
    }
    let xdg = credentials::lookup("xdg.example").unwrap().unwrap();
    assert_eq!((xdg.username.as_str(), xdg.password.as_str()), ("x", "xp"));
}
