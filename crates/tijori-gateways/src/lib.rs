//! Adapters from the gateway client crates to tijori-core's `Gateway` port. The
//! clients speak each gateway's language (paisa, pidx, lookup statuses); the core
//! speaks tijori's. The translation, and its judgement calls, live here.

mod chapa;
mod esewa;
mod khalti;

pub use crate::chapa::ChapaGateway;
pub use crate::esewa::EsewaGateway;
pub use crate::khalti::KhaltiGateway;
