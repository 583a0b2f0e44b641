//! One contract, every backend: the memory store and the Redis store (against a real
//! redis-server) must treat sessions identically.

use std::{future::Future, sync::Arc, time::Duration};

use wstime_cluster::Redis;
use wstime_protocol::ClientId;
use wstime_server::session::{
    memory::MemoryStore, redis::session_key, redis::RedisStore, Opened, SessionStore,
};

/// The resume window the contract runs with: short, so expiry can be observed.
const WINDOW: Duration = Duration::from_millis(1500);

fn id(name: &str) -> ClientId {
    ClientId::parse(name).expect("a valid id")
}

async fn pause(duration: Duration) {
    tokio::time::sleep(duration).await;
}

/// Runs `check` against both backends.
async fn for_each_store<F, Fut>(check: F)
where
    F: Fn(Arc<dyn SessionStore>) -> Fut,
    Fut: Future<Output = ()>,
{
    check(Arc::new(MemoryStore::new(WINDOW))).await;
    let redis_server = Redis::start(false).expect("start redis-server");
    let store = RedisStore::new(&redis_server.url(), WINDOW).expect("a Redis URL");
    assert!(store.connect().await, "connect to the test redis-server");
    check(Arc::new(store)).await;
}

#[actix_web::test]
async fn a_new_session_starts_at_zero() {
    for_each_store(|store| async move {
        let opened = store.open(&id("fresh")).await.unwrap();
        assert_eq!(opened.first, 0);
        assert!(opened.age < Duration::from_millis(100), "{:?}", opened.age);
    })
    .await;
}

#[actix_web::test]
async fn a_reopened_session_continues_from_its_age_rounded_up() {
    for_each_store(|store| async move {
        store.open(&id("resumer")).await.unwrap();
        pause(Duration::from_millis(1100)).await;
        let resumed = store.open(&id("resumer")).await.unwrap();
        assert!(resumed.age >= Duration::from_millis(1100), "{:?}", resumed.age);
        assert_eq!(resumed.first, 2, "1.1 s rounds up to 2");
    })
    .await;
}

/// Three opens in a row: the second says 1 (the age, under a second, rounded up); the third
/// may not say 1 again, nor 2 before the age reaches a second, so it waits for it.
#[actix_web::test]
async fn a_count_is_never_sent_twice_nor_ahead_of_the_age() {
    for_each_store(|store| async move {
        let mut previous = store.open(&id("flapper")).await.unwrap();
        for _ in 0..2 {
            let next = store.open(&id("flapper")).await.unwrap();
            assert!(next.first > previous.first, "{next:?} after {previous:?}");
            assert_eq!(next, Opened::at(next.age), "the count is the age rounded up");
            previous = next;
        }
        assert!(previous.age > Duration::from_secs(1), "the third open waited: {previous:?}");
    })
    .await;
}

#[actix_web::test]
async fn sessions_expire_a_window_after_the_last_touch() {
    for_each_store(|store| async move {
        store.open(&id("kept")).await.unwrap();
        store.open(&id("dropped")).await.unwrap();
        for _ in 0..3 {
            pause(WINDOW / 2).await;
            store.touch(&id("kept")).await.unwrap();
        }
        // 1.5 windows after opening: the touched session lives, the other has expired.
        assert!(store.open(&id("kept")).await.unwrap().first >= 2);
        assert_eq!(store.open(&id("dropped")).await.unwrap().first, 0);
    })
    .await;
}

#[actix_web::test]
async fn touching_an_expired_or_unknown_session_does_not_revive_it() {
    for_each_store(|store| async move {
        store.touch(&id("never-opened")).await.unwrap();
        assert_eq!(store.open(&id("never-opened")).await.unwrap().first, 0);
    })
    .await;
}

#[actix_web::test]
async fn sessions_are_independent() {
    for_each_store(|store| async move {
        store.open(&id("alpha")).await.unwrap();
        pause(Duration::from_millis(1100)).await;
        assert_eq!(store.open(&id("beta")).await.unwrap().first, 0);
        assert_eq!(store.open(&id("alpha")).await.unwrap().first, 2);
    })
    .await;
}

#[actix_web::test]
async fn redis_keeps_one_namespaced_key_per_session_with_the_window_as_expiry() {
    let redis_server = Redis::start(false).expect("start redis-server");
    let store = RedisStore::new(&redis_server.url(), Duration::from_secs(300)).unwrap();
    assert!(store.connect().await);
    store.open(&id("Robert_Zhu-42")).await.unwrap();

    let client = redis::Client::open(redis_server.url()).unwrap();
    let mut connection = client.get_multiplexed_async_connection().await.unwrap();
    let keys: Vec<String> = redis::cmd("KEYS").arg("*").query_async(&mut connection).await.unwrap();
    assert_eq!(keys, [session_key(&id("Robert_Zhu-42"))]);
    assert_eq!(keys[0], "wstime:session:Robert_Zhu-42");
    let ttl_ms: i64 = redis::cmd("PTTL").arg(&keys[0]).query_async(&mut connection).await.unwrap();
    assert!((299_000..=300_000).contains(&ttl_ms), "{ttl_ms}");
    let status = store.status();
    assert_eq!((status.kind, status.reachable), ("redis", true));
}

/// A failover can lose the last write to a session (replication is asynchronous): here its
/// `claimed` is removed by hand. The next open may repeat a count, but never says less than
/// one the client has already seen.
#[actix_web::test]
async fn a_lost_claim_can_repeat_a_count_but_never_step_back() {
    let redis_server = Redis::start(false).expect("start redis-server");
    let store = RedisStore::new(&redis_server.url(), WINDOW).unwrap();
    assert!(store.connect().await);
    let mut seen = 0;
    for _ in 0..3 {
        seen = seen.max(store.open(&id("forgetful")).await.unwrap().first);
    }
    let client = redis::Client::open(redis_server.url()).unwrap();
    let mut connection = client.get_multiplexed_async_connection().await.unwrap();
    let removed: u32 = redis::cmd("HDEL")
        .arg(session_key(&id("forgetful")))
        .arg("claimed")
        .query_async(&mut connection)
        .await
        .unwrap();
    assert_eq!(removed, 1);
    let after = store.open(&id("forgetful")).await.unwrap();
    assert!(after.first >= seen, "{after:?} after the client saw {seen}");
}
