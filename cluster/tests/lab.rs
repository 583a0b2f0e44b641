//! The fault lab against the real kernel: hosts reach each other over the bridge and nothing
//! else reaches them, each fault does what it says and heals, and nothing outlives the lab.

use std::{
    io::{Read as _, Write as _},
    net::{SocketAddr, TcpListener, TcpStream},
    time::{Duration, Instant},
};

use wstime_cluster::lab::{Direction, Host, Lab};

/// How long a connect may take before it counts as silenced.
const SILENCE: Duration = Duration::from_secs(1);

/// A listener in `host` on any port, answering every connection with one byte.
fn echo_server(host: &Host) -> SocketAddr {
    let address = host.ip();
    let listener = host.enter(move || TcpListener::bind((address, 0))).unwrap().unwrap();
    let local = listener.local_addr().unwrap();
    std::thread::spawn(move || {
        for mut stream in listener.incoming().map_while(Result::ok) {
            let _ = stream.write_all(b"!");
        }
    });
    local
}

/// What connecting from `host` to `to` gives: `Ok` once a byte came back, or the error.
fn reach(host: &Host, to: SocketAddr) -> Result<(), std::io::ErrorKind> {
    host.enter(move || {
        let mut stream = TcpStream::connect_timeout(&to, SILENCE).map_err(|e| e.kind())?;
        stream.set_read_timeout(Some(SILENCE)).map_err(|e| e.kind())?;
        let mut byte = [0];
        stream.read_exact(&mut byte).map_err(|e| e.kind())
    })
    .unwrap()
}

/// The namespaces of the lab whose own namespace is `lab`, as `ip netns list` shows them.
fn namespaces_of(lab: &str) -> Vec<String> {
    let listed = std::process::Command::new("ip").args(["netns", "list"]).output().unwrap();
    String::from_utf8(listed.stdout)
        .unwrap()
        .lines()
        .filter_map(|line| line.split_whitespace().next())
        .filter(|ns| *ns == lab || ns.starts_with(&format!("{lab}-")))
        .map(str::to_owned)
        .collect()
}

#[test]
fn hosts_reach_each_other_and_faults_cut_and_heal() {
    let mut lab = Lab::new().unwrap();
    let (a, b) = (lab.add_host("a").unwrap(), lab.add_host("b").unwrap());
    assert_ne!(a.address(), b.address());
    let server = echo_server(&b);
    assert_eq!(reach(&a, server), Ok(()), "a reaches b over the bridge");
    // The machine's own namespace has no address in the lab and no route into it.
    assert!(TcpStream::connect_timeout(&server, SILENCE).is_err(), "the machine reaches b");

    let cut = a.cut(&b, Direction::Both).unwrap();
    let started = Instant::now();
    assert_eq!(reach(&a, server), Err(std::io::ErrorKind::TimedOut), "a silent cut");
    assert!(started.elapsed() >= SILENCE, "a drop answers nothing: the connect waits it out");
    cut.heal().unwrap();
    assert_eq!(reach(&a, server), Ok(()), "healed");

    // One direction: b's answers (SYN-ACK) never reach a; then a's SYN never leaves.
    for direction in [Direction::Inbound, Direction::Outbound] {
        let cut = a.cut(&b, direction).unwrap();
        assert_eq!(reach(&a, server), Err(std::io::ErrorKind::TimedOut), "{direction:?}");
        drop(cut);
        assert_eq!(reach(&a, server), Ok(()), "{direction:?} healed on drop");
    }

    let refused = a.reject(&b, Direction::Outbound).unwrap();
    let started = Instant::now();
    assert_eq!(reach(&a, server), Err(std::io::ErrorKind::ConnectionRefused), "a loud cut");
    assert!(started.elapsed() < SILENCE, "a reset comes at once");
    drop(refused);

    // All of it lost: nothing gets through, and no table is left once it heals.
    let lost = a.lose(100).unwrap();
    assert_eq!(reach(&a, server), Err(std::io::ErrorKind::TimedOut), "100 % loss");
    drop(lost);
    assert_eq!(a.run("nft", &["list", "tables"]).unwrap().trim(), "", "every table removed");
    assert_eq!(reach(&a, server), Ok(()));
}

