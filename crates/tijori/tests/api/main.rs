//! Integration tests: the real application on port 0, on SQLite and on PostgreSQL,
//! against its built-in Khalti sandbox (or a fake Khalti where the sandbox cannot lie
//! the way a test needs).
#![allow(clippy::unwrap_used)] // a test: a panic is its failure report

mod helpers;

mod abuse;
mod account_basics;
mod accounts;
mod attempts;
mod chapa;
mod esewa;
mod gateway_failures;
mod input;
mod lifecycle;
mod live;
mod operations;
mod outgoing;
mod pages;
mod pages_admin;
mod pages_shop;
mod paid_periods;
mod receipts;
mod refunds;
mod shop;
mod subscription_flow;
mod widget;
