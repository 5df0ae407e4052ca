//! Tracker URLs: `postgres://USER[:PASSWORD]@HOST:PORT/DB?tracker=NAME`
//! (also `postgresql://`). `tracker` names the tracker within the database
//! (several live side by side); every other query parameter is the
//! connection's, as libpq reads them (`connect_timeout=5`, ...).

use crate::error::{ErrorKind, Result};

/// The tracker named when a URL names none.
pub const DEFAULT_TRACKER: &str = "default";

/// Whether `text` is a PostgreSQL URL rather than a path.
pub fn is_postgres_url(text: &str) -> bool {
    text.starts_with("postgres://") || text.starts_with("postgresql://")
}

/// A parsed tracker URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct TrackerUrl {
    /// The connection's URL, without `tracker`.
    pub connection: String,
    /// The URL as shown in messages: without the password.
    pub shown: String,
    /// The tracker's name.
    pub tracker: String,
}

fn invalid(url: &str, reason: impl Into<String>) -> crate::Error {
    ErrorKind::InvalidOption {
        name: "url",
        why: format!("{}: {}", url_without_password(url), reason.into()),
    }
    .into()
}

/// `url` with any password replaced by `***`, as messages show it.
pub fn url_without_password(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_string();
    };
    let authority_end = rest.find(['/', '?']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(authority_end);
    match authority.rsplit_once('@') {
        Some((user, host)) => match user.split_once(':') {
            Some((name, _)) => format!("{scheme}://{name}:***@{host}{tail}"),
            None => url.to_string(),
        },
        None => url.to_string(),
    }
}

/// Whether `name` is a tracker name: 1 to 63 letters, digits, `_`, `-`, `.`.
fn valid_name(name: &str) -> bool {
    (1..=63).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.'))
}

impl TrackerUrl {
    pub(crate) fn parse(url: &str) -> Result<Self> {
        if !is_postgres_url(url) {
            return Err(invalid(url, "not a postgres:// or postgresql:// URL"));
        }
        let (base, query) = match url.split_once('?') {
            Some((base, query)) => (base, query),
            None => (url, ""),
        };
        let mut tracker = None;
        let mut kept = Vec::new();
        for pair in query.split('&').filter(|p| !p.is_empty()) {
            match pair.split_once('=') {
                Some(("tracker", name)) => {
                    if tracker.is_some() {
                        return Err(invalid(url, "it names the tracker twice"));
                    }
                    tracker = Some(name.to_string());
                }
                _ => kept.push(pair),
            }
        }
        let tracker = tracker.unwrap_or_else(|| DEFAULT_TRACKER.to_string());
        if !valid_name(&tracker) {
            return Err(invalid(
                url,
                format!(
                    "the tracker name {tracker:?} is not 1 to 63 letters, digits, '_', '-' or '.'"
                ),
            ));
        }
        let connection = if kept.is_empty() {
            base.to_string()
        } else {
            format!("{base}?{}", kept.join("&"))
        };
        Ok(TrackerUrl {
            shown: url_without_password(url),
            connection,
            tracker,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_tracker_parameter_is_taken_out_of_the_url() {
        let u = TrackerUrl::parse("postgres://me@localhost:5433/crawl?tracker=pages").unwrap();
        assert_eq!(u.connection, "postgres://me@localhost:5433/crawl");
        assert_eq!(u.tracker, "pages");
        let u = TrackerUrl::parse(
            "postgresql://me:secret@h/db?connect_timeout=5&tracker=a.b-c_1&sslmode=disable",
        )
        .unwrap();
        assert_eq!(
            u.connection,
            "postgresql://me:secret@h/db?connect_timeout=5&sslmode=disable"
        );
        assert_eq!(u.tracker, "a.b-c_1");
        assert!(!u.shown.contains("secret"), "{}", u.shown);
        assert_eq!(
            TrackerUrl::parse("postgres://h/db").unwrap().tracker,
            DEFAULT_TRACKER
        );
    }

    #[test]
    fn bad_urls_are_refused_without_showing_the_password() {
        for bad in [
            "http://h/db",
            "postgres://u:pw@h/db?tracker=",
            "postgres://u:pw@h/db?tracker=a;b",
            "postgres://u:pw@h/db?tracker=a&tracker=b",
        ] {
            let err = TrackerUrl::parse(bad).unwrap_err().to_string();
            assert!(!err.contains("pw@"), "{err}");
        }
        assert!(is_postgres_url("postgres://x") && !is_postgres_url("./postgres"));
    }
}
