//! Renders an Envoy configuration template around Warden.
//!
//! Templates (see `examples/envoy/envoy.yaml`) hold `@NAME@` placeholders;
//! every placeholder must be given and every given value must be used, so a
//! renamed placeholder cannot leave a config half-filled.

use crate::Error;

/// Replaces each `@NAME@` in `template` with its value.
///
/// # Errors
///
/// Returns an error naming a placeholder that is left over or unused.
pub fn render(template: &str, values: &[(&str, String)]) -> Result<String, Error> {
    let mut out = template.to_owned();
    for (name, value) in values {
        let placeholder = format!("@{name}@");
        if !out.contains(&placeholder) {
            return Err(Error(format!(
                "template has no placeholder `{placeholder}`"
            )));
        }
        out = out.replace(&placeholder, value);
    }
    if let Some(name) = leftover(&out) {
        return Err(Error(format!(
            "template placeholder `@{name}@` was not given"
        )));
    }
    Ok(out)
}

/// The first `@NAME@` (upper case and `_`) left in `text`, if any.
fn leftover(text: &str) -> Option<&str> {
    let mut pieces = text.split('@');
    pieces.next();
    pieces.find(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_uppercase() || b == b'_'))
}

/// A string as a YAML double-quoted scalar (JSON string syntax is valid
/// YAML), for embedding the plugin configuration.
pub fn yaml_string(value: &str) -> String {
    serde_json::Value::String(value.to_owned()).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn render_fills_every_placeholder() {
        let out = render("\"@type\": x\nport: @PORT@\n", &[("PORT", "80".into())]).unwrap();
        assert_eq!(out, "\"@type\": x\nport: 80\n");
    }

    #[test]
    fn render_refuses_missing_and_unused_values() {
        let missing = render("a: @A@\nb: @B@", &[("A", "1".into())]).unwrap_err();
        assert_eq!(
            missing.to_string(),
            "template placeholder `@B@` was not given"
        );
        let unused = render("a: 1", &[("A", "1".into())]).unwrap_err();
        assert_eq!(unused.to_string(), "template has no placeholder `@A@`");
    }
}
