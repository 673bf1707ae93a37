//! The sardine VM config: what an image tells its users (credentials, services).
//!
//! Schema (as sardinecake 0.4.2's `sardineconfig.schema.json`, draft 2020-12): an object;
//! `users` an array of objects with string `username` and `password`; `services` an array
//! of objects with string `service`, integer `port` (1–65535) and `protocol` `tcp`|`udp`;
//! any other keys allowed. Validated here in code, so no schema file is looked up in the
//! current directory (W23).

use serde_json::Value;

use crate::error::ImageError;

/// Validates a sardine VM config and returns it re-serialised (2-space indented JSON).
pub fn validate(text: &[u8], origin: &str) -> Result<Value, ImageError> {
    let fail = |what: String| ImageError::VmConfig {
        origin: origin.to_owned(),
        what,
    };
    let value: Value =
        serde_json::from_slice(text).map_err(|e| fail(format!("not valid JSON: {e}")))?;
    let object = value
        .as_object()
        .ok_or_else(|| fail("must be a JSON object".into()))?;
    if let Some(users) = object.get("users") {
        let users = users
            .as_array()
            .ok_or_else(|| fail("`users` must be an array".into()))?;
        for (i, user) in users.iter().enumerate() {
            for key in ["username", "password"] {
                if !user.get(key).is_some_and(Value::is_string) {
                    return Err(fail(format!("users[{i}] needs a string `{key}`")));
                }
            }
        }
    }
    if let Some(services) = object.get("services") {
        let services = services
            .as_array()
            .ok_or_else(|| fail("`services` must be an array".into()))?;
        for (i, service) in services.iter().enumerate() {
            if !service.get("service").is_some_and(Value::is_string) {
                return Err(fail(format!("services[{i}] needs a string `service`")));
            }
            let port = service.get("port").and_then(Value::as_u64);
            if !port.is_some_and(|p| (1..=65535).contains(&p)) {
                return Err(fail(format!(
                    "services[{i}] needs an integer `port` from 1 to 65535"
                )));
            }
            let protocol = service.get("protocol").and_then(Value::as_str);
            if !matches!(protocol, Some("tcp" | "udp")) {
                return Err(fail(format!("services[{i}] needs `protocol` tcp or udp")));
            }
        }
    }
    Ok(value)
}

/// The first user's credentials, if the config has any (what SSH logins default to).
pub fn first_user(config: &Value) -> Option<(String, String)> {
    let user = config.get("users")?.as_array()?.first()?;
    Some((
        user.get("username")?.as_str()?.to_owned(),
        user.get("password")?.as_str()?.to_owned(),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_the_documented_shape() {
        let config = br#"{"users":[{"username":"vagrant","password":"vagrant"}],
            "services":[{"service":"ssh","port":22,"protocol":"tcp"}],"extra":1}"#;
        let value = validate(config, "t").unwrap();
        assert_eq!(
            first_user(&value),
            Some(("vagrant".into(), "vagrant".into()))
        );
    }

    #[test]
    fn refuses_what_the_schema_forbids() {
        for bad in [
            &br#"[]"#[..],
            br#"{"users":{}}"#,
            br#"{"users":[{"username":"x"}]}"#,
            br#"{"services":[{"service":"ssh","port":0,"protocol":"tcp"}]}"#,
            br#"{"services":[{"service":"ssh","port":22,"protocol":"icmp"}]}"#,
            br#"{"services":[{"port":22,"protocol":"tcp"}]}"#,
            b"not json",
        ] {
            assert!(
                validate(bad, "t").is_err(),
                "{}",
                String::from_utf8_lossy(bad)
            );
        }
    }
}