#[test]
fn a_slow_link_takes_as_long_as_its_rate_says() {
    let mut lab = Lab::new().unwrap();
    let (a, b) = (lab.add_host("a").unwrap(), lab.add_host("b").unwrap());
    let address = b.ip();
    let listener = b.enter(move || TcpListener::bind((address, 0))).unwrap().unwrap();
    let to = listener.local_addr().unwrap();
    // 64 KiB at 256 kbit/s: at least two seconds; unshaped, milliseconds.
    let sink = std::thread::spawn(move || {
        let (mut stream, _) = listener.accept().unwrap();
        let mut received = Vec::new();
        stream.read_to_end(&mut received).unwrap();
        received.len()
    });
    let slow = a.slow(&lab, 256_000).unwrap();
    let started = Instant::now();
    a.enter(move || {
        let mut stream = TcpStream::connect_timeout(&to, Duration::from_secs(5)).unwrap();
        stream.write_all(&[0; 65_536]).unwrap();
    })
    .unwrap();
    assert_eq!(sink.join().unwrap(), 65_536);
    let took = started.elapsed();
    assert!(took >= Duration::from_millis(1800), "64 KiB at 256 kbit/s took {took:?}");
    drop(slow);
    let qdiscs = a.run("tc", &["qdisc", "show", "dev", "eth0"]).unwrap();
    assert!(!qdiscs.contains("tbf"), "the token bucket is removed: {qdiscs}");
}

#[test]
fn processes_run_inside_their_host_and_nothing_outlives_the_lab() {
    let mut lab = Lab::new().unwrap();
    let host = lab.add_host("sleeper").unwrap();
    let mut command = host.command("sleep");
    command.arg("600");
    let mut sleeper = wstime_cluster::Supervised::spawn("sleep", &mut command, false).unwrap();
    // `ip netns exec` enters the namespace a moment after it starts.
    let deadline = Instant::now() + Duration::from_secs(5);
    while host.processes().unwrap().is_empty() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(host.processes().unwrap(), [sleeper.pid()], "the process runs in the host");
    let namespace = lab.namespace().to_owned();
    let made = namespaces_of(&namespace);
    assert_eq!(made.len(), 2, "the lab's namespace and its host's: {made:?}");

    // A test that panics with its lab still up tears it down on the way out.
    let panicked = std::thread::spawn(move || {
        let _lab = lab;
        panic!("a failing test");
    })
    .join();
    assert!(panicked.is_err());
    let killed = sleeper.try_wait().expect("the sleeper was killed with its lab");
    assert_eq!(std::os::unix::process::ExitStatusExt::signal(&killed), Some(9));
    drop(sleeper);
    let left = namespaces_of(&namespace);
    assert!(left.is_empty(), "namespaces left behind: {left:?}");
}

#[test]
fn a_lab_is_refused_a_host_name_that_is_not_a_plain_word() {
    let mut lab = Lab::new().unwrap();
    let refused = lab.add_host("a b").unwrap_err().to_string();
    assert!(refused.contains("letters, digits"), "{refused}");
}

#[test]
fn a_new_lab_removes_what_a_dead_process_left_behind() {
    // A lab namespace named for a process that has exited, with a process still in it: what
    // a test killed outright (SIGKILL, no Drop) leaves.
    let mut gone = std::process::Command::new("true").spawn().unwrap();
    gone.wait().unwrap();
    let orphan = format!("wsl{}x0-left", gone.id());
    let added = std::process::Command::new("ip").args(["netns", "add", &orphan]).status();
    assert!(added.unwrap().success());
    let mut command = std::process::Command::new("ip");
    command.args(["netns", "exec", &orphan, "sleep", "600"]);
    let mut sleeper = wstime_cluster::Supervised::spawn("left", &mut command, false).unwrap();

    let _lab = Lab::new().unwrap();
    assert!(namespaces_of(&orphan).is_empty(), "the orphan namespace is still there");
    let killed = sleeper.wait_exit(Duration::from_secs(5)).expect("the process left is killed");
    assert_eq!(std::os::unix::process::ExitStatusExt::signal(&killed), Some(9));
}
