//! What every list of the operator's area shares: its query string (search, status,
//! gateway, dates, page) read into a `Listing`, the links to its pages and its CSV
//! export, and how a CSV file is written safely.

use axum::http::{header, HeaderValue};
use axum::response::{IntoResponse, Response};
use chrono::{NaiveDate, NaiveTime};
use serde::{Deserialize, Serialize};
use tijori_core::back_office::{Listed, Listing, MAX_EXPORT_ROWS};
use tijori_core::gateway::GatewayKind;

use crate::error::ApiError;

/// Rows on one page of a list.
pub(super) const PAGE_SIZE: u32 = 50;

/// The highest page a link may ask for: past it the offset would make the database
/// walk a million rows to skip them. Narrow the filter instead.
const MAX_PAGE: u32 = 20_000;

/// A list's query string as sent. Every field is text, so that a bad value gets our
/// own clear error (or a default), not a bare rejection.
#[derive(Clone, Debug, Default, Deserialize, Serialize)]
pub(super) struct ListQuery {
    /// The search box.
    #[serde(default)]
    pub q: Option<String>,
    #[serde(default)]
    pub status: Option<String>,
    #[serde(default)]
    pub gateway: Option<String>,
    /// The first day, `YYYY-MM-DD` (UTC).
    #[serde(default)]
    pub from: Option<String>,
    /// The last day, included.
    #[serde(default)]
    pub to: Option<String>,
    /// 1-based; anything else is the first page.
    #[serde(default)]
    pub page: Option<String>,
}

/// An empty field in a submitted form is no filter.
fn given(value: &Option<String>) -> Option<&str> {
    value.as_deref().map(str::trim).filter(|v| !v.is_empty())
}

fn invalid(detail: impl Into<String>) -> ApiError {
    ApiError::bad_request("validation_error", detail)
}

impl ListQuery {
    /// The page asked for: a number from 1 to `MAX_PAGE`, else the first.
    pub fn page(&self) -> u32 {
        given(&self.page)
            .and_then(|p| p.parse::<u32>().ok())
            .filter(|p| (1..=MAX_PAGE).contains(p))
            .unwrap_or(1)
    }

    /// The listing this query asks for, its status checked by `status_ok` (which
    /// names the statuses allowed, for the error). The page's rows, or every row up to
    /// the export's cap when `export`.
    pub fn listing(
        &self,
        status_ok: impl Fn(&str) -> bool,
        statuses: &[&str],
        export: bool,
    ) -> Result<Listing, ApiError> {
        let status = match given(&self.status) {
            Some(s) if status_ok(s) => Some(s.to_owned()),
            Some(s) => {
                return Err(invalid(format!(
                    "status: {s:?} is not one of {}",
                    statuses.join(", ")
                )))
            }
            None => None,
        };
        let gateway = given(&self.gateway)
            .map(|g| {
                g.parse::<GatewayKind>()
                    .map_err(|_| invalid(format!("gateway: {g:?} is not khalti, esewa or chapa")))
            })
            .transpose()?;
        let from = given(&self.from).map(|d| day("from", d)).transpose()?;
        let to = given(&self.to).map(|d| day("to", d)).transpose()?;
        if let (Some(from), Some(to)) = (from, to) {
            if from > to {
                return Err(invalid("from: the first day comes after the last (to)"));
            }
        }
        let (offset, limit) = if export {
            (0, MAX_EXPORT_ROWS)
        } else {
            ((self.page() - 1) * PAGE_SIZE, PAGE_SIZE)
        };
        Ok(Listing {
            search: given(&self.q).map(|q| q.chars().take(200).collect()),
            status,
            gateway,
            from: from.map(|d| d.and_time(NaiveTime::MIN).and_utc()),
            // The last day is included: up to the next midnight.
            until: to
                .and_then(|d| d.succ_opt())
                .map(|d| d.and_time(NaiveTime::MIN).and_utc()),
            offset,
            limit,
        })
    }

    /// This query string for another page (or none, for the export link).
    pub fn with_page(&self, page: Option<u32>) -> String {
        let q = ListQuery {
            page: page.map(|p| p.to_string()),
            ..self.clone()
        };
        serde_urlencoded::to_string(&q).unwrap_or_default()
    }
}

fn day(field: &str, text: &str) -> Result<NaiveDate, ApiError> {
    NaiveDate::parse_from_str(text, "%Y-%m-%d")
        .map_err(|_| invalid(format!("{field}: {text:?} is not a date like 2025-01-31")))
}

