//! The pages' words in other languages. Templates are written in English and wrap
//! every sentence a visitor reads in `t("…")` (with `{name}` placeholders filled
//! from its keyword arguments: `t("Pay with {gateway}", gateway=g.label)`), as
//! gettext does: the English text is the key, so English needs no catalog. A text
//! made in Rust and shown by a template (a status, an error page's title) is marked
//! where it is written with [`tr`], gettext's `N_`, and the template shows it with
//! `t(…)`.
//!
//! A language is one file here, `<code>.json`, mapping each English text to its
//! translation, listed in [`CATALOGS`]. A page is shown in the language the visitor
//! chose (the footer's links, kept in [`LANGUAGE_COOKIE`]) or their browser asks for
//! (`Accept-Language`), when a catalog for it covers the page's area; the tests below
//! fail when a catalog misses a text of an area it claims, so a page is never half
//! translated.

use std::collections::HashMap;
use std::sync::LazyLock;

/// A translation of the pages.
struct Catalog {
    /// Its language's code ("ne" for Nepali, "am" for Amharic).
    code: &'static str,
    /// The language's name in itself ("नेपाली"), for the choice of language.
    name: &'static str,
    /// English text → translation.
    json: &'static str,
    /// Whether it also translates the operator's pages (a merchant's staff often
    /// work in English; a catalog may cover only what customers read).
    operator: bool,
}

/// The languages with a catalog. English is the templates themselves.
const CATALOGS: &[Catalog] = &[Catalog {
    // The customer's pages only. Written by a fluent but not a native hand: a
    // native speaker's review is still owed.
    code: "ne",
    name: "नेपाली",
    json: include_str!("ne.json"),
    operator: false,
}];

/// Who reads a page, which decides the catalogs that may show it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Area {
    /// Customers' pages (everything outside the operator's area).
    Customer,
    /// The operator's area (`/admin/`).
    Operator,
}

impl Area {
    /// The area of a template, by its name: the operator's are `admin*.html`.
    pub fn of_template(name: &str) -> Area {
        if name.starts_with("admin") {
            Area::Operator
        } else {
            Area::Customer
        }
    }
}

/// Marks a text written in Rust that a template shows through `t(…)`: it returns
/// `text` unchanged, and the catalogs' test finds every text marked so. (Only a
/// string literal on one line is found.)
pub const fn tr(text: &'static str) -> &'static str {
    text
}

/// The cookie holding the language a visitor chose, which goes before what their
/// browser asks for (a Nepali speaker's browser is often set to English).
pub const LANGUAGE_COOKIE: &str = "tijori_lang";

/// The catalogs that may show pages of `area`.
fn covering(area: Area) -> impl Iterator<Item = &'static Catalog> {
    CATALOGS
        .iter()
        .filter(move |c| area == Area::Customer || c.operator)
}

/// The languages pages of `area` can be shown in, English first.
pub fn languages(area: Area) -> impl Iterator<Item = &'static str> {
    std::iter::once("en").chain(covering(area).map(|c| c.code))
}

static LOADED: LazyLock<HashMap<&'static str, HashMap<String, String>>> = LazyLock::new(|| {
    CATALOGS
        .iter()
        .map(|c| {
            let catalog = serde_json::from_str(c.json).expect("built-in catalogs parse");
            (c.code, catalog)
        })
        .collect()
});

/// `text` in `lang`, or as written when there is no translation.
pub fn translate<'a>(lang: &str, text: &'a str) -> std::borrow::Cow<'a, str> {
    match LOADED.get(lang).and_then(|c| c.get(text)) {
        Some(t) => std::borrow::Cow::Owned(t.clone()),
        None => std::borrow::Cow::Borrowed(text),
    }
}

/// The languages pages of `area` can be shown in, each with its name, for a choice
/// of language; empty when English is the only one.
pub fn offered(area: Area) -> Vec<(&'static str, &'static str)> {
    let others: Vec<_> = covering(area).map(|c| (c.code, c.name)).collect();
    if others.is_empty() {
        return others;
    }
    std::iter::once(("en", "English")).chain(others).collect()
}

/// The language to show a page of `area` in: the visitor's choice (`chosen`, from
/// [`LANGUAGE_COOKIE`]) when we have it, else the best for their browser.
pub fn choose(chosen: Option<&str>, accept_language: Option<&str>, area: Area) -> &'static str {
    chosen
        .and_then(|c| languages(area).find(|l| *l == c))
        .unwrap_or_else(|| negotiate(accept_language, area))
}

