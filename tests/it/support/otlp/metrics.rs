//! Received metrics, flattened with their resource and scope: every kind
//! of data point in one shape, with the exemplars that link it to traces.

use std::fmt;

use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
use opentelemetry_proto::tonic::common::v1::KeyValue;
use opentelemetry_proto::tonic::metrics::v1::{Exemplar, exemplar, metric, number_data_point};

use super::AggregationTemporality;
use super::value::{Attributes, attributes_map, flatten_resource, hex, scope_name};

/// What kind of data a metric carried.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MetricKind {
    /// A gauge of numbers.
    Gauge,
    /// A sum (counter or up-down counter) of numbers.
    Sum,
    /// An explicit-bucket histogram.
    Histogram,
    /// An exponential histogram.
    ExponentialHistogram,
    /// A summary.
    Summary,
    /// No data was set.
    Empty,
}

/// A number data point's value, kept as sent so a test can tell integer
/// from double instruments.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Number {
    /// An integer value (`as_int`).
    Int(i64),
    /// A double value (`as_double`).
    Double(f64),
}

impl Number {
    /// The value as a double, whatever it was sent as.
    pub fn as_f64(&self) -> f64 {
        match *self {
            Number::Int(i) => i as f64,
            Number::Double(d) => d,
        }
    }
}

/// One exemplar of a data point: mainly so tests can check that metrics link
/// back to traces.
#[derive(Clone, Debug)]
pub struct ReceivedExemplar {
    /// The trace id as lowercase hex, or empty.
    pub trace_id: String,
    /// The span id as lowercase hex, or empty.
    pub span_id: String,
    /// The measured value, if any.
    pub value: Option<Number>,
}

/// One data point of any metric kind, flattened: the fields that do not
/// apply to the metric's kind are `None` or empty.
#[derive(Clone, Debug)]
pub struct DataPoint {
    /// The data point's attributes.
    pub attributes: Attributes,
    /// For gauges and sums: the value.
    pub value: Option<Number>,
    /// For histograms and summaries: how many measurements.
    pub count: Option<u64>,
    /// For histograms and summaries: the sum of the measurements, if sent.
    pub sum: Option<f64>,
    /// For histograms: the smallest measurement, if sent.
    pub min: Option<f64>,
    /// For histograms: the largest measurement, if sent.
    pub max: Option<f64>,
    /// For explicit-bucket histograms: the count in each bucket.
    pub bucket_counts: Vec<u64>,
    /// For explicit-bucket histograms: the bucket boundaries.
    pub explicit_bounds: Vec<f64>,
    /// The exemplars attached to the point.
    pub exemplars: Vec<ReceivedExemplar>,
}

impl DataPoint {
    fn empty(attributes: &[KeyValue], exemplars: &[Exemplar]) -> DataPoint {
        DataPoint {
            attributes: Attributes(attributes_map(attributes)),
            value: None,
            count: None,
            sum: None,
            min: None,
            max: None,
            bucket_counts: Vec::new(),
            explicit_bounds: Vec::new(),
            exemplars: exemplars.iter().map(flatten_exemplar).collect(),
        }
    }

    /// The value of a gauge or sum point as a double.
    pub fn value_f64(&self) -> Option<f64> {
        self.value.as_ref().map(Number::as_f64)
    }
}

impl fmt::Display for DataPoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.attributes)?;
        if let Some(v) = &self.value {
            write!(f, " value={v:?}")?;
        }
        if let Some(c) = self.count {
            write!(f, " count={c}")?;
        }
        if let Some(s) = self.sum {
            write!(f, " sum={s:?}")?;
        }
        if !self.exemplars.is_empty() {
            let ids: Vec<&str> = self.exemplars.iter().map(|e| e.trace_id.as_str()).collect();
            write!(f, " exemplar_traces={ids:?}")?;
        }
        Ok(())
    }
}

/// One received metric (from one export), flattened with its resource and
/// scope. Cumulative metrics are exported again and again, so the same name
/// shows up once per export: see [`OtlpReceiver::latest_metric`].
#[derive(Clone, Debug)]
pub struct ReceivedMetric {
    /// The resource's `service.name`, if it had one.
    pub service_name: Option<String>,
    /// All resource attributes.
    pub resource: Attributes,
    /// The instrumentation scope's name (the meter's name).
    pub scope_name: String,
    /// The metric name.
    pub name: String,
    /// The metric description.
    pub description: String,
    /// The metric unit.
    pub unit: String,
    /// What kind of data it carried.
    pub kind: MetricKind,
    /// For sums: whether monotonic.
    pub is_monotonic: Option<bool>,
    /// For sums and histograms: the temporality.
    pub temporality: Option<AggregationTemporality>,
    /// The data points.
    pub data_points: Vec<DataPoint>,
}

impl ReceivedMetric {
    /// The first data point whose attributes include all these string pairs
    /// (pass `&[]` for the first point).
    pub fn point_with(&self, pairs: &[(&str, &str)]) -> Option<&DataPoint> {
        self.data_points
            .iter()
            .find(|p| p.attributes.has_all(pairs))
    }

