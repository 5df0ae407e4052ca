//! Claims for worker pools: a task handed to one worker under a lease.

use super::schema::{LEASE, Lease, now_ms};
use super::{Aborted, Tracker};
use crate::error::Result;
use serde_json::Value;
use std::time::Duration;

impl Tracker {
    /// Claims the next task that should be tried and is not claimed by a
    /// live lease: counts the try, writes a lease (`_lease`: owner and
    /// expiry) into the task record, and returns its key; `None` when no
    /// task is claimable now. A claim ends with [`mark_done`](Tracker::mark_done),
    /// [`abort`](Tracker::abort) or [`release`](Tracker::release) (the try
    /// stays counted); an expired lease (its worker died or hung) makes the
    /// task claimable again.
    ///
    /// # Errors
    ///
    /// As [`Pod::insert`].
    pub fn claim_next(&mut self, owner: &str) -> Result<Option<String>> {
        self.op(|t| t.claim_next_now(owner))
    }

    fn claim_next_now(&mut self, owner: &str) -> Result<Option<String>> {
        let now = now_ms();
        let epoch = self.pod.epoch();
        if self.claim_from.1 != epoch {
            self.claim_from = (0, epoch);
        }
        let mut i = self.claim_from.0;
        let mut settled = true;
        loop {
            let Some(slot) = self.pod.next_slot(i) else {
                return Ok(None);
            };
            i = slot + 1;
            let meta = self.pod.task_at(slot);
            if !self.is_todo(meta, Aborted::Skip) {
                if settled {
                    // Done, aborted and exhausted tasks stay unclaimable.
                    self.claim_from.0 = i;
                }
                continue;
            }
            settled = false;
            let key = self.pod.key_at(slot).to_string();
            if self.leases.get(&key).is_some_and(|l| l.until_ms > now) {
                continue;
            }
            self.increment_tries(&key)?;
            let lease = Lease {
                owner: owner.to_string(),
                until_ms: now
                    .saturating_add(u64::try_from(self.lease.as_millis()).unwrap_or(u64::MAX)),
            };
            let field = serde_json::json!({"owner": lease.owner, "until": lease.until_ms});
            self.update_task(&key, |r| r[LEASE] = field)?;
            self.leases.insert(key.clone(), lease);
            return Ok(Some(key));
        }
    }

    /// Ends the claim on `key` without finishing it (the try stays counted).
    ///
    /// # Errors
    ///
    /// As [`Pod::insert`].
    pub fn release(&mut self, key: &str) -> Result<()> {
        self.op(|t| t.release_now(key))
    }

    fn release_now(&mut self, key: &str) -> Result<()> {
        if self.leases.remove(key).is_some() {
            self.update_task(key, |r| {
                if let Value::Object(obj) = r {
                    obj.remove(LEASE);
                }
            })?;
        }
        Ok(())
    }

    /// The claim on `key`, if any (possibly expired).
    pub fn lease(&self, key: &str) -> Option<&Lease> {
        self.leases.get(key)
    }

    pub(crate) fn sync_for_shutdown(&mut self) {
        self.pod.sync_for_shutdown();
    }

    /// How long claims last.
    pub fn lease_length(&self) -> Duration {
        self.lease
    }
}
