//! The minijinja environment; templates are embedded in the binary.

use std::fmt::Write;

use minijinja::{AutoEscape, Environment, Error, Output, State, Value};

const TEMPLATES: &[(&str, &str)] = &[
    ("base.html", include_str!("../templates/base.html")),
    ("index.html", include_str!("../templates/index.html")),
    (
        "khalti/pay.html",
        include_str!("../templates/khalti/pay.html"),
    ),
    (
        "chapa/checkout.html",
        include_str!("../templates/chapa/checkout.html"),
    ),
    (
        "esewa/pay.html",
        include_str!("../templates/esewa/pay.html"),
    ),
];

pub(crate) fn environment() -> Environment<'static> {
    let mut env = Environment::new();
    // Escape everything we render: every template is HTML.
    env.set_auto_escape_callback(|_| AutoEscape::Html);
    env.set_formatter(html_formatter);
    for (name, source) in TEMPLATES {
        env.add_template(name, source)
            .unwrap_or_else(|e| panic!("template {name} does not compile: {e:#}"));
    }
    env
}

/// HTML-escapes like minijinja's default formatter, except that `/` is left alone, so
/// URLs read naturally in the page source (`action="/khalti/pay/"`); escaping `/` is
/// not needed inside quoted attributes or text.
fn html_formatter(out: &mut Output, state: &State, value: &Value) -> Result<(), Error> {
    if state.auto_escape() != AutoEscape::Html || value.is_safe() || value.is_undefined() {
        return minijinja::escape_formatter(out, state, value);
    }
    for c in value.to_string().chars() {
        match c {
            '&' => out.write_str("&amp;")?,
            '<' => out.write_str("&lt;")?,
            '>' => out.write_str("&gt;")?,
            '"' => out.write_str("&quot;")?,
            '\'' => out.write_str("&#x27;")?,
            c => out.write_char(c)?,
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    #[test]
    fn templates_compile_and_escape() {
        let env = super::environment();
        let page = env.get_template("base.html").unwrap();
        let html = page
            .render(minijinja::context! { title => "<script>" })
            .unwrap();
        assert!(html.contains("&lt;script&gt;"), "{html}");
        assert!(!html.contains("<script>"));
        let html = env
            .render_str(
                "<a href=\"{{ u }}\">",
                minijinja::context! { u => "/a/b?x=1&y=\"2\"" },
            )
            .unwrap();
        assert_eq!(html, "<a href=\"/a/b?x=1&amp;y=&quot;2&quot;\">");
    }
}
