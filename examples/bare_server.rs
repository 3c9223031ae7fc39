//! A bare tonic server on Thespian's proto, with no telemetry at all: the
//! baseline `scripts/bench.sh` measures Thespian against.
//!
//! `A` and `C` answer at once; `B` awaits a one-second timer, then answers.
//! Run it as `cargo run --release --example bare_server -- PORT [CALLEE]`
//! (or with `PORT` set); port 0 lets the OS choose. With a CALLEE address,
//! `A` first calls `A` there, over one channel: the least a two-service
//! chain can cost. It prints the address it serves on.

use std::time::Duration;

use thespian::proto::thespian_client::ThespianClient;
use thespian::proto::{
    Empty,
    thespian_server::{Thespian, ThespianServer},
};
use tokio::net::TcpListener;
use tonic::{
    Request, Response, Status,
    transport::{Channel, Endpoint, Server},
};

/// The three methods, doing as little as a gRPC method can.
struct Bare {
    /// Where `A` calls first, if anywhere.
    callee: Option<Channel>,
}

#[tonic::async_trait]
impl Thespian for Bare {
    async fn a(&self, _: Request<Empty>) -> Result<Response<Empty>, Status> {
        if let Some(channel) = &self.callee {
            ThespianClient::new(channel.clone()).a(Empty {}).await?;
        }
        Ok(Response::new(Empty {}))
    }

    async fn b(&self, _: Request<Empty>) -> Result<Response<Empty>, Status> {
        tokio::time::sleep(Duration::from_secs(1)).await;
        Ok(Response::new(Empty {}))
    }

    async fn c(&self, _: Request<Empty>) -> Result<Response<Empty>, Status> {
        Ok(Response::new(Empty {}))
    }
}

#[tokio::main]
async fn main() -> Result<(), thespian::Error> {
    let port = std::env::args()
        .nth(1)
        .or_else(|| std::env::var("PORT").ok())
        .unwrap_or_else(|| "0".to_owned());
    let port: u16 = port
        .parse()
        .map_err(|e| format!("`{port}` is not a port: {e}"))?;
    let listener = TcpListener::bind(("127.0.0.1", port))
        .await
        .map_err(|e| format!("cannot listen on port {port}: {e}"))?;
    let callee = match std::env::args().nth(2) {
        Some(address) => Some(
            Endpoint::from_shared(address)?
                .tcp_nodelay(true)
                .connect_lazy(),
        ),
        None => None,
    };
    println!("listening on {}", listener.local_addr()?);
    Server::builder()
        .add_service(ThespianServer::new(Bare { callee }))
        // Accepted as Thespian's server accepts: Nagle's algorithm off.
        .serve_with_incoming_shutdown(thespian::server::accept_without_delay(listener), async {
            let _ = tokio::signal::ctrl_c().await;
        })
        .await?;
    Ok(())
}
