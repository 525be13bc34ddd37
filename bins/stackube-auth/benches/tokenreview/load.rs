//! The load: one authenticated request with a bearer token, either a TokenReview posted straight
//! to a webhook, or, behind kube-apiserver, `POST /apis/authentication.k8s.io/v1/selfsubjectreviews`
//! (an authenticated request that does little else: it answers who the token is). Every answer
//! is checked to name the expected user, so a run that did not really authenticate fails.
//!
//! Requests are HTTP/1.1 on kept-alive connections from this process; latencies are measured
//! from sending the request to having read and parsed the whole answer.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use serde_json::{Value, json};

/// Where one request goes.
#[derive(Clone, Debug)]
pub(crate) enum Target {
    /// A TokenReview to the webhook at this URL.
    Webhook {
        /// The review URL.
        url: String,
        /// The user every answer must name.
        user: String,
    },
    /// A SelfSubjectReview to the kube-apiserver at this base URL.
    Apiserver {
        /// `https://127.0.0.1:<port>`.
        url: String,
        /// The user every answer must name.
        user: String,
    },
}

/// An HTTPS client trusting the environment's CA (kube-apiserver's and the webhooks'
/// certificates), with enough kept-alive connections for `clients` at once.
pub(crate) fn client(ca_pem: &[u8], clients: usize) -> anyhow::Result<reqwest::Client> {
    Ok(reqwest::Client::builder()
        .tls_certs_only(reqwest::Certificate::from_pem_bundle(ca_pem)?)
        .pool_max_idle_per_host(clients * 2)
        .timeout(Duration::from_secs(60))
        .build()?)
}

/// One request with `token`; its latency, or an error unless it authenticated the expected user.
pub(crate) async fn once(
    client: &reqwest::Client,
    target: &Target,
    token: &str,
) -> anyhow::Result<Duration> {
    let started = Instant::now();
    match target {
        Target::Webhook { url, user } => {
            // v1beta1: the version k8s-keystone-auth understands (stackube-auth takes both).
            let body = json!({"apiVersion": "authentication.k8s.io/v1beta1", "kind": "TokenReview",
                "spec": {"token": token}});
            let answer: Value = client.post(url).json(&body).send().await?.json().await?;
            let elapsed = started.elapsed();
            if answer["status"]["authenticated"] != json!(true)
                || answer["status"]["user"]["username"] != json!(user)
            {
                bail!("{url}: not authenticated as {user}: {answer}");
            }
            Ok(elapsed)
        }
        Target::Apiserver { url, user } => {
            let body =
                json!({"apiVersion": "authentication.k8s.io/v1", "kind": "SelfSubjectReview"});
            let response = client
                .post(format!(
                    "{url}/apis/authentication.k8s.io/v1/selfsubjectreviews"
                ))
                .bearer_auth(token)
                .json(&body)
                .send()
                .await?;
            let status = response.status();
            let answer: Value = response.json().await.unwrap_or_default();
            let elapsed = started.elapsed();
            if answer["status"]["userInfo"]["username"] != json!(user) {
                bail!("{url}: HTTP {status}, not authenticated as {user}: {answer}");
            }
            Ok(elapsed)
        }
    }
}

/// Retries a request with `token` until one succeeds (the target is still starting), for at
/// most `limit`; then `extra` more, one at a time, so that connections and caches are warm.
pub(crate) async fn warm_up(
    client: &reqwest::Client,
    target: &Target,
    token: &str,
    limit: Duration,
    extra: usize,
) -> anyhow::Result<()> {
    let started = Instant::now();
    loop {
        match once(client, target, token).await {
            Ok(_) => break,
            Err(e) if started.elapsed() > limit => {
                return Err(e).context(format!("no answer within {} s", limit.as_secs()));
            }
            Err(_) => tokio::time::sleep(Duration::from_millis(250)).await,
        }
    }
    for _ in 0..extra {
        once(client, target, token).await?;
    }
    Ok(())
}

/// One request per token, one at a time; the latencies, sorted.
pub(crate) async fn sequential<'a>(
    client: &reqwest::Client,
    target: &Target,
    tokens: impl IntoIterator<Item = &'a str>,
) -> anyhow::Result<Vec<Duration>> {
    let mut latencies = Vec::new();
    for token in tokens {
        latencies.push(once(client, target, token).await?);
    }
    latencies.sort();
    Ok(latencies)
}

/// `clients` concurrent clients sending requests with `token` back to back for `duration`;
/// returns the requests completed and the time they took (until the last client finished).
pub(crate) async fn saturate(
    client: &reqwest::Client,
    target: &Target,
    token: &str,
    clients: usize,
    duration: Duration,
) -> anyhow::Result<(u64, Duration)> {
    let done = Arc::new(AtomicBool::new(false));
    let count = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..clients {
        let (client, target, token) = (client.clone(), target.clone(), token.to_owned());
        let (done, count) = (done.clone(), count.clone());
        tasks.push(tokio::spawn(async move {
            while !done.load(Ordering::Relaxed) {
                once(&client, &target, &token).await?;
                count.fetch_add(1, Ordering::Relaxed);
            }
            anyhow::Ok(())
        }));
    }
    tokio::time::sleep(duration).await;
    done.store(true, Ordering::Relaxed);
    for task in tasks {
        task.await??;
    }
    Ok((count.load(Ordering::Relaxed), started.elapsed()))
}
