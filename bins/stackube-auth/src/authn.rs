//! From a token to a Kubernetes user: the shape check, the cache, Keystone, and the mapping of a
//! Keystone identity to user name, uid, groups and extra.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use stackube_core::identity::{CLOUD_ADMIN_GROUP, project_role_group};
use stackube_openstack::tokens::{KeystoneTokens, TokenError, TokenIdentity};

use crate::cache::{self, ReviewCache};
use crate::metrics::{KeystoneLabels, Metrics, Outcome};
use crate::review::{TokenShape, UserInfo, classify};

/// Extra keys, the same as k8s-keystone-auth's so that policies and audit tooling written for it
/// keep working.
pub mod extra {
    /// Role names on the token's scope.
    pub const ROLES: &str = "alpha.kubernetes.io/identity/roles";
    /// The scoped project's id.
    pub const PROJECT_ID: &str = "alpha.kubernetes.io/identity/project/id";
    /// The scoped project's name.
    pub const PROJECT_NAME: &str = "alpha.kubernetes.io/identity/project/name";
    /// The scoped project's domain id.
    pub const PROJECT_DOMAIN_ID: &str = "alpha.kubernetes.io/identity/project/domain/id";
    /// The scoped project's domain name.
    pub const PROJECT_DOMAIN_NAME: &str = "alpha.kubernetes.io/identity/project/domain/name";
    /// The user's domain id.
    pub const USER_DOMAIN_ID: &str = "alpha.kubernetes.io/identity/user/domain/id";
    /// The user's domain name.
    pub const USER_DOMAIN_NAME: &str = "alpha.kubernetes.io/identity/user/domain/name";
}

/// Asks whether a token is valid. [`KeystoneTokens`] is the real one; unit tests use fakes.
#[async_trait]
pub trait Validator: Send + Sync {
    /// What Keystone says about `token`.
    async fn validate(&self, token: &str) -> Result<TokenIdentity, TokenError>;
}

#[async_trait]
impl Validator for KeystoneTokens {
    async fn validate(&self, token: &str) -> Result<TokenIdentity, TokenError> {
        KeystoneTokens::validate(self, token).await
    }
}

/// Who is a cloud admin: the admin role on the cloud's admin project (or on the system scope).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AdminPolicy {
    /// The admin project.
    pub project: AdminProject,
    /// The role that makes its holders cloud admins.
    pub role: String,
}

/// The cloud's admin project.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AdminProject {
    /// By id.
    Id(String),
    /// By name, in a domain given by name.
    Name {
        /// Project name, e.g. `admin`.
        name: String,
        /// Its domain's name, e.g. `Default`.
        domain: String,
    },
}

impl AdminPolicy {
    fn is_cloud_admin(&self, identity: &TokenIdentity) -> bool {
        if !identity.roles.iter().any(|r| r == &self.role) {
            return false;
        }
        if identity.system {
            return true;
        }
        match (&self.project, &identity.project) {
            (AdminProject::Id(id), Some(p)) => &p.id == id,
            (AdminProject::Name { name, domain }, Some(p)) => {
                &p.name == name && &p.domain.name == domain
            }
            (_, None) => false,
        }
    }
}

/// The Kubernetes user of a valid Keystone identity, or why it may not use Kubernetes.
///
/// - user name: the Keystone user name; uid: the Keystone user id;
/// - groups: `stackube:project:<project-id>:role:<role>` for each role on the scoped project
///   (see `stackube_core::identity`), and `stackube:cloud-admin` for cloud admins;
/// - extra: roles, project id, name and domain, user domain.
///
/// Keystone user names are free text: one starting with `system:` would impersonate a
/// Kubernetes system user (`system:kube-controller-manager`, …), so it is refused.
pub fn user_info(identity: &TokenIdentity, admin: &AdminPolicy) -> Result<UserInfo, String> {
    if identity.user_name.starts_with("system:") {
        return Err(format!(
            "Keystone user {:?} ({}) has a name reserved for Kubernetes system users",
            identity.user_name, identity.user_id
        ));
    }
    let mut groups = Vec::new();
    let mut extra = BTreeMap::new();
    extra.insert(extra::ROLES.to_owned(), identity.roles.clone());
    extra.insert(
        extra::USER_DOMAIN_ID.to_owned(),
        vec![identity.user_domain.id.clone()],
    );
    extra.insert(
        extra::USER_DOMAIN_NAME.to_owned(),
        vec![identity.user_domain.name.clone()],
    );
    if let Some(project) = &identity.project {
        groups.extend(
            identity
                .roles
                .iter()
                .map(|role| project_role_group(&project.id, role)),
        );
        extra.insert(extra::PROJECT_ID.to_owned(), vec![project.id.clone()]);
        extra.insert(extra::PROJECT_NAME.to_owned(), vec![project.name.clone()]);
        extra.insert(
            extra::PROJECT_DOMAIN_ID.to_owned(),
            vec![project.domain.id.clone()],
        );
        extra.insert(
            extra::PROJECT_DOMAIN_NAME.to_owned(),
            vec![project.domain.name.clone()],
        );
    }
    if admin.is_cloud_admin(identity) {
        groups.push(CLOUD_ADMIN_GROUP.to_owned());
    }
    Ok(UserInfo {
        username: identity.user_name.clone(),
        uid: identity.user_id.clone(),
        groups,
        extra,
    })
}

