//! A watcher that lists in protobuf and watches in JSON: the events of kube-rs'
//! [`watcher`](kube::runtime::watcher()) (`Init`, `InitApply`…, `InitDone`, then `Apply` and
//! `Delete`), for the kinds of [`protobuf::Listed`]. The list is where a component spends its
//! start at scale (10,000 Services and their EndpointSlices); its watch events are small, and
//! kube-rs decodes them.
//!
//! # Guarantees
//! - Every list is whole: it starts with `Init` and ends with `InitDone`; a list that fails part
//!   way (an expired continue token, a refused page) starts again with `Init`.
//! - The watch resumes from the last resourceVersion seen (objects and bookmarks); an expired one
//!   (410 Gone) lists again, and so does an event that does not decode (kube-rs' watcher skips
//!   it, losing what it changed; resuming from before it would meet it forever).
//! - Failures are reported as `Err` items and retried after a backoff (0.8 s, doubling to 30 s,
//!   reset by a success); the stream ends only when it is dropped.

use std::time::Duration;

use futures::{Stream, StreamExt as _};
use kube::api::{ListParams, WatchEvent, WatchParams};
use kube::core::Request;
use kube::runtime::watcher::Event;
use kube::{Api, ResourceExt as _};
use serde::de::DeserializeOwned;
use tokio::sync::mpsc;

use crate::protobuf::{self, DecodeError, Listed};

/// How long one watch request lasts before it is made again (the apiserver's limit is longer).
const WATCH_TIMEOUT_SECS: u32 = 290;
/// The first and the longest wait after a failure.
const BACKOFF: (Duration, Duration) = (Duration::from_millis(800), Duration::from_secs(30));
/// HTTP 410 Gone: a resourceVersion or continue token too old to be served.
const GONE: u16 = 410;

/// What went wrong listing or watching (each is retried).
#[derive(Debug, thiserror::Error)]
pub enum WatchError {
    /// The list request failed, or its body could not be read.
    #[error("listing {url}: {source}")]
    List {
        /// The resource listed.
        url: String,
        /// Why.
        source: kube::Error,
    },
    /// The apiserver refused the list.
    #[error("listing {url}: HTTP {code}: {message}")]
    Refused {
        /// The resource listed.
        url: String,
        /// HTTP status.
        code: u16,
        /// The apiserver's message.
        message: String,
    },
    /// The list's last page had no resourceVersion to watch from.
    #[error("listing {url}: the list has no resourceVersion to watch from")]
    NoVersion {
        /// The resource listed.
        url: String,
    },
    /// The list's body did not decode.
    #[error("listing {url}: {source}")]
    Decode {
        /// The resource listed.
        url: String,
        /// Why.
        source: DecodeError,
    },
    /// The watch failed.
    #[error("watching {url}: {source}")]
    Watch {
        /// The resource watched.
        url: String,
        /// Why.
        source: kube::Error,
    },
    /// The watch sent an event that does not decode (listed again).
    #[error("watching {url}: an event that does not decode, listing again: {source}")]
    Undecodable {
        /// The resource watched.
        url: String,
        /// Why.
        source: kube::Error,
    },
    /// The watch sent an error event.
    #[error("watching {url}: HTTP {code}: {message}")]
    WatchRefused {
        /// The resource watched.
        url: String,
        /// HTTP status.
        code: u16,
        /// The apiserver's message.
        message: String,
    },
}

/// The events of `api`'s objects, listed `page_size` at a time in protobuf, then watched.
pub fn watcher<K>(api: Api<K>, page_size: u32) -> impl Stream<Item = Result<Event<K>, WatchError>>
where
    K: Listed + Clone + DeserializeOwned + std::fmt::Debug + Send + 'static,
{
    watcher_from(api, page_size, None)
}

/// [`watcher`], watching from `version` first when one is given (a version too old to be served
/// lists, as one that expires later does).
pub fn watcher_from<K>(
    api: Api<K>,
    page_size: u32,
    version: Option<String>,
) -> impl Stream<Item = Result<Event<K>, WatchError>>
where
    K: Listed + Clone + DeserializeOwned + std::fmt::Debug + Send + 'static,
{
    // Room for a page: the list sends its objects one event each.
    let (tx, rx) = mpsc::channel(page_size.clamp(1, 1000) as usize);
    tokio::spawn(run(
        api,
        page_size,
        version.map_or(Next::List, Next::Watch),
        tx,
    ));
    futures::stream::unfold(rx, |mut rx| async { rx.recv().await.map(|e| (e, rx)) })
}

type Sender<K> = mpsc::Sender<Result<Event<K>, WatchError>>;

/// What to do next.
enum Next {
    List,
    Watch(String),
}

/// Lists and watches until the stream is dropped.
async fn run<K>(api: Api<K>, page_size: u32, mut next: Next, tx: Sender<K>)
where
    K: Listed + Clone + DeserializeOwned + std::fmt::Debug + Send + 'static,
{
    let mut backoff = BACKOFF.0;
    loop {
        let step = match next {
            Next::List => list(&api, page_size, &tx, &mut backoff).await,
            Next::Watch(version) => watch(&api, version, &tx, &mut backoff).await,
        };
        next = match step {
            Step::Done(then) => then,
            // Gone: the version or continue token expired; list afresh, at once.
            Step::Failed(error, _) if is_gone(&error) => Next::List,
            Step::Failed(error, then) => {
                if tx.send(Err(error)).await.is_err() {
                    return;
                }
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(BACKOFF.1);
                then
            }
            Step::Closed => return,
        };
    }
}

/// How a list or a watch ended.
enum Step {
    /// As it should; go on with this.
    Done(Next),
    /// With this error; go on with this after a backoff.
    Failed(WatchError, Next),
    /// The stream was dropped.
    Closed,
}

