//! Asking for the cluster every couple of seconds, for as long as the page is connected, and
//! at once when it asks to (the tab has just connected to an instance).
//!
//! Like the connection loop it reports through a callback and knows nothing of the page;
//! stopping it is dropping it, which also cancels a question still in flight.

use std::{
    cell::RefCell,
    future::poll_fn,
    rc::Rc,
    task::{Poll, Waker},
};

use futures::future::{select, Either};
use gloo_net::http::Request;
use wstime_protocol::ClusterView;

use crate::{
    client::sleep,
    cluster::{ANSWER_TIMEOUT, POLL_INTERVAL},
    cluster_json,
};

/// Asks `url` (a `/cluster` address) now, then every [`POLL_INTERVAL`] and whenever
/// `ask_now` is nudged, reporting each answer or why there was none. Never ends by itself.
pub async fn watch(url: String, report: impl Fn(Result<ClusterView, String>), ask_now: AskNow) {
    loop {
        report(ask(&url).await);
        // A nudge that came while a question was in flight is still served: that answer may
        // have been taken before the connection it was asked for.
        select(sleep(POLL_INTERVAL), Box::pin(ask_now.nudged())).await;
    }
}

/// A request to ask at once, from the connection loop to [`watch`]. Many before the watch
/// looks are one: a single question answers them all. (Not a channel: this is all the page
/// needs of one, at a fraction of a channel's weight in the wasm.)
#[derive(Clone, Default)]
pub struct AskNow(Rc<RefCell<Nudges>>);

#[derive(Default)]
struct Nudges {
    pending: bool,
    waiting: Option<Waker>,
}

impl AskNow {
    /// Asks the watch to ask now (or as soon as its question in flight is answered).
    pub fn nudge(&self) {
        let mut nudges = self.0.borrow_mut();
        nudges.pending = true;
        if let Some(waker) = nudges.waiting.take() {
            waker.wake();
        }
    }

    /// Resolves once nudged, taking the nudge.
    fn nudged(&self) -> impl std::future::Future<Output = ()> + '_ {
        poll_fn(move |context| {
            let mut nudges = self.0.borrow_mut();
            if std::mem::take(&mut nudges.pending) {
                Poll::Ready(())
            } else {
                nudges.waiting = Some(context.waker().clone());
                Poll::Pending
            }
        })
    }
}

/// Cancels a fetch when dropped: after a timeout, or when the page disconnects mid-question,
/// the browser stops waiting too instead of holding the request open.
struct AbortOnDrop(web_sys::AbortController);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// One question, bounded by [`ANSWER_TIMEOUT`].
async fn ask(url: &str) -> Result<ClusterView, String> {
    let abort = AbortOnDrop(web_sys::AbortController::new().map_err(|e| format!("{e:?}"))?);
    let request = Request::get(url)
        // The answer changes every couple of seconds: never from a cache.
        .cache(web_sys::RequestCache::NoStore)
        .abort_signal(Some(&abort.0.signal()));
    let answer = async move {
        let response = request.send().await.map_err(said)?;
        if !response.ok() {
            return Err(format!("{url} answered {}", response.status()));
        }
        let body = response.text().await.map_err(said)?;
        cluster_json::parse(&body).map_err(|e| format!("{url} answered something else: {e}"))
    };
    match select(Box::pin(answer), sleep(ANSWER_TIMEOUT)).await {
        Either::Left((answer, _)) => answer,
        Either::Right(((), _)) => {
            // Whole seconds, not `{:?}`: Duration's Debug links float formatting into the page.
            Err(format!("{url} did not answer within {}s", ANSWER_TIMEOUT.as_secs()))
        }
    }
}

/// A failed request's error, as its `Display` words it. Not `to_string()` on the error
/// itself: its `Display` covers serde_json's errors too (gloo-net's `json` feature is on
/// through Leptos), which links their messages into the page; sending and reading text
/// never produce one.
fn said(error: gloo_net::Error) -> String {
    match error {
        gloo_net::Error::JsError(error) => error.to_string(),
        gloo_net::Error::GlooError(text) => text,
        _ => "the answer could not be read".to_owned(),
    }
}