/// The best of our languages for an `Accept-Language` header ("ne-NP,ne;q=0.9,en;q=0.8"),
/// English when none is offered.
pub fn negotiate(accept_language: Option<&str>, area: Area) -> &'static str {
    let mut wanted: Vec<(f32, &str)> = accept_language
        .unwrap_or("")
        .split(',')
        // A browser names a handful; a stranger's header is not read past this.
        .take(16)
        .filter_map(|part| {
            let mut it = part.trim().split(';');
            let tag = it.next()?.trim();
            let q = it
                .find_map(|p| p.trim().strip_prefix("q="))
                .and_then(|q| q.parse::<f32>().ok())
                .unwrap_or(1.0);
            // `q=0` is "not this one".
            (!tag.is_empty() && q > 0.0).then_some((q, tag))
        })
        .collect();
    wanted.sort_by(|a, b| b.0.total_cmp(&a.0));
    wanted
        .iter()
        .find_map(|(_, tag)| {
            let primary = tag.split('-').next().unwrap_or(tag);
            languages(area).find(|l| l.eq_ignore_ascii_case(primary))
        })
        .unwrap_or("en")
}

/// Every text the templates pass to `t("…")` and the Rust code marks with
/// [`tr`], by area, for the catalogs' completeness test.
#[cfg(test)]
pub fn texts(area: Area) -> std::collections::BTreeSet<String> {
    let templates = crate::pages::TEMPLATES
        .iter()
        .flat_map(|t| t.iter())
        .filter(|(name, _)| Area::of_template(name) == area)
        .map(|(_, source)| source.to_string());
    let code = rust_sources()
        .into_iter()
        .filter(|(path, _)| {
            let operator = path.contains("/pages/admin/");
            operator == (area == Area::Operator)
        })
        .map(|(_, source)| source);
    let mut texts = std::collections::BTreeSet::new();
    for source in templates {
        literals_after(&source, "t(\"", &mut texts);
    }
    for source in code {
        literals_after(&source, "tr(\"", &mut texts);
    }
    texts
}

/// The crate's Rust sources, with their paths.
#[cfg(test)]
fn rust_sources() -> Vec<(String, String)> {
    fn walk(dir: &std::path::Path, out: &mut Vec<(String, String)>) {
        for entry in std::fs::read_dir(dir).expect("the crate's sources are readable") {
            let path = entry.expect("a directory entry").path();
            if path.is_dir() {
                walk(&path, out);
            } else if path.extension().is_some_and(|e| e == "rs") {
                let source = std::fs::read_to_string(&path).expect("a source file");
                out.push((path.to_string_lossy().replace('\\', "/"), source));
            }
        }
    }
    let mut out = Vec::new();
    walk(
        std::path::Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/src")),
        &mut out,
    );
    out
}

