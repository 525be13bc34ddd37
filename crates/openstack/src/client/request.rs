//! One OpenStack REST request, as the SDK's session sends it.
//!
//! [`Request`] implements the SDK's `RestEndpoint`, so it goes through the same session as the
//! SDK's generated endpoints: token header, catalog lookup and version discovery, the Cinder
//! microversion header, and re-authentication on 401. It exists (instead of the generated
//! builders) because one request type lets every call share a single path for timing, error
//! mapping and decoding, and because the builders cannot express what Stackube needs in a few
//! places (tags in a creation body, the `X-Service-Token` header on an attachment delete).

use std::borrow::Cow;
use std::fmt;

use http::{HeaderMap, HeaderName, HeaderValue, Method};
use openstack_sdk::api::rest_endpoint_prelude::{
    ApiVersion, BodyError, QueryParams, RestEndpoint, ServiceType,
};
use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::error::{OpenStackError, Result};
use crate::observe::{Call, Service};

/// The Cinder microversion every block-storage call asks for: 3.54 has the attachments API
/// with attach modes (3.27 attachments, 3.44 `os-complete`, 3.54 `mode`).
pub(crate) const CINDER_MICROVERSION: (u8, u8) = (3, 54);

/// One request: method, path below the service's versioned endpoint, query, JSON body, extra
/// headers, and the [`Call`] it is recorded as.
///
/// `Debug` leaves the body out: it may hold a password (user creation, password change).
#[derive(Clone)]
pub(crate) struct Request {
    pub(crate) call: Call,
    method: Method,
    path: String,
    query: Vec<(String, String)>,
    body: Option<Value>,
    headers: HeaderMap,
}

impl Request {
    fn new(call: Call, method: Method, path: String) -> Request {
        Request {
            call,
            method,
            path,
            query: Vec::new(),
            body: None,
            headers: HeaderMap::new(),
        }
    }

    pub(crate) fn get(call: Call, path: String) -> Request {
        Request::new(call, Method::GET, path)
    }

    pub(crate) fn post(call: Call, path: String, body: Value) -> Request {
        Request::new(call, Method::POST, path).with_body(body)
    }

    pub(crate) fn put(call: Call, path: String, body: Option<Value>) -> Request {
        let req = Request::new(call, Method::PUT, path);
        match body {
            Some(body) => req.with_body(body),
            None => req,
        }
    }

    pub(crate) fn patch(call: Call, path: String, body: Value) -> Request {
        Request::new(call, Method::PATCH, path).with_body(body)
    }

    pub(crate) fn delete(call: Call, path: String) -> Request {
        Request::new(call, Method::DELETE, path)
    }

    fn with_body(mut self, body: Value) -> Request {
        self.body = Some(body);
        self
    }

    /// Adds `key=value` to the query.
    pub(crate) fn query(mut self, key: &str, value: impl Into<String>) -> Request {
        self.query.push((key.to_owned(), value.into()));
        self
    }

    /// Adds `key=value` when there is a value.
    pub(crate) fn query_opt(self, key: &str, value: Option<impl Into<String>>) -> Request {
        match value {
            Some(value) => self.query(key, value),
            None => self,
        }
    }

    /// Adds Neutron/Keystone's `tags=a,b` (all of them) filter when `tags` is not empty.
    pub(crate) fn query_tags(self, tags: &[String]) -> Request {
        if tags.is_empty() {
            self
        } else {
            self.query("tags", tags.join(","))
        }
    }

    /// Adds Neutron's `tags-any=a,b` (at least one of them) filter when `tags` is not empty.
    pub(crate) fn query_tags_any(self, tags: &[String]) -> Request {
        if tags.is_empty() {
            self
        } else {
            self.query("tags-any", tags.join(","))
        }
    }

    /// Sets `marker=` for the next page, replacing an earlier one.
    pub(crate) fn with_marker(mut self, marker: &str) -> Request {
        self.query.retain(|(k, _)| k != "marker");
        self.query.push(("marker".to_owned(), marker.to_owned()));
        self
    }

    /// Adds a header whose value is a secret (marked sensitive, so it is never logged).
    pub(crate) fn secret_header(mut self, name: HeaderName, mut value: HeaderValue) -> Request {
        value.set_sensitive(true);
        self.headers.insert(name, value);
        self
    }
}

impl fmt::Debug for Request {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Request")
            .field("call", &self.call)
            .field("method", &self.method)
            .field("path", &self.path)
            .field("query", &self.query)
            .field("has_body", &self.body.is_some())
            .field("headers", &self.headers)
            .finish()
    }
}

impl RestEndpoint for Request {
    fn method(&self) -> Method {
        self.method.clone()
    }

    fn endpoint(&self) -> Cow<'static, str> {
        Cow::Owned(self.path.clone())
    }

    fn service_type(&self) -> ServiceType {
        match self.call.service {
            Service::Identity => ServiceType::Identity,
            Service::Network => ServiceType::Network,
            Service::BlockStorage => ServiceType::BlockStorage,
        }
    }

    fn parameters(&self) -> QueryParams<'_> {
        let mut params = QueryParams::default();
        for (key, value) in &self.query {
            params.push(key.as_str(), value.as_str());
        }
        params
    }

    fn body(&self) -> std::result::Result<Option<(&'static str, Vec<u8>)>, BodyError> {
        match &self.body {
            Some(body) => Ok(Some(("application/json", serde_json::to_vec(body)?))),
            None => Ok(None),
        }
    }

    fn request_headers(&self) -> Option<&HeaderMap> {
        if self.headers.is_empty() {
            None
        } else {
            Some(&self.headers)
        }
    }

    fn api_version(&self) -> Option<ApiVersion> {
        // The endpoint's discovered version; paths never start with a version segment.
        None
    }

    fn min_version(&self) -> Option<ApiVersion> {
        match self.call.service {
            Service::BlockStorage => Some(ApiVersion::new(
                CINDER_MICROVERSION.0,
                CINDER_MICROVERSION.1,
            )),
            Service::Identity | Service::Network => None,
        }
    }
}

