//! URLs from flags and the config: only absolute http(s) with a host and no credentials, and a
//! form for messages that never shows credentials.

/// Checks that `s` is an absolute http or https URL with a host and no credentials in it.
/// Credentials in a URL (`https://user:pass@host`) are refused: they would be printed wherever
/// the URL is (targets, errors, reports); send them in a header with `${VAR}` instead.
pub fn validate_url(s: &str) -> Result<reqwest::Url, String> {
    // Whatever happens next, credentials in it are scrubbed from everything printed from now on.
    crate::secret::register_url_credentials(s);
    let url = reqwest::Url::parse(s).map_err(|e| format!("not a URL ({e})"))?;
    if !url.username().is_empty() || url.password().is_some() {
        return Err(
            "URL must not carry credentials (user:password@): send them in a header read from ${VAR}, e.g. headers = { Authorization = \"Bearer ${TOKEN}\" }"
                .into(),
        );
    }
    if !matches!(url.scheme(), "http" | "https") {
        return Err(format!(
            "URL scheme must be http or https, not {}",
            url.scheme()
        ));
    }
    if url.host_str().is_none_or(str::is_empty) {
        return Err("URL has no host".into());
    }
    Ok(url)
}

/// [`validate_url`], and no query or fragment: a base URL that each check's path is added to
/// (`https://host/api?x=1` would send every check to `/api`, whatever its path).
pub fn validate_base_url(s: &str) -> Result<reqwest::Url, String> {
    let url = validate_url(s)?;
    if url.query().is_some() || url.fragment().is_some() {
        return Err(
            "a base URL takes no query (?) or fragment (#): each check's path is added to it"
                .into(),
        );
    }
    Ok(url)
}

/// `s` for messages, with anything that may be URL credentials replaced by `***@`, so a refused
/// URL never echoes its password: an http(s) URL the parser reads without credentials is shown as
/// it is;
/// otherwise everything from the scheme to the last `@` is hidden (`https://***@host/`), however
/// odd the URL (a `/`, `?` or `#` in the password, `https:user:pw@host`, backslashes).
pub fn shown_url(s: &str) -> String {
    let clean = reqwest::Url::parse(s).is_ok_and(|u| {
        matches!(u.scheme(), "http" | "https") && u.username().is_empty() && u.password().is_none()
    });
    let Some(at) = s.rfind('@').filter(|_| !clean) else {
        return crate::secret::redact(s);
    };
    let head = &s[..at];
    let start = match head.find("://") {
        Some(i) => i + 3,
        None => head.find(':').map_or(0, |i| i + 1),
    };
    let start = start
        + head[start..]
            .bytes()
            .take_while(|b| matches!(b, b'/' | b'\\'))
            .count();
    crate::secret::redact(&format!("{}***@{}", &s[..start], &s[at + 1..]))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn odd_urls_with_credentials_are_shown_without_them() {
        for (url, pw) in [
            ("https://deploy:hunter2pw/x@h.example/", "hunter2pw"),
            ("https://deploy:pw?with#odd@h.example/p", "pw?with#odd"),
            ("https:u:plainpw99@h.example", "plainpw99"),
            ("https:/u:slashpw99@h.example", "slashpw99"),
            ("https:\\\\u:backpw99@h.example", "backpw99"),
            ("https://u:p%40ss99@h.example", "p%40ss99"),
            ("ftp://u:ftppw999@h.example", "ftppw999"),
        ] {
            let shown = shown_url(url);
            assert!(!shown.contains(pw), "{url} -> {shown}");
            assert!(
                shown.ends_with(&url[url.rfind('@').unwrap() + 1..]),
                "{url} -> {shown}"
            );
            assert!(validate_url(url).is_err(), "{url}");
        }
        for base in [
            "http://127.0.0.1:1?x=1#frag",
            "https://h.example/api?x",
            "https://h/#f",
        ] {
            assert!(validate_url(base).is_ok(), "{base}");
            let e = validate_base_url(base).unwrap_err();
            assert!(e.contains("no query (?) or fragment (#)"), "{base}: {e}");
        }
        assert!(validate_base_url("https://h.example/api/").is_ok());
        // A URL without credentials is shown as it is, an `@` in its path included.
        for url in ["https://h.example/a@b", "http://127.0.0.1:8080/x?y=1"] {
            assert_eq!(shown_url(url), url);
        }
    }

    proptest! {
        #![proptest_config(crate::proptests::config(256))]
        /// Whatever surrounds it, the password between `:` and the last `@` is never shown.
        #[test]
        fn a_password_in_a_url_is_never_shown(
            scheme in "(https?|ftp|git\\+ssh)?(:|://|:/|:\\\\\\\\)",
            user in "[a-z]{0,6}",
            pw in "QZ[a-z0-9/?#:%!@ ]{2,12}QZ",
            host in "[a-z.]{1,10}(:[0-9]{1,5})?(/[a-z@]{0,6})?",
        ) {
            let url = format!("{scheme}{user}:{pw}@{host}");
            let shown = shown_url(&url);
            prop_assert!(!shown.contains(&pw), "{} -> {}", url, shown);
        }
    }
}
