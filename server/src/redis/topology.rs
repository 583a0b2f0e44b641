//! How the store reaches the Redis its target names, and how it tells that a connection
//! still reaches the right server: the one Redis, the master a Sentinel group names now, or
//! every master of a Redis Cluster.

use std::future::Future;

use redis::{
    aio::{ConnectionLike, MultiplexedConnection},
    cluster::ClusterClient,
    cluster_async::ClusterConnection,
    AsyncConnectionConfig, Client, Cmd, ConnectionAddr, IntoConnectionInfo as _, Pipeline,
    RedisConnectionInfo, RedisError, RedisFuture, Role, Value,
};

use super::{
    refusal::Refusal,
    sentinel::{SentinelError, Sentinels},
    target::{Address, RedisTarget},
    tls, OPERATION_LIMIT,
};

/// Where the store's connections come from.
pub enum Topology {
    /// One Redis server.
    Single(Client),
    /// The master a Sentinel group names, with the master's database and credentials.
    Sentinel { sentinels: Sentinels, redis: RedisConnectionInfo },
    /// A Redis Cluster. Boxed: the client is large, and the other variants would carry its
    /// size for nothing.
    Cluster(Box<ClusterClient>),
}

/// A connection the store holds, and where it goes.
#[derive(Clone)]
pub struct Live {
    pub connection: Connection,
    /// The server it reaches (host and port), or "the cluster": for logs.
    pub address: String,
}

/// A connection to one server or to a cluster. Both are cheap handles to one multiplexed
/// pipeline (per node, for a cluster), cloned for each operation.
#[derive(Clone)]
pub enum Connection {
    /// The one Redis, or the master a Sentinel group named.
    Server(MultiplexedConnection),
    /// A Redis Cluster: the client sends each key to its slot's master and follows
    /// `MOVED`/`ASK` redirections and slot changes by itself.
    Cluster(ClusterConnection),
}

