//! `stackube-auth`: the TokenReview webhook. The app lives in the library; this only parses
//! flags and runs it.

use clap::Parser;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    stackube_auth::run(stackube_auth::Args::parse()).await
}
