//! Redis locked down: a password, an ACL user allowed only what wstime does, TLS with a
//! CA made for the test. wstime works with each (in every `REDIS_URL` form), and a refusal
//! (a wrong or missing password, a missing permission, an untrusted certificate) stops it
//! at start-up with one line that names the setting and never the password.

use std::{sync::Arc, time::Duration};

use wstime_cluster::{free_port, Certificates, Redis, RedisCluster, Security, SentinelGroup};
use wstime_server::{
    redis::{target::RedisTarget, tls::RedisCa},
    session::redis::RedisStore,
};

use crate::{
    helpers::{assert_one_line_error, run_failing, TestServer},
    session_store::{connected_store, redis_store, the_contract},
};

/// A password with every character a URL gives a meaning to, written into `REDIS_URL` as
/// is: the last '@' ends it.
const PASSWORD: &str = "pa/ss?w#rd@x:y";
/// The ACL user's password, and one that is not it.
const USER_PASSWORD: &str = "hunter2-acl";
const WRONG: &str = "hunter2-wrong";

/// The ACL line docs/deploying.md gives wstime's user, with `password`, less the `removed` rules.
fn wstime_user(password: &str, removed: &[&str]) -> String {
    let rules = "reset on ~wstime:* +ping +role +cluster|info +cluster|slots +script|load \
                 +evalsha +time +pttl +hmget +hset +hgetall +hdel +pexpire";
    let kept: Vec<&str> = rules.split(' ').filter(|rule| !removed.contains(rule)).collect();
    format!("wstime {} >{password}", kept.join(" "))
}

/// The redis-server arguments that add `wstime_user(password, removed)`.
fn acl_arguments(password: &str, removed: &[&str]) -> Vec<String> {
    Security { users: vec![wstime_user(password, removed)], ..Security::default() }.arguments(0)
}

/// A store for `url` trusting `ca`, connected (what the server builds from its settings).
async fn tls_store(url: &str, ca: &Certificates, window: Duration) -> Arc<RedisStore> {
    let ca = RedisCa::read(&ca.ca).expect("the test CA");
    let target = RedisTarget::parse(url).unwrap().trusting(&ca).expect("a TLS target");
    connected_store(&target, window).await
}

/// Opens a session on one instance and resumes it on another, both with `env`: the count
/// goes on only if the session went through Redis (without it, each instance has its own).
async fn assert_sessions_shared(env: &[(&str, &str)]) {
    let start = || env.iter().fold(TestServer::builder(), |b, (k, v)| b.env(k, *v)).start();
    let (first, second) = (start(), start());
    let mut client = first.connect("/?id=shared-session").await;
    assert_eq!(client.next_tick().await.1, 0);
    drop(client);
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let mut resumed = second.connect("/?id=shared-session").await;
    let (name, count) = resumed.next_tick().await;
    assert_eq!(name, second.name);
    assert!(count >= 1, "the session did not go through Redis: it started again at {count}");
}

/// Runs the binary with `env` and checks that it stops with one line naming `setting` and
/// saying `why`, without the password.
fn assert_refused_at_start(env: &[(&str, &str)], setting: &str, why: &str) {
    let env = [&[("PORT", "0")], env].concat();
    let (status, stderr) = run_failing(&env);
    assert!(status.is_some_and(|code| code != 0), "{env:?} exited {status:?}: {stderr}");
    assert_one_line_error(&stderr, why);
    assert!(stderr.contains(setting), "{stderr}");
    for secret in [PASSWORD, USER_PASSWORD, WRONG] {
        assert!(!stderr.contains(secret), "the password is never printed: {stderr}");
    }
}

#[actix_web::test]
async fn a_password_protected_redis_shares_sessions() {
    let security = Security { password: Some(PASSWORD), ..Security::default() };
    let redis = Redis::start_secured(&security, false).expect("start redis-server");
    let url = format!("redis://:{PASSWORD}@127.0.0.1:{}/0", redis.port);
    assert_sessions_shared(&[("REDIS_URL", &url)]).await;
}

