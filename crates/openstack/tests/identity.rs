//! `Identity` against the real Keystone of the test environment.

mod common;

use secrecy::SecretString;
use stackube_model::UserId;
use stackube_openstack::identity::{
    NewProject, NewUser, ProjectFilter, RoleAssignment, RoleAssignmentFilter, UserFilter,
};
use stackube_openstack::{Credentials, ErrorKind, OpenStack};
use stackube_testenv::unique_name;

use common::{admin, admin_credentials, random_hex_id, with_cleanup};

#[tokio::test]
async fn project_create_get_list_delete() {
    let os = admin().await;
    let identity = os.identity();
    with_cleanup(|cleanup| async move {
        let name = unique_name("proj");
        let tag = unique_name("tag");
        let project = identity
            .create_project(&NewProject {
                name: name.clone(),
                description: Some("stackube adapter test".into()),
                tags: vec![tag.clone()],
                ..NewProject::default()
            })
            .await
            .expect("create project");
        {
            let identity = identity.clone();
            let id = project.id.clone();
            cleanup.add(format!("delete project {id}"), async move {
                identity.delete_project(&id).await
            });
        }
        assert_eq!(project.name, name);
        assert_eq!(project.domain_id, "default");
        assert!(project.enabled);

        let got = identity
            .get_project(&project.id)
            .await
            .expect("get project");
        assert_eq!(got.name, name);
        assert_eq!(got.tags, vec![tag.clone()]);
        assert_eq!(got.description, "stackube adapter test");

        let by_name = identity
            .list_projects(&ProjectFilter {
                name: Some(name.clone()),
                ..ProjectFilter::default()
            })
            .await
            .expect("list by name");
        assert_eq!(by_name.len(), 1);
        assert_eq!(by_name[0].id, project.id);
        let by_tag = identity
            .list_projects(&ProjectFilter {
                tags: vec![tag.clone()],
                ..ProjectFilter::default()
            })
            .await
            .expect("list by tag");
        assert_eq!(
            by_tag.iter().map(|p| &p.id).collect::<Vec<_>>(),
            vec![&project.id]
        );
        let all_of = identity
            .list_projects(&ProjectFilter {
                tags: vec![tag.clone(), unique_name("other-tag")],
                ..ProjectFilter::default()
            })
            .await
            .expect("list by two tags");
        assert!(
            all_of.is_empty(),
            "`tags` asks for all of them, and the project lacks one: {all_of:?}"
        );

        let err = identity
            .create_project(&NewProject {
                name: name.clone(),
                ..NewProject::default()
            })
            .await
            .expect_err("project names are unique per domain");
        assert_eq!(err.kind(), ErrorKind::Conflict, "{err}");

        let disabled = identity
            .set_project_enabled(&project.id, false)
            .await
            .expect("disable project");
        assert!(!disabled.enabled);
        assert!(
            !identity
                .get_project(&project.id)
                .await
                .expect("get project")
                .enabled
        );
        identity
            .set_project_enabled(&project.id, false)
            .await
            .expect("disabling again is fine");
        assert!(
            identity
                .set_project_enabled(&project.id, true)
                .await
                .expect("enable project")
                .enabled
        );

        identity.delete_project(&project.id).await.expect("delete");
        let err = identity
            .get_project(&project.id)
            .await
            .expect_err("deleted project");
        assert_eq!(err.kind(), ErrorKind::NotFound, "{err}");
        identity
            .delete_project(&project.id)
            .await
            .expect("deleting again is fine");
    })
    .await;
}

