//! In-memory Keystone, Neutron and Cinder for unit tests (feature `fake`).
//!
//! [`FakeCloud`] implements [`Identity`], [`Networking`] and [`BlockStorage`] over one shared
//! [`FakeState`], and [`Services`] so that a component wired with `Arc<dyn Services>` can be
//! driven without a cloud. It is a *recording* fake in the sense of the style guide: every call
//! is logged as the [`Call`] the real client would report ([`FakeCloud::calls`]), and
//! [`Faults`] makes chosen calls fail or time out. It is for unit tests of reconcilers and of
//! fault handling; the real client is tested against the real services.
//!
//! # What is modelled
//! The semantics the reconcilers rely on, including the awkward ones: every `# Guarantees`
//! section of the traits (idempotent deletes, `Conflict` on deleting what is still in use,
//! idempotent router interfaces and security group rules), Neutron's implicit per-project
//! `default` security group (created by the first network, port or security group of a project
//! and never deleted with them), tag filters, address allocation, router interfaces and gateways
//! as ports, floating IP association, Keystone's name uniqueness per domain and Cinder's
//! attachment states. See the submodules for the details and for what is deliberately left out.
//!
//! # Guarantees
//! - A call that fails because of an injected fault changes no state; a call that fails on its
//!   own (not found, conflict, invalid) changes no state either.
//! - Every call is recorded before anything else happens, failed ones included; clones of a
//!   [`FakeCloud`] share state, faults and log.
//! - Calls made with `project_id: None` act in the seeded `admin` project
//!   ([`FakeCloud::admin_project`]), like an admin session's calls.
//! - Passwords are kept as [`secrecy::SecretString`]: they appear neither in `Debug` output nor
//!   in the call log (creations are logged by name, as the real client does).

mod block_storage;
mod faults;
mod identity;
mod ipam;
mod network;
mod state;

use std::sync::{Arc, Mutex, MutexGuard};

use async_trait::async_trait;
use stackube_model::ProjectId;

pub use faults::Faults;
pub use state::FakeState;

use crate::error::{ErrorKind, OpenStackError, Result};
use crate::observe::{Call, Service};
use crate::{BlockStorage, Identity, Networking, Services};

/// An in-memory OpenStack: Keystone, Neutron and Cinder over one [`FakeState`].
///
/// `Clone` shares everything (state, faults, call log), so a test keeps one handle for
/// assertions and gives clones (or the trait objects of [`FakeCloud::identity`] and its
/// siblings) to the code under test.
#[derive(Clone, Debug, Default)]
pub struct FakeCloud {
    inner: Arc<Inner>,
}

#[derive(Debug, Default)]
struct Inner {
    state: Mutex<FakeState>,
    faults: Faults,
    calls: Mutex<Vec<Call>>,
}

impl FakeCloud {
    /// A fresh cloud: Keystone holds the roles `admin`, `member` and `reader` and the project
    /// `admin` (in domain `default`); Neutron and Cinder are empty.
    pub fn new() -> FakeCloud {
        FakeCloud::default()
    }

    /// Keystone.
    pub fn identity(&self) -> Arc<dyn Identity> {
        Arc::new(identity::FakeIdentity::new(self.clone()))
    }

    /// Neutron.
    pub fn networking(&self) -> Arc<dyn Networking> {
        Arc::new(network::FakeNetworking::new(self.clone()))
    }

    /// Cinder.
    pub fn block_storage(&self) -> Arc<dyn BlockStorage> {
        Arc::new(block_storage::FakeBlockStorage::new(self.clone(), None))
    }

    /// Cinder scoped to `project` (see [`Services::block_storage_in`]); unlike the real one it
    /// grants no role.
    pub fn block_storage_in(&self, project: &ProjectId) -> Arc<dyn BlockStorage> {
        Arc::new(block_storage::FakeBlockStorage::new(
            self.clone(),
            Some(project.clone()),
        ))
    }

    /// The faults to inject into later calls.
    pub fn faults(&self) -> &Faults {
        &self.inner.faults
    }

    /// Every call made so far, in order, failed ones included.
    pub fn calls(&self) -> Vec<Call> {
        lock(&self.inner.calls).clone()
    }

    /// How many calls of `operation` (e.g. `create_port`, of any service) were made so far.
    pub fn count(&self, operation: &str) -> usize {
        lock(&self.inner.calls)
            .iter()
            .filter(|c| c.operation == operation)
            .count()
    }

