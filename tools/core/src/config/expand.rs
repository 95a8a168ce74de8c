//! `${VAR}` expansion: a config string is read through the environment, and a value any part of
//! which came from it is a secret ([`Text`]). Also the value types built on it: [`UrlText`] and
//! [`Dur`], and the serde helpers the sections use for expanded strings.

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;

use serde::{Deserialize, Deserializer};

use crate::secret;
use crate::urls::{shown_url, validate_url};

/// A string value from the config, after `${VAR}` expansion. When any part came from the
/// environment it is a secret: `Display`/`Debug` print `***` and the value is registered for
/// redaction. Use [`Text::expose`] where the value is sent.
#[derive(Clone, PartialEq, Eq)]
pub struct Text {
    value: String,
    secret: bool,
    /// A `${VAR}` in it is not set (the value is then incomplete; see [`Config::require`]).
    unset: bool,
}

impl Text {
    /// A literal (not secret) value.
    pub fn literal(value: impl Into<String>) -> Self {
        Text {
            value: value.into(),
            secret: false,
            unset: false,
        }
    }

    /// The value itself.
    pub fn expose(&self) -> &str {
        &self.value
    }

    /// Whether any part came from the environment.
    pub fn is_secret(&self) -> bool {
        self.secret
    }

    /// Whether a `${VAR}` in it is not set (the value is incomplete).
    pub fn is_unset(&self) -> bool {
        self.unset
    }
}

impl fmt::Display for Text {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.secret {
            f.write_str("***")
        } else {
            f.write_str(&self.value)
        }
    }
}

impl fmt::Debug for Text {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.secret {
            f.write_str("Text(***)")
        } else {
            write!(f, "Text({:?})", self.value)
        }
    }
}

pub(super) type Lookup = Box<dyn Fn(&str) -> Option<String>>;

thread_local! {
    /// The variable lookup used while one document is parsed (tests pass their own).
    pub(super) static LOOKUP: RefCell<Option<Lookup>> = const { RefCell::new(None) };
}

thread_local! {
    /// Set when the lookup met a variable that is not set (it then reads as empty).
    pub(super) static UNSET_SEEN: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

fn lookup_var(name: &str) -> Option<String> {
    let value = LOOKUP.with(|l| match &*l.borrow() {
        Some(f) => f(name),
        None => std::env::var(name).ok(),
    });
    if value.is_none() {
        UNSET_SEEN.with(|u| u.set(true));
    }
    Some(value.unwrap_or_default())
}

/// Expands `${VAR}` (and `$$` for a literal `$`). Returns the value and whether a variable was used.
pub fn expand(
    raw: &str,
    lookup: impl Fn(&str) -> Option<String>,
) -> Result<(String, bool), String> {
    let mut out = String::with_capacity(raw.len());
    let mut used = false;
    let mut rest = raw;
    while let Some(i) = rest.find('$') {
        out.push_str(&rest[..i]);
        let after = &rest[i + 1..];
        if let Some(tail) = after.strip_prefix('$') {
            out.push('$');
            rest = tail;
        } else if let Some(tail) = after.strip_prefix('{') {
            let end = tail
                .find('}')
                .ok_or_else(|| format!("unclosed ${{ in {raw:?}"))?;
            let name = &tail[..end];
            if name.is_empty()
                || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
                || name.starts_with(|c: char| c.is_ascii_digit())
            {
                return Err(format!(
                    "invalid variable name {name:?} (use ${{NAME}} with letters, digits and _)"
                ));
            }
            let value = lookup(name).ok_or_else(|| super::unset_message(name))?;
            // The variable's own value is a secret too, not only the text it is part of
            // (`Bearer ${API_TOKEN}`): the runner must mask the bare token wherever it shows.
            secret::register(&value);
            out.push_str(&value);
            used = true;
            rest = &tail[end + 1..];
        } else {
            out.push('$');
            rest = after;
        }
    }
    out.push_str(rest);
    Ok((out, used))
}

impl<'de> Deserialize<'de> for Text {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let raw = String::deserialize(d)?;
        UNSET_SEEN.with(|u| u.set(false));
        let (value, secret) = expand(&raw, lookup_var).map_err(serde::de::Error::custom)?;
        let unset = UNSET_SEEN.with(|u| u.replace(false));
        // An incomplete value (`Bearer ` of `Bearer ${UNSET}`) is no secret to redact.
        if secret && !unset {
            secret::register(&value);
        }
        Ok(Text {
            value,
            secret,
            unset,
        })
    }
}

/// A plain string field, `${VAR}` expanded like every string of the file; a value that used a
/// variable is registered as a secret (masked and redacted wherever it would be printed).
pub(super) fn expanded<'de, D: Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    Ok(Text::deserialize(d)?.value)
}

pub(super) fn expanded_opt<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    Ok(Option::<Text>::deserialize(d)?.map(|t| t.value))
}

pub(super) fn expanded_vec<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
    Ok(Vec::<Text>::deserialize(d)?
        .into_iter()
        .map(|t| t.value)
        .collect())
}

pub(super) fn expanded_map<'de, D: Deserializer<'de>>(
    d: D,
) -> Result<BTreeMap<String, String>, D::Error> {
    Ok(BTreeMap::<String, Text>::deserialize(d)?
        .into_iter()
        .map(|(k, t)| (k, t.value))
        .collect())
}

/// An absolute http(s) URL (after expansion).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UrlText(pub Text);

impl UrlText {
    /// The URL without a trailing slash, ready to join paths to.
    pub fn base(&self) -> &str {
        self.0.expose().trim_end_matches('/')
    }
}

impl fmt::Display for UrlText {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

impl<'de> Deserialize<'de> for UrlText {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let t = Text::deserialize(d)?;
        if t.unset {
            // Not validated: a tool that reads it stops first (`Config::require`).
            return Ok(UrlText(t));
        }
        validate_url(t.expose()).map_err(|e| {
            let shown = if t.is_secret() {
                "***".to_owned()
            } else {
                shown_url(t.expose())
            };
            serde::de::Error::custom(format!("{e}: {shown:?}"))
        })?;
        Ok(UrlText(t))
    }
}

/// A duration written as `300s`, `5m`, `1m 30s`, `250ms`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Dur(pub Duration);

impl From<Dur> for Duration {
    fn from(d: Dur) -> Self {
        d.0
    }
}

impl<'de> Deserialize<'de> for Dur {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        crate::duration::parse(&s)
            .map(Dur)
            .map_err(|e| serde::de::Error::custom(format!("invalid duration {s:?}: {e}")))
    }
}