#[tokio::test]
async fn member_user_gets_a_role_and_can_authenticate_into_its_project() {
    let os = admin().await;
    let identity = os.identity();
    with_cleanup(|cleanup| async move {
        let project = identity
            .create_project(&NewProject {
                name: unique_name("tenant"),
                ..NewProject::default()
            })
            .await
            .expect("create project");
        {
            let identity = identity.clone();
            let id = project.id.clone();
            cleanup.add(format!("delete project {id}"), async move {
                identity.delete_project(&id).await
            });
        }
        let password = format!("pw-{}", random_hex_id());
        let user_name = unique_name("user");
        let description = unique_name("user-description");
        let user = identity
            .create_user(&NewUser {
                name: user_name.clone(),
                password: SecretString::from(password.clone()),
                domain_id: None,
                default_project_id: Some(project.id.clone()),
                description: Some(description.clone()),
            })
            .await
            .expect("create user");
        {
            let identity = identity.clone();
            let id = user.id.clone();
            cleanup.add(format!("delete user {id}"), async move {
                identity.delete_user(&id).await
            });
        }
        assert_eq!(user.name, user_name);
        assert_eq!(user.default_project_id.as_ref(), Some(&project.id));
        assert_eq!(user.description, description);
        let listed = identity
            .list_users(&UserFilter {
                name: Some(user_name.clone()),
                ..UserFilter::default()
            })
            .await
            .expect("list users by name");
        assert_eq!(
            listed.iter().map(|u| &u.id).collect::<Vec<_>>(),
            vec![&user.id]
        );
        assert_eq!(listed[0].description, description);
        let got = identity.get_user(&user.id).await.expect("get user");
        assert_eq!(got.name, user_name);
        assert_eq!(got.description, description);

        let member = identity.find_role("member").await.expect("member role");
        assert_eq!(member.name, "member");
        let err = identity
            .find_role(&unique_name("no-such-role"))
            .await
            .expect_err("unknown role");
        assert_eq!(err.kind(), ErrorKind::NotFound);

        identity
            .grant_project_role(&project.id, &user.id, &member.id)
            .await
            .expect("grant");
        identity
            .grant_project_role(&project.id, &user.id, &member.id)
            .await
            .expect("granting again is fine");
        let assignments = identity
            .list_role_assignments(&RoleAssignmentFilter {
                user_id: Some(user.id.clone()),
                project_id: Some(project.id.clone()),
                ..RoleAssignmentFilter::default()
            })
            .await
            .expect("list assignments");
        assert_eq!(
            assignments,
            vec![RoleAssignment {
                role_id: member.id.clone(),
                user_id: user.id.clone(),
                project_id: project.id.clone(),
            }]
        );

        // The new user authenticates with its password, scoped to its project.
        let admin_creds = admin_credentials();
        let user_creds = Credentials {
            username: user_name.clone(),
            password: SecretString::from(password.clone()),
            project_name: project.name.clone(),
            ..admin_creds
        };
        let as_user = OpenStack::connect(&user_creds)
            .await
            .expect("the member user authenticates");
        let info = as_user.token_info().expect("token facts");
        assert_eq!(info.user_id, user.id);
        assert_eq!(info.project_id.as_ref(), Some(&project.id));
        // Keystone adds roles `member` implies (`reader`), never more.
        assert!(
            info.roles.contains(&"member".to_owned()),
            "{:?}",
            info.roles
        );
        assert!(
            !info.roles.contains(&"admin".to_owned()),
            "{:?}",
            info.roles
        );

        identity
            .revoke_project_role(&project.id, &user.id, &member.id)
            .await
            .expect("revoke");
        let assignments = identity
            .list_role_assignments(&RoleAssignmentFilter {
                user_id: Some(user.id.clone()),
                project_id: Some(project.id.clone()),
                ..RoleAssignmentFilter::default()
            })
            .await
            .expect("list assignments");
        assert!(assignments.is_empty(), "{assignments:?}");
        identity
            .revoke_project_role(&project.id, &user.id, &member.id)
            .await
            .expect("revoking again is fine");
        let err = OpenStack::connect(&user_creds)
            .await
            .expect_err("without a role the user cannot scope to the project");
        assert_eq!(err.kind(), ErrorKind::Unauthorized, "{err}");

        identity.delete_user(&user.id).await.expect("delete user");
        let err = identity.get_user(&user.id).await.expect_err("deleted user");
        assert_eq!(err.kind(), ErrorKind::NotFound);
    })
    .await;
}

#[tokio::test]
async fn a_revoked_token_is_replaced_on_the_next_call_once_auth_works_again() {
    let os = admin().await;
    let identity = os.identity();
    with_cleanup(|cleanup| async move {
        let project = identity
            .create_project(&NewProject {
                name: unique_name("tenant"),
                ..NewProject::default()
            })
            .await
            .expect("create project");
        {
            let identity = identity.clone();
            let id = project.id.clone();
            cleanup.add(format!("delete project {id}"), async move {
                identity.delete_project(&id).await
            });
        }
        let password = format!("pw-{}", random_hex_id());
        let user = identity
            .create_user(&NewUser {
                name: unique_name("user"),
                password: SecretString::from(password.clone()),
                domain_id: None,
                default_project_id: None,
                description: None,
            })
            .await
            .expect("create user");
        {
            let identity = identity.clone();
            let id = user.id.clone();
            cleanup.add(format!("delete user {id}"), async move {
                identity.delete_user(&id).await
            });
        }
        let member = identity.find_role("member").await.expect("member role");
        identity
            .grant_project_role(&project.id, &user.id, &member.id)
            .await
            .expect("grant");

        let as_user = OpenStack::connect(&Credentials {
            username: user.name.clone(),
            password: SecretString::from(password.clone()),
            project_name: project.name.clone(),
            ..admin_credentials()
        })
        .await
        .expect("the user authenticates");
        let before = as_user.token_info().expect("token facts");
        as_user
            .identity()
            .get_project(&project.id)
            .await
            .expect("a member reads its own project");

        // Disabling the user revokes its tokens for good; once enabled again, a fresh password
        // authentication succeeds.
        let disabled = identity
            .set_user_enabled(&user.id, false)
            .await
            .expect("disable user");
        assert!(!disabled.enabled);
        let err = as_user
            .identity()
            .get_project(&project.id)
            .await
            .expect_err("a disabled user cannot authenticate again");
        assert_eq!(err.kind(), ErrorKind::Unauthorized, "{err}");
        let enabled = identity
            .set_user_enabled(&user.id, true)
            .await
            .expect("enable user");
        assert!(enabled.enabled);
        // Keystone's revocation events have one-second resolution: make sure the next token is
        // issued after the event.
        tokio::time::sleep(std::time::Duration::from_millis(1100)).await;

        let got = as_user
            .identity()
            .get_project(&project.id)
            .await
            .expect("the session re-authenticates after the 401 and retries");
        assert_eq!(got.id, project.id);
        let after = as_user.token_info().expect("token facts");
        assert!(
            after.expires_at > before.expires_at,
            "a new token was issued"
        );
    })
    .await;
}

