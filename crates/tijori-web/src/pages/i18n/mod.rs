//! The pages' words in other languages. Templates are written in English and wrap
//! every sentence a customer reads in `t("…")` (with `{name}` placeholders filled
//! from its keyword arguments: `t("Pay with {gateway}", gateway=g.label)`), as
//! gettext does: the English text is the key, so English needs no catalog.
//!
//! A language is one file here, `<code>.json`, mapping each English text to its
//! translation, listed in [`CATALOGS`]. A page is shown in the visitor's language
//! (`Accept-Language`) when a catalog for it exists; the test below fails when a
//! catalog misses a text some template uses, so a page is never half translated.

use std::collections::HashMap;
use std::sync::LazyLock;

/// The languages with a catalog, by their code ("ne" for Nepali, "am" for Amharic).
/// English is the templates themselves.
const CATALOGS: &[(&str, &str)] = &[];

/// The languages pages can be shown in, English first.
pub fn languages() -> impl Iterator<Item = &'static str> {
    std::iter::once("en").chain(CATALOGS.iter().map(|(code, _)| *code))
}

static LOADED: LazyLock<HashMap<&'static str, HashMap<String, String>>> = LazyLock::new(|| {
    CATALOGS
        .iter()
        .map(|(code, json)| {
            let catalog = serde_json::from_str(json).expect("built-in catalogs parse");
            (*code, catalog)
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

/// The best of our languages for an `Accept-Language` header ("ne-NP,ne;q=0.9,en;q=0.8"),
/// English when none is offered.
pub fn negotiate(accept_language: Option<&str>) -> &'static str {
    let mut wanted: Vec<(f32, &str)> = accept_language
        .unwrap_or("")
        .split(',')
        .filter_map(|part| {
            let mut it = part.trim().split(';');
            let tag = it.next()?.trim();
            let q = it
                .find_map(|p| p.trim().strip_prefix("q="))
                .and_then(|q| q.parse::<f32>().ok())
                .unwrap_or(1.0);
            (!tag.is_empty()).then_some((q, tag))
        })
        .collect();
    wanted.sort_by(|a, b| b.0.total_cmp(&a.0));
    wanted
        .iter()
        .find_map(|(_, tag)| {
            let primary = tag.split('-').next().unwrap_or(tag);
            languages().find(|l| l.eq_ignore_ascii_case(primary))
        })
        .unwrap_or("en")
}

/// Every text the templates pass to `t("…")`, for the catalogs' completeness test.
#[cfg(test)]
pub fn texts_in_templates() -> std::collections::BTreeSet<String> {
    let mut texts = std::collections::BTreeSet::new();
    for (_, source) in super::TEMPLATES.iter().flat_map(|t| t.iter()) {
        let mut rest = *source;
        while let Some(at) = rest.find("t(\"") {
            rest = &rest[at + 3..];
            if let Some(end) = rest.find('"') {
                texts.insert(rest[..end].to_owned());
                rest = &rest[end..];
            }
        }
    }
    texts
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The texts some template uses that `catalog` does not translate.
    fn missing(catalog: &HashMap<String, String>) -> Vec<String> {
        texts_in_templates()
            .into_iter()
            .filter(|t| !catalog.contains_key(t))
            .collect()
    }

    #[test]
    fn every_catalog_covers_every_text_the_templates_use() {
        for (code, catalog) in LOADED.iter() {
            let missing = missing(catalog);
            assert!(missing.is_empty(), "{code} misses {missing:?}");
        }
    }

    /// The check above, on a catalog made here: it finds the one text left out.
    #[test]
    fn a_catalog_missing_a_text_is_caught() {
        let texts = texts_in_templates();
        assert!(texts.len() > 40, "the pages' texts are wrapped: {texts:?}");
        assert!(texts.contains("Sign in") && texts.contains("Pay with {gateway}"));
        let mut catalog: HashMap<String, String> = texts
            .iter()
            .map(|t| (t.clone(), format!("[{t}]")))
            .collect();
        assert!(missing(&catalog).is_empty());
        catalog.remove("Sign in");
        assert_eq!(missing(&catalog), vec!["Sign in".to_owned()]);
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
    }

    #[test]
    fn the_visitors_language_is_chosen_among_ours() {
        assert_eq!(negotiate(None), "en");
        assert_eq!(negotiate(Some("en-US,en;q=0.9")), "en");
        // No Nepali catalog yet: English.
        assert_eq!(negotiate(Some("ne-NP,ne;q=0.9")), "en");
        assert_eq!(negotiate(Some("fr;q=0.5, EN;q=0.4")), "en");
        assert_eq!(negotiate(Some(";;,q=,")), "en");
    }
}
