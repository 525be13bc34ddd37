//! Tests of the fake Keystone.

use std::sync::Arc;

use super::*;

fn new_project(name: &str, domain: Option<&str>) -> NewProject {
    NewProject {
        name: name.into(),
        domain_id: domain.map(str::to_owned),
        description: Some("owned by stackube".into()),
        tags: vec!["stackube".into()],
    }
}

fn new_user(name: &str, domain: Option<&str>) -> NewUser {
    NewUser {
        name: name.into(),
        password: SecretString::from("pw-1"),
        domain_id: domain.map(str::to_owned),
        default_project_id: None,
        description: None,
    }
}

async fn setup() -> (FakeCloud, Arc<dyn Identity>, Project, User, Role) {
    let cloud = FakeCloud::new();
    let keystone = cloud.identity();
    let p = keystone
        .create_project(&new_project("t", None))
        .await
        .unwrap();
    let u = keystone.create_user(&new_user("u", None)).await.unwrap();
    let member = keystone.find_role("member").await.unwrap();
    (cloud, keystone, p, u, member)
}

#[tokio::test]
async fn names_are_unique_per_domain() {
    let cloud = FakeCloud::new();
    let keystone = cloud.identity();
    let p = keystone
        .create_project(&new_project("t", None))
        .await
        .unwrap();
    assert_eq!(p.domain_id, "default");
    assert_eq!(p.tags, vec!["stackube".to_owned()]);
    assert!(p.enabled);
    let cases = [
        (new_project("t", None), Some(ErrorKind::Conflict)),
        (new_project("t", Some("default")), Some(ErrorKind::Conflict)),
        (new_project("t", Some("other")), None),
        (new_project("admin", None), Some(ErrorKind::Conflict)),
        (new_project("", None), Some(ErrorKind::Invalid)),
    ];
    for (new, want) in cases {
        let got = keystone.create_project(&new).await.err().map(|e| e.kind());
        assert_eq!(got, want, "{new:?}");
    }
    keystone.create_user(&new_user("u", None)).await.unwrap();
    let err = keystone
        .create_user(&new_user("u", None))
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Conflict);
    assert_eq!(err.call().operation, "create_user");
    assert_eq!(err.call().resource.as_deref(), Some("u"));
    keystone
        .create_user(&new_user("u", Some("other")))
        .await
        .unwrap();
    assert_eq!(cloud.state().users.len(), 2);
}

#[tokio::test]
async fn filters_select_by_every_field() {
    let cloud = FakeCloud::new();
    let keystone = cloud.identity();
    keystone
        .create_project(&new_project("a", None))
        .await
        .unwrap();
    keystone
        .create_project(&new_project("a", Some("d2")))
        .await
        .unwrap();
    keystone
        .create_project(&NewProject {
            name: "b".into(),
            tags: vec!["x".into(), "stackube".into()],
            ..NewProject::default()
        })
        .await
        .unwrap();
    let cases = [
        (ProjectFilter::default(), vec!["admin", "a", "a", "b"]),
        (
            ProjectFilter {
                name: Some("a".into()),
                ..ProjectFilter::default()
            },
            vec!["a", "a"],
        ),
        (
            ProjectFilter {
                domain_id: Some("d2".into()),
                ..ProjectFilter::default()
            },
            vec!["a"],
        ),
        (
            ProjectFilter {
                tags: vec!["stackube".into()],
                ..ProjectFilter::default()
            },
            vec!["a", "a", "b"],
        ),
        (
            ProjectFilter {
                tags: vec!["stackube".into(), "x".into()],
                ..ProjectFilter::default()
            },
            vec!["b"],
        ),
    ];
    for (filter, want) in cases {
        let got = keystone.list_projects(&filter).await.unwrap();
        let names: Vec<_> = got.iter().map(|p| p.name.as_str()).collect();
        assert_eq!(names, want, "{filter:?}");
    }
    keystone.create_user(&new_user("u", None)).await.unwrap();
    keystone
        .create_user(&new_user("u", Some("d2")))
        .await
        .unwrap();
    let by_domain = keystone
        .list_users(&UserFilter {
            name: Some("u".into()),
            domain_id: Some("d2".into()),
        })
        .await
        .unwrap();
    assert_eq!(by_domain.len(), 1);
    assert_eq!(by_domain[0].domain_id, "d2");
}

#[tokio::test]
async fn roles_are_found_by_name_or_not_found() {
    let cloud = FakeCloud::new();
    let keystone = cloud.identity();
    for name in ["admin", "member", "reader"] {
        assert_eq!(keystone.find_role(name).await.unwrap().name, name);
        assert_eq!(keystone.list_roles(Some(name)).await.unwrap().len(), 1);
    }
    assert_eq!(keystone.list_roles(None).await.unwrap().len(), 3);
    assert!(
        keystone
            .list_roles(Some("service"))
            .await
            .unwrap()
            .is_empty()
    );
    let err = keystone.find_role("service").await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::NotFound);
    assert_eq!(err.call().resource.as_deref(), Some("service"));
}

