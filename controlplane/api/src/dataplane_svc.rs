//! `DataplaneService`: this member's dataplane through the [`Dataplane`]
//! trait; `Flows` streams events from a broadcast receiver, filtered, with
//! the events lost to a slow client counted in `lost`.

use std::net::IpAddr;
use std::pin::Pin;
use std::sync::Arc;

use bulkhead_proto::v1::{self, dataplane_service_server::DataplaneService};
use ipnet::IpNet;
use tokio::sync::{broadcast, mpsc};
use tokio_stream::wrappers::ReceiverStream;
use tokio_stream::Stream;
use tonic::{Request, Response, Status};

use crate::member::Dataplane;

/// Events buffered for one `Flows` client.
const FLOW_BUFFER: usize = 256;

/// The dataplane service of one member.
pub struct DataplaneSvc {
    pub(crate) dataplane: Arc<dyn Dataplane>,
}

impl std::fmt::Debug for DataplaneSvc {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DataplaneSvc").finish_non_exhaustive()
    }
}

/// A parsed [`v1::FlowFilter`].
#[derive(Clone, Debug, Default)]
pub(crate) struct Filter {
    segment: Option<String>,
    net: Option<IpNet>,
    port: Option<u32>,
    protocol: Option<u32>,
}

impl Filter {
    pub(crate) fn parse(f: Option<v1::FlowFilter>) -> Result<Filter, Status> {
        let f = f.unwrap_or_default();
        let net = f
            .address
            .as_deref()
            .map(|a| {
                a.parse::<IpNet>()
                    .or_else(|_| a.parse::<IpAddr>().map(IpNet::from))
                    .map_err(|_| {
                        Status::invalid_argument(format!(
                            "filter address {a:?} is neither an address nor a prefix"
                        ))
                    })
            })
            .transpose()?;
        Ok(Filter {
            segment: f.segment,
            net,
            port: f.port,
            protocol: f.protocol,
        })
    }

    pub(crate) fn matches(&self, e: &v1::FlowEvent) -> bool {
        let addr_in = |a: &str| {
            a.parse::<IpAddr>()
                .is_ok_and(|ip| self.net.is_some_and(|n| n.contains(&ip)))
        };
        self.segment
            .as_ref()
            .is_none_or(|s| *s == e.src_segment || *s == e.dst_segment)
            && (self.net.is_none() || addr_in(&e.src_address) || addr_in(&e.dst_address))
            && self.port.is_none_or(|p| p == e.src_port || p == e.dst_port)
            && self.protocol.is_none_or(|p| p == e.protocol)
    }
}

/// Feeds matching events to the client until it goes away or the source closes.
async fn pump(
    mut rx: broadcast::Receiver<v1::FlowEvent>,
    filter: Filter,
    tx: mpsc::Sender<Result<v1::FlowEvent, Status>>,
) {
    let mut lost = 0u64;
    loop {
        match rx.recv().await {
            Ok(mut e) => {
                if !filter.matches(&e) {
                    continue;
                }
                e.lost = e.lost.saturating_add(lost);
                lost = 0;
                if tx.send(Ok(e)).await.is_err() {
                    return;
                }
            }
            Err(broadcast::error::RecvError::Lagged(n)) => lost = lost.saturating_add(n),
            Err(broadcast::error::RecvError::Closed) => return,
        }
    }
}

type FlowStream = Pin<Box<dyn Stream<Item = Result<v1::FlowEvent, Status>> + Send>>;

#[tonic::async_trait]
impl DataplaneService for DataplaneSvc {
    async fn counters(
        &self,
        _request: Request<v1::CountersRequest>,
    ) -> Result<Response<v1::CountersResponse>, Status> {
        Ok(Response::new(self.dataplane.counters()))
    }

    async fn connections(
        &self,
        request: Request<v1::ConnectionsRequest>,
    ) -> Result<Response<v1::ConnectionsResponse>, Status> {
        // The workers answer between bursts; wait on a blocking thread,
        // never on the runtime's.
        let dataplane = Arc::clone(&self.dataplane);
        let req = request.into_inner();
        tokio::task::spawn_blocking(move || dataplane.connections(&req))
            .await
            .map_err(|e| Status::internal(format!("connections: {e}")))?
            .map(Response::new)
    }

    type FlowsStream = FlowStream;

    async fn flows(
        &self,
        request: Request<v1::FlowsRequest>,
    ) -> Result<Response<Self::FlowsStream>, Status> {
        let filter = Filter::parse(request.into_inner().filter)?;
        let (tx, rx) = mpsc::channel(FLOW_BUFFER);
        tokio::spawn(pump(self.dataplane.flows(), filter, tx));
        Ok(Response::new(Box::pin(ReceiverStream::new(rx))))
    }

    async fn flush(
        &self,
        request: Request<v1::FlushRequest>,
    ) -> Result<Response<v1::FlushResponse>, Status> {
        let filter = request.into_inner().filter.unwrap_or_default();
        let dataplane = Arc::clone(&self.dataplane);
        let flushed = tokio::task::spawn_blocking(move || dataplane.flush(&filter))
            .await
            .map_err(|e| Status::internal(format!("flush: {e}")))??;
        Ok(Response::new(v1::FlushResponse { flushed }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(src: &str, dst: &str, port: u32) -> v1::FlowEvent {
        v1::FlowEvent {
            src_address: src.into(),
            dst_address: dst.into(),
            dst_port: port,
            protocol: 6,
            src_segment: "web".into(),
            dst_segment: "db".into(),
            ..Default::default()
        }
    }

    #[test]
    fn filter_fields_all_must_match() {
        let f = Filter::parse(Some(v1::FlowFilter {
            segment: Some("db".into()),
            address: Some("10.0.30.0/24".into()),
            port: Some(5432),
            protocol: Some(6),
        }))
        .expect("valid");
        assert!(f.matches(&event("10.0.10.1", "10.0.30.7", 5432)));
        assert!(!f.matches(&event("10.0.10.1", "10.0.31.7", 5432)));
        assert!(!f.matches(&event("10.0.10.1", "10.0.30.7", 22)));
        assert!(Filter::parse(None)
            .expect("empty")
            .matches(&event("a", "b", 1)));
        assert!(Filter::parse(Some(v1::FlowFilter {
            address: Some("nope".into()),
            ..Default::default()
        }))
        .is_err());
    }

    #[tokio::test]
    async fn lagged_events_are_counted_in_lost() {
        let (tx, rx) = broadcast::channel(2);
        for port in 1..=5 {
            tx.send(event("10.0.0.1", "10.0.0.2", port)).expect("send");
        }
        drop(tx);
        let (out_tx, mut out_rx) = mpsc::channel(8);
        pump(rx, Filter::default(), out_tx).await;
        let first = out_rx.recv().await.expect("event").expect("ok");
        assert_eq!(first.lost, 3);
        assert_eq!(first.dst_port, 4);
        let second = out_rx.recv().await.expect("event").expect("ok");
        assert_eq!(second.lost, 0);
    }
}
