//! The two facts of a server's certificate that an https check reports: whom it names (the
//! subject's common name) and when it expires (`notAfter`). A small DER reader of RFC 5280's
//! `TBSCertificate` up to the subject; the TLS stack has already verified the chain, this only
//! reads. Any input gives a value or an error, never a panic (property tests in `proptests`).

/// What a leaf certificate says of itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertFacts {
    /// The subject's common name (`CN=`), else its organisation (`O=`), else `(no subject name)`.
    pub subject: String,
    /// `notAfter`, in seconds since the Unix epoch (UTC).
    pub not_after: i64,
}

impl CertFacts {
    /// Whole days from `now` (Unix seconds) to expiry; negative once expired.
    pub fn days_left(&self, now: i64) -> i64 {
        (self.not_after - now).div_euclid(86_400)
    }

    /// The expiry as `YYYY-MM-DD` (UTC).
    pub fn expires_on(&self) -> String {
        let at = std::time::UNIX_EPOCH
            + std::time::Duration::from_secs(self.not_after.max(0).unsigned_abs());
        humantime::format_rfc3339_seconds(at).to_string()[..10].to_owned()
    }
}

/// One DER element: its tag and its content.
struct Tlv<'a> {
    tag: u8,
    body: &'a [u8],
}

/// Reads one element from the front of `input`: it and what follows it.
fn read(input: &[u8]) -> Result<(Tlv<'_>, &[u8]), String> {
    let (&tag, rest) = input.split_first().ok_or("truncated: no tag")?;
    if tag & 0x1f == 0x1f {
        return Err(format!("unsupported multi-byte tag 0x{tag:02x}"));
    }
    let (&first, rest) = rest.split_first().ok_or("truncated: no length")?;
    let (len, rest) = if first < 0x80 {
        (usize::from(first), rest)
    } else {
        let n = usize::from(first & 0x7f);
        if n == 0 || n > 4 {
            return Err(format!("unsupported length form 0x{first:02x}"));
        }
        let bytes = rest.get(..n).ok_or("truncated: length")?;
        let len = bytes
            .iter()
            .fold(0usize, |acc, b| (acc << 8) | usize::from(*b));
        (len, &rest[n..])
    };
    let body = rest
        .get(..len)
        .ok_or_else(|| format!("truncated: element of {len} bytes, {} left", rest.len()))?;
    Ok((Tlv { tag, body }, &rest[len..]))
}

/// Reads one element that must carry `tag`; `what` names it in the error.
fn expect_tag<'a>(input: &'a [u8], tag: u8, what: &str) -> Result<(Tlv<'a>, &'a [u8]), String> {
    let (tlv, rest) = read(input)?;
    if tlv.tag != tag {
        return Err(format!(
            "{what}: expected tag 0x{tag:02x}, found 0x{:02x}",
            tlv.tag
        ));
    }
    Ok((tlv, rest))
}

/// The subject and expiry of a DER-encoded X.509 certificate.
pub fn parse(der: &[u8]) -> Result<CertFacts, String> {
    const SEQUENCE: u8 = 0x30;
    let (cert, _) = expect_tag(der, SEQUENCE, "certificate")?;
    let (tbs, _) = expect_tag(cert.body, SEQUENCE, "tbsCertificate")?;
    let mut rest = tbs.body;
    // version [0] EXPLICIT, absent for v1
    if rest.first() == Some(&0xa0) {
        rest = read(rest)?.1;
    }
    rest = expect_tag(rest, 0x02, "serialNumber")?.1;
    rest = expect_tag(rest, SEQUENCE, "signature")?.1;
    rest = expect_tag(rest, SEQUENCE, "issuer")?.1;
    let (validity, rest) = expect_tag(rest, SEQUENCE, "validity")?;
    let (_not_before, after) = read(validity.body)?;
    let (not_after, _) = read(after)?;
    let not_after = time(&not_after)?;
    let (subject, _) = expect_tag(rest, SEQUENCE, "subject")?;
    Ok(CertFacts {
        subject: subject_name(subject.body)?,
        not_after,
    })
}

/// A UTCTime (`YYMMDDHHMMSSZ`, years 1950-2049) or GeneralizedTime (`YYYYMMDDHHMMSSZ`).
fn time(t: &Tlv<'_>) -> Result<i64, String> {
    let text = std::str::from_utf8(t.body).map_err(|_| "notAfter is not text".to_owned())?;
    let digits = text.strip_suffix('Z').ok_or("notAfter is not UTC (no Z)")?;
    if !digits.bytes().all(|b| b.is_ascii_digit()) {
        return Err(format!("notAfter {text:?} is not a time"));
    }
    let num = |s: &str| s.parse::<i64>().map_err(|_| format!("notAfter {text:?}"));
    let (year, rest) = match (t.tag, digits.len()) {
        (0x17, 12) => {
            let yy = num(&digits[..2])?;
            (if yy >= 50 { 1900 + yy } else { 2000 + yy }, &digits[2..])
        }
        (0x18, 14) => (num(&digits[..4])?, &digits[4..]),
        _ => {
            return Err(format!(
                "notAfter {text:?}: not a UTCTime or GeneralizedTime"
            ));
        }
    };
    let p = |i: usize| &rest[i..i + 2];
    let rfc3339 = format!("{year:04}-{}-{}T{}:{}:{}Z", p(0), p(2), p(4), p(6), p(8));
    let at = humantime::parse_rfc3339(&rfc3339)
        .map_err(|e| format!("notAfter {text:?} is out of range ({e})"))?;
    at.duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .map_err(|_| format!("notAfter {text:?} is out of range (before 1970)"))
}