/// The result of a review.
#[derive(Clone, Debug)]
pub enum Decision {
    /// The token authenticates this user.
    Authenticated(Arc<UserInfo>),
    /// It does not; `reason` is for the answer's `status.error` and the log.
    Unauthenticated {
        /// How it ended.
        outcome: Outcome,
        /// Why.
        reason: String,
    },
}

/// How long cached reviews live.
#[derive(Clone, Copy, Debug)]
pub struct CachePolicy {
    /// Entries at most.
    pub capacity: usize,
    /// The longest an entry lives: how late a revoked token, or a deleted user, is noticed.
    pub max_ttl: Duration,
    /// An entry ends this long before its token expires.
    pub expiry_margin: Duration,
}

/// The authenticator.
pub struct Authenticator {
    validator: Arc<dyn Validator>,
    admin: AdminPolicy,
    cache: ReviewCache,
    cache_policy: CachePolicy,
    metrics: Metrics,
}

impl std::fmt::Debug for Authenticator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Authenticator")
            .field("admin", &self.admin)
            .field("cache_policy", &self.cache_policy)
            .finish_non_exhaustive()
    }
}

impl Authenticator {
    /// An authenticator asking `validator`.
    pub fn new(
        validator: Arc<dyn Validator>,
        admin: AdminPolicy,
        cache_policy: CachePolicy,
        metrics: Metrics,
    ) -> Self {
        Self {
            validator,
            admin,
            cache: ReviewCache::new(cache_policy.capacity),
            cache_policy,
            metrics,
        }
    }

    /// Reviews `token`. Never fails: an outage is an unauthenticated answer that says so (fail
    /// closed), while cached reviews keep being served.
    pub async fn review(&self, token: &str) -> Decision {
        let decision = self.decide(token).await;
        self.metrics.review(match &decision {
            Decision::Authenticated(_) => Outcome::Authenticated,
            Decision::Unauthenticated { outcome, .. } => *outcome,
        });
        decision
    }

