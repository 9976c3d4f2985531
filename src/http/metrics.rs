//! Prometheus metrics: request counts and latency by route and status, pool usage, the live
//! streams and their relay's state.

use prometheus::{
    Encoder, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge, IntGaugeVec, Opts,
    Registry, TextEncoder,
};

use crate::live::relay::RelayStatus;

pub struct Metrics {
    registry: Registry,
    requests: IntCounterVec,
    latency: HistogramVec,
    pool_connections: IntGauge,
    pool_idle: IntGauge,
    pool_max: IntGauge,
    live_streams: IntGauge,
    live_stream_reads: IntCounter,
    live_relay: IntGaugeVec,
}

impl Metrics {
    pub fn new() -> Metrics {
        let registry = Registry::new_custom(Some("dossier".into()), None).expect("valid prefix");
        let labels = &["method", "route", "status"];
        let requests = IntCounterVec::new(
            Opts::new("http_requests_total", "HTTP requests answered"),
            labels,
        )
        .expect("valid metric");
        let latency = HistogramVec::new(
            HistogramOpts::new(
                "http_request_duration_seconds",
                "Time to answer HTTP requests",
            )
            .buckets(vec![
                0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
            ]),
            labels,
        )
        .expect("valid metric");
        let pool_connections = IntGauge::new("db_pool_connections", "Open database connections")
            .expect("valid metric");
        let pool_idle = IntGauge::new("db_pool_idle_connections", "Idle database connections")
            .expect("valid metric");
        let pool_max =
            IntGauge::new("db_pool_max_connections", "Pool size limit").expect("valid metric");
        let live_streams =
            IntGauge::new("live_streams", "Open notification streams").expect("valid metric");
        let live_relay = IntGaugeVec::new(
            Opts::new(
                "live_relay",
                "1 for the state the live streams' relay is in: off, listening or reconnecting",
            ),
            &["state"],
        )
        .expect("valid metric");
        let live_stream_reads = IntCounter::new(
            "live_stream_reads_total",
            "Reads of the database by notification streams",
        )
        .expect("valid metric");
        for collector in [
            Box::new(requests.clone()) as Box<dyn prometheus::core::Collector>,
            Box::new(latency.clone()),
            Box::new(pool_connections.clone()),
            Box::new(pool_idle.clone()),
            Box::new(pool_max.clone()),
            Box::new(live_streams.clone()),
            Box::new(live_stream_reads.clone()),
            Box::new(live_relay.clone()),
        ] {
            registry
                .register(collector)
                .expect("metric names are unique");
        }
        Metrics {
            registry,
            requests,
            latency,
            pool_connections,
            pool_idle,
            pool_max,
            live_streams,
            live_stream_reads,
            live_relay,
        }
    }

    /// A notification stream opened (`+1`) or closed (`-1`).
    pub fn live_streams_add(&self, delta: i64) {
        self.live_streams.add(delta);
    }

    /// A notification stream read the database.
    pub fn live_stream_read(&self) {
        self.live_stream_reads.inc();
    }

    pub fn observe(&self, method: &str, route: &str, status: u16, seconds: f64) {
        let status = status.to_string();
        let labels = [method, route, status.as_str()];
        self.requests.with_label_values(&labels).inc();
        self.latency.with_label_values(&labels).observe(seconds);
    }

    /// The text exposition, with the pool gauges read at scrape time.
    pub fn render(&self, pool: &crate::db::Pool) -> String {
        let state = pool.state();
        self.pool_connections.set(i64::from(state.connections));
        self.pool_idle.set(i64::from(state.idle_connections));
        self.pool_max.set(i64::from(pool.max_size()));
        let now = crate::live::relay::status();
        for state in RelayStatus::ALL {
            self.live_relay
                .with_label_values(&[state.as_str()])
                .set(i64::from(state == now));
        }
        let mut out = Vec::new();
        TextEncoder::new()
            .encode(&self.registry.gather(), &mut out)
            .expect("encoding to memory cannot fail");
        String::from_utf8(out).expect("the text format is UTF-8")
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new()
    }
}
