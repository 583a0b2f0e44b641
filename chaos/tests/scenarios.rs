//! Every chaos scenario once, at the small size, in a lab of its own: each promise the chaos
//! report states is held in CI too. Needs root, nftables and the server and load generator
//! built (`cargo test --workspace` builds them; alone: `cargo build -p wstime-server -p
//! wstime-bench` first).

use wstime_chaos::{scenarios, Size};

fn check(name: &str) {
    let scenario = scenarios::ALL
        .iter()
        .find(|scenario| scenario.name == name)
        .unwrap_or_else(|| panic!("no scenario {name:?}"));
    let outcome = (scenario.run)(Size::Small).unwrap();
    assert!(outcome.held, "{}: {}\npromise: {}", outcome.name, outcome.measured, outcome.promise);
}

#[test]
fn instance_cut_from_redis() {
    check(scenarios::redis_cut::NAME);
}

#[test]
fn haproxy_cut_from_an_instance() {
    check(scenarios::haproxy_cut::NAME);
}

#[test]
fn a_client_silently_gone() {
    check(scenarios::client_gone::NAME);
}

#[test]
fn an_instance_that_hears_nothing() {
    check(scenarios::one_way::DEAF_NAME);
}

#[test]
fn an_instance_whose_words_are_lost() {
    check(scenarios::one_way::MUTE_NAME);
}

#[test]
fn five_percent_packet_loss() {
    check(scenarios::packet_loss::NAME_5);
}

#[test]
fn twenty_percent_packet_loss() {
    check(scenarios::packet_loss::NAME_20);
}

#[test]
fn clients_on_a_slow_link() {
    check(scenarios::slow_clients::NAME);
}

#[test]
fn the_sentinel_master_cut() {
    check(scenarios::sentinel_cut::NAME);
}

#[test]
fn a_healed_partitions_herd() {
    check(scenarios::herd::NAME);
}