/// Adds to `texts` the string literal after each `call` in `source` that is a
/// call of its own (not the end of a longer name: `attr(` is not `tr(`).
#[cfg(test)]
fn literals_after(source: &str, call: &str, texts: &mut std::collections::BTreeSet<String>) {
    let mut from = 0;
    while let Some(found) = source[from..].find(call) {
        let at = from + found;
        from = at + call.len();
        let whole = source[..at]
            .chars()
            .next_back()
            .is_none_or(|c| !(c.is_alphanumeric() || c == '_' || c == '.'));
        if !whole {
            continue;
        }
        if let Some(end) = source[from..].find('"') {
            texts.insert(source[from..from + end].to_owned());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The texts of `area` that `catalog` does not translate.
    fn missing(catalog: &HashMap<String, String>, area: Area) -> Vec<String> {
        texts(area)
            .into_iter()
            .filter(|t| !catalog.contains_key(t))
            .collect()
    }

    /// The `{name}` placeholders of a text, in order of name.
    fn placeholders(text: &str) -> Vec<&str> {
        let mut names: Vec<&str> = text
            .split('{')
            .skip(1)
            .filter_map(|rest| rest.split_once('}').map(|(name, _)| name))
            .collect();
        names.sort_unstable();
        names
    }

    #[test]
    fn every_catalog_covers_every_text_of_its_areas() {
        for c in CATALOGS {
            let catalog = &LOADED[c.code];
            let missing = missing(catalog, Area::Customer);
            assert!(missing.is_empty(), "{} misses {missing:?}", c.code);
            if c.operator {
                let missing = self::missing(catalog, Area::Operator);
                assert!(missing.is_empty(), "{} misses {missing:?}", c.code);
            }
        }
    }

    /// A translation names the same values as its English (a lost `{gateway}`
    /// would drop the gateway's name), and a catalog holds no text nothing uses.
    #[test]
    fn every_translation_keeps_its_placeholders_and_is_used() {
        let used: std::collections::BTreeSet<String> = texts(Area::Customer)
            .into_iter()
            .chain(texts(Area::Operator))
            .collect();
        for (code, catalog) in LOADED.iter() {
            for (english, translated) in catalog {
                assert!(
                    used.contains(english),
                    "{code}: {english:?} is used nowhere"
                );
                assert_eq!(
                    placeholders(english),
                    placeholders(translated),
                    "{code}: {english:?} → {translated:?}"
                );
                assert!(
                    !translated.trim().is_empty(),
                    "{code}: {english:?} is empty"
                );
            }
        }
    }

    /// The check above, on a catalog made here: it finds the one text left out,
    /// whether a template's or one marked in Rust.
    #[test]
    fn a_catalog_missing_a_text_is_caught() {
        let texts = texts(Area::Customer);
        assert!(texts.len() > 100, "the pages' texts are wrapped: {texts:?}");
        for expected in [
            "Sign in",
            "Pay with {gateway}",
            "waiting for payment",
            "Page not found",
        ] {
            assert!(texts.contains(expected), "{expected:?} is not found");
        }
        let mut catalog: HashMap<String, String> = texts
            .iter()
            .map(|t| (t.clone(), format!("[{t}]")))
            .collect();
        assert!(missing(&catalog, Area::Customer).is_empty());
        for left_out in ["Sign in", "waiting for payment"] {
            let kept = catalog.remove(left_out).unwrap();
            assert_eq!(missing(&catalog, Area::Customer), vec![left_out.to_owned()]);
            catalog.insert(left_out.to_owned(), kept);
        }
        // The operator's texts are their own area.
        let operator = super::texts(Area::Operator);
        assert!(operator.contains("Refund"), "{operator:?}");
        assert!(!texts.contains("Refund"));
    }

    #[test]
    fn only_whole_calls_are_found() {
        let mut found = std::collections::BTreeSet::new();
        // (Not with `tr` itself, or this test's texts would be found as ours.)
        literals_after(r#"x("a") ax("b") y.x("c") (x("d"))"#, "x(\"", &mut found);
        assert_eq!(found.into_iter().collect::<Vec<_>>(), ["a", "d"]);
    }

    /// `t` escapes the text and its values, keeps markup the template made, and
    /// fills every placeholder.
    #[test]
    fn t_fills_placeholders_and_escapes() {
        let html = crate::pages::Templates::new()
            .render_str(
                r#"{% set when %}<time>x</time>{% endset %}{{ t("Pay {a} <b> {when}", a=name, when=when) }}"#,
                minijinja::context! { name => "<i>" },
            )
            .unwrap();
        assert_eq!(html, "Pay &lt;i&gt; &lt;b&gt; <time>x</time>");
        // Filled once: a value holding another's placeholder keeps it as text.
        let html = crate::pages::Templates::new()
            .render_str(
                r#"{{ t("{note} by {who} {unknown}", note=note, who="asha") }}"#,
                minijinja::context! { note => "see {who}" },
            )
            .unwrap();
        assert_eq!(html, "see {who} by asha {unknown}");
    }

    #[test]
    fn the_visitors_language_is_chosen_among_ours() {
        for area in [Area::Customer, Area::Operator] {
            assert_eq!(negotiate(None, area), "en");
            assert_eq!(negotiate(Some("en-US,en;q=0.9"), area), "en");
            assert_eq!(negotiate(Some("fr;q=0.5, EN;q=0.4"), area), "en");
            assert_eq!(negotiate(Some(";;,q=,"), area), "en");
        }
        // Nepali for customers; the operator's pages stay English, which its
        // catalog does not cover.
        assert_eq!(
            negotiate(Some("ne-NP,ne;q=0.9,en;q=0.8"), Area::Customer),
            "ne"
        );
        assert_eq!(negotiate(Some("en;q=0.8,NE"), Area::Customer), "ne");
        assert_eq!(negotiate(Some("ne-NP"), Area::Operator), "en");
        assert_eq!(negotiate(Some("ne;q=0, en;q=0.5"), Area::Customer), "en");
        // Only the first sixteen languages named are read.
        let long = format!("{}ne", "xx;q=0.1,".repeat(16));
        assert_eq!(negotiate(Some(&long), Area::Customer), "en");
        let short = format!("{}ne", "xx;q=0.1,".repeat(15));
        assert_eq!(negotiate(Some(&short), Area::Customer), "ne");
        // A choice made on the site goes first; one we do not have is ignored.
        assert_eq!(choose(Some("ne"), Some("en"), Area::Customer), "ne");
        assert_eq!(choose(Some("en"), Some("ne"), Area::Customer), "en");
        assert_eq!(choose(Some("xx"), Some("ne"), Area::Customer), "ne");
        assert_eq!(choose(Some("ne"), None, Area::Operator), "en");
        assert_eq!(
            offered(Area::Customer),
            [("en", "English"), ("ne", "नेपाली")]
        );
        assert!(offered(Area::Operator).is_empty());
    }
}
