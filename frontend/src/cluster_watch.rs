//! Asking for the cluster every couple of seconds, for as long as the page is connected, and
//! at once when it asks to (the tab has just connected to an instance).
//!
//! Like the connection loop it reports through a callback and knows nothing of the page;
//! stopping it is dropping it, which also cancels a question still in flight.

use futures::{
    future::{select, Either},
    stream::{FusedStream, StreamExt},
};
use gloo_net::http::Request;
use wstime_protocol::ClusterView;

use crate::{
    client::sleep,
    cluster::{ANSWER_TIMEOUT, POLL_INTERVAL},
};

/// Asks `url` (a `/cluster` address) now, then every [`POLL_INTERVAL`] and whenever
/// `ask_now` yields, reporting each answer or why there was none. Never ends by itself (an
/// `ask_now` that ends only stops the early questions).
pub async fn watch(
    url: String,
    report: impl Fn(Result<ClusterView, String>),
    mut ask_now: impl FusedStream<Item = ()> + Unpin,
) {
    loop {
        report(ask(&url).await);
        // A request to ask that came while a question was in flight is still served: that
        // answer may have been taken before the connection it was asked for.
        select(sleep(POLL_INTERVAL), ask_now.select_next_some()).await;
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
        let response = request.send().await.map_err(|e| e.to_string())?;
        if !response.ok() {
            return Err(format!("{url} answered {}", response.status()));
        }
        let body = response.text().await.map_err(|e| e.to_string())?;
        ClusterView::parse(&body).map_err(|e| format!("{url} answered something else: {e}"))
    };
    match select(Box::pin(answer), sleep(ANSWER_TIMEOUT)).await {
        Either::Left((answer, _)) => answer,
        Either::Right(((), _)) => Err(format!("{url} did not answer within {ANSWER_TIMEOUT:?}")),
    }
}
