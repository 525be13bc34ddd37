//! The TokenReview wire format: parsing what kube-apiserver posts, answering it, and telling
//! tokens that may be Keystone's from tokens that cannot be.
//!
//! Parsing is by hand over `serde_json::Value` rather than into k8s-openapi's `TokenReview`, so
//! that a malformed body gets an error naming the field (`spec.token: missing`) and nothing in a
//! body can make the handler panic (the parser is fuzzed in the tests below).

use std::collections::BTreeMap;

use base64::Engine;
use serde_json::{Value, json};

/// The TokenReview API versions kube-apiserver may post (`--authentication-token-webhook-version`).
pub const API_VERSIONS: [&str; 2] = ["authentication.k8s.io/v1", "authentication.k8s.io/v1beta1"];

/// The longest token we look at. Fernet tokens are ~180–250 bytes, JWS tokens under 1 KiB.
pub const MAX_TOKEN_LEN: usize = 8192;

/// A TokenReview request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReviewRequest {
    /// The request's `apiVersion`, echoed in the answer.
    pub api_version: String,
    /// `spec.token`.
    pub token: String,
}

/// A body that is not a TokenReview; the message names the field.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct BadRequest(pub String);

/// Parses a TokenReview request body.
pub fn parse(body: &[u8]) -> Result<ReviewRequest, BadRequest> {
    let value: Value = serde_json::from_slice(body)
        .map_err(|e| BadRequest(format!("the body is not JSON: {e}")))?;
    let object = value
        .as_object()
        .ok_or_else(|| BadRequest("the body is not a JSON object".into()))?;
    let api_version = match object.get("apiVersion") {
        Some(Value::String(v)) if API_VERSIONS.contains(&v.as_str()) => v.clone(),
        Some(Value::String(v)) => {
            return Err(BadRequest(format!(
                "apiVersion: {v:?} is not one of {API_VERSIONS:?}"
            )));
        }
        Some(_) => return Err(BadRequest("apiVersion: not a string".into())),
        None => return Err(BadRequest("apiVersion: missing".into())),
    };
    match object.get("kind") {
        Some(Value::String(k)) if k == "TokenReview" => {}
        Some(Value::String(k)) => {
            return Err(BadRequest(format!("kind: {k:?} is not \"TokenReview\"")));
        }
        Some(_) => return Err(BadRequest("kind: not a string".into())),
        None => return Err(BadRequest("kind: missing".into())),
    }
    let spec = match object.get("spec") {
        Some(Value::Object(spec)) => spec,
        Some(_) => return Err(BadRequest("spec: not an object".into())),
        None => return Err(BadRequest("spec: missing".into())),
    };
    let token = match spec.get("token") {
        Some(Value::String(t)) if t.is_empty() => {
            return Err(BadRequest("spec.token: empty".into()));
        }
        Some(Value::String(t)) => t.clone(),
        Some(_) => return Err(BadRequest("spec.token: not a string".into())),
        None => return Err(BadRequest("spec.token: missing".into())),
    };
    match spec.get("audiences") {
        None | Some(Value::Null) => {}
        Some(Value::Array(a)) if a.iter().all(Value::is_string) => {}
        Some(_) => {
            return Err(BadRequest("spec.audiences: not a list of strings".into()));
        }
    }
    Ok(ReviewRequest { api_version, token })
}

/// The Kubernetes user a token authenticates as.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UserInfo {
    /// `status.user.username`.
    pub username: String,
    /// `status.user.uid`.
    pub uid: String,
    /// `status.user.groups`.
    pub groups: Vec<String>,
    /// `status.user.extra`.
    pub extra: BTreeMap<String, Vec<String>>,
}

/// The answer to an authenticated review.
pub fn authenticated(api_version: &str, user: &UserInfo) -> Value {
    json!({
        "apiVersion": api_version,
        "kind": "TokenReview",
        "status": {
            "authenticated": true,
            "user": {
                "username": user.username,
                "uid": user.uid,
                "groups": user.groups,
                "extra": user.extra,
            },
        },
    })
}

/// The answer to a review that does not authenticate, with the reason. (kube-apiserver does
/// not cache a failure that carries an error, so a token refused during a Keystone outage is
/// asked about again once Keystone is back.)
pub fn unauthenticated(api_version: &str, reason: &str) -> Value {
    json!({
        "apiVersion": api_version,
        "kind": "TokenReview",
        "status": { "authenticated": false, "error": reason },
    })
}

/// What a token looks like, before anyone is asked about it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TokenShape {
    /// It may be a Keystone token (Fernet, UUID, or a JWS that Keystone issued): ask Keystone.
    Keystone,
    /// It cannot be a Keystone token; the reason says why. Keystone is not asked.
    NotKeystone(&'static str),
}