#[tokio::test]
async fn a_new_password_replaces_the_old_one() {
    let os = admin().await;
    let identity = os.identity();
    with_cleanup(|cleanup| async move {
        let project = identity
            .create_project(&NewProject {
                name: unique_name("tenant"),
                ..NewProject::default()
            })
            .await
            .expect("create project");
        {
            let identity = identity.clone();
            let id = project.id.clone();
            cleanup.add(format!("delete project {id}"), async move {
                identity.delete_project(&id).await
            });
        }
        let old_password = format!("old-pw-{}", random_hex_id());
        let user = identity
            .create_user(&NewUser {
                name: unique_name("user"),
                password: SecretString::from(old_password.clone()),
                domain_id: None,
                default_project_id: None,
                description: None,
            })
            .await
            .expect("create user");
        {
            let identity = identity.clone();
            let id = user.id.clone();
            cleanup.add(format!("delete user {id}"), async move {
                identity.delete_user(&id).await
            });
        }
        assert_eq!(user.description, "", "no description was given");
        let member = identity.find_role("member").await.expect("member role");
        identity
            .grant_project_role(&project.id, &user.id, &member.id)
            .await
            .expect("grant");
        let creds = |password: &str| Credentials {
            username: user.name.clone(),
            password: SecretString::from(password.to_owned()),
            project_name: project.name.clone(),
            ..admin_credentials()
        };
        let as_user = OpenStack::connect(&creds(&old_password))
            .await
            .expect("the user authenticates with its first password");

        let new_password = format!("new-pw-{}", random_hex_id());
        let changed = identity
            .set_user_password(&user.id, &SecretString::from(new_password.clone()))
            .await
            .expect("set password");
        assert_eq!(changed.id, user.id);
        assert!(changed.enabled);

        let err = OpenStack::connect(&creds(&old_password))
            .await
            .expect_err("the old password no longer authenticates");
        assert_eq!(err.kind(), ErrorKind::Unauthorized, "{err}");
        for secret in [&old_password, &new_password] {
            assert!(!err.to_string().contains(secret.as_str()), "{err}");
            assert!(!format!("{err:?}").contains(secret.as_str()), "{err:?}");
        }
        // The change revoked the session's token; its re-authentication uses the old password.
        let err = as_user
            .identity()
            .get_project(&project.id)
            .await
            .expect_err("a session holding the old password is shut out");
        assert_eq!(err.kind(), ErrorKind::Unauthorized, "{err}");

        // Keystone's revocation events have one-second resolution: make sure the next token is
        // issued after the event.
        tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
        let as_user = OpenStack::connect(&creds(&new_password))
            .await
            .expect("the new password authenticates");
        assert_eq!(
            as_user.token_info().map(|i| i.user_id),
            Some(user.id.clone())
        );
        as_user
            .identity()
            .get_project(&project.id)
            .await
            .expect("the new session works");

        identity
            .set_user_password(&user.id, &SecretString::from(new_password.clone()))
            .await
            .expect("setting the same password again is fine");
        tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
        OpenStack::connect(&creds(&new_password))
            .await
            .expect("the password still authenticates after being set again");

        let missing = format!("missing-pw-{}", random_hex_id());
        let err = identity
            .set_user_password(
                &UserId::new(random_hex_id()),
                &SecretString::from(missing.clone()),
            )
            .await
            .expect_err("no such user");
        assert_eq!(err.kind(), ErrorKind::NotFound, "{err}");
        assert!(!format!("{err} {err:?}").contains(&missing), "{err:?}");
    })
    .await;
}