#[tokio::test]
async fn grants_are_idempotent_and_revokes_of_nothing_are_ok() {
    let (cloud, keystone, p, u, member) = setup().await;
    for _ in 0..2 {
        keystone
            .grant_project_role(&p.id, &u.id, &member.id)
            .await
            .unwrap();
    }
    let want = vec![RoleAssignment {
        role_id: member.id.clone(),
        user_id: u.id.clone(),
        project_id: p.id.clone(),
    }];
    let all = keystone
        .list_role_assignments(&RoleAssignmentFilter::default())
        .await
        .unwrap();
    assert_eq!(all, want);
    let unknown = [
        (ProjectId::new("nope"), u.id.clone(), member.id.clone()),
        (p.id.clone(), UserId::new("nope"), member.id.clone()),
        (p.id.clone(), u.id.clone(), RoleId::new("nope")),
    ];
    for (project, user, role) in &unknown {
        let err = keystone
            .grant_project_role(project, user, role)
            .await
            .unwrap_err();
        assert_eq!(err.kind(), ErrorKind::NotFound, "{err}");
        keystone
            .revoke_project_role(project, user, role)
            .await
            .unwrap();
    }
    assert_eq!(cloud.state().role_assignments.len(), 1);
    for _ in 0..2 {
        keystone
            .revoke_project_role(&p.id, &u.id, &member.id)
            .await
            .unwrap();
    }
    assert!(cloud.state().role_assignments.is_empty());
}

#[tokio::test]
async fn assignment_filters_and_cleanup_with_project_or_user() {
    let (cloud, keystone, p, u, member) = setup().await;
    let reader = keystone.find_role("reader").await.unwrap();
    let p2 = keystone
        .create_project(&new_project("t2", None))
        .await
        .unwrap();
    let u2 = keystone.create_user(&new_user("u2", None)).await.unwrap();
    for (project, user, role) in [
        (&p.id, &u.id, &member.id),
        (&p.id, &u.id, &reader.id),
        (&p2.id, &u.id, &member.id),
        (&p.id, &u2.id, &member.id),
    ] {
        keystone
            .grant_project_role(project, user, role)
            .await
            .unwrap();
    }
    let count = |filter: RoleAssignmentFilter| {
        let keystone = keystone.clone();
        async move { keystone.list_role_assignments(&filter).await.unwrap().len() }
    };
    let cases = [
        (RoleAssignmentFilter::default(), 4),
        (
            RoleAssignmentFilter {
                user_id: Some(u.id.clone()),
                ..RoleAssignmentFilter::default()
            },
            3,
        ),
        (
            RoleAssignmentFilter {
                project_id: Some(p.id.clone()),
                ..RoleAssignmentFilter::default()
            },
            3,
        ),
        (
            RoleAssignmentFilter {
                role_id: Some(reader.id.clone()),
                ..RoleAssignmentFilter::default()
            },
            1,
        ),
        (
            RoleAssignmentFilter {
                user_id: Some(u.id.clone()),
                project_id: Some(p.id.clone()),
                role_id: Some(member.id.clone()),
            },
            1,
        ),
    ];
    for (filter, want) in cases {
        assert_eq!(count(filter.clone()).await, want, "{filter:?}");
    }
    keystone.delete_project(&p2.id).await.unwrap();
    assert_eq!(count(RoleAssignmentFilter::default()).await, 3);
    keystone.delete_user(&u.id).await.unwrap();
    let left = keystone
        .list_role_assignments(&RoleAssignmentFilter::default())
        .await
        .unwrap();
    assert_eq!(left.len(), 1);
    assert_eq!(left[0].user_id, u2.id);
    assert!(!cloud.state().passwords.contains_key(&u.id));
}

#[tokio::test]
async fn deletes_of_missing_resources_are_ok_and_gets_are_not_found() {
    let (cloud, keystone, p, u, _) = setup().await;
    for _ in 0..2 {
        keystone.delete_project(&p.id).await.unwrap();
        keystone.delete_user(&u.id).await.unwrap();
    }
    assert_eq!(cloud.count("delete_project"), 2);
    let err = keystone.get_project(&p.id).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::NotFound);
    assert_eq!(err.call().resource.as_deref(), Some(p.id.as_str()));
    let err = keystone.get_user(&u.id).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::NotFound);
    let err = keystone.set_user_enabled(&u.id, false).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::NotFound);
}

#[tokio::test]
async fn enabling_and_passwords_are_idempotent_updates() {
    let (cloud, keystone, p, u, _) = setup().await;
    for _ in 0..2 {
        assert!(
            !keystone
                .set_project_enabled(&p.id, false)
                .await
                .unwrap()
                .enabled
        );
        assert!(
            !keystone
                .set_user_enabled(&u.id, false)
                .await
                .unwrap()
                .enabled
        );
    }
    assert!(!keystone.get_project(&p.id).await.unwrap().enabled);
    assert!(cloud.state().password_is(&u.id, "pw-1"));
    for _ in 0..2 {
        keystone
            .set_user_password(&u.id, &SecretString::from("pw-2"))
            .await
            .unwrap();
    }
    assert!(cloud.state().password_is(&u.id, "pw-2"));
    assert!(!cloud.state().password_is(&u.id, "pw-1"));
}

#[tokio::test]
async fn a_failed_call_changes_nothing() {
    let (cloud, keystone, p, u, member) = setup().await;
    cloud
        .faults()
        .fail_nth("grant_project_role", 2, ErrorKind::Unavailable);
    let reader = keystone.find_role("reader").await.unwrap();
    keystone
        .grant_project_role(&p.id, &u.id, &member.id)
        .await
        .unwrap();
    let err = keystone
        .grant_project_role(&p.id, &u.id, &reader.id)
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Unavailable);
    assert_eq!(cloud.state().role_assignments.len(), 1);
    keystone
        .grant_project_role(&p.id, &u.id, &reader.id)
        .await
        .unwrap();
    assert_eq!(cloud.state().role_assignments.len(), 2);
    assert_eq!(cloud.count("grant_project_role"), 3);

    cloud.faults().service_down(Service::Identity, true);
    let err = keystone.delete_project(&p.id).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Unavailable);
    assert!(cloud.state().projects.contains_key(&p.id));
    assert!(
        cloud
            .networking()
            .list_networks(&Default::default())
            .await
            .is_ok()
    );
}