/// The ACL in docs/deploying.md is enough for all wstime does (the store's contract, and the
/// cluster registry of a running instance), and Redis logged no command it refused.
#[actix_web::test]
async fn an_acl_user_confined_to_wstimes_keys_and_commands_is_enough() {
    let redis =
        Redis::start_with("redis", free_port().unwrap(), &acl_arguments(USER_PASSWORD, &[]), false)
            .expect("start redis-server");
    let url = format!("redis://wstime:{USER_PASSWORD}@127.0.0.1:{}/0", redis.port);
    the_contract(&*redis_store(&url, Duration::from_millis(1500)).await).await;

    let server = TestServer::builder().env("REDIS_URL", &url).start();
    crate::helpers::eventually("the registry to be shared", || async {
        let report = awc::Client::default().get(server.http_url("/cluster")).send().await;
        match report {
            Ok(mut response) => response
                .json::<serde_json::Value>()
                .await
                .is_ok_and(|report| report["shared"] == true),
            Err(_) => false,
        }
    })
    .await;
    let refused: Vec<redis::Value> = redis.ask(redis::cmd("ACL").arg("LOG")).unwrap();
    assert!(refused.is_empty(), "Redis refused the wstime user something: {refused:?}");
}

#[actix_web::test]
async fn the_sentinel_form_authenticates_as_the_acl_user() {
    let group = SentinelGroup::start_with(&acl_arguments(USER_PASSWORD, &[]), false)
        .expect("start a Sentinel group");
    let url = group
        .url()
        .replace("redis-sentinel://", &format!("redis-sentinel://wstime:{USER_PASSWORD}@"));
    the_contract(&*redis_store(&url, Duration::from_millis(1500)).await).await;
}

#[actix_web::test]
async fn the_cluster_form_authenticates_as_the_acl_user() {
    let cluster = RedisCluster::start_with(3, &acl_arguments(USER_PASSWORD, &[]), false)
        .expect("start a Redis Cluster");
    let url = cluster
        .url()
        .replace("redis-cluster://", &format!("redis-cluster://wstime:{USER_PASSWORD}@"));
    the_contract(&*redis_store(&url, Duration::from_millis(1500)).await).await;
    let url = url.replace(USER_PASSWORD, WRONG);
    assert_refused_at_start(&[("REDIS_URL", &url)], "REDIS_URL", "refused the user or password");
}

#[test]
fn a_wrong_or_missing_password_stops_the_server_at_start() {
    let security = Security { password: Some(PASSWORD), ..Security::default() };
    let redis = Redis::start_secured(&security, false).expect("start redis-server");
    let port = redis.port;
    let wrong = format!("redis://:{WRONG}@127.0.0.1:{port}/0");
    assert_refused_at_start(&[("REDIS_URL", &wrong)], "REDIS_URL", "refused the user or password");
    let none = format!("redis://127.0.0.1:{port}/0");
    assert_refused_at_start(&[("REDIS_URL", &none)], "REDIS_URL", "requires a password");
}

/// Each rule of the ACL is needed: without it, the start-up check names what is missing.
#[test]
fn an_acl_user_short_of_a_permission_stops_the_server_at_start() {
    for (removed, why) in [
        (&["+ping"][..], "no permissions to run the 'ping' command"),
        (&["+evalsha"], "no permissions to run the 'evalsha' command"),
        (&["+script|load"], "no permissions to run the 'script|load' command"),
        (&["+time"], "The user executing the script can't run this command"),
        (&["+pttl"], "The user executing the script can't run this command"),
        (&["+hmget"], "The user executing the script can't run this command"),
        (&["+hset"], "The user executing the script can't run this command"),
        (&["+hgetall"], "The user executing the script can't run this command"),
        (&["+hdel"], "The user executing the script can't run this command"),
        (&["+pexpire"], "The user executing the script can't run this command"),
        (&["~wstime:*"], "no permissions to access one of the keys"),
    ] {
        let arguments = acl_arguments(USER_PASSWORD, removed);
        let redis = Redis::start_with("redis", free_port().unwrap(), &arguments, false)
            .expect("start redis-server");
        let url = format!("redis://wstime:{USER_PASSWORD}@127.0.0.1:{}/0", redis.port);
        assert_refused_at_start(&[("REDIS_URL", &url)], "REDIS_URL", why);
    }
    // A database other than 0 needs SELECT as well.
    let redis =
        Redis::start_with("redis", free_port().unwrap(), &acl_arguments(USER_PASSWORD, &[]), false)
            .expect("start redis-server");
    let url = format!("redis://wstime:{USER_PASSWORD}@127.0.0.1:{}/1", redis.port);
    let why = "no permissions to run the 'select' command";
    assert_refused_at_start(&[("REDIS_URL", &url)], "REDIS_URL", why);
    // Redis merely down is no refusal: the server starts, and looks for it later (see
    // failover.rs: a Redis that comes up after the instance is joined).
}