/// Where a list stands: for the page's summary and its previous/next links.
#[derive(Serialize)]
pub(super) struct Paging {
    /// Rows matching the filter, on all pages.
    pub total: i64,
    /// The page shown, 1-based.
    pub page: u32,
    /// The last page (at least 1).
    pub pages: i64,
    /// Query strings of the neighbouring pages, when there are any.
    pub prev: Option<String>,
    pub next: Option<String>,
    /// The export's query string (the same filter, every page).
    pub export: String,
    /// The export holds only the first `MAX_EXPORT_ROWS` rows.
    pub export_capped: bool,
    pub export_cap: u32,
}

impl Paging {
    pub fn of<T>(query: &ListQuery, listed: &Listed<T>) -> Paging {
        let page = query.page();
        let pages = ((listed.total + i64::from(PAGE_SIZE) - 1) / i64::from(PAGE_SIZE)).max(1);
        Paging {
            total: listed.total,
            page,
            pages,
            prev: (page > 1).then(|| query.with_page(Some(page - 1))),
            next: (i64::from(page) < pages).then(|| query.with_page(Some(page + 1))),
            export: query.with_page(None),
            export_capped: listed.total > i64::from(MAX_EXPORT_ROWS),
            export_cap: MAX_EXPORT_ROWS,
        }
    }
}

/// A cell of a CSV file: quoted when it must be, and defused when a spreadsheet would
/// take it for a formula (`=`, `+`, `-`, `@`, and a tab or carriage return that some
/// read the same way): such a cell starts with `'`.
pub(super) fn csv_cell(value: &str) -> String {
    let value = match value.chars().next() {
        Some('=' | '+' | '-' | '@' | '\t' | '\r') => format!("'{value}"),
        _ => value.to_owned(),
    };
    if value.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", value.replace('"', "\"\""))
    } else {
        value
    }
}

/// A CSV file to download, made of a header row and rows of cells. `capped` says
/// (in a header, since the file itself holds only data) that rows were left out.
pub(super) fn csv_file(
    name: &str,
    header: &[&str],
    rows: Vec<Vec<String>>,
    capped: bool,
) -> Response {
    let mut body = String::new();
    for row in std::iter::once(header.iter().map(|h| h.to_string()).collect()).chain(rows) {
        let cells: Vec<String> = row.iter().map(|c| csv_cell(c)).collect();
        body.push_str(&cells.join(","));
        body.push_str("\r\n");
    }
    let mut response = body.into_response();
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/csv; charset=utf-8"),
    );
    if let Ok(v) = HeaderValue::from_str(&format!("attachment; filename=\"{name}\"")) {
        headers.insert(header::CONTENT_DISPOSITION, v);
    }
    headers.insert(
        "x-export-capped",
        HeaderValue::from_static(if capped { "true" } else { "false" }),
    );
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_formula_is_defused_and_a_comma_quoted() {
        assert_eq!(csv_cell("=HYPERLINK(\"x\")"), "\"'=HYPERLINK(\"\"x\"\")\"");
        assert_eq!(csv_cell("+1"), "'+1");
        assert_eq!(csv_cell("-1"), "'-1");
        assert_eq!(csv_cell("@SUM(A1)"), "'@SUM(A1)");
        assert_eq!(csv_cell("a,b"), "\"a,b\"");
        assert_eq!(csv_cell("pay_1"), "pay_1");
        assert_eq!(csv_cell(""), "");
    }

    #[test]
    fn bad_filters_are_explained_and_bad_pages_are_the_first() {
        let q = |status: &str, from: &str, page: &str| ListQuery {
            status: Some(status.into()),
            from: Some(from.into()),
            page: Some(page.into()),
            ..Default::default()
        };
        let ok = |s: &str| s == "completed";
        let err = q("nope", "", "1")
            .listing(ok, &["completed"], false)
            .unwrap_err();
        assert!(err.detail.contains("status"), "{}", err.detail);
        let err = q("", "31/01/2025", "1")
            .listing(ok, &[], false)
            .unwrap_err();
        assert!(err.detail.contains("from"), "{}", err.detail);
        for page in ["0", "-3", "x", "99999999999"] {
            let l = q("", "", page).listing(ok, &[], false).unwrap();
            assert_eq!((l.offset, l.limit), (0, PAGE_SIZE), "{page}");
        }
        let l = q("completed", "2025-01-31", "3")
            .listing(ok, &[], false)
            .unwrap();
        assert_eq!(l.offset, 2 * PAGE_SIZE);
        assert_eq!(l.from.unwrap().to_rfc3339(), "2025-01-31T00:00:00+00:00");
        let reversed = ListQuery {
            from: Some("2025-02-01".into()),
            to: Some("2025-01-01".into()),
            ..Default::default()
        };
        assert!(reversed.listing(ok, &[], false).is_err());
        let export = ListQuery::default().listing(ok, &[], true).unwrap();
        assert_eq!(export.limit, MAX_EXPORT_ROWS);
    }
}
