//! The tracker's settings: the try limit, the lease length and the retry
//! delay. They are stored in the log's header (format version 2) under
//! `"tracker"`, so every later open and the command-line tool use them:
//!
//! ```text
//! {"tracker":{"lease_ms":60000,"max_tries":3,"retry":{"first_ms":1000,"max_ms":60000}}}
//! ```
//!
//! `retry` is `null` (no delay), `{"after_ms":N}` (a fixed delay) or
//! `{"first_ms":N,"max_ms":M}` (doubling from `first_ms` up to `max_ms`).

use super::DEFAULT_LEASE;
use serde_json::{Map, Value, json};
use std::time::Duration;

/// How long a task that a worker released waits before it is claimed again.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use tastypod::RetryDelay;
///
/// let delay = RetryDelay::Exponential {
///     first: Duration::from_secs(1),
///     max: Duration::from_secs(60),
/// };
/// assert_eq!(delay.after_try(1), Duration::from_secs(1));
/// assert_eq!(delay.after_try(3), Duration::from_secs(4));
/// assert_eq!(delay.after_try(30), Duration::from_secs(60));
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum RetryDelay {
    /// A released task may be claimed again at once.
    #[default]
    None,
    /// A released task waits this long.
    Fixed(Duration),
    /// A released task waits `first` after its first try, twice as long
    /// after each further try, and never longer than `max`.
    Exponential {
        /// The wait after the first try.
        first: Duration,
        /// The longest wait.
        max: Duration,
    },
}

impl RetryDelay {
    /// The wait before the next try of a task released after `tries` tries.
    pub fn after_try(&self, tries: u32) -> Duration {
        match *self {
            RetryDelay::None => Duration::ZERO,
            RetryDelay::Fixed(d) => d,
            RetryDelay::Exponential { first, max } => {
                let doublings = tries.saturating_sub(1).min(63);
                first
                    .checked_mul(1u32 << doublings.min(31))
                    .filter(|_| doublings < 32)
                    .unwrap_or(max)
                    .min(max)
            }
        }
    }

    pub(crate) fn to_json(self) -> Value {
        let ms = |d: Duration| u64::try_from(d.as_millis()).unwrap_or(u64::MAX);
        match self {
            RetryDelay::None => Value::Null,
            RetryDelay::Fixed(d) => json!({ "after_ms": ms(d) }),
            RetryDelay::Exponential { first, max } => {
                json!({ "first_ms": ms(first), "max_ms": ms(max) })
            }
        }
    }

    pub(crate) fn from_json(value: &Value) -> Result<Self, String> {
        let ms = |field: &str| {
            value
                .get(field)
                .and_then(Value::as_u64)
                .map(Duration::from_millis)
                .ok_or(format!("retry.{field} is not a number of milliseconds"))
        };
        match value {
            Value::Null => Ok(RetryDelay::None),
            Value::Object(obj) if obj.contains_key("after_ms") => {
                Ok(RetryDelay::Fixed(ms("after_ms")?))
            }
            Value::Object(_) => Ok(RetryDelay::Exponential {
                first: ms("first_ms")?,
                max: ms("max_ms")?,
            }),
            _ => Err("retry is neither null nor an object".into()),
        }
    }
}

/// The settings a tracker works with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Settings {
    pub max_tries: u32,
    pub lease: Duration,
    pub retry: RetryDelay,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            max_tries: 0,
            lease: DEFAULT_LEASE,
            retry: RetryDelay::None,
        }
    }
}

/// Settings given to [`TrackerOptions`](super::TrackerOptions); what is not
/// given comes from the store, else from the defaults.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) struct Given {
    pub max_tries: Option<u32>,
    pub lease: Option<Duration>,
    pub retry: Option<RetryDelay>,
}

impl Given {
    pub(crate) fn is_empty(&self) -> bool {
        *self == Given::default()
    }