#[actix_web::test]
async fn rediss_checked_against_redis_ca_cert_shares_sessions() {
    let certificates = Certificates::generate(&["localhost", "127.0.0.1"]).unwrap();
    let security =
        Security { password: Some(PASSWORD), tls: Some(&certificates), ..Security::default() };
    let redis = Redis::start_secured(&security, false).expect("start redis-server with TLS");
    let url = format!("rediss://:{PASSWORD}@localhost:{}/0", redis.port);
    let ca = certificates.ca.display().to_string();
    assert_sessions_shared(&[("REDIS_URL", &url), ("REDIS_CA_CERT", &ca)]).await;
    let store = tls_store(&url, &certificates, Duration::from_millis(1500)).await;
    the_contract(&*store).await;
}

/// A certificate is checked: signed by the CA given, for the name in the URL.
#[test]
fn an_untrusted_redis_certificate_stops_the_server_at_start() {
    let certificates = Certificates::generate(&["redis.test"]).unwrap();
    let security = Security { tls: Some(&certificates), ..Security::default() };
    let redis = Redis::start_secured(&security, false).expect("start redis-server with TLS");
    let url = format!("rediss://:{PASSWORD}@127.0.0.1:{}/0", redis.port);
    let ca = certificates.ca.display().to_string();
    let other = Certificates::generate(&["127.0.0.1"]).unwrap();
    let other_ca = other.ca.display().to_string();
    // The system's roots do not know a private CA, nor does another CA.
    assert_refused_at_start(&[("REDIS_URL", &url)], "REDIS_CA_CERT", "UnknownIssuer");
    let env = [("REDIS_URL", url.as_str()), ("REDIS_CA_CERT", other_ca.as_str())];
    assert_refused_at_start(&env, "REDIS_CA_CERT", "invalid peer certificate");
    // The right CA, but the certificate names redis.test, not 127.0.0.1.
    let env = [("REDIS_URL", url.as_str()), ("REDIS_CA_CERT", ca.as_str())];
    assert_refused_at_start(&env, "REDIS_CA_CERT", "not valid for name \"127.0.0.1\"");
}

#[test]
fn redis_ca_cert_mistakes_are_one_line_errors() {
    let certificates = Certificates::generate(&["localhost"]).unwrap();
    let ca = certificates.ca.display().to_string();
    let key = certificates.key.display().to_string();
    let tls_url = format!("rediss://:{PASSWORD}@localhost:6390/0");
    let plain_url = format!("redis://:{PASSWORD}@localhost:6390/0");
    for (env, why) in [
        (
            vec![("REDIS_URL", tls_url.as_str()), ("REDIS_CA_CERT", "/nonexistent/ca.pem")],
            "cannot read",
        ),
        (
            vec![("REDIS_URL", tls_url.as_str()), ("REDIS_CA_CERT", key.as_str())],
            "no PEM certificate",
        ),
        (
            vec![("REDIS_URL", plain_url.as_str()), ("REDIS_CA_CERT", ca.as_str())],
            "does not use TLS",
        ),
        (vec![("REDIS_CA_CERT", ca.as_str())], "REDIS_URL is not set"),
        (vec![("REDIS_URL", "rediss://localhost:6390/#insecure")], "REDIS_CA_CERT"),
    ] {
        let (status, stderr) = run_failing(&env);
        assert_eq!(status, Some(2), "{env:?}: {stderr}");
        assert_one_line_error(&stderr, why);
        assert!(!stderr.contains(PASSWORD), "{stderr}");
    }
}
