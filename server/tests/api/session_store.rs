//! One contract, every backend: the memory store, a single Redis, the master of a Sentinel
//! group, a Redis Cluster, and the fallback store in front of a Redis that answers and of
//! one that does not must treat sessions identically (against real Redis processes).
//!
//! As in actix-session's acceptance tests, one test per backend runs the whole contract,
//! so each backend's processes start once.

use std::{sync::Arc, time::Duration};

use wstime_cluster::{Redis, RedisCluster, SentinelGroup};
use wstime_protocol::ClientId;
use wstime_server::{
    redis::{target::RedisTarget, Redis as RedisClient},
    registry,
    session::{
        fallback::FallbackStore,
        memory::MemoryStore,
        redis::{session_key, RedisStore},
        Opened, SessionStore,
    },
};

use crate::helpers::within;

/// The resume window the contract runs with: short, so expiry can be observed.
const WINDOW: Duration = Duration::from_millis(1500);

fn id(name: &str) -> ClientId {
    ClientId::parse(name).expect("a valid id")
}

async fn pause(duration: Duration) {
    tokio::time::sleep(duration).await;
}

async fn open(store: &dyn SessionStore, name: &str) -> Opened {
    within("the store to open a session", store.open(&id(name)))
        .await
        .unwrap_or_else(|error| panic!("opening {name}: {error}"))
}

async fn touch(store: &dyn SessionStore, name: &str) {
    within("the store to touch a session", store.touch(&id(name)))
        .await
        .unwrap_or_else(|error| panic!("touching {name}: {error}"));
}

/// A store for the Redis at `target`, connected as the server connects it: after the
/// access check of everything the server does in Redis.
pub async fn connected_store(target: &RedisTarget, window: Duration) -> Arc<RedisStore> {
    let redis = Arc::new(RedisClient::new(target).expect("a Redis client"));
    let store = RedisStore::new(Arc::clone(&redis), window);
    let mut probes = store.access_probes();
    probes.extend(registry::access_probes());
    within("the store to connect", redis.connect(&probes)).await.expect("connect to Redis");
    Arc::new(store)
}

/// A store for the Redis at `url`, connected.
pub async fn redis_store(url: &str, window: Duration) -> Arc<RedisStore> {
    connected_store(&RedisTarget::parse(url).expect("a Redis URL"), window).await
}

/// Every rule a store must keep, in turn.
pub async fn the_contract(store: &dyn SessionStore) {
    a_new_session_starts_at_zero(store).await;
    a_reopened_session_continues_from_its_age_rounded_up(store).await;
    a_count_is_never_sent_twice_nor_ahead_of_the_age(store).await;
    opens_at_the_same_moment_get_different_counts(store).await;
    sessions_expire_a_window_after_the_last_touch(store).await;
    touching_an_expired_or_unknown_session_does_not_revive_it(store).await;
    sessions_are_independent(store).await;
}

async fn a_new_session_starts_at_zero(store: &dyn SessionStore) {
    let opened = open(store, "fresh").await;
    assert_eq!(opened.first, 0);
    assert!(opened.age < Duration::from_millis(100), "{:?}", opened.age);
    assert_eq!(opened.away, None, "a new session was never away");
}

async fn a_reopened_session_continues_from_its_age_rounded_up(store: &dyn SessionStore) {
    open(store, "resumer").await;
    pause(Duration::from_millis(600)).await;
    touch(store, "resumer").await;
    pause(Duration::from_millis(500)).await;
    let resumed = open(store, "resumer").await;
    assert!(resumed.age >= Duration::from_millis(1100), "{:?}", resumed.age);
    assert_eq!(resumed.first, 2, "1.1 s rounds up to 2");
    // Away since its last touch, not since its open (the stores keep milliseconds).
    let away = resumed.away.expect("a resumed session says how long it was away");
    assert!(away >= Duration::from_millis(490) && away < Duration::from_millis(1000), "{away:?}");
}

/// Three opens in a row: the second says 1 (the age, under a second, rounded up); the third
/// may not say 1 again, nor 2 before the age reaches a second, so it waits for it.
async fn a_count_is_never_sent_twice_nor_ahead_of_the_age(store: &dyn SessionStore) {
    let mut previous = open(store, "flapper").await;
    for _ in 0..2 {
        let next = open(store, "flapper").await;
        assert!(next.first > previous.first, "{next:?} after {previous:?}");
        assert_eq!(next.first, Opened::at(next.age).first, "the count is the age rounded up");
        previous = next;
    }
    assert!(previous.age > Duration::from_secs(1), "the third open waited: {previous:?}");
}

async fn opens_at_the_same_moment_get_different_counts(store: &dyn SessionStore) {
    open(store, "twins").await;
    let (a, b) = futures_util::join!(open(store, "twins"), open(store, "twins"));
    assert_ne!(a.first, b.first, "{a:?} and {b:?}");
}