/// Percent-encodes one path segment (ids, tag names).
pub(crate) fn segment(raw: &str) -> String {
    let mut out = String::with_capacity(raw.len());
    for byte in raw.bytes() {
        if byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'_' | b'.' | b'~') {
            out.push(char::from(byte));
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

/// Decodes the object under `key` of a JSON response (`{"network": {...}}`).
pub(crate) fn decode<T: DeserializeOwned>(call: &Call, body: &[u8], key: &str) -> Result<T> {
    let mut value: Value = serde_json::from_slice(body).map_err(|e| {
        OpenStackError::unexpected(call.clone(), "response is not json", Some(Box::new(e)))
    })?;
    let inner = value.get_mut(key).map(Value::take).ok_or_else(|| {
        OpenStackError::unexpected(call.clone(), format!("response has no `{key}`"), None)
    })?;
    serde_json::from_value(inner).map_err(|e| {
        OpenStackError::unexpected(
            call.clone(),
            format!("unexpected `{key}` in response"),
            Some(Box::new(e)),
        )
    })
}

/// One page of a list response: the items under `key` and, when the service paginates, the
/// marker of the next page (from the `<key>_links` `next` link).
pub(crate) fn decode_page<T: DeserializeOwned>(
    call: &Call,
    body: &[u8],
    key: &str,
) -> Result<(Vec<T>, Option<String>)> {
    let value: Value = serde_json::from_slice(body).map_err(|e| {
        OpenStackError::unexpected(call.clone(), "response is not json", Some(Box::new(e)))
    })?;
    let next = value
        .get(format!("{key}_links"))
        .and_then(Value::as_array)
        .and_then(|links| {
            links
                .iter()
                .find(|l| l.get("rel").and_then(Value::as_str) == Some("next"))
        })
        .and_then(|l| l.get("href").and_then(Value::as_str))
        .and_then(marker_of);
    let items: Vec<T> = decode(call, body, key)?;
    Ok((items, next))
}

/// The `marker` query parameter of a next-page link.
fn marker_of(href: &str) -> Option<String> {
    let query = href.split_once('?')?.1;
    query.split('&').find_map(|pair| {
        let (k, v) = pair.split_once('=')?;
        (k == "marker").then(|| v.to_owned())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn segments_are_percent_encoded() {
        assert_eq!(segment("abc-123_x.y~z"), "abc-123_x.y~z");
        assert_eq!(segment("stackube/tenant=a b"), "stackube%2Ftenant%3Da%20b");
    }

    #[test]
    fn tag_filters_are_comma_joined_and_omitted_when_empty() {
        let call = Call::new(Service::Network, "list_ports");
        let tags = vec!["a".to_owned(), "b".to_owned()];
        let req = Request::get(call.clone(), "ports".into())
            .query_tags(&tags)
            .query_tags_any(&["c".to_owned()]);
        assert_eq!(
            req.query,
            vec![
                ("tags".to_owned(), "a,b".to_owned()),
                ("tags-any".to_owned(), "c".to_owned())
            ]
        );
        let req = Request::get(call, "ports".into())
            .query_tags(&[])
            .query_tags_any(&[]);
        assert!(req.query.is_empty());
    }

    #[test]
    fn pages_yield_items_and_the_next_marker() {
        let call = Call::new(Service::Network, "list_ports");
        let body = br#"{"ports": [{"id": "a"}, {"id": "b"}],
            "ports_links": [{"rel": "next", "href": "http://n/v2.0/ports?limit=2&marker=b"},
                            {"rel": "previous", "href": "http://n/v2.0/ports?marker=a&page_reverse=True"}]}"#;
        let (items, next): (Vec<Value>, _) = decode_page(&call, body, "ports").unwrap();
        assert_eq!(items.len(), 2);
        assert_eq!(next.as_deref(), Some("b"));

        let body = br#"{"ports": []}"#;
        let (items, next): (Vec<Value>, _) = decode_page(&call, body, "ports").unwrap();
        assert!(items.is_empty());
        assert_eq!(next, None);
    }

    #[test]
    fn decode_reports_missing_keys_as_other() {
        let call = Call::new(Service::Network, "get_port");
        let err = decode::<Value>(&call, br#"{"network": {}}"#, "port").unwrap_err();
        assert_eq!(err.kind(), crate::ErrorKind::Other);
        let err = decode::<Value>(&call, b"<html>", "port").unwrap_err();
        assert_eq!(err.kind(), crate::ErrorKind::Other);
    }

    #[test]
    fn debug_leaves_the_body_out() {
        let req = Request::patch(
            Call::new(Service::Identity, "set_user_password"),
            "users/u".into(),
            serde_json::json!({ "user": { "password": "hunter2" } }),
        );
        let debug = format!("{req:?}");
        assert!(!debug.contains("hunter2"), "{debug}");
        assert!(debug.contains("users/u"), "{debug}");
    }

    #[test]
    fn cinder_requests_ask_for_the_attachment_microversion() {
        let cinder = Request::get(
            Call::new(Service::BlockStorage, "get_volume"),
            "volumes/v".into(),
        );
        assert_eq!(cinder.min_version(), Some(ApiVersion::new(3, 54)));
        let neutron = Request::get(Call::new(Service::Network, "get_port"), "ports/p".into());
        assert_eq!(neutron.min_version(), None);
    }
}
