//! Metric families, a small builder of them, and their encoding in the Prometheus text format
//! (version 0.0.4) with `prometheus-client`.
//!
//! The values are constants read from a snapshot, so they are given to `prometheus-client` as
//! a [`Collector`] (its way to export values it does not own) rather than as registered live
//! metrics. Every family's series are written together, once, in the order families were first
//! used.

use std::collections::HashMap;

use prometheus_client::{
    collector::Collector,
    encoding::{prometheus_text, DescriptorEncoder, NoLabelSet},
    metrics::MetricType,
    registry::Registry,
};

/// A series' labels, in order.
pub(super) type Labels = Vec<(&'static str, String)>;

/// The type of a family.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Kind {
    /// Monotonic since the agent started (`_total` is appended).
    Counter,
    /// A current value.
    Gauge,
    /// Classic histogram buckets, sum and count.
    Histogram,
}

/// One value.
#[derive(Clone, Debug, PartialEq)]
pub(super) enum Sample {
    /// A counter's value.
    Count(u64),
    /// A gauge's value.
    Value(f64),
    /// A histogram: sum, count and per-bucket counts (not cumulative) with their upper bounds.
    Histogram {
        sum: f64,
        count: u64,
        buckets: Vec<(f64, u64)>,
    },
}

/// One family: name (without `_total` for counters), help text, type, series.
#[derive(Clone, Debug)]
pub(super) struct Family {
    pub(super) name: &'static str,
    pub(super) help: &'static str,
    pub(super) kind: Kind,
    pub(super) rows: Vec<(Labels, Sample)>,
}

/// Collects families in first-use order.
#[derive(Default, Debug)]
pub(super) struct Out {
    pub(super) fams: Vec<Family>,
    index: HashMap<&'static str, usize>,
}

impl Out {
    fn push(&mut self, name: &'static str, help: &'static str, kind: Kind, row: (Labels, Sample)) {
        let i = *self.index.entry(name).or_insert_with(|| {
            self.fams.push(Family {
                name,
                help,
                kind,
                rows: Vec::new(),
            });
            self.fams.len() - 1
        });
        if let Some(f) = self.fams.get_mut(i) {
            f.rows.push(row);
        }
    }

    /// A counter series.
    pub(super) fn counter(
        &mut self,
        name: &'static str,
        help: &'static str,
        labels: Labels,
        v: u64,
    ) {
        self.push(name, help, Kind::Counter, (labels, Sample::Count(v)));
    }

    /// A gauge series.
    pub(super) fn gauge(&mut self, name: &'static str, help: &'static str, labels: Labels, v: f64) {
        self.push(name, help, Kind::Gauge, (labels, Sample::Value(v)));
    }

    /// A 0/1 gauge series.
    pub(super) fn flag(&mut self, name: &'static str, help: &'static str, labels: Labels, v: bool) {
        self.gauge(name, help, labels, if v { 1.0 } else { 0.0 });
    }

    /// A histogram series.
    pub(super) fn histogram(
        &mut self,
        name: &'static str,
        help: &'static str,
        labels: Labels,
        h: Sample,
    ) {
        self.push(name, help, Kind::Histogram, (labels, h));
    }
}

/// The families as a `prometheus-client` collector.
#[derive(Debug)]
struct Families(Vec<Family>);

impl Collector for Families {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        for f in &self.0 {
            let t = match f.kind {
                Kind::Counter => MetricType::Counter,
                Kind::Gauge => MetricType::Gauge,
                Kind::Histogram => MetricType::Histogram,
            };
            let mut family = encoder.encode_descriptor(f.name, f.help, None, t)?;
            for (labels, sample) in &f.rows {
                let mut m = family.encode_family(labels)?;
                match sample {
                    Sample::Count(v) => m.encode_counter::<NoLabelSet, u64, u64>(v, None)?,
                    Sample::Value(v) => m.encode_gauge(v)?,
                    Sample::Histogram {
                        sum,
                        count,
                        buckets,
                    } => m.encode_histogram::<NoLabelSet>(*sum, *count, buckets, None)?,
                }
            }
        }
        Ok(())
    }
}

/// The families in the Prometheus text format (version 0.0.4).
pub(super) fn encode(fams: Vec<Family>) -> String {
    let mut registry = Registry::default();
    registry.register_collector(Box::new(Families(fams)));
    let mut text = String::new();
    // Writing to a String does not fail; an encoder error would leave a truncated body, which
    // is still better than none.
    let _ = prometheus_text::encode(&mut text, &registry);
    text
}

/// The content type of [`encode`]'s output.
pub(super) const CONTENT_TYPE: &str = prometheus_text::CONTENT_TYPE;
