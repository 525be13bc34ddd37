//! Security groups and their rules.

use super::*;

#[tokio::test]
async fn security_group_rules_live_in_their_group_and_are_idempotent() {
    let env = env().await;
    let group = env
        .net
        .create_security_group(&NewSecurityGroup {
            name: "pods".into(),
            project_id: Some(env.project.clone()),
            tags: vec!["stackube".into()],
            ..NewSecurityGroup::default()
        })
        .await
        .unwrap();
    let other = env
        .net
        .create_security_group(&NewSecurityGroup {
            name: "other".into(),
            ..NewSecurityGroup::default()
        })
        .await
        .unwrap();
    let ssh = NewSecurityGroupRule {
        security_group_id: group.id.clone(),
        direction: Direction::Ingress,
        ethertype: Ethertype::IPv4,
        protocol: Some("tcp".into()),
        port_range_min: Some(22),
        port_range_max: Some(22),
        remote_ip_prefix: Some("10.0.0.0/8".into()),
        remote_group_id: None,
        description: None,
        project_id: Some(env.project.clone()),
    };
    let rule = env.net.create_security_group_rule(&ssh).await.unwrap();
    let again = env
        .net
        .create_security_group_rule(&NewSecurityGroupRule {
            protocol: Some("TCP".into()),
            description: Some("a different description".into()),
            ..ssh.clone()
        })
        .await
        .unwrap();
    assert_eq!(again, rule, "the existing identical rule");
    let from_other = env
        .net
        .create_security_group_rule(&NewSecurityGroupRule {
            remote_ip_prefix: None,
            remote_group_id: Some(other.id.clone()),
            ..ssh.clone()
        })
        .await
        .unwrap();
    let stored = env.net.get_security_group(&group.id).await.unwrap();
    assert_eq!(stored.rules.len(), 4, "two egress defaults and two of ours");
    assert!(stored.rules.contains(&rule) && stored.rules.contains(&from_other));
    let ingress = env
        .net
        .list_security_group_rules(&SecurityGroupRuleFilter {
            security_group_id: Some(group.id.clone()),
            direction: Some(Direction::Ingress),
        })
        .await
        .unwrap();
    assert_eq!(ingress, vec![rule.clone(), from_other.clone()]);

    // Rules from a deleted group go with it.
    env.net.delete_security_group(&other.id).await.unwrap();
    let stored = env.net.get_security_group(&group.id).await.unwrap();
    assert!(!stored.rules.contains(&from_other));
    for _ in 0..2 {
        env.net.delete_security_group_rule(&rule.id).await.unwrap();
    }
    assert_eq!(
        env.net
            .get_security_group(&group.id)
            .await
            .unwrap()
            .rules
            .len(),
        2
    );

    let bad = [
        NewSecurityGroupRule {
            protocol: None,
            ..ssh.clone()
        },
        NewSecurityGroupRule {
            port_range_min: Some(80),
            port_range_max: Some(22),
            ..ssh.clone()
        },
        NewSecurityGroupRule {
            remote_group_id: Some(group.id.clone()),
            ..ssh.clone()
        },
        NewSecurityGroupRule {
            remote_ip_prefix: Some("fd00::/64".into()),
            ..ssh.clone()
        },
    ];
    for rule in bad {
        let err = env.net.create_security_group_rule(&rule).await.unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Invalid, "{rule:?}");
    }
    let missing = NewSecurityGroupRule {
        security_group_id: SecurityGroupId::new("missing"),
        ..ssh.clone()
    };
    let err = env
        .net
        .create_security_group_rule(&missing)
        .await
        .unwrap_err();
    assert!(err.is_not_found());

    env.net.delete_security_group(&group.id).await.unwrap();
    let all = env
        .net
        .list_security_group_rules(&SecurityGroupRuleFilter {
            security_group_id: Some(group.id.clone()),
            ..SecurityGroupRuleFilter::default()
        })
        .await
        .unwrap();
    assert!(all.is_empty());
}
