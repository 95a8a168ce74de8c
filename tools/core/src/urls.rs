//! URLs from flags and the config: only absolute http(s) with a host and no credentials, and a
//! form for messages that never shows credentials.

/// Checks that `s` is an absolute http or https URL with a host and no credentials in it.
/// Credentials in a URL (`https://user:pass@host`) are refused: they would be printed wherever
/// the URL is (targets, errors, reports); send them in a header with `${VAR}` instead.
pub fn validate_url(s: &str) -> Result<reqwest::Url, String> {
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

/// `s` for messages, with anything that looks like URL credentials (`user:pass@` after `://`)
/// replaced by `***@`, so a refused URL never echoes its password.
pub fn shown_url(s: &str) -> String {
    let Some(i) = s.find("://") else {
        return crate::secret::redact(s);
    };
    let (scheme, rest) = s.split_at(i + 3);
    let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(authority_end);
    let shown = match authority.rfind('@') {
        Some(at) => format!("{scheme}***@{}{tail}", &authority[at + 1..]),
        None => s.to_owned(),
    };
    crate::secret::redact(&shown)
}
