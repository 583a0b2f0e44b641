//! A connection's own task: it reads what the client sends and finishes writes the kernel
//! refused, and it owns the connection's place on the wheel, so the connection leaves the
//! wheel (and its socket closes) exactly when the task ends.

use std::{
    cell::RefCell,
    future::Future,
    pin::Pin,
    rc::Rc,
    task::{Context, Poll},
};

use tokio::io::{AsyncRead, AsyncWrite};

use crate::{
    connection::{shared::Shared, Connection, Phase},
    tick_wheel::{Place, Wheel},
};

/// The task of one connection; spawned on its worker once the `101` is written.
pub struct Driving<T: AsyncRead + AsyncWrite + Unpin + 'static> {
    connection: Rc<Connection<T>>,
    /// Its worker's wheel, which it leaves when it ends.
    wheel: Rc<RefCell<Wheel<Rc<Connection<T>>>>>,
    /// What its worker's connections share.
    shared: Rc<Shared>,
    place: Place,
}

impl<T: AsyncRead + AsyncWrite + Unpin + 'static> Driving<T> {
    /// The task of `connection`, which sits at `place` on `wheel`, and reads with `shared`.
    pub fn new(
        connection: Rc<Connection<T>>,
        wheel: Rc<RefCell<Wheel<Rc<Connection<T>>>>>,
        shared: Rc<Shared>,
        place: Place,
    ) -> Self {
        Self { connection, wheel, shared, place }
    }
}

impl<T: AsyncRead + AsyncWrite + Unpin + 'static> Future for Driving<T> {
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let connection = &self.connection;
        connection.remember(cx.waker());
        connection.flush(cx);
        connection.receive(cx, &self.shared);
        if connection.phase() == Phase::Closed {
            Poll::Ready(())
        } else {
            Poll::Pending
        }
    }
}

impl<T: AsyncRead + AsyncWrite + Unpin + 'static> Drop for Driving<T> {
    /// However the task ends (the connection closed, or the worker stopping), the
    /// connection leaves the wheel and its session gets its last touch, so the resume
    /// window counts from the moment the socket let go.
    fn drop(&mut self) {
        let left = self.wheel.borrow_mut().remove(self.place);
        drop(left);
        self.shared.touches().request(self.connection.client_id().clone());
    }
}
