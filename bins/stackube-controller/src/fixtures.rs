//! What the reconcilers' unit tests share: a [`Context`] on an in-memory kube-apiserver and an
//! in-memory cloud, and the seed's configuration.

use std::collections::BTreeMap;
use std::sync::Arc;

use prometheus_client::registry::Registry;
use stackube_kube::fake::FakeApiServer;
use stackube_model::NetworkId;
use stackube_model::config::{ControllerConfig, FromKeys as _};
use stackube_model::crd::Condition;
use stackube_openstack::fake::FakeCloud;

use crate::Context;
use crate::metrics::Metrics;

/// A controller's world: kube-apiserver, OpenStack (with an external network), and the
/// context the reconcilers get.
pub(crate) struct World {
    pub(crate) api: FakeApiServer,
    pub(crate) cloud: FakeCloud,
    pub(crate) ctx: Arc<Context>,
    pub(crate) ext_net: NetworkId,
}

impl World {
    pub(crate) fn new() -> World {
        let cloud = FakeCloud::new();
        let (ext_net, _) = cloud
            .state()
            .add_external_network("public", "172.24.4.0/24");
        World::on(FakeApiServer::new(), cloud, ext_net, &[])
    }

    /// The same kube-apiserver and cloud, seen by a controller (a new process) with
    /// configuration keys `extra` on top of the test's.
    pub(crate) fn reconfigured(&self, extra: &[(&str, &str)]) -> World {
        World::on(
            self.api.clone(),
            self.cloud.clone(),
            self.ext_net.clone(),
            extra,
        )
    }

    fn on(
        api: FakeApiServer,
        cloud: FakeCloud,
        ext_net: NetworkId,
        extra: &[(&str, &str)],
    ) -> World {
        let map: BTreeMap<String, String> = [
            ("auth-url", "http://keystone.test:5000/v3"),
            ("username", "admin"),
            ("password", "secret"),
            ("tenant-name", "admin"),
            ("ext-net-id", ext_net.as_str()),
            ("cluster-name", "unit"),
        ]
        .into_iter()
        .chain(extra.iter().copied())
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect();
        let config = ControllerConfig::from_map(&map).expect("the test configuration is valid");
        let ctx = Arc::new(Context::with_services(
            api.client(),
            config,
            Metrics::register(&mut Registry::default()),
            "unit-test",
            Arc::new(cloud.clone()),
        ));
        World {
            api,
            cloud,
            ctx,
            ext_net,
        }
    }
}

/// `(status, reason)` of condition `type_`, if set.
pub(crate) fn condition(conditions: &[Condition], type_: &str) -> Option<(String, String)> {
    conditions
        .iter()
        .find(|c| c.type_ == type_)
        .map(|c| (c.status.clone(), c.reason.clone()))
}