fn is_gone(error: &WatchError) -> bool {
    match error {
        WatchError::Refused { code, .. } | WatchError::WatchRefused { code, .. } => *code == GONE,
        WatchError::Watch {
            source: kube::Error::Api(status),
            ..
        } => status.code == GONE,
        _ => false,
    }
}

/// Lists every page, sending `Init`, an `InitApply` per object, `InitDone`; a page decoded
/// resets `backoff`. The next page is fetched while a page's objects are sent: the apiserver
/// serves it while the receiver works.
async fn list<K>(api: &Api<K>, page_size: u32, tx: &Sender<K>, backoff: &mut Duration) -> Step
where
    K: Listed + Clone + DeserializeOwned + std::fmt::Debug + Send + 'static,
{
    let url = api.resource_url().to_owned();
    let client = api.clone().into_client();
    if tx.send(Ok(Event::Init)).await.is_err() {
        return Step::Closed;
    }
    let mut fetched = page::<K>(&client, &url, page_size, None).await;
    loop {
        let (meta, items) = match fetched {
            Ok(page) => K::page(page),
            Err(error) => return Step::Failed(error, Next::List),
        };
        *backoff = BACKOFF.0;
        let meta = meta.unwrap_or_default();
        let Some(token) = meta.continue_.filter(|t| !t.is_empty()) else {
            if !send_all(tx, items).await || tx.send(Ok(Event::InitDone)).await.is_err() {
                return Step::Closed;
            }
            return match meta.resource_version.filter(|v| !v.is_empty()) {
                Some(version) => Step::Done(Next::Watch(version)),
                None => Step::Failed(WatchError::NoVersion { url }, Next::List),
            };
        };
        let next = page::<K>(&client, &url, page_size, Some(token));
        let (next, sent) = futures::join!(next, send_all(tx, items));
        if !sent {
            return Step::Closed;
        }
        fetched = next;
    }
}

/// Sends an `InitApply` of each item; `false` when the stream was dropped.
async fn send_all<K>(tx: &Sender<K>, items: Vec<K>) -> bool {
    for item in items {
        if tx.send(Ok(Event::InitApply(item))).await.is_err() {
            return false;
        }
    }
    true
}

/// One page of the list, decoded.
async fn page<K: Listed>(
    client: &kube::Client,
    url: &str,
    page_size: u32,
    token: Option<String>,
) -> Result<K::List, WatchError> {
    let params = ListParams {
        limit: Some(page_size),
        continue_token: token,
        ..ListParams::default()
    };
    let list_error = |source| WatchError::List {
        url: url.to_owned(),
        source,
    };
    let mut request = Request::new(url)
        .list(&params)
        .map_err(|e| list_error(kube::Error::BuildRequest(e)))?;
    request.headers_mut().insert(
        http::header::ACCEPT,
        http::HeaderValue::from_static(protobuf::MEDIA_TYPE),
    );
    let response = client
        .send(request.map(Into::into))
        .await
        .map_err(list_error)?;
    let status = response.status();
    let body = response
        .into_body()
        .collect_bytes()
        .await
        .map_err(list_error)?;
    if !status.is_success() {
        return Err(WatchError::Refused {
            url: url.to_owned(),
            code: status.as_u16(),
            message: protobuf::error_message(&body),
        });
    }
    protobuf::decode_list::<K>(&body).map_err(|source| WatchError::Decode {
        url: url.to_owned(),
        source,
    })
}

/// Watches from `version` until the request times out (`Done`, from the last version seen) or
/// fails; an event resets `backoff`.
async fn watch<K>(api: &Api<K>, mut version: String, tx: &Sender<K>, backoff: &mut Duration) -> Step
where
    K: Listed + Clone + DeserializeOwned + std::fmt::Debug + Send + 'static,
{
    let url = || api.resource_url().to_owned();
    // Bookmarks are on by default.
    let params = WatchParams::default().timeout(WATCH_TIMEOUT_SECS);
    let stream = match api.watch(&params, &version).await {
        Ok(stream) => stream,
        Err(source) => {
            let error = WatchError::Watch { url: url(), source };
            return Step::Failed(error, Next::Watch(version));
        }
    };
    futures::pin_mut!(stream);
    while let Some(event) = stream.next().await {
        let event = match event {
            Ok(WatchEvent::Added(o) | WatchEvent::Modified(o)) => {
                version = o.resource_version().unwrap_or(version);
                Event::Apply(o)
            }
            Ok(WatchEvent::Deleted(o)) => {
                version = o.resource_version().unwrap_or(version);
                Event::Delete(o)
            }
            Ok(WatchEvent::Bookmark(bookmark)) => {
                version = bookmark.metadata.resource_version;
                *backoff = BACKOFF.0;
                continue;
            }
            Ok(WatchEvent::Error(e)) => {
                let error = WatchError::WatchRefused {
                    url: url(),
                    code: e.code,
                    message: e.message,
                };
                return Step::Failed(error, Next::Watch(version));
            }
            // A line that is no event k8s-openapi can read (a condition's `lastTransitionTime:
            // null`, which kube-apiserver writes and k8s-openapi refuses): what it changed is
            // unknown, and watching again from before it would meet it again. List again (the
            // protobuf list decodes only what is read).
            Err(source @ (kube::Error::SerdeError(_) | kube::Error::Api(_))) => {
                let error = WatchError::Undecodable { url: url(), source };
                return Step::Failed(error, Next::List);
            }
            Err(source) => {
                let error = WatchError::Watch { url: url(), source };
                return Step::Failed(error, Next::Watch(version));
            }
        };
        *backoff = BACKOFF.0;
        if tx.send(Ok(event)).await.is_err() {
            return Step::Closed;
        }
    }
    Step::Done(Next::Watch(version))
}