    async fn decide(&self, token: &str) -> Decision {
        if let TokenShape::NotKeystone(why) = classify(token) {
            tracing::debug!(why, "not a Keystone token; Keystone not asked");
            return Decision::Unauthenticated {
                outcome: Outcome::NotKeystone,
                reason: format!("not a Keystone token: {why}"),
            };
        }
        let key = cache::key(token);
        if let Some(user) = self.cache.get(&key, Instant::now()) {
            self.metrics.cache_hits.inc();
            return Decision::Authenticated(user);
        }
        self.metrics.cache_misses.inc();
        let fingerprint = cache::fingerprint(&key);

        let started = Instant::now();
        let result = self.validator.validate(token).await;
        let keystone_outcome = match &result {
            Ok(_) => "valid",
            Err(TokenError::Rejected(_)) => "rejected",
            Err(_) => "unavailable",
        };
        self.metrics
            .keystone_duration
            .get_or_create(&KeystoneLabels {
                outcome: keystone_outcome,
            })
            .observe(started.elapsed().as_secs_f64());

        let identity = match result {
            Ok(identity) => identity,
            Err(TokenError::Rejected(why)) => {
                tracing::info!(token = %fingerprint, reason = %why, "token rejected");
                return Decision::Unauthenticated {
                    outcome: Outcome::Rejected,
                    reason: why,
                };
            }
            Err(e) => {
                let reason = format!("cannot validate the token, Keystone is unavailable: {e}");
                tracing::warn!(token = %fingerprint, %reason, "token not authenticated (fail closed)");
                return Decision::Unauthenticated {
                    outcome: Outcome::Unavailable,
                    reason,
                };
            }
        };
        let user = match user_info(&identity, &self.admin) {
            Ok(user) => Arc::new(user),
            Err(why) => {
                tracing::warn!(token = %fingerprint, reason = %why, "token rejected");
                return Decision::Unauthenticated {
                    outcome: Outcome::Rejected,
                    reason: why,
                };
            }
        };
        let now = Instant::now();
        let remaining = (identity.expires_at - chrono::Utc::now())
            .to_std()
            .unwrap_or_default()
            .saturating_sub(self.cache_policy.expiry_margin);
        let ttl = remaining.min(self.cache_policy.max_ttl);
        self.cache.insert(key, user.clone(), now + ttl, now);
        self.metrics.cache_entries.set(self.cache.len() as i64);
        tracing::debug!(
            token = %fingerprint,
            user = %user.username,
            project = identity.project.as_ref().map(|p| p.name.as_str()).unwrap_or_default(),
            cache_ttl_s = ttl.as_secs(),
            "token authenticated"
        );
        Decision::Authenticated(user)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex;
    use std::sync::atomic::{AtomicUsize, Ordering};

    use prometheus_client::registry::Registry;
    use stackube_openstack::tokens::{NamedRef, ProjectRef};

    const TOKEN: &str = "gAAAAABbFi1SacEPNstSuSuiBXiBG0Y_DikfbiR75j3P-CJ8CeaSKXa5kDQvun4LZU";

    fn identity(project: &str, roles: &[&str]) -> TokenIdentity {
        TokenIdentity {
            user_id: "u1".into(),
            user_name: "alice".into(),
            user_domain: NamedRef {
                id: "default".into(),
                name: "Default".into(),
            },
            project: Some(ProjectRef {
                id: format!("{project}-id"),
                name: project.into(),
                domain: NamedRef {
                    id: "default".into(),
                    name: "Default".into(),
                },
            }),
            domain: None,
            system: false,
            roles: roles.iter().map(|r| (*r).to_owned()).collect(),
            expires_at: chrono::Utc::now() + chrono::Duration::hours(1),
        }
    }

    fn admin_policy() -> AdminPolicy {
        AdminPolicy {
            project: AdminProject::Name {
                name: "admin".into(),
                domain: "Default".into(),
            },
            role: "admin".into(),
        }
    }

    /// A Keystone that answers from a script and counts the questions.
    struct Scripted {
        answers: Mutex<Vec<Result<TokenIdentity, TokenError>>>,
        calls: AtomicUsize,
    }

    #[async_trait]
    impl Validator for Scripted {
        async fn validate(&self, _token: &str) -> Result<TokenIdentity, TokenError> {
            self.calls.fetch_add(1, Ordering::SeqCst);
            self.answers.lock().unwrap().remove(0)
        }
    }

    fn authenticator(
        answers: Vec<Result<TokenIdentity, TokenError>>,
        max_ttl: Duration,
    ) -> (Authenticator, Arc<Scripted>) {
        let keystone = Arc::new(Scripted {
            answers: Mutex::new(answers),
            calls: AtomicUsize::new(0),
        });
        let metrics = Metrics::register(&mut Registry::default());
        let auth = Authenticator::new(
            keystone.clone(),
            admin_policy(),
            CachePolicy {
                capacity: 100,
                max_ttl,
                expiry_margin: Duration::from_secs(30),
            },
            metrics,
        );
        (auth, keystone)
    }

    #[test]
    fn members_get_their_project_role_groups_and_the_extra_fields() {
        let user = user_info(&identity("a", &["member", "reader"]), &admin_policy()).unwrap();
        assert_eq!(user.username, "alice");
        assert_eq!(user.uid, "u1");
        assert_eq!(
            user.groups,
            [
                "stackube:project:a-id:role:member",
                "stackube:project:a-id:role:reader"
            ]
        );
        assert_eq!(user.extra[extra::PROJECT_ID], ["a-id"]);
        assert_eq!(user.extra[extra::PROJECT_NAME], ["a"]);
        assert_eq!(user.extra[extra::ROLES], ["member", "reader"]);
        assert_eq!(user.extra[extra::USER_DOMAIN_NAME], ["Default"]);
    }

    #[test]
    fn only_the_admin_role_on_the_admin_project_or_system_makes_a_cloud_admin() {
        let policy = admin_policy();
        let is_admin = |id: &TokenIdentity| {
            user_info(id, &policy)
                .unwrap()
                .groups
                .contains(&CLOUD_ADMIN_GROUP.to_owned())
        };
        assert!(is_admin(&identity("admin", &["admin"])));
        assert!(!is_admin(&identity("admin", &["member"])));
        assert!(!is_admin(&identity("a", &["admin"])));
        let mut other_domain = identity("admin", &["admin"]);
        other_domain.project.as_mut().unwrap().domain.name = "Other".into();
        assert!(!is_admin(&other_domain));
        let mut system = identity("x", &["admin"]);
        system.project = None;
        system.system = true;
        assert!(is_admin(&system));
        let by_id = AdminPolicy {
            project: AdminProject::Id("a-id".into()),
            role: "admin".into(),
        };
        assert!(
            user_info(&identity("a", &["admin"]), &by_id)
                .unwrap()
                .groups
                .contains(&CLOUD_ADMIN_GROUP.to_owned())
        );
    }

    #[test]
    fn a_keystone_user_named_like_a_system_user_is_refused() {
        let mut id = identity("a", &["member"]);
        id.user_name = "system:kube-controller-manager".into();
        let err = user_info(&id, &admin_policy()).unwrap_err();
        assert!(err.contains("reserved"), "{err}");
    }

    #[tokio::test]
    async fn valid_tokens_are_cached_and_keystone_is_asked_once() {
        let (auth, keystone) = authenticator(
            vec![Ok(identity("a", &["member"]))],
            Duration::from_secs(60),
        );
        for _ in 0..3 {
            assert!(
                matches!(auth.review(TOKEN).await, Decision::Authenticated(u) if u.username == "alice")
            );
        }
        assert_eq!(keystone.calls.load(Ordering::SeqCst), 1);
    }

    #[tokio::test]
    async fn a_cached_review_ends_with_max_ttl_and_keystone_decides_again() {
        let (auth, keystone) = authenticator(
            vec![
                Ok(identity("a", &["member"])),
                Err(TokenError::Rejected("user gone".into())),
            ],
            Duration::from_millis(50),
        );
        assert!(matches!(
            auth.review(TOKEN).await,
            Decision::Authenticated(_)
        ));
        tokio::time::sleep(Duration::from_millis(80)).await;
        match auth.review(TOKEN).await {
            Decision::Unauthenticated { outcome, reason } => {
                assert_eq!(outcome, Outcome::Rejected);
                assert_eq!(reason, "user gone");
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(keystone.calls.load(Ordering::SeqCst), 2);
    }

    #[tokio::test]
    async fn a_token_about_to_expire_is_not_cached() {
        let mut soon = identity("a", &["member"]);
        soon.expires_at = chrono::Utc::now() + chrono::Duration::seconds(10);
        let (auth, keystone) =
            authenticator(vec![Ok(soon.clone()), Ok(soon)], Duration::from_secs(600));
        auth.review(TOKEN).await;
        auth.review(TOKEN).await;
        assert_eq!(keystone.calls.load(Ordering::SeqCst), 2);
    }

    #[tokio::test]
    async fn an_outage_fails_closed_but_cached_tokens_stay_valid() {
        let (auth, _) = authenticator(
            vec![
                Ok(identity("a", &["member"])),
                Err(TokenError::Unavailable("Keystone: cannot connect".into())),
            ],
            Duration::from_secs(60),
        );
        assert!(matches!(
            auth.review(TOKEN).await,
            Decision::Authenticated(_)
        ));
        // Keystone is down now: the cached token still works, a new one does not.
        assert!(matches!(
            auth.review(TOKEN).await,
            Decision::Authenticated(_)
        ));
        let other = "gAAAAABotherothertokenotherothertokenotherothertoken";
        match auth.review(other).await {
            Decision::Unauthenticated { outcome, reason } => {
                assert_eq!(outcome, Outcome::Unavailable);
                assert!(reason.contains("Keystone is unavailable"), "{reason}");
            }
            other => panic!("{other:?}"),
        }
    }

    #[tokio::test]
    async fn service_account_tokens_never_reach_keystone() {
        let (auth, keystone) = authenticator(vec![], Duration::from_secs(60));
        let jwt = "eyJhbGciOiJSUzI1NiJ9.eyJpc3MiOiJrdWJlcm5ldGVzL3NlcnZpY2VhY2NvdW50In0.c2lnbmF0dXJlc2lnbmF0dXJl";
        assert!(matches!(
            auth.review(jwt).await,
            Decision::Unauthenticated {
                outcome: Outcome::NotKeystone,
                ..
            }
        ));
        assert_eq!(keystone.calls.load(Ordering::SeqCst), 0);
    }
}
