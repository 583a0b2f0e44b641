//! A connection's own task: it reads what the client sends and finishes writes the kernel
//! refused, and it owns the connection's place on the wheel, so the connection leaves the
//! wheel (and its socket closes) exactly when the task ends.

use std::{
    future::Future,
    pin::Pin,
    rc::Rc,
    task::{Context, Poll},
};

use tokio::io::{AsyncRead, AsyncWrite};

use super::Worker;
use crate::{
    connection::{Connection, Phase},
    tick_wheel::Place,
};

/// The task of one connection; spawned on its worker once the `101` is written.
pub struct Driving<T: AsyncRead + AsyncWrite + Unpin + 'static> {
    connection: Rc<Connection<T>>,
    worker: Rc<Worker<T>>,
    place: Place,
}

impl<T: AsyncRead + AsyncWrite + Unpin + 'static> Driving<T> {
    /// The task of `connection`, which sits at `place` on `worker`'s wheel.
    pub fn new(connection: Rc<Connection<T>>, worker: Rc<Worker<T>>, place: Place) -> Self {
        Self { connection, worker, place }
    }
}

impl<T: AsyncRead + AsyncWrite + Unpin + 'static> Future for Driving<T> {
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let connection = &self.connection;
        connection.remember(cx.waker());
        connection.flush(cx);
        connection.receive(cx, self.worker.shared());
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
        self.worker.leave(self.place);
        self.worker.shared().touches().request(self.connection.client_id().clone());
    }
}
