//! The app port's listening socket, with a listen backlog deep enough for a reconnect herd.
//!
//! When an instance dies, its clients come back to the others at once. The server takes at
//! most `MAX_PENDING_HANDSHAKES` connections into HTTP at a time and leaves the rest in the
//! kernel's queue of connections it has not yet accepted; a SYN that finds that queue full
//! is dropped, and its client's kernel sends it again only a second later (then three,
//! then seven). `std::net::TcpListener::bind` asks for a queue of 128, less than the pool
//! itself. Measured with 15,000 clients coming back to one instance at once (`make
//! bench-herd`, December 2026, two runs each): with 128, 23,600–28,100 SYNs dropped and the
//! median client's first tick 2.1 s after its attempt; with the kernel's cap
//! (`net.core.somaxconn`, 4,096 by default since Linux 5.4), 9,900 dropped and 1.2–1.5 s;
//! with the cap raised to 16,384, none dropped, every client back within 3.2 s instead of
//! 4–6 s. With 128 asked for, raising the cap changes nothing; now it is the operator's
//! (docs/deploying.md).

use std::{io, net::SocketAddr};

use socket2::{Domain, Protocol, Socket, Type};

/// The backlog asked for: more than any kernel grants, so the kernel's own cap applies.
const BACKLOG: i32 = 65_535;

/// A socket listening on `addr` with the deepest backlog the kernel allows, and
/// `SO_REUSEADDR` as `std::net::TcpListener::bind` sets it (a restart can bind the port
/// while the last run's connections are in `TIME_WAIT`).
pub fn bind(addr: SocketAddr) -> io::Result<std::net::TcpListener> {
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
    socket.set_reuse_address(true)?;
    socket.bind(&addr.into())?;
    socket.listen(BACKLOG)?;
    Ok(socket.into())
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    /// A burst of connects four times std's backlog, at a listener that accepts none: each
    /// must be queued by the kernel (its handshake complete at once), not dropped to be
    /// retried a second later.
    #[tokio::test]
    async fn a_burst_of_connects_is_queued_not_dropped() {
        const BURST: usize = 512;
        let listener = bind(SocketAddr::from(([127, 0, 0, 1], 0))).expect("a free port");
        let addr = listener.local_addr().expect("a bound listener's address");
        let connects = (0..BURST).map(|_| {
            tokio::time::timeout(Duration::from_millis(500), tokio::net::TcpStream::connect(addr))
        });
        let outcomes = futures_util::future::join_all(connects).await;
        let queued = outcomes.iter().filter(|outcome| matches!(outcome, Ok(Ok(_)))).count();
        assert_eq!(queued, BURST, "connects queued within 500 ms, of {BURST}");
    }

    #[test]
    fn a_port_in_use_is_told_as_such() {
        let taken = bind(SocketAddr::from(([127, 0, 0, 1], 0))).expect("a free port");
        let addr = taken.local_addr().expect("a bound listener's address");
        let error = bind(addr).expect_err("the port is taken");
        assert_eq!(error.kind(), io::ErrorKind::AddrInUse);
    }
}
