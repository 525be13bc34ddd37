//! `stackube-controller`: Tenant and Network controller. The app lives in the library; this
//! only parses flags and runs it.

use clap::Parser;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    stackube_controller::run(stackube_controller::Args::parse()).await
}
