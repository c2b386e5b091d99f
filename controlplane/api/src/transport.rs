//! [`GrpcTransport`]: the cluster driver's [`Transport`] over
//! `PeerService`. `send` never blocks the node's thread: each message goes
//! into its peer's bounded queue; one task per peer holds a client-streaming
//! `Send` call (reconnecting with back-off) and sends snapshots through the
//! `Snapshot` RPC in chunks. Failures are reported to raft
//! (`report_unreachable`, `report_snapshot`).

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock, PoisonError};
use std::time::Duration;

use bulkhead_cluster::{
    encode_message, member_id, DriverHandle, Message, MessageType, SnapshotStatus, StateWatch,
    Transport,
};
use bulkhead_proto::v1::{self, peer_service_client::PeerServiceClient};
use tokio::runtime::Handle;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;

use crate::ctx::{PeerClients, Reachability};

/// Messages waiting for one peer before new ones are dropped (and the peer
/// reported unreachable).
const PEER_QUEUE: usize = 4096;
/// Snapshot chunk size.
pub const SNAPSHOT_CHUNK: usize = 1024 * 1024;
/// Most bytes in one `RaftBatch`.
const BATCH_BYTES: usize = 8 * 1024 * 1024;
/// Metadata key carrying the sender's advertised peer address.
pub(crate) const ADVERTISE_KEY: &str = "bulkhead-advertise";

/// Where peers live and who to report to; shared by the per-peer tasks.
pub(crate) struct Shared {
    pub clients: Arc<PeerClients>,
    pub reach: Arc<Reachability>,
    pub driver: OnceLock<DriverHandle>,
    pub watch: OnceLock<StateWatch>,
    pub initial: Vec<(String, String)>,
    pub advertise: String,
    pub name: String,
}

impl Shared {
    /// The peer address of raft id `id`: replicated members, then the
    /// initial cluster, then what the peer advertised when it called us.
    fn address_of(&self, id: u64) -> Option<String> {
        if let Some(m) = self.watch.get().and_then(|w| {
            let state = w.current();
            state.member_by_id(id).map(|m| m.address.clone())
        }) {
            return Some(m);
        }
        if let Some((_, a)) = self.initial.iter().find(|(n, _)| member_id(n) == id) {
            return Some(a.clone());
        }
        self.reach.learned(id)
    }

    fn unreachable(&self, id: u64) {
        if let Some(d) = self.driver.get() {
            d.report_unreachable(id);
        }
        if self.reach.set(id, false) {
            tracing::warn!(member = %self.name, peer = format_args!("{id:#x}"), "peer unreachable");
        }
    }

    fn snapshot_done(&self, id: u64, ok: bool) {
        if let Some(d) = self.driver.get() {
            d.report_snapshot(
                id,
                if ok {
                    SnapshotStatus::Finish
                } else {
                    SnapshotStatus::Failure
                },
            );
        }
    }
}

/// The driver's transport (see the module doc).
#[derive(Clone)]
pub(crate) struct GrpcTransport {
    shared: Arc<Shared>,
    rt: Handle,
    queues: Arc<Mutex<HashMap<u64, mpsc::Sender<Message>>>>,
}

impl GrpcTransport {
    pub(crate) fn new(shared: Arc<Shared>, rt: Handle) -> Self {
        GrpcTransport {
            shared,
            rt,
            queues: Arc::new(Mutex::new(HashMap::new())),
        }
    }

    fn queue(&self, to: u64) -> mpsc::Sender<Message> {
        let mut g = self.queues.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(q) = g.get(&to) {
            if !q.is_closed() {
                return q.clone();
            }
        }
        let (tx, rx) = mpsc::channel(PEER_QUEUE);
        self.rt.spawn(peer_task(Arc::clone(&self.shared), to, rx));
        g.insert(to, tx.clone());
        tx
    }
}

impl Transport for GrpcTransport {
    fn send(&self, msgs: Vec<Message>) {
        for msg in msgs {
            let to = msg.to;
            let is_snapshot = msg.get_msg_type() == MessageType::MsgSnapshot;
            if self.queue(to).try_send(msg).is_err() {
                self.shared.unreachable(to);
                if is_snapshot {
                    self.shared.snapshot_done(to, false);
                }
            }
        }
    }
}

/// Drops what is queued for a peer that cannot be reached (raft resends).
fn drain_failed(shared: &Shared, id: u64, rx: &mut mpsc::Receiver<Message>) {
    while let Ok(m) = rx.try_recv() {
        if m.get_msg_type() == MessageType::MsgSnapshot {
            shared.snapshot_done(id, false);
        }
    }
}