async fn sessions_expire_a_window_after_the_last_touch(store: &dyn SessionStore) {
    open(store, "kept").await;
    open(store, "dropped").await;
    for _ in 0..3 {
        pause(WINDOW / 2).await;
        touch(store, "kept").await;
    }
    // 1.5 windows after opening: the touched session lives, the other has expired.
    assert!(open(store, "kept").await.first >= 2);
    assert_eq!(open(store, "dropped").await.first, 0);
}

async fn touching_an_expired_or_unknown_session_does_not_revive_it(store: &dyn SessionStore) {
    // Whether the touch reports an error is not the point (the fallback store with Redis
    // down cannot know that Redis holds nothing): what it leaves behind is.
    let _ = within("the store to touch a session", store.touch(&id("never-opened"))).await;
    assert_eq!(open(store, "never-opened").await.first, 0);
}

async fn sessions_are_independent(store: &dyn SessionStore) {
    open(store, "alpha").await;
    pause(Duration::from_millis(1100)).await;
    assert_eq!(open(store, "beta").await.first, 0);
    assert_eq!(open(store, "alpha").await.first, 2);
}

#[actix_web::test]
async fn the_memory_store_keeps_the_contract() {
    the_contract(&MemoryStore::new(WINDOW)).await;
}

#[actix_web::test]
async fn a_single_redis_keeps_the_contract() {
    let redis = Redis::start(false).expect("start redis-server");
    let store = redis_store(&redis.url(), WINDOW).await;
    the_contract(&*store).await;
    assert_eq!((store.status().kind, store.status().reachable), ("redis", true));
}

#[actix_web::test]
async fn a_sentinel_groups_master_keeps_the_contract() {
    let group = SentinelGroup::start(false).expect("start a Sentinel group");
    let store = redis_store(&group.url(), WINDOW).await;
    the_contract(&*store).await;
    assert_eq!((store.status().kind, store.status().reachable), ("redis-sentinel", true));
}

#[actix_web::test]
async fn a_redis_cluster_keeps_the_contract() {
    let cluster = RedisCluster::start(3, false).expect("start a Redis Cluster");
    let store = redis_store(&cluster.url(), WINDOW).await;
    the_contract(&*store).await;
    assert_eq!((store.status().kind, store.status().reachable), ("redis-cluster", true));
}

#[actix_web::test]
async fn the_fallback_store_keeps_the_contract_with_redis_up_and_down() {
    let redis = Redis::start(false).expect("start redis-server");
    let shared = redis_store(&redis.url(), WINDOW).await;
    let metrics = Arc::default();
    the_contract(&FallbackStore::new(shared, MemoryStore::new(WINDOW), metrics)).await;

    drop(redis);
    let port = wstime_cluster::free_port().expect("a free port");
    let target = RedisTarget::parse(&format!("redis://127.0.0.1:{port}/0")).unwrap();
    let client = Arc::new(RedisClient::new(&target).expect("a Redis client"));
    let absent = Arc::new(RedisStore::new(client, WINDOW));
    let fallback = FallbackStore::new(absent, MemoryStore::new(WINDOW), Arc::default());
    the_contract(&fallback).await;
    assert_eq!((fallback.status().kind, fallback.status().reachable), ("redis", false));
}

#[actix_web::test]
async fn redis_keeps_one_hash_tagged_key_per_session_with_the_window_as_expiry() {
    let redis = Redis::start(false).expect("start redis-server");
    let store = redis_store(&redis.url(), Duration::from_secs(300)).await;
    open(&*store, "Robert_Zhu-42").await;

    let keys: Vec<String> = redis.ask(redis::cmd("KEYS").arg("*")).unwrap();
    assert_eq!(keys, [session_key(&id("Robert_Zhu-42"))]);
    assert_eq!(keys[0], "wstime:session:{Robert_Zhu-42}");
    let ttl_ms: i64 = redis.ask(redis::cmd("PTTL").arg(&keys[0])).unwrap();
    assert!((299_000..=300_000).contains(&ttl_ms), "{ttl_ms}");
}

/// A failover can lose the last write to a session (replication is asynchronous): here its
/// `claimed` is removed by hand. The next open may repeat a count, but never says less than
/// one the client has already seen.
#[actix_web::test]
async fn a_lost_claim_can_repeat_a_count_but_never_step_back() {
    let redis = Redis::start(false).expect("start redis-server");
    let store = redis_store(&redis.url(), WINDOW).await;
    let mut seen = 0;
    for _ in 0..3 {
        seen = seen.max(open(&*store, "forgetful").await.first);
    }
    let key = session_key(&id("forgetful"));
    let removed: u32 = redis.ask(redis::cmd("HDEL").arg(&key).arg("claimed")).unwrap();
    assert_eq!(removed, 1);
    let after = open(&*store, "forgetful").await;
    assert!(after.first >= seen, "{after:?} after the client saw {seen}");
}
