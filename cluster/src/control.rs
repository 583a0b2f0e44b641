//! The control API: a small HTTP interface over a running cluster. Browser tests call it
//! (hence `Access-Control-Allow-Origin: *`), and so do `make cluster-status` and friends.
//!
//! - `GET /cluster`: the load balancer, Redis, and every instance with its health.
//! - `POST /instances`: start one more.
//! - `POST /instances/{index}/signal/{KILL|TERM|INT|STOP|CONT}`: signal one (and wait for
//!   it to exit, for the signals that end it: KILL at once, TERM and INT once drained).
//! - `POST /instances/{index}/restart`: a new process on the same port.
//! - `POST /roll`: a rolling restart ([`crate::roll`]), answered with its report.

use std::{
    net::TcpListener,
    sync::{Arc, Mutex},
};

use actix_web::{dev::Server, middleware::DefaultHeaders, web, App, HttpResponse, HttpServer};
use anyhow::Context as _;

use crate::Cluster;

type Shared = Arc<Mutex<Cluster>>;

/// Serves the control API for `cluster` on `listener`.
pub fn serve(cluster: Shared, listener: TcpListener) -> std::io::Result<Server> {
    let data = web::Data::from(cluster);
    Ok(HttpServer::new(move || {
        App::new()
            .app_data(data.clone())
            .wrap(DefaultHeaders::new().add(("Access-Control-Allow-Origin", "*")))
            .route("/cluster", web::get().to(status))
            .route("/instances", web::post().to(add))
            .route("/instances/{index}/signal/{signal}", web::post().to(signal))
            .route("/instances/{index}/restart", web::post().to(restart))
            .route("/roll", web::post().to(roll))
    })
    .workers(1)
    .disable_signals()
    .listen(listener)?
    .run())
}

/// Runs a cluster operation off the async workers (starting and stopping processes waits).
async fn with_cluster<T: serde::Serialize + Send + 'static>(
    data: web::Data<Mutex<Cluster>>,
    operation: impl FnOnce(&mut Cluster) -> anyhow::Result<T> + Send + 'static,
) -> HttpResponse {
    let cluster = data.into_inner();
    blocking(move || operation(&mut cluster.lock().unwrap_or_else(|e| e.into_inner()))).await
}

async fn status(data: web::Data<Mutex<Cluster>>) -> HttpResponse {
    with_cluster(data, |c| Ok(c.status())).await
}

async fn add(data: web::Data<Mutex<Cluster>>) -> HttpResponse {
    with_cluster(data, Cluster::add_instance).await
}

async fn signal(data: web::Data<Mutex<Cluster>>, path: web::Path<(usize, String)>) -> HttpResponse {
    let (index, signal) = path.into_inner();
    if !matches!(signal.as_str(), "KILL" | "TERM" | "INT" | "STOP" | "CONT") {
        return HttpResponse::BadRequest().body("signal must be KILL, TERM, INT, STOP or CONT");
    }
    let ends = matches!(signal.as_str(), "TERM" | "INT");
    let cluster = data.clone().into_inner();
    let signalled = with_cluster(data, move |c| c.signal(index, &signal)).await;
    if !ends || !signalled.status().is_success() {
        return signalled;
    }
    // The drain takes seconds: wait for it without holding the cluster, so `status` and
    // other requests are answered meanwhile.
    blocking(move || {
        Cluster::wait_for_exit(&cluster, index)?;
        let mut cluster = cluster.lock().unwrap_or_else(|e| e.into_inner());
        cluster.instances().into_iter().nth(index).context("the instance is gone")
    })
    .await
}

/// `POST /roll?cordon=false`: what to do with the instances waiting their turn.
#[derive(serde::Deserialize)]
struct RollOptions {
    #[serde(default = "cordon_by_default")]
    cordon: bool,
}

fn cordon_by_default() -> bool {
    true
}

async fn roll(data: web::Data<Mutex<Cluster>>, options: web::Query<RollOptions>) -> HttpResponse {
    let cluster = data.into_inner();
    blocking(move || {
        crate::roll::roll(&cluster, options.cordon, |step| eprintln!("wstime-cluster: roll {step}"))
    })
    .await
}

/// Runs `operation` off the async workers, answering with its value as JSON.
async fn blocking<T: serde::Serialize + Send + 'static>(
    operation: impl FnOnce() -> anyhow::Result<T> + Send + 'static,
) -> HttpResponse {
    match web::block(operation).await {
        Ok(Ok(value)) => HttpResponse::Ok().json(value),
        Ok(Err(error)) => HttpResponse::BadRequest().body(format!("{error:#}")),
        Err(error) => HttpResponse::InternalServerError().body(error.to_string()),
    }
}

async fn restart(data: web::Data<Mutex<Cluster>>, path: web::Path<usize>) -> HttpResponse {
    let index = path.into_inner();
    with_cluster(data, move |c| c.restart(index)).await
}