/// One peer: connect, stream batches, reconnect with back-off; ends when the
/// transport is dropped.
async fn peer_task(shared: Arc<Shared>, id: u64, mut rx: mpsc::Receiver<Message>) {
    let mut backoff = Duration::from_millis(100);
    loop {
        let connected = match shared.address_of(id) {
            Some(address) => stream_to(&shared, id, &address, &mut rx).await,
            None => Ok(false),
        };
        match connected {
            Err(()) => return,
            Ok(true) => backoff = Duration::from_millis(100),
            Ok(false) => {}
        }
        shared.unreachable(id);
        drain_failed(&shared, id, &mut rx);
        let wait = tokio::time::sleep(backoff);
        tokio::pin!(wait);
        loop {
            tokio::select! {
                () = &mut wait => break,
                m = rx.recv() => match m {
                    None => return,
                    Some(m) if m.get_msg_type() == MessageType::MsgSnapshot => shared.snapshot_done(id, false),
                    Some(_) => {}
                },
            }
        }
        backoff = (backoff * 2).min(Duration::from_secs(2));
    }
}

/// Streams messages to the peer at `address` until the call fails.
/// `Ok(true)`: it was connected for a while; `Ok(false)`: connecting failed;
/// `Err(())`: the queue closed (shutting down).
async fn stream_to(
    shared: &Shared,
    id: u64,
    address: &str,
    rx: &mut mpsc::Receiver<Message>,
) -> Result<bool, ()> {
    let Ok(endpoint) = shared.clients.endpoint(address) else {
        return Ok(false);
    };
    let channel = match endpoint.connect().await {
        Ok(ch) => ch,
        Err(e) => {
            tracing::debug!(member = %shared.name, peer = address, error = %e, "connect failed");
            return Ok(false);
        }
    };
    let mut client = PeerServiceClient::new(channel);
    let (tx, batches) = mpsc::channel::<v1::RaftBatch>(16);
    let mut req = tonic::Request::new(ReceiverStream::new(batches));
    if let Ok(v) = shared.advertise.parse() {
        req.metadata_mut().insert(ADVERTISE_KEY, v);
    }
    let mut call_client = client.clone();
    let mut call = tokio::spawn(async move { call_client.send(req).await });
    if shared.reach.set(id, true) {
        tracing::info!(member = %shared.name, peer = address, "peer reachable");
    }
    loop {
        tokio::select! {
            res = &mut call => {
                if let Ok(Err(st)) = res {
                    tracing::debug!(member = %shared.name, peer = address, status = %st, "raft stream ended");
                }
                return Ok(true);
            }
            m = rx.recv() => {
                let Some(m) = m else {
                    call.abort();
                    return Err(());
                };
                if m.get_msg_type() == MessageType::MsgSnapshot {
                    let ok = send_snapshot(&mut client, &m).await;
                    shared.snapshot_done(id, ok);
                    if !ok {
                        call.abort();
                        return Ok(true);
                    }
                    continue;
                }
                let (batch, snapshot) = collect_batch(m, rx);
                if tx.send(batch).await.is_err() {
                    return Ok(true);
                }
                if let Some(s) = snapshot {
                    let ok = send_snapshot(&mut client, &s).await;
                    shared.snapshot_done(id, ok);
                }
            }
        }
    }
}

/// `first` and whatever else is queued, up to [`BATCH_BYTES`]; a snapshot
/// met on the way is returned separately (sent after the batch).
fn collect_batch(
    first: Message,
    rx: &mut mpsc::Receiver<Message>,
) -> (v1::RaftBatch, Option<Message>) {
    let mut batch = v1::RaftBatch::default();
    let mut bytes = 0;
    let mut next = Some(first);
    while let Some(m) = next.take() {
        if m.get_msg_type() == MessageType::MsgSnapshot {
            return (batch, Some(m));
        }
        match encode_message(&m) {
            Ok(b) => {
                bytes += b.len();
                batch.messages.push(b);
            }
            Err(e) => tracing::error!(error = %e, "cannot encode a raft message; dropped"),
        }
        if bytes < BATCH_BYTES {
            next = rx.try_recv().ok();
        }
    }
    (batch, None)
}

/// Sends one snapshot message through the `Snapshot` RPC in chunks.
async fn send_snapshot(
    client: &mut PeerServiceClient<tonic::transport::Channel>,
    msg: &Message,
) -> bool {
    let data = msg.get_snapshot().get_data().to_vec();
    let mut header = msg.clone();
    header.mut_snapshot().set_data(Vec::new().into());
    let Ok(header) = encode_message(&header) else {
        return false;
    };
    let mut chunks = Vec::new();
    let mut offset = 0usize;
    loop {
        let end = (offset + SNAPSHOT_CHUNK).min(data.len());
        chunks.push(v1::SnapshotChunk {
            header: if offset == 0 {
                header.clone()
            } else {
                Vec::new()
            },
            data: data[offset..end].to_vec(),
            offset: offset as u64,
            last: end == data.len(),
        });
        if end == data.len() {
            break;
        }
        offset = end;
    }
    let total = data.len() as u64;
    match client.snapshot(tokio_stream::iter(chunks)).await {
        Ok(resp) => resp.into_inner().received == total,
        Err(st) => {
            tracing::warn!(status = %st, "snapshot transfer failed");
            false
        }
    }
}
