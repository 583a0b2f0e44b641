//! Asking a Sentinel group which server is the master, the way Redis's guidelines for
//! Sentinel clients describe: ask one sentinel at a time until one names it, starting with
//! the one that answered last.
//!
//! The `redis` crate has a Sentinel client, but it does not follow a failover by itself
//! (redis-rs #1438): it keeps the master it found first. Here the store asks again whenever
//! its connection fails or stops reaching a master, and on every check (see
//! [`super::topology`]).

use std::sync::atomic::{AtomicUsize, Ordering};

use redis::{Client, ConnectionAddr, IntoConnectionInfo as _, RedisError};

use super::{target::Address, OPERATION_LIMIT};

/// The sentinels of one group, and the name of the master they watch.
pub struct Sentinels {
    addresses: Vec<Address>,
    master: String,
    /// The sentinel that answered last: asked first next time, so a dead sentinel at the
    /// head of the list costs one failed attempt, not one per check.
    preferred: AtomicUsize,
}

/// Why no master address could be learnt.
#[derive(Debug, thiserror::Error)]
pub enum SentinelError {
    #[error("no sentinel of {tried} answered (last: {last})")]
    NoAnswer { tried: usize, last: String },
    #[error("the sentinels know no master named {0:?}")]
    UnknownMaster(String),
}

impl Sentinels {
    /// The group at `addresses` that watches the master called `master`.
    pub fn new(addresses: Vec<Address>, master: String) -> Self {
        Self { addresses, master, preferred: AtomicUsize::new(0) }
    }

    /// The name of the master, as the URL gave it.
    pub fn master_name(&self) -> &str {
        &self.master
    }

    /// Where the master is now, according to the first sentinel that knows.
    pub async fn master(&self) -> Result<Address, SentinelError> {
        let count = self.addresses.len();
        let first = self.preferred.load(Ordering::Relaxed);
        let mut last = String::from("none asked");
        let mut unknown = false;
        for index in (0..count).map(|i| (first + i) % count) {
            let sentinel = &self.addresses[index];
            match self.ask(sentinel).await {
                Ok(Some(master)) => {
                    self.preferred.store(index, Ordering::Relaxed);
                    return Ok(master);
                }
                // A sentinel that does not watch this master: a typo, or one still starting.
                Ok(None) => unknown = true,
                Err(error) => last = format!("{sentinel}: {error}"),
            }
        }
        if unknown {
            Err(SentinelError::UnknownMaster(self.master.clone()))
        } else {
            Err(SentinelError::NoAnswer { tried: count, last })
        }
    }

    /// One sentinel's answer: the master's address, or `None` if it watches no such master.
    async fn ask(&self, sentinel: &Address) -> Result<Option<Address>, RedisError> {
        let question = async {
            let info =
                ConnectionAddr::Tcp(sentinel.host.clone(), sentinel.port).into_connection_info()?;
            let mut connection = Client::open(info)?.get_multiplexed_async_connection().await?;
            let reply: Option<(String, u16)> = redis::cmd("SENTINEL")
                .arg("GET-MASTER-ADDR-BY-NAME")
                .arg(&self.master)
                .query_async(&mut connection)
                .await?;
            Ok(reply.map(|(host, port)| Address { host, port }))
        };
        match tokio::time::timeout(OPERATION_LIMIT, question).await {
            Ok(answer) => answer,
            Err(_) => Err(RedisError::from(std::io::Error::new(
                std::io::ErrorKind::TimedOut,
                format!("no answer within {OPERATION_LIMIT:?}"),
            ))),
        }
    }
}
