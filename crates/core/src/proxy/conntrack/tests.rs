use std::net::Ipv4Addr;

use super::*;
use crate::proxy::service::Protocol;
use crate::proxy::table::FrontendSpec;

const DNS: Frontend = Frontend {
    ip: Ipv4Addr::new(10, 96, 0, 10),
    protocol: Protocol::Udp,
    port: 53,
};
const WEB: Frontend = Frontend {
    ip: Ipv4Addr::new(10, 96, 0, 5),
    protocol: Protocol::Tcp,
    port: 80,
};
const SIG: Frontend = Frontend {
    ip: Ipv4Addr::new(10, 96, 0, 6),
    protocol: Protocol::Sctp,
    port: 3868,
};

fn ep(last: u8) -> SocketAddrV4 {
    SocketAddrV4::new(Ipv4Addr::new(10, 244, 0, last), 53)
}

/// A table of `frontends`, each with endpoints `10.244.0.<n>:53` (none: rejecting), random or
/// with affinity.
fn table(frontends: &[(Frontend, &[u8], bool)]) -> TableSpec {
    let mut spec = TableSpec::default();
    for (frontend, endpoints, affinity) in frontends {
        let backend = Backend::new(endpoints.iter().map(|n| ep(*n)), affinity.then_some(60));
        let comment = "test/svc".to_owned();
        spec.insert(*frontend, FrontendSpec { comment, backend });
    }
    spec
}

fn gone(frontend: Frontend, last: u8) -> StaleEntries {
    StaleEntries::Endpoint {
        frontend,
        endpoint: ep(last),
    }
}

#[test]
fn udp_and_sctp_entries_are_cleared_where_traffic_would_stick_to_the_past() {
    let cases: Vec<(&str, TableSpec, TableSpec, Vec<StaleEntries>)> = vec![
        (
            "nothing changed",
            table(&[(DNS, &[1, 2], false)]),
            table(&[(DNS, &[1, 2], false)]),
            vec![],
        ),
        (
            "an endpoint removed loses its entries, the others keep theirs",
            table(&[(DNS, &[1, 2, 3], false)]),
            table(&[(DNS, &[1, 3], false)]),
            vec![gone(DNS, 2)],
        ),
        (
            "scaled to zero: every endpoint's entries go",
            table(&[(DNS, &[1, 2], false)]),
            table(&[(DNS, &[], false)]),
            vec![gone(DNS, 1), gone(DNS, 2)],
        ),
        (
            "a frontend that rejected gets endpoints: all its entries go",
            table(&[(DNS, &[], false)]),
            table(&[(DNS, &[1, 2], false)]),
            vec![StaleEntries::Frontend(DNS)],
        ),
        (
            "a new frontend with endpoints: whatever answered before goes",
            table(&[]),
            table(&[(DNS, &[1], false)]),
            vec![StaleEntries::Frontend(DNS)],
        ),
        (
            "a new frontend without endpoints: nothing to clear",
            table(&[]),
            table(&[(DNS, &[], false)]),
            vec![],
        ),
        (
            "a deleted frontend's endpoints lose their entries",
            table(&[(DNS, &[1], false)]),
            table(&[]),
            vec![gone(DNS, 1)],
        ),
        (
            "an affinity frontend's removed endpoint counts the same",
            table(&[(DNS, &[1, 2], true)]),
            table(&[(DNS, &[1], true)]),
            vec![gone(DNS, 2)],
        ),
        (
            "SCTP is cleared like UDP",
            table(&[(SIG, &[1, 2], false)]),
            table(&[(SIG, &[2], false)]),
            vec![gone(SIG, 1)],
        ),
        (
            "TCP connections end by themselves",
            table(&[(WEB, &[1, 2], false)]),
            table(&[(WEB, &[], false)]),
            vec![],
        ),
    ];
    for (name, old, new, want) in cases {
        assert_eq!(stale_entries(&old, &new), want, "{name}");
    }
}