    /// These settings over `base`.
    pub(crate) fn over(&self, base: Settings) -> Settings {
        Settings {
            max_tries: self.max_tries.unwrap_or(base.max_tries),
            lease: self.lease.unwrap_or(base.lease),
            retry: self.retry.unwrap_or(base.retry),
        }
    }
}

impl Settings {
    /// The header settings object holding these settings beside the other
    /// entries of `header` (a JSON object's text, if any).
    pub(crate) fn into_header(self, header: Option<&[u8]>) -> Vec<u8> {
        let mut obj = header
            .and_then(|h| serde_json::from_slice::<Map<String, Value>>(h).ok())
            .unwrap_or_default();
        let ms = |d: Duration| u64::try_from(d.as_millis()).unwrap_or(u64::MAX);
        obj.insert(
            "tracker".into(),
            json!({
                "max_tries": self.max_tries,
                "lease_ms": ms(self.lease),
                "retry": self.retry.to_json(),
            }),
        );
        serde_json::to_vec(&Value::Object(obj)).unwrap_or_default()
    }

    /// The settings stored in a header's settings object, if it has any.
    pub(crate) fn from_header(header: Option<&[u8]>) -> Result<Option<Settings>, String> {
        let Some(header) = header else {
            return Ok(None);
        };
        let obj: Value =
            serde_json::from_slice(header).map_err(|e| format!("settings are not JSON: {e}"))?;
        let Some(tracker) = obj.get("tracker") else {
            return Ok(None);
        };
        let max_tries = tracker
            .get("max_tries")
            .and_then(Value::as_u64)
            .and_then(|n| u32::try_from(n).ok())
            .ok_or("max_tries is not a number of tries")?;
        let lease = tracker
            .get("lease_ms")
            .and_then(Value::as_u64)
            .map(Duration::from_millis)
            .ok_or("lease_ms is not a number of milliseconds")?;
        let retry = RetryDelay::from_json(tracker.get("retry").unwrap_or(&Value::Null))?;
        Ok(Some(Settings {
            max_tries,
            lease,
            retry,
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn settings_round_trip_through_the_header() {
        for retry in [
            RetryDelay::None,
            RetryDelay::Fixed(Duration::from_millis(1500)),
            RetryDelay::Exponential {
                first: Duration::from_secs(1),
                max: Duration::from_secs(3600),
            },
        ] {
            let settings = Settings {
                max_tries: 3,
                lease: Duration::from_secs(90),
                retry,
            };
            let header = settings.into_header(Some(br#"{"other":1}"#));
            let back = Settings::from_header(Some(&header)).unwrap();
            assert_eq!(back, Some(settings));
            let obj: Value = serde_json::from_slice(&header).unwrap();
            assert_eq!(obj["other"], 1, "other entries are kept");
        }
        assert_eq!(Settings::from_header(None).unwrap(), None);
        assert_eq!(Settings::from_header(Some(b"{}")).unwrap(), None);
    }

    #[test]
    fn bad_settings_are_named() {
        for bad in [
            &br#"{"tracker":{"max_tries":-1,"lease_ms":1}}"#[..],
            br#"{"tracker":{"max_tries":1}}"#,
            br#"{"tracker":{"max_tries":1,"lease_ms":1,"retry":{"after_ms":"x"}}}"#,
            br#"{"tracker":{"max_tries":1,"lease_ms":1,"retry":7}}"#,
        ] {
            assert!(Settings::from_header(Some(bad)).is_err());
        }
    }

    #[test]
    fn the_exponential_delay_doubles_up_to_its_maximum() {
        let delay = RetryDelay::Exponential {
            first: Duration::from_millis(100),
            max: Duration::from_secs(10),
        };
        let waits: Vec<u128> = (0..10).map(|t| delay.after_try(t).as_millis()).collect();
        assert_eq!(
            waits,
            [100, 100, 200, 400, 800, 1600, 3200, 6400, 10000, 10000]
        );
        assert_eq!(delay.after_try(u32::MAX), Duration::from_secs(10));
    }
}