    /// The trace ids of all exemplars of all data points.
    pub fn exemplar_trace_ids(&self) -> Vec<String> {
        self.data_points
            .iter()
            .flat_map(|p| p.exemplars.iter())
            .filter(|e| !e.trace_id.is_empty())
            .map(|e| e.trace_id.clone())
            .collect()
    }

    /// The metrics of one export request.
    pub(super) fn flatten(request: &ExportMetricsServiceRequest) -> Vec<ReceivedMetric> {
        let mut out = Vec::new();
        for rm in &request.resource_metrics {
            let (resource, service_name) = flatten_resource(rm.resource.as_ref());
            for sm in &rm.scope_metrics {
                let scope_name = scope_name(sm.scope.as_ref());
                for m in &sm.metrics {
                    let mut metric = ReceivedMetric {
                        service_name: service_name.clone(),
                        resource: resource.clone(),
                        scope_name: scope_name.clone(),
                        name: m.name.clone(),
                        description: m.description.clone(),
                        unit: m.unit.clone(),
                        kind: MetricKind::Empty,
                        is_monotonic: None,
                        temporality: None,
                        data_points: Vec::new(),
                    };
                    fill_metric_data(&mut metric, m.data.as_ref());
                    out.push(metric);
                }
            }
        }
        out
    }
}

fn number_points(
    points: &[opentelemetry_proto::tonic::metrics::v1::NumberDataPoint],
) -> Vec<DataPoint> {
    points
        .iter()
        .map(|p| {
            let mut dp = DataPoint::empty(&p.attributes, &p.exemplars);
            dp.value = p.value.map(|v| match v {
                number_data_point::Value::AsInt(i) => Number::Int(i),
                number_data_point::Value::AsDouble(d) => Number::Double(d),
            });
            dp
        })
        .collect()
}

fn fill_metric_data(metric: &mut ReceivedMetric, data: Option<&metric::Data>) {
    let temporality = |t: i32| {
        Some(AggregationTemporality::try_from(t).unwrap_or(AggregationTemporality::Unspecified))
    };
    match data {
        None => {}
        Some(metric::Data::Gauge(g)) => {
            metric.kind = MetricKind::Gauge;
            metric.data_points = number_points(&g.data_points);
        }
        Some(metric::Data::Sum(s)) => {
            metric.kind = MetricKind::Sum;
            metric.is_monotonic = Some(s.is_monotonic);
            metric.temporality = temporality(s.aggregation_temporality);
            metric.data_points = number_points(&s.data_points);
        }
        Some(metric::Data::Histogram(h)) => {
            metric.kind = MetricKind::Histogram;
            metric.temporality = temporality(h.aggregation_temporality);
            metric.data_points = h
                .data_points
                .iter()
                .map(|p| {
                    let mut dp = DataPoint::empty(&p.attributes, &p.exemplars);
                    dp.count = Some(p.count);
                    dp.sum = p.sum;
                    dp.min = p.min;
                    dp.max = p.max;
                    dp.bucket_counts = p.bucket_counts.clone();
                    dp.explicit_bounds = p.explicit_bounds.clone();
                    dp
                })
                .collect();
        }
        Some(metric::Data::ExponentialHistogram(h)) => {
            metric.kind = MetricKind::ExponentialHistogram;
            metric.temporality = temporality(h.aggregation_temporality);
            metric.data_points = h
                .data_points
                .iter()
                .map(|p| {
                    let mut dp = DataPoint::empty(&p.attributes, &p.exemplars);
                    dp.count = Some(p.count);
                    dp.sum = p.sum;
                    dp.min = p.min;
                    dp.max = p.max;
                    dp
                })
                .collect();
        }
        Some(metric::Data::Summary(s)) => {
            metric.kind = MetricKind::Summary;
            metric.data_points = s
                .data_points
                .iter()
                .map(|p| {
                    let mut dp = DataPoint::empty(&p.attributes, &[]);
                    dp.count = Some(p.count);
                    dp.sum = Some(p.sum);
                    dp
                })
                .collect();
        }
    }
}

fn flatten_exemplar(e: &Exemplar) -> ReceivedExemplar {
    ReceivedExemplar {
        trace_id: hex(&e.trace_id),
        span_id: hex(&e.span_id),
        value: e.value.map(|v| match v {
            exemplar::Value::AsInt(i) => Number::Int(i),
            exemplar::Value::AsDouble(d) => Number::Double(d),
        }),
    }
}

impl fmt::Display for ReceivedMetric {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "metric {:?} [{}] {:?} unit={:?} points={}",
            self.name,
            self.service_name.as_deref().unwrap_or("<no service.name>"),
            self.kind,
            self.unit,
            self.data_points.len(),
        )?;
        for p in &self.data_points {
            write!(f, "\n      {p}")?;
        }
        Ok(())
    }
}
