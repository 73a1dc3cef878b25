//! Where tijori's log lines go and in what shape: text for a terminal, JSON (one
//! object per line, with the spans each line happened in) for a log shipper. Every
//! request runs in a span with its request id and, once known, the user's id; the
//! service's entry points open spans with the payment's id, so one payment's whole
//! life is found by its id.

use tracing_subscriber::layer::SubscriberExt as _;
use tracing_subscriber::util::SubscriberInitExt as _;
use tracing_subscriber::{EnvFilter, Layer as _};

/// How log lines are written (`TIJORI_LOG_FORMAT`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    /// One readable line per event, for a terminal or journald.
    #[default]
    Text,
    /// One JSON object per line, with the fields of every span it happened in
    /// (`spans`), for a log shipper.
    Json,
}

/// The filter when `TIJORI_LOG` is not set.
const DEFAULT_FILTER: &str = "info,tower_http=info,sqlx=warn";

/// Installs the process's subscriber: `TIJORI_LOG` filters, `format` shapes. Lines
/// go to standard output (journald and container runtimes collect it). Built with
/// the `otel` feature and given `OTEL_EXPORTER_OTLP_ENDPOINT`, spans are also
/// exported over OTLP; call [`shutdown`] before exit to send the last of them.
pub fn init(format: LogFormat) {
    let filter =
        EnvFilter::try_from_env("TIJORI_LOG").unwrap_or_else(|_| EnvFilter::new(DEFAULT_FILTER));
    let lines = match format {
        LogFormat::Text => tracing_subscriber::fmt::layer().boxed(),
        LogFormat::Json => tracing_subscriber::fmt::layer()
            .json()
            .with_current_span(false)
            .with_span_list(true)
            .boxed(),
    };
    let registry = tracing_subscriber::registry().with(filter).with(lines);
    #[cfg(feature = "otel")]
    let registry = registry.with(otel::layer());
    registry.init();
}

/// Sends the spans still buffered for export (a no-op without the `otel` feature or
/// an endpoint).
pub fn shutdown() {
    #[cfg(feature = "otel")]
    otel::shutdown();
}

/// OpenTelemetry export (`--features otel`): off by default, so the usual build
/// carries none of its dependencies.
#[cfg(feature = "otel")]
mod otel {
    use std::sync::OnceLock;

    use opentelemetry::trace::TracerProvider as _;
    use opentelemetry_sdk::trace::SdkTracerProvider;

    static PROVIDER: OnceLock<SdkTracerProvider> = OnceLock::new();

    /// The export layer when `OTEL_EXPORTER_OTLP_ENDPOINT` (or its traces-only
    /// variant) is set; the exporter reads the rest of the standard `OTEL_*`
    /// settings itself. `None` otherwise, or when the exporter cannot be built (said
    /// on standard error: the subscriber that would log it is not installed yet).
    pub(super) fn layer<S>() -> Option<impl tracing_subscriber::Layer<S>>
    where
        S: tracing::Subscriber + for<'a> tracing_subscriber::registry::LookupSpan<'a>,
    {
        let wanted = [
            "OTEL_EXPORTER_OTLP_ENDPOINT",
            "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
        ]
        .iter()
        .any(|v| std::env::var_os(v).is_some());
        if !wanted {
            return None;
        }
        let exporter = match opentelemetry_otlp::SpanExporter::builder()
            .with_http()
            .build()
        {
            Ok(exporter) => exporter,
            Err(e) => {
                eprintln!("tijori: no OpenTelemetry export: {e}");
                return None;
            }
        };
        let provider = SdkTracerProvider::builder()
            .with_batch_exporter(exporter)
            .with_resource(
                opentelemetry_sdk::Resource::builder()
                    .with_service_name("tijori")
                    .build(),
            )
            .build();
        let tracer = provider.tracer("tijori");
        let _ = PROVIDER.set(provider);
        Some(tracing_opentelemetry::layer().with_tracer(tracer))
    }

    pub(super) fn shutdown() {
        if let Some(provider) = PROVIDER.get() {
            if let Err(e) = provider.shutdown() {
                eprintln!("tijori: OpenTelemetry export did not finish: {e}");
            }
        }
    }
}
