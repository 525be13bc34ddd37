//! Expected text of full syncs and typical updates, and the property that updates and full
//! syncs agree, all checked on the [`NftModel`].

mod prop;
mod raw;
mod render;
mod update;

use std::net::{Ipv4Addr, SocketAddrV4};

use super::model::NftModel;
use super::*;
use crate::proxy::service::Protocol;
use crate::proxy::table::{Backend, Frontend, FrontendSpec, TableSpec};

const T: &str = "stackube-proxy";

fn frontend(ip: &str, protocol: Protocol, port: u16) -> Frontend {
    Frontend {
        ip: ip.parse().expect("an IPv4 address"),
        protocol,
        port,
    }
}

fn web() -> Frontend {
    frontend("10.96.0.5", Protocol::Tcp, 80)
}

fn dns() -> Frontend {
    frontend("10.96.0.10", Protocol::Udp, 53)
}

fn sticky() -> Frontend {
    frontend("10.96.0.7", Protocol::Tcp, 80)
}

fn lb() -> Frontend {
    frontend("172.24.4.10", Protocol::Tcp, 80)
}

/// Endpoints `10.244.0.<n>:8080`.
fn eps(lasts: &[u8]) -> Vec<SocketAddrV4> {
    lasts
        .iter()
        .map(|n| SocketAddrV4::new(Ipv4Addr::new(10, 244, 0, *n), 8080))
        .collect()
}

fn random(lasts: &[u8]) -> Backend {
    Backend::new(eps(lasts), None)
}

fn affinity(timeout: u32, lasts: &[u8]) -> Backend {
    Backend::new(eps(lasts), Some(timeout))
}

/// A table with service CIDR 10.96.0.0/12 and these frontends.
fn spec(frontends: &[(Frontend, &str, Backend)]) -> TableSpec {
    let mut spec = TableSpec::new(["10.96.0.0/12".parse().expect("a CIDR")]);
    for (frontend, comment, backend) in frontends {
        let comment = (*comment).to_owned();
        let backend = backend.clone();
        spec.insert(*frontend, FrontendSpec { comment, backend });
    }
    spec
}

fn model_of(spec: &TableSpec) -> NftModel {
    let mut model = NftModel::default();
    model.apply(&full(T, spec)).expect("a full sync applies");
    model
}

/// The text of the update from `old` to `new`, once checked: it applies to the table `old`'s
/// full sync made, and leaves what `new`'s full sync makes.
fn checked_update(old: &TableSpec, new: &TableSpec) -> String {
    let commands = update(T, old, new);
    let mut model = model_of(old);
    if let Err(refused) = model.apply(&commands) {
        panic!("{refused}\n{}", transaction(&commands));
    }
    assert_eq!(model.dump(), model_of(new).dump());
    transaction(&commands)
}

/// `expected` with its lines' leading whitespace removed (lets expected text be indented).
fn lines(expected: &str) -> String {
    expected
        .lines()
        .map(str::trim_start)
        .filter(|line| !line.is_empty())
        .map(|line| format!("{line}\n"))
        .collect()
}