    /// The state, for seeding and for assertions. Do not hold the guard across an `.await` of a
    /// call to this cloud: the call would wait for it forever.
    pub fn state(&self) -> MutexGuard<'_, FakeState> {
        lock(&self.inner.state)
    }

    /// The project that calls with `project_id: None` act in (the seeded `admin` project).
    pub fn admin_project(&self) -> ProjectId {
        self.state().admin_project().clone()
    }

    /// Records `call`, then applies the faults that apply to it: `Ok` when the call may go on.
    async fn enter(&self, call: &Call) -> Result<()> {
        lock(&self.inner.calls).push(call.clone());
        match self.inner.faults.check(call) {
            faults::Verdict::Proceed => Ok(()),
            faults::Verdict::Fail(kind, why) => Err(error(kind, call, why)),
            faults::Verdict::Hang(duration) => {
                tokio::time::sleep(duration).await;
                Err(error(ErrorKind::Unavailable, call, "timed out"))
            }
        }
    }

    /// Records `call`, applies the faults, then runs `op` on the state (atomically: `op` holds
    /// the lock for its whole run, and leaves the state untouched when it fails).
    async fn run<T>(
        &self,
        call: Call,
        op: impl FnOnce(&mut FakeState, &Call) -> Result<T> + Send,
    ) -> Result<T> {
        self.enter(&call).await?;
        let mut state = self.state();
        op(&mut state, &call)
    }

    /// What [`Services`] does before handing out a client: fails while
    /// [`Faults::connect_fails`] is set.
    fn connect(&self) -> Result<()> {
        if self.inner.faults.connecting_fails() {
            let call = Call::new(Service::Identity, "connect");
            lock(&self.inner.calls).push(call.clone());
            return Err(error(ErrorKind::Unavailable, &call, "connection refused"));
        }
        Ok(())
    }
}

/// The fake's connection never needs making, so only [`Faults::connect_fails`] makes these
/// fail: with an `Unavailable` error of the call `identity connect`, which is then also in
/// [`FakeCloud::calls`]. Successful connections are not recorded (the real [`crate::Cloud`]
/// connects once and reuses the session).
#[async_trait]
impl Services for FakeCloud {
    async fn identity(&self) -> Result<Arc<dyn Identity>, OpenStackError> {
        self.connect()?;
        Ok(FakeCloud::identity(self))
    }

    async fn networking(&self) -> Result<Arc<dyn Networking>, OpenStackError> {
        self.connect()?;
        Ok(FakeCloud::networking(self))
    }

    async fn block_storage(&self) -> Result<Arc<dyn BlockStorage>, OpenStackError> {
        self.connect()?;
        Ok(FakeCloud::block_storage(self))
    }

    async fn own_project(&self) -> Result<ProjectId, OpenStackError> {
        self.connect()?;
        Ok(self.admin_project())
    }

    async fn block_storage_in(
        &self,
        project: &ProjectId,
    ) -> Result<Arc<dyn BlockStorage>, OpenStackError> {
        self.connect()?;
        if project == &self.admin_project() {
            return Ok(FakeCloud::block_storage(self));
        }
        Ok(FakeCloud::block_storage_in(self, project))
    }
}

/// Locks `mutex`, also when a panicking test poisoned it (the data is still consistent: every
/// operation validates before it mutates).
fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|e| e.into_inner())
}

