//! Decoding of bodies made here with the wire format's own encoder. Whether the tags are the
//! apiserver's is proven against the real one (`tests/list_watch.rs`: protobuf and JSON lists
//! compared).

use k8s_openapi::api::core::v1::Service;
use k8s_openapi::api::discovery::v1::EndpointSlice;
use prost::Message as _;
use prost::bytes::Bytes;

use super::*;

/// A Service as the apiserver sends it: more fields than the slim message knows.
#[derive(Clone, PartialEq, prost::Message)]
struct FullList {
    #[prost(message, optional, tag = "1")]
    metadata: Option<kinds::ListMeta>,
    #[prost(message, repeated, tag = "2")]
    items: Vec<FullService>,
}

#[derive(Clone, PartialEq, prost::Message)]
struct FullService {
    #[prost(message, optional, tag = "1")]
    metadata: Option<FullMeta>,
}

#[derive(Clone, PartialEq, prost::Message)]
struct FullMeta {
    #[prost(string, optional, tag = "1")]
    name: Option<String>,
    #[prost(string, optional, tag = "3")]
    namespace: Option<String>,
    /// Annotations: skipped.
    #[prost(btree_map = "string, string", tag = "12")]
    annotations: std::collections::BTreeMap<String, String>,
    /// managedFields, as bytes here: skipped.
    #[prost(bytes = "vec", repeated, tag = "17")]
    managed_fields: Vec<Vec<u8>>,
}

fn envelope_of(kind: &str, raw: Vec<u8>) -> Bytes {
    let unknown = Unknown {
        type_meta: Some(TypeMeta {
            kind: Some(kind.to_owned()),
        }),
        raw: Some(raw.into()),
    };
    let mut body = MAGIC.to_vec();
    body.extend(unknown.encode_to_vec());
    body.into()
}

fn services(count: usize) -> Bytes {
    let list = FullList {
        metadata: Some(kinds::ListMeta {
            resource_version: Some("42".to_owned()),
            continue_: Some("next".to_owned()),
        }),
        items: (0..count)
            .map(|i| FullService {
                metadata: Some(FullMeta {
                    name: Some(format!("s{i}")),
                    namespace: Some("ns".to_owned()),
                    annotations: [("a".to_owned(), "b".to_owned())].into(),
                    managed_fields: vec![vec![0xff; 300]],
                }),
            })
            .collect(),
    };
    envelope_of("ServiceList", list.encode_to_vec())
}

#[test]
fn a_list_decodes_skipping_what_it_does_not_know() {
    let list = decode_list::<Service>(&services(3)).expect("decodes");
    let (meta, items) = Service::page(list);
    let meta = meta.expect("list metadata");
    assert_eq!(meta.resource_version.as_deref(), Some("42"));
    assert_eq!(meta.continue_.as_deref(), Some("next"));
    let names: Vec<_> = items
        .iter()
        .map(|s| (s.metadata.namespace.as_deref(), s.metadata.name.as_deref()))
        .collect();
    assert_eq!(
        names,
        [
            (Some("ns"), Some("s0")),
            (Some("ns"), Some("s1")),
            (Some("ns"), Some("s2"))
        ]
    );
    assert!(items.iter().all(|s| s.metadata.annotations.is_none()));
    assert!(items.iter().all(|s| s.metadata.managed_fields.is_none()));
}

#[test]
fn bodies_of_the_wrong_kind_or_encoding_are_refused() {
    let json = Bytes::from_static(br#"{"kind":"ServiceList","items":[]}"#);
    let err = decode_list::<Service>(&json).expect_err("JSON is not protobuf");
    assert!(matches!(err, DecodeError::NotProtobuf(ref start) if start.starts_with("{\"kind\"")));

    let err = decode_list::<EndpointSlice>(&services(1)).expect_err("a ServiceList");
    assert_eq!(
        err.to_string(),
        "expected a EndpointSliceList, got a \"ServiceList\""
    );

    let mut cut = services(2).to_vec();
    cut.truncate(cut.len() - 10);
    let err = decode_list::<Service>(&cut.into()).expect_err("cut short");
    assert!(matches!(err, DecodeError::Malformed { .. }), "{err:?}");
}

#[test]
fn error_messages_come_from_a_status_in_either_encoding_or_the_text() {
    let status = Status {
        message: Some("the provided continue parameter is too old".to_owned()),
        reason: Some("Expired".to_owned()),
    };
    let body = envelope_of("Status", status.encode_to_vec());
    assert_eq!(
        error_message(&body),
        "Expired: the provided continue parameter is too old"
    );

    let json = Bytes::from_static(
        br#"{"kind":"Status","apiVersion":"v1","status":"Failure","message":"services is forbidden","reason":"Forbidden","code":403}"#,
    );
    assert_eq!(error_message(&json), "services is forbidden");

    let text = Bytes::from_static(b"  <html>bad gateway</html>\n");
    assert_eq!(error_message(&text), "<html>bad gateway</html>");
}
