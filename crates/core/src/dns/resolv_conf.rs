//! The node's resolver configuration (`/etc/resolv.conf`): where stackube-dns forwards names
//! outside the cluster domain when `dns-upstreams` is not set.

use std::net::{IpAddr, SocketAddr};

/// The `nameserver` addresses of resolv.conf `text`, in order, on port 53, without `exclude`
/// (the cluster DNS address: forwarding to it would be a loop). Link-local addresses with a
/// zone (`fe80::1%eth0`) are skipped: they do not mean anything outside the host's interfaces.
pub fn nameservers(text: &str, exclude: IpAddr) -> Vec<SocketAddr> {
    text.lines()
        .map(|line| line.split(['#', ';']).next().unwrap_or_default())
        .filter_map(|line| {
            let mut words = line.split_whitespace();
            (words.next() == Some("nameserver"))
                .then(|| words.next())
                .flatten()
        })
        .filter_map(|address| address.parse::<IpAddr>().ok())
        .filter(|ip| *ip != exclude)
        .map(|ip| SocketAddr::new(ip, 53))
        .fold(Vec::new(), |mut all, addr| {
            if !all.contains(&addr) {
                all.push(addr);
            }
            all
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nameservers_are_read_in_order_without_the_cluster_dns_address() {
        let text = "# written by the cloud\nsearch example.com\nnameserver 192.0.2.53\n\
                    nameserver   10.96.0.10\n  nameserver 2001:db8::53 # v6\n\
                    nameserver fe80::1%eth0\nnameserver 192.0.2.53\noptions ndots:2\n\
                    ;nameserver 192.0.2.99\nnameserverx 192.0.2.98\nnameserver\n";
        let cluster: IpAddr = "10.96.0.10".parse().unwrap();
        assert_eq!(
            nameservers(text, cluster),
            vec![
                "192.0.2.53:53".parse::<SocketAddr>().unwrap(),
                "[2001:db8::53]:53".parse().unwrap(),
            ]
        );
        assert!(nameservers("", cluster).is_empty());
    }
}
