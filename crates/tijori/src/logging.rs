//! Where tijori's log lines go and in what shape: text for a terminal, JSON (one
//! object per line, with the spans each line happened in) for a log shipper. Every
//! request runs in a span with its request id and, once known, the user's id; the
//! service's entry points open spans with the payment's id, so one payment's whole
//! life is found by its id.

use tracing_subscriber::EnvFilter;

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
/// go to standard output (journald and container runtimes collect it).
pub fn init(format: LogFormat) {
    let filter =
        EnvFilter::try_from_env("TIJORI_LOG").unwrap_or_else(|_| EnvFilter::new(DEFAULT_FILTER));
    let builder = tracing_subscriber::fmt().with_env_filter(filter);
    match format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder
            .json()
            .with_current_span(false)
            .with_span_list(true)
            .init(),
    }
}