/// Why the store has no usable connection. No variant holds a credential.
#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    #[error("{address} is unreachable: {source}")]
    Unreachable { address: String, source: RedisError },
    /// Redis answered and will not serve us (see [`Refusal`]): no retry can mend it.
    #[error("{address} {refusal}")]
    Refused { address: String, refusal: Refusal },
    #[error("{address} did not answer within {OPERATION_LIMIT:?}")]
    Timeout { address: String },
    #[error("{address} is a {role}, not a master")]
    NotMaster { address: String, role: &'static str },
    #[error("the cluster reports its state as {state}: some slots have no master")]
    ClusterDown { state: String },
    #[error("the sentinels now name {now} as the master")]
    MasterMoved { now: Address },
    #[error(transparent)]
    Sentinel(#[from] SentinelError),
}

impl Topology {
    /// The connections `target` needs. Nothing is connected yet.
    pub fn new(target: &RedisTarget) -> Result<Self, RedisError> {
        if target.uses_tls() {
            tls::install_crypto_provider();
        }
        Ok(match target {
            RedisTarget::Single(info) => Self::Single(Client::open(info.clone())?),
            RedisTarget::Sentinel { sentinels, master, redis } => Self::Sentinel {
                sentinels: Sentinels::new(sentinels.clone(), master.clone()),
                redis: redis.clone(),
            },
            RedisTarget::Cluster { nodes, redis } => {
                let seeds = nodes
                    .iter()
                    .map(|node| {
                        ConnectionAddr::Tcp(node.host.clone(), node.port)
                            .into_connection_info()
                            .map(|info| info.set_redis_settings(redis.clone()))
                    })
                    .collect::<Result<Vec<_>, _>>()?;
                let client = ClusterClient::builder(seeds)
                    .connection_timeout(OPERATION_LIMIT)
                    .response_timeout(OPERATION_LIMIT)
                    .build()?;
                Self::Cluster(Box::new(client))
            }
        })
    }

    /// Connects, and checks that what it reached can take writes.
    pub async fn connect(&self) -> Result<Live, ConnectError> {
        match self {
            Self::Single(client) => {
                let address = client.get_connection_info().addr().to_string();
                let connection = bounded(&address, server_connection(client)).await?;
                let mut connection = Connection::Server(connection);
                bounded(&address, ping(&mut connection)).await?;
                Ok(Live { connection, address })
            }
            Self::Sentinel { sentinels, redis } => {
                let master = sentinels.master().await?;
                let address = master.to_string();
                let client = ConnectionAddr::Tcp(master.host, master.port)
                    .into_connection_info()
                    .and_then(|info| Client::open(info.set_redis_settings(redis.clone())))
                    .map_err(|source| ConnectError::Unreachable {
                        address: address.clone(),
                        source,
                    })?;
                let connection = bounded(&address, server_connection(&client)).await?;
                let mut connection = Connection::Server(connection);
                expect_master(&address, &mut connection).await?;
                Ok(Live { connection, address })
            }
            Self::Cluster(client) => {
                let address = String::from("the cluster");
                let connection = bounded(&address, client.get_async_connection()).await?;
                let mut connection = Connection::Cluster(connection);
                expect_cluster_ok(&address, &mut connection).await?;
                Ok(Live { connection, address })
            }
        }
    }

    /// Checks that `live` still reaches what it should: the server answers; a cluster says
    /// every slot has a master; for a Sentinel group, the server is still a master and still
    /// the one the sentinels name (a failover that left the old master running moves the
    /// store on as soon as the sentinels know, not when the old master is demoted).
    pub async fn check(&self, live: &Live) -> Result<(), ConnectError> {
        let mut connection = live.connection.clone();
        match self {
            Self::Single(_) => bounded(&live.address, ping(&mut connection)).await,
            Self::Cluster(_) => expect_cluster_ok(&live.address, &mut connection).await,
            Self::Sentinel { sentinels, .. } => {
                // Sentinels that cannot be asked are no reason to leave a master that answers.
                if let Ok(now) = sentinels.master().await {
                    if now.to_string() != live.address {
                        return Err(ConnectError::MasterMoved { now });
                    }
                }
                expect_master(&live.address, &mut connection).await
            }
        }
    }

    /// What a Sentinel group's master is called, for logs.
    pub fn master_name(&self) -> Option<&str> {
        match self {
            Self::Sentinel { sentinels, .. } => Some(sentinels.master_name()),
            Self::Single(_) | Self::Cluster(_) => None,
        }
    }
}

async fn server_connection(client: &Client) -> Result<MultiplexedConnection, RedisError> {
    let config = AsyncConnectionConfig::new()
        .set_connection_timeout(Some(OPERATION_LIMIT))
        .set_response_timeout(Some(OPERATION_LIMIT));
    client.get_multiplexed_async_connection_with_config(&config).await
}

async fn ping(connection: &mut Connection) -> Result<(), RedisError> {
    redis::cmd("PING").query_async::<()>(connection).await
}

/// Fails unless the cluster (as the node the client picks sees it) has a master answering
/// for every slot. A `PING` is no test: the client sends it only to the masters it still
/// has a connection to, so a dead master goes unnoticed.
async fn expect_cluster_ok(address: &str, connection: &mut Connection) -> Result<(), ConnectError> {
    let info: String =
        bounded(address, redis::cmd("CLUSTER").arg("INFO").query_async(connection)).await?;
    let state = info.lines().find_map(|line| line.strip_prefix("cluster_state:")).unwrap_or("?");
    match state.trim() {
        "ok" => Ok(()),
        state => Err(ConnectError::ClusterDown { state: state.into() }),
    }
}

/// Fails unless the server behind `connection` is a master: after a failover the old master
/// may come back as a replica, where every write fails with `READONLY`.
async fn expect_master(address: &str, connection: &mut Connection) -> Result<(), ConnectError> {
    let role: Role = bounded(address, redis::cmd("ROLE").query_async(connection)).await?;
    match role {
        Role::Primary { .. } => Ok(()),
        Role::Replica { .. } => {
            Err(ConnectError::NotMaster { address: address.to_owned(), role: "replica" })
        }
        _ => Err(ConnectError::NotMaster { address: address.to_owned(), role: "sentinel" }),
    }
}

/// Awaits one exchange with `address`, within [`OPERATION_LIMIT`], and tells a refusal
/// from an outage.
pub(super) async fn bounded<T>(
    address: &str,
    exchange: impl Future<Output = Result<T, RedisError>>,
) -> Result<T, ConnectError> {
    match tokio::time::timeout(OPERATION_LIMIT, exchange).await {
        Ok(Ok(value)) => Ok(value),
        Ok(Err(source)) => {
            let address = address.to_owned();
            Err(match Refusal::of(&source) {
                Some(refusal) => ConnectError::Refused { address, refusal },
                None => ConnectError::Unreachable { address, source },
            })
        }
        Err(_) => Err(ConnectError::Timeout { address: address.to_owned() }),
    }
}

impl ConnectionLike for Connection {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        match self {
            Self::Server(connection) => connection.req_packed_command(cmd),
            Self::Cluster(connection) => connection.req_packed_command(cmd),
        }
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        pipeline: &'a Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        match self {
            Self::Server(connection) => connection.req_packed_commands(pipeline, offset, count),
            Self::Cluster(connection) => connection.req_packed_commands(pipeline, offset, count),
        }
    }

    fn get_db(&self) -> i64 {
        match self {
            Self::Server(connection) => connection.get_db(),
            Self::Cluster(connection) => connection.get_db(),
        }
    }
}