/// The common name of a `Name` (a SEQUENCE of SETs of attribute SEQUENCEs), else the
/// organisation.
fn subject_name(mut rdns: &[u8]) -> Result<String, String> {
    const CN: &[u8] = &[0x55, 0x04, 0x03];
    const O: &[u8] = &[0x55, 0x04, 0x0a];
    let (mut cn, mut org) = (None, None);
    while !rdns.is_empty() {
        let (set, rest) = expect_tag(rdns, 0x31, "subject RDN")?;
        rdns = rest;
        let mut attrs = set.body;
        while !attrs.is_empty() {
            let (attr, rest) = expect_tag(attrs, 0x30, "subject attribute")?;
            attrs = rest;
            let (oid, value) = expect_tag(attr.body, 0x06, "attribute type")?;
            let (value, _) = read(value)?;
            let text = String::from_utf8_lossy(value.body).into_owned();
            match oid.body {
                CN => cn = cn.or(Some(text)),
                O => org = org.or(Some(text)),
                _ => {}
            }
        }
    }
    Ok(cn.or(org).unwrap_or_else(|| "(no subject name)".to_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// A DER element of `tag` around `body`.
    fn tlv(tag: u8, body: &[u8]) -> Vec<u8> {
        let mut out = vec![tag];
        match body.len() {
            n if n < 0x80 => out.push(n as u8),
            n if n < 0x100 => out.extend([0x81, n as u8]),
            n => out.extend([0x82, (n >> 8) as u8, n as u8]),
        }
        out.extend_from_slice(body);
        out
    }

    /// A certificate's bytes as far as [`parse`] reads them, with the subject `cn` and
    /// `not_after` as written in DER (`tag` 0x17 or 0x18).
    fn cert(cn: &str, tag: u8, not_after: &str) -> Vec<u8> {
        let attr = [tlv(0x06, &[0x55, 0x04, 0x03]), tlv(0x0c, cn.as_bytes())].concat();
        let subject = tlv(0x30, &tlv(0x31, &tlv(0x30, &attr)));
        let validity = tlv(
            0x30,
            &[tlv(0x17, b"250101000000Z"), tlv(tag, not_after.as_bytes())].concat(),
        );
        let tbs = [
            tlv(0xa0, &tlv(0x02, &[2])),
            tlv(0x02, &[1, 2, 3]),
            tlv(0x30, &tlv(0x06, &[0x2a, 0x86, 0x48])),
            tlv(0x30, &[]),
            validity,
            subject,
        ]
        .concat();
        tlv(
            0x30,
            &[tlv(0x30, &tbs), tlv(0x30, &[]), tlv(0x03, &[0])].concat(),
        )
    }

    #[test]
    fn reads_the_common_name_and_expiry() {
        let f = parse(&cert("service.example", 0x17, "261209120000Z")).unwrap();
        assert_eq!(f.subject, "service.example");
        assert_eq!(f.expires_on(), "2026-12-09");
        // 2026-12-04 12:00 UTC: five days left
        assert_eq!(f.days_left(1_796_385_600), 5);
        let g = parse(&cert("x", 0x18, "20500101000000Z")).unwrap();
        assert_eq!(g.expires_on(), "2050-01-01");
    }

    #[test]
    fn names_what_is_wrong() {
        assert!(parse(&[]).unwrap_err().contains("truncated"));
        let e = parse(&cert("x", 0x17, "2612091200Z")).unwrap_err();
        assert!(e.contains("notAfter"), "{e}");
        let e = parse(&cert("x", 0x17, "261309120000Z")).unwrap_err();
        assert!(e.contains("out of range"), "{e}");
        // February has no 31st, and a UTCTime of 1969 is before the epoch.
        for bad in ["260231120000Z", "691231235959Z"] {
            let e = parse(&cert("x", 0x17, bad)).unwrap_err();
            assert!(e.contains("out of range"), "{bad}: {e}");
        }
    }

    proptest! {
        #![proptest_config(crate::proptests::config(2000))]

        /// No input panics: random bytes, and a real shape cut or overwritten anywhere.
        #[test]
        fn any_bytes_give_a_value_or_an_error(bytes in proptest::collection::vec(any::<u8>(), 0..300)) {
            let _ = parse(&bytes);
        }

        #[test]
        fn damaged_certificates_never_panic(cut in 0usize..200, at in 0usize..200, byte in any::<u8>()) {
            let mut c = cert("damaged.example", 0x17, "300101000000Z");
            if at < c.len() {
                c[at] = byte;
            }
            c.truncate(cut.min(c.len()));
            let _ = parse(&c);
        }

        #[test]
        fn any_valid_time_is_read_back(y in 1970i64..2050, m in 1i64..=12, d in 1i64..=28, h in 0i64..24) {
            let text = format!("{:02}{m:02}{d:02}{h:02}0000Z", y % 100);
            let f = parse(&cert("t", 0x17, &text)).unwrap();
            prop_assert_eq!(f.expires_on(), format!("{y}-{m:02}-{d:02}"));
            prop_assert_eq!(f.not_after.rem_euclid(86_400), h * 3600);
        }
    }
}
