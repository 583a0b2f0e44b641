//! The embedded session store: a map in this process, with the same expiry rules as Redis.

use std::{
    collections::HashMap,
    sync::Mutex,
    time::{Duration, Instant},
};

use futures_util::future::{BoxFuture, FutureExt as _};
use wstime_protocol::ClientId;

use super::{open_when_free, Claim, Opened, SessionStore, StoreError, StoreStatus};

/// Sessions held in memory. Correct for one instance; with several, each has its own.
pub struct MemoryStore {
    sessions: Mutex<Sessions>,
    resume_window: Duration,
}

/// The map, and the size at which expired entries are next swept out.
struct Sessions {
    map: HashMap<ClientId, Entry>,
    /// Doubles after each sweep (from at least [`MIN_SWEEP_AT`]), so sweeping costs O(1)
    /// per open amortised and the map never holds more than twice the live sessions.
    sweep_at: usize,
}

const MIN_SWEEP_AT: usize = 1024;

struct Entry {
    started: Instant,
    /// The highest count sent as a first tick (see [`Claim::after`]).
    claimed: u64,
    expires: Instant,
}

impl MemoryStore {
    /// A store whose sessions expire `resume_window` after their last touch.
    pub fn new(resume_window: Duration) -> Self {
        let sessions = Sessions { map: HashMap::new(), sweep_at: MIN_SWEEP_AT };
        Self { sessions: Mutex::new(sessions), resume_window }
    }

    /// One attempt to open a session now (the synchronous core of [`SessionStore::open`]).
    pub fn claim_now(&self, id: &ClientId) -> Claim {
        let now = Instant::now();
        let mut sessions = self.sessions.lock().unwrap_or_else(|e| e.into_inner());
        if sessions.map.len() >= sessions.sweep_at {
            sessions.map.retain(|_, entry| entry.expires > now);
            sessions.sweep_at = (sessions.map.len() * 2).max(MIN_SWEEP_AT);
        }
        let live = sessions.map.get(id).filter(|entry| entry.expires > now);
        let (started, claimed) = match live {
            Some(entry) => (entry.started, Some(entry.claimed)),
            None => (now, None),
        };
        // The expiry was set a resume window after the last touch.
        let away = live.map(|entry| self.resume_window.saturating_sub(entry.expires - now));
        let mut claim = Claim::after(now - started, claimed);
        if let Claim::Opened(opened) = &mut claim {
            if let Some(away) = away {
                *opened = opened.resumed(away);
            }
            let expires = now + self.resume_window;
            sessions.map.insert(id.clone(), Entry { started, claimed: opened.first, expires });
        }
        claim
    }

    /// Restarts a session's expiry now (the synchronous core of [`SessionStore::touch`]);
    /// false if there is no such live session.
    pub fn touch_now(&self, id: &ClientId) -> bool {
        let now = Instant::now();
        let mut sessions = self.sessions.lock().unwrap_or_else(|e| e.into_inner());
        match sessions.map.get_mut(id).filter(|entry| entry.expires > now) {
            Some(entry) => {
                entry.expires = now + self.resume_window;
                true
            }
            None => false,
        }
    }
}

impl SessionStore for MemoryStore {
    fn open<'a>(&'a self, id: &'a ClientId) -> BoxFuture<'a, Result<Opened, StoreError>> {
        open_when_free(move || std::future::ready(Ok(self.claim_now(id)))).boxed()
    }

    fn touch<'a>(&'a self, id: &'a ClientId) -> BoxFuture<'a, Result<(), StoreError>> {
        self.touch_now(id);
        std::future::ready(Ok(())).boxed()
    }

    fn status(&self) -> StoreStatus {
        StoreStatus { kind: "memory", reachable: true }
    }
}
