//! Cluster benchmark client (run by `perf-lab/cluster-bench.sh`, not a test):
//! over one mutual-TLS connection per member, it measures
//!
//! - commit latency: `PolicyService/Apply` sent to the leader until its
//!   answer (the revision committed by a majority and applied there);
//! - apply-to-enforced: from sending until every member's `MemberState`
//!   reports the revision enforced by all its workers (polled every 1 ms);
//! - bulk endpoint updates: batches of endpoints added back to back for a
//!   while, endpoints per second and the batch commit latency.
//!
//! Prints one JSON object. Usage:
//! `cluster_bench --pki DIR --members A,B,C --policy FILE --applies N
//!  [--endpoint-seconds S --batch N --segment NAME --prefix 10.200]`

use std::time::{Duration, Instant};

use bulkhead_proto::v1::{
    self, cluster_service_client::ClusterServiceClient,
    endpoint_service_client::EndpointServiceClient, policy_service_client::PolicyServiceClient,
};
use tonic::transport::{Channel, Endpoint};

type Error = Box<dyn std::error::Error + Send + Sync>;

struct Args {
    pki: std::path::PathBuf,
    members: Vec<String>,
    policy: String,
    applies: usize,
    endpoint_seconds: u64,
    batch: usize,
    segment: String,
    prefix: String,
}

fn args() -> Result<Args, Error> {
    let mut a = Args {
        pki: "pki".into(),
        members: Vec::new(),
        policy: String::new(),
        applies: 50,
        endpoint_seconds: 0,
        batch: 1000,
        segment: "app".into(),
        prefix: "10.200".into(),
    };
    let mut it = std::env::args().skip(1);
    while let Some(k) = it.next() {
        let mut v = || it.next().ok_or_else(|| format!("{k} needs a value"));
        match k.as_str() {
            "--pki" => a.pki = v()?.into(),
            "--members" => a.members = v()?.split(',').map(str::to_string).collect(),
            "--policy" => a.policy = std::fs::read_to_string(v()?)?,
            "--applies" => a.applies = v()?.parse()?,
            "--endpoint-seconds" => a.endpoint_seconds = v()?.parse()?,
            "--batch" => a.batch = v()?.parse()?,
            "--segment" => a.segment = v()?,
            "--prefix" => a.prefix = v()?,
            other => return Err(format!("unknown argument {other}").into()),
        }
    }
    if a.members.is_empty() || a.policy.is_empty() {
        return Err("--members and --policy are required".into());
    }
    Ok(a)
}

async fn channel(pki: &std::path::Path, addr: &str) -> Result<Channel, Error> {
    let host = addr.rsplit_once(':').map_or(addr, |(h, _)| h);
    let tls = bulkhead_pki::client_tls(pki, "admin", host)?;
    Ok(Endpoint::from_shared(format!("https://{addr}"))?
        .tls_config(tls)?
        .connect()
        .await?)
}

/// p50, p99 and max of `v` in milliseconds.
fn summary(mut v: Vec<f64>) -> serde_json::Value {
    v.sort_by(f64::total_cmp);
    let at = |q: f64| {
        v.get(((v.len() as f64 - 1.0) * q).round() as usize)
            .copied()
    };
    serde_json::json!({"n": v.len(), "p50_ms": at(0.5), "p99_ms": at(0.99), "max_ms": v.last()})
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

/// Wait until every member enforces `revision`.
async fn enforced(
    members: &mut [ClusterServiceClient<Channel>],
    revision: u64,
) -> Result<(), Error> {
    let deadline = Instant::now() + Duration::from_secs(30);
    for m in members.iter_mut() {
        loop {
            let s = m
                .member_state(v1::MemberStateRequest {})
                .await?
                .into_inner();
            if s.enforced_revision >= revision {
                break;
            }
            if Instant::now() > deadline {
                return Err(
                    format!("{} did not enforce revision {revision} in 30 s", s.name).into(),
                );
            }
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
    }
    Ok(())
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Error> {
    let a = args()?;
    let mut states = Vec::new();
    for m in &a.members {
        states.push(ClusterServiceClient::new(channel(&a.pki, m).await?));
    }
    let status = states[0]
        .status(v1::ClusterStatusRequest {})
        .await?
        .into_inner();
    let leader = status
        .members
        .iter()
        .find(|m| m.name == status.leader)
        .map(|m| m.address.clone())
        .ok_or("no leader")?;
    let ch = channel(&a.pki, &leader).await?;
    let mut policy = PolicyServiceClient::new(ch.clone()).max_decoding_message_size(64 << 20);
    let (mut commit, mut to_enforced) = (Vec::new(), Vec::new());
    for i in 0..a.applies {
        let t0 = Instant::now();
        let r = policy
            .apply(v1::ApplyRequest {
                document: a.policy.clone(),
                comment: format!("bench {i}"),
                ..Default::default()
            })
            .await?
            .into_inner();
        commit.push(ms(t0.elapsed()));
        enforced(&mut states, r.revision).await?;
        to_enforced.push(ms(t0.elapsed()));
    }
    let mut out = serde_json::json!({
        "leader": status.leader,
        "document_bytes": a.policy.len(),
        "commit": summary(commit),
        "apply_to_enforced": summary(to_enforced),
    });
    if a.endpoint_seconds > 0 {
        let mut eps = EndpointServiceClient::new(ch).max_decoding_message_size(64 << 20);
        let (mut lat, mut sent, mut n) = (Vec::new(), 0usize, 0u32);
        let start = Instant::now();
        while start.elapsed() < Duration::from_secs(a.endpoint_seconds) {
            let endpoints = (0..a.batch)
                .map(|_| {
                    n = n.wrapping_add(1);
                    v1::Endpoint {
                        address: format!("{}.{}.{}", a.prefix, (n >> 8) & 0xff, n & 0xff),
                        segment: a.segment.clone(),
                    }
                })
                .collect();
            let t0 = Instant::now();
            eps.add(v1::AddEndpointsRequest { endpoints }).await?;
            lat.push(ms(t0.elapsed()));
            sent += a.batch;
        }
        out["endpoints"] = serde_json::json!({
            "batch": a.batch,
            "updates": sent,
            "per_second": sent as f64 / start.elapsed().as_secs_f64(),
            "batch_commit": summary(lat),
        });
    }
    println!("{out}");
    Ok(())
}