/// The error of `kind` for `call`, with the status code the real service would answer.
pub(crate) fn error(kind: ErrorKind, call: &Call, message: impl Into<String>) -> OpenStackError {
    let call = call.clone();
    let message = message.into();
    match kind {
        ErrorKind::NotFound => OpenStackError::NotFound { call, message },
        ErrorKind::Conflict => OpenStackError::Conflict {
            call,
            status: 409,
            message,
        },
        ErrorKind::Unauthorized => OpenStackError::Unauthorized {
            call,
            status: 401,
            message,
        },
        ErrorKind::Unavailable => OpenStackError::Unavailable {
            call,
            reason: message,
            source: None,
        },
        ErrorKind::Invalid => OpenStackError::Invalid {
            call,
            status: 400,
            message,
        },
        ErrorKind::Other => OpenStackError::Other {
            call,
            status: Some(500),
            message,
            source: None,
        },
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use secrecy::SecretString;

    use super::*;
    use crate::identity::{NewProject, NewUser, ProjectFilter};
    use crate::network::{NetworkFilter, NewNetwork};

    fn project(name: &str) -> NewProject {
        NewProject {
            name: name.into(),
            ..NewProject::default()
        }
    }

    #[tokio::test]
    async fn every_call_is_logged_in_order_with_its_resource() {
        let cloud = FakeCloud::new();
        let keystone = cloud.identity();
        let neutron = cloud.networking();
        let p = keystone.create_project(&project("t1")).await.unwrap();
        keystone.get_project(&p.id).await.unwrap();
        let missing = ProjectId::new("nope");
        assert!(keystone.get_project(&missing).await.is_err());
        neutron
            .list_networks(&NetworkFilter::default())
            .await
            .unwrap();

        let calls = cloud.calls();
        let got: Vec<_> = calls
            .iter()
            .map(|c| (c.service, c.operation, c.resource.clone()))
            .collect();
        assert_eq!(
            got,
            vec![
                (Service::Identity, "create_project", Some("t1".to_owned())),
                (Service::Identity, "get_project", Some(p.id.to_string())),
                (Service::Identity, "get_project", Some("nope".to_owned())),
                (Service::Network, "list_networks", None),
            ]
        );
        assert_eq!(cloud.count("get_project"), 2);
        assert_eq!(cloud.count("create_network"), 0);
    }

    #[tokio::test]
    async fn clones_share_state_faults_and_log() {
        let cloud = FakeCloud::new();
        let other = cloud.clone();
        other
            .faults()
            .fail_nth("list_projects", 1, ErrorKind::Other);
        let err = cloud
            .identity()
            .list_projects(&ProjectFilter::default())
            .await
            .unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Other);
        cloud
            .identity()
            .create_project(&project("shared"))
            .await
            .unwrap();
        assert!(other.state().projects.values().any(|p| p.name == "shared"));
        assert_eq!(other.count("list_projects"), 1);
    }

    #[tokio::test]
    async fn connect_fails_until_cleared_and_is_recorded() {
        let cloud = FakeCloud::new();
        let services: Arc<dyn Services> = Arc::new(cloud.clone());
        cloud.faults().connect_fails(true);
        for _ in 0..2 {
            let err = match services.networking().await {
                Ok(_) => panic!("connect must fail"),
                Err(e) => e,
            };
            assert_eq!(err.kind(), ErrorKind::Unavailable);
            assert_eq!(err.call().service, Service::Identity);
            assert_eq!(err.call().operation, "connect");
        }
        assert!(services.identity().await.is_err());
        assert!(services.block_storage().await.is_err());
        assert_eq!(cloud.count("connect"), 4);

        cloud.faults().connect_fails(false);
        let neutron = services.networking().await.expect("connected");
        neutron
            .create_network(&NewNetwork {
                name: "n".into(),
                ..NewNetwork::default()
            })
            .await
            .unwrap();
        assert_eq!(cloud.state().networks.len(), 1);
        assert_eq!(cloud.count("connect"), 4, "successes are not recorded");
    }

    #[tokio::test]
    async fn passwords_stay_out_of_debug_output_and_the_log() {
        let cloud = FakeCloud::new();
        cloud
            .identity()
            .create_user(&NewUser {
                name: "alice".into(),
                password: SecretString::from("hunter2-secret"),
                domain_id: None,
                default_project_id: None,
                description: None,
            })
            .await
            .unwrap();
        assert!(!format!("{cloud:?}").contains("hunter2"));
        assert!(!format!("{:?}", cloud.calls()).contains("hunter2"));
        assert!(!format!("{:?}", *cloud.state()).contains("hunter2"));
    }

    #[tokio::test(start_paused = true)]
    async fn a_hung_call_fails_unavailable_after_its_duration() {
        let cloud = FakeCloud::new();
        cloud
            .faults()
            .hang("create_project", Duration::from_secs(30));
        let started = tokio::time::Instant::now();
        let err = cloud
            .identity()
            .create_project(&project("slow"))
            .await
            .unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Unavailable);
        assert!(err.to_string().contains("timed out"), "{err}");
        assert!(started.elapsed() >= Duration::from_secs(30));
        assert!(!cloud.state().projects.values().any(|p| p.name == "slow"));

        // Only the next call hangs.
        let started = tokio::time::Instant::now();
        cloud
            .identity()
            .create_project(&project("slow"))
            .await
            .unwrap();
        assert!(started.elapsed() < Duration::from_secs(1));
    }

    #[tokio::test]
    async fn a_hung_call_can_be_cut_short_by_the_callers_timeout() {
        tokio::time::pause();
        let cloud = FakeCloud::new();
        cloud
            .faults()
            .hang("list_projects", Duration::from_secs(600));
        let keystone = cloud.identity();
        let result = tokio::time::timeout(
            Duration::from_secs(5),
            keystone.list_projects(&ProjectFilter::default()),
        )
        .await;
        assert!(result.is_err(), "the caller's timeout fires first");
        assert_eq!(cloud.count("list_projects"), 1);
    }

    #[test]
    fn injected_errors_carry_the_status_of_their_kind() {
        let call = Call::new(Service::Network, "delete_network").with_resource("n1");
        let cases = [
            (ErrorKind::NotFound, Some(404)),
            (ErrorKind::Conflict, Some(409)),
            (ErrorKind::Unauthorized, Some(401)),
            (ErrorKind::Unavailable, None),
            (ErrorKind::Invalid, Some(400)),
            (ErrorKind::Other, Some(500)),
        ];
        for (kind, status) in cases {
            let err = error(kind, &call, "boom");
            assert_eq!(err.kind(), kind);
            assert_eq!(err.status(), status, "{kind}");
            assert_eq!(err.call(), &call);
        }
    }
}