/// Classifies a token without asking Keystone.
///
/// Keystone's token providers issue Fernet tokens (URL-safe base64, `gAAAAA…`), UUID tokens (32
/// hex digits) and, with the `jws` provider, JWTs whose payload carries `openstack_methods`. A
/// JWT without that claim (a ServiceAccount token, an OIDC ID token), a bootstrap token, or
/// anything with other characters is not Keystone's: forwarding those is what floods Keystone
/// behind k8s-keystone-auth (cloud-provider-openstack#1318).
pub fn classify(token: &str) -> TokenShape {
    if token.len() > MAX_TOKEN_LEN {
        return TokenShape::NotKeystone("longer than any Keystone token");
    }
    if token.len() < 32 {
        return TokenShape::NotKeystone("shorter than any Keystone token");
    }
    if !token
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'=' | b'.'))
    {
        return TokenShape::NotKeystone("it has characters no Keystone token has");
    }
    match token.matches('.').count() {
        0 => TokenShape::Keystone,
        2 => {
            let payload = token.split('.').nth(1).unwrap_or_default();
            let claims = base64::engine::general_purpose::URL_SAFE_NO_PAD
                .decode(payload.trim_end_matches('='))
                .ok()
                .and_then(|bytes| serde_json::from_slice::<Value>(&bytes).ok());
            match claims {
                Some(claims) if claims.get("openstack_methods").is_some() => TokenShape::Keystone,
                Some(_) => TokenShape::NotKeystone(
                    "it is a JWT that Keystone did not issue (e.g. a ServiceAccount token)",
                ),
                None => TokenShape::NotKeystone("it is shaped like a JWT but is not one"),
            }
        }
        _ => TokenShape::NotKeystone("no Keystone token has that many dots"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const FERNET: &str = "gAAAAABbFi1SacEPNstSuSuiBXiBG0Y_DikfbiR75j3P-CJ8CeaSKXa5kDQvun4LZUq8U6ehuW_RrQwi-N7j8t086uN6a4hLnPPGmvc6K_Iw0BZHZps7G1R5WniHZ8-WTUxtkMJROSz9eG7m33Bp18mvgx-P179QiwNYxLivf_rjnxePmvujNow";

    fn jwt(claims: &Value) -> String {
        let engine = base64::engine::general_purpose::URL_SAFE_NO_PAD;
        format!(
            "{}.{}.{}",
            engine.encode(br#"{"alg":"RS256","kid":"x"}"#),
            engine.encode(claims.to_string()),
            engine.encode([7u8; 64])
        )
    }

    #[test]
    fn a_review_parses_and_its_version_is_kept() {
        for version in API_VERSIONS {
            let body = json!({"apiVersion": version, "kind": "TokenReview",
                "spec": {"token": "abc", "audiences": ["https://kubernetes.default.svc"]}});
            let review = parse(body.to_string().as_bytes()).unwrap();
            assert_eq!(review.api_version, version);
            assert_eq!(review.token, "abc");
        }
    }

    #[test]
    fn malformed_bodies_name_the_field() {
        let cases: [(&str, &str); 11] = [
            ("", "not JSON"),
            ("[1]", "not a JSON object"),
            (
                r#"{"kind":"TokenReview","spec":{"token":"t"}}"#,
                "apiVersion: missing",
            ),
            (
                r#"{"apiVersion":"v1","kind":"TokenReview","spec":{"token":"t"}}"#,
                "apiVersion: \"v1\"",
            ),
            (
                r#"{"apiVersion":7,"kind":"TokenReview","spec":{"token":"t"}}"#,
                "apiVersion: not a string",
            ),
            (
                r#"{"apiVersion":"authentication.k8s.io/v1","kind":"Pod","spec":{"token":"t"}}"#,
                "kind: \"Pod\"",
            ),
            (
                r#"{"apiVersion":"authentication.k8s.io/v1","kind":"TokenReview"}"#,
                "spec: missing",
            ),
            (
                r#"{"apiVersion":"authentication.k8s.io/v1","kind":"TokenReview","spec":{}}"#,
                "spec.token: missing",
            ),
            (
                r#"{"apiVersion":"authentication.k8s.io/v1","kind":"TokenReview","spec":{"token":""}}"#,
                "spec.token: empty",
            ),
            (
                r#"{"apiVersion":"authentication.k8s.io/v1","kind":"TokenReview","spec":{"token":1}}"#,
                "spec.token: not a string",
            ),
            (
                r#"{"apiVersion":"authentication.k8s.io/v1","kind":"TokenReview","spec":{"token":"t","audiences":"x"}}"#,
                "spec.audiences",
            ),
        ];
        for (body, expected) in cases {
            let err = parse(body.as_bytes()).unwrap_err();
            assert!(err.0.contains(expected), "{body}: {err} lacks {expected:?}");
        }
    }

    #[test]
    fn answers_echo_the_version_and_carry_the_user_or_the_reason() {
        let user = UserInfo {
            username: "alice".into(),
            uid: "u1".into(),
            groups: vec!["g".into()],
            extra: BTreeMap::from([("k".into(), vec!["v".into()])]),
        };
        let answer = authenticated("authentication.k8s.io/v1beta1", &user);
        assert_eq!(answer["apiVersion"], "authentication.k8s.io/v1beta1");
        assert_eq!(answer["status"]["authenticated"], true);
        assert_eq!(answer["status"]["user"]["groups"], json!(["g"]));
        assert_eq!(answer["status"]["user"]["extra"]["k"], json!(["v"]));
        let answer = unauthenticated("authentication.k8s.io/v1", "nope");
        assert_eq!(
            answer["status"],
            json!({"authenticated": false, "error": "nope"})
        );
    }

    #[test]
    fn keystone_shaped_tokens_are_asked_about() {
        assert_eq!(classify(FERNET), TokenShape::Keystone);
        assert_eq!(
            classify("822da94d09a74196952613487772a800"),
            TokenShape::Keystone
        );
        let jws = jwt(&json!({"sub": "u1", "openstack_methods": ["password"], "exp": 1}));
        assert_eq!(classify(&jws), TokenShape::Keystone);
    }

    #[test]
    fn tokens_keystone_never_issues_are_answered_locally() {
        let service_account = jwt(&json!({
            "iss": "https://kubernetes.default.svc.cluster.local",
            "sub": "system:serviceaccount:kube-system:default",
            "kubernetes.io": {"namespace": "kube-system"},
        }));
        for (token, why) in [
            (service_account.as_str(), "JWT"),
            ("abcdef.0123456789abcdef", "shorter"),
            ("abcdef.0123456789abcdef0123456789abcdef", "dots"),
            ("a.b.c.d.0123456789abcdef0123456789abcdef", "dots"),
            (
                "not a token with spaces but long enough to pass",
                "characters",
            ),
            (
                "eyJhbGciOiJSUzI1NiJ9.!!!!.0123456789abcdef0123456789",
                "characters",
            ),
            (
                "eyJhbGciOiJSUzI1NiJ9.bm90IGpzb24.0123456789abcdef0123456789",
                "not one",
            ),
        ] {
            match classify(token) {
                TokenShape::NotKeystone(reason) => {
                    assert!(reason.contains(why), "{token}: {reason}")
                }
                TokenShape::Keystone => panic!("{token} was classified as Keystone's"),
            }
        }
        assert!(matches!(
            classify(&"a".repeat(MAX_TOKEN_LEN + 1)),
            TokenShape::NotKeystone(_)
        ));
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2000))]

        /// Arbitrary bytes: an answer or an error, never a panic.
        #[test]
        fn any_bytes_parse_or_fail_cleanly(body in proptest::collection::vec(any::<u8>(), 0..512)) {
            let _ = parse(&body);
        }

        /// Structurally close to a review, with every field of any JSON type.
        #[test]
        fn near_reviews_parse_or_name_a_field(
            version in prop_oneof![Just(json!("authentication.k8s.io/v1")), Just(json!(null)), any::<i64>().prop_map(|i| json!(i)), ".*".prop_map(|s| json!(s))],
            kind in prop_oneof![Just(json!("TokenReview")), Just(json!([])), ".*".prop_map(|s| json!(s))],
            token in prop_oneof![".*".prop_map(|s| json!(s)), Just(json!({})), any::<bool>().prop_map(|b| json!(b))],
            drop_spec in any::<bool>(),
        ) {
            let mut body = json!({"apiVersion": version, "kind": kind, "spec": {"token": token}});
            if drop_spec {
                body.as_object_mut().unwrap().remove("spec");
            }
            match parse(body.to_string().as_bytes()) {
                Ok(review) => prop_assert!(!review.token.is_empty()),
                Err(BadRequest(message)) => prop_assert!(
                    ["apiVersion", "kind", "spec"].iter().any(|f| message.starts_with(f)),
                    "{}", message
                ),
            }
        }

        /// Classification never panics, whatever the token.
        #[test]
        fn any_token_classifies(token in ".{0,300}") {
            let _ = classify(&token);
        }
    }
}
