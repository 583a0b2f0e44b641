//! Asking for the cluster every couple of seconds, for as long as the page is connected.
//!
//! Like the connection loop it reports through a callback and knows nothing of the page;
//! stopping it is dropping it, which also cancels a question still in flight.

use futures::future::{select, Either};
use gloo_net::http::Request;
use wstime_protocol::ClusterView;

use crate::{
    client::sleep,
    cluster::{ANSWER_TIMEOUT, POLL_INTERVAL},
    cluster_json,
};

/// Asks `url` (a `/cluster` address) now and then every [`POLL_INTERVAL`], reporting each
/// answer or why there was none. Never ends by itself.
pub async fn watch(url: String, report: impl Fn(Result<ClusterView, String>)) {
    loop {
        report(ask(&url).await);
        sleep(POLL_INTERVAL).await;
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
