//! The tijori binary's library half: configuration and wiring, shared by `main` and
//! the integration tests (which start the real application on port 0).

pub mod app;
pub mod config;
pub mod demo;
pub mod logging;
pub mod mail;
pub mod webhooks;

pub use app::Application;
pub use config::Config;
