//! Credentials are write-only through the Web API: every `password` in what `GET /config`
//! and `GET /config/<kind>[/<name>]` return is replaced by [`PLACEHOLDER`] (GOST returns them
//! in clear; this is a deliberate difference). A `PUT` may send the placeholder back
//! unchanged, as a UI that edits what it read does: it then keeps the stored value at the same
//! place. A placeholder with no stored value behind it is refused.

use serde_json::Value;

/// What a redacted credential reads as.
pub const PLACEHOLDER: &str = "******";

/// Object keys whose string values are credentials.
fn secret(key: &str) -> bool {
    key.eq_ignore_ascii_case("password")
}

/// Replaces every non-empty credential in `v` by [`PLACEHOLDER`].
pub fn redact(v: &mut Value) {
    match v {
        Value::Object(m) => {
            for (k, x) in m.iter_mut() {
                match x {
                    Value::String(s) if secret(k) && !s.is_empty() => *s = PLACEHOLDER.into(),
                    _ => redact(x),
                }
            }
        }
        Value::Array(a) => a.iter_mut().for_each(redact),
        _ => {}
    }
}

/// Puts the stored credential back wherever `new` holds [`PLACEHOLDER`]: `old` is the stored
/// object at the same place (array items are matched by `name` when they have one, else by
/// position). `path` names the place for the error.
pub fn restore(new: &mut Value, old: Option<&Value>, path: &str) -> Result<(), String> {
    match new {
        Value::Object(m) => {
            for (k, x) in m.iter_mut() {
                let here = format!("{path}.{k}");
                let before = old.and_then(|o| o.get(k.as_str()));
                match x {
                    Value::String(s) if secret(k) && s == PLACEHOLDER => match before {
                        Some(Value::String(stored)) => *s = stored.clone(),
                        _ => {
                            return Err(format!(
                                "{here}: {PLACEHOLDER:?} is the placeholder for a stored password and there is none here (accepted: the password itself)"
                            ))
                        }
                    },
                    _ => restore(x, before, &here)?,
                }
            }
            Ok(())
        }
        Value::Array(a) => {
            let olds = old.and_then(Value::as_array);
            for (i, x) in a.iter_mut().enumerate() {
                let name = x.get("name").and_then(Value::as_str).map(str::to_string);
                let before = olds.and_then(|o| match &name {
                    Some(n) => o
                        .iter()
                        .find(|y| y.get("name").and_then(Value::as_str) == Some(n.as_str())),
                    None => o.get(i),
                });
                restore(x, before, &format!("{path}[{i}]"))?;
            }
            Ok(())
        }
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn passwords_are_hidden_at_every_depth() {
        let mut v = json!({"services": [{"handler": {"auth": {"username": "u", "password": "p"}}}],
            "authers": [{"auths": [{"username": "a", "password": "b"}, {"username": "c", "password": ""}]}],
            "api": {"auth": {"username": "x", "password": "y"}}});
        redact(&mut v);
        let text = v.to_string();
        for secret in ["\"p\"", "\"b\"", "\"y\""] {
            assert!(!text.contains(secret), "{text}");
        }
        assert_eq!(
            v["authers"][0]["auths"][1]["password"], "",
            "empty stays empty"
        );
        assert_eq!(v["services"][0]["handler"]["auth"]["username"], "u");
    }

    #[test]
    fn the_placeholder_keeps_the_stored_value_and_nothing_else() {
        let old = json!({"name": "s", "handler": {"auth": {"username": "u", "password": "p"}},
            "nodes": [{"name": "a", "connector": {"auth": {"password": "pa"}}}, {"name": "b", "connector": {"auth": {"password": "pb"}}}]});
        let mut new = old.clone();
        redact(&mut new);
        // reordered nodes still find their own password
        new["nodes"].as_array_mut().unwrap().reverse();
        restore(&mut new, Some(&old), "services[s]").unwrap();
        assert_eq!(new["handler"]["auth"]["password"], "p");
        assert_eq!(new["nodes"][0]["connector"]["auth"]["password"], "pb");
        assert_eq!(new["nodes"][1]["connector"]["auth"]["password"], "pa");
        let mut fresh = json!({"name": "t", "handler": {"auth": {"password": PLACEHOLDER}}});
        let e = restore(&mut fresh, None, "services[t]").unwrap_err();
        assert!(e.starts_with("services[t].handler.auth.password: "), "{e}");
    }
}
