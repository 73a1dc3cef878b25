//! The shop's pages without JavaScript: the cart cookie, placing an order per
//! currency, paying it through Chapa's hosted checkout and the return page; and the
//! admin page.

use reqwest::StatusCode;
use serde_json::Value;
use tijori_core::store::OperatorEventKind;
use tijori_testkit::{test_both, TestDatabase};

use crate::helpers::{browser, client, csrf_token, location, page, post_form, TestApp};

/// A product as the JSON API shows it.
async fn product_in(app: &TestApp, currency: &str) -> Value {
    let products: Vec<Value> = client()
        .get(app.url("/api/products/"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    products
        .into_iter()
        .find(|p| p["currency"] == currency)
        .unwrap_or_else(|| panic!("no product in {currency}"))
}

async fn stock_of(app: &TestApp, currency: &str) -> u64 {
    product_in(app, currency).await["stock"].as_u64().unwrap()
}

async fn a_cart_becomes_an_order_paid_with_chapa(db: TestDatabase) {
    let app = TestApp::spawn(db).await;
    let coffee = product_in(&app, "ETB").await;
    let tea = product_in(&app, "NPR").await;
    let (coffee_id, tea_id) = (coffee["id"].as_str().unwrap(), tea["id"].as_str().unwrap());
    let stock = coffee["stock"].as_u64().unwrap();

    // Signed out: the shop and the cart work; ordering asks to sign in.
    let shopper = browser();
    let (status, shop) = page(&shopper, &app, "/shop/").await;
    assert_eq!(status, StatusCode::OK);
    assert!(shop.contains(&format!("id=\"add-{coffee_id}\"")), "{shop}");
    let res = post_form(
        &shopper,
        &app,
        "/cart/add",
        &[("product_id", coffee_id), ("quantity", "2")],
    )
    .await;
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    assert_eq!(location(&res), "/cart/");
    let (_, cart) = page(&shopper, &app, "/cart/").await;
    assert!(
        cart.contains("id=\"total-ETB\"><span class=\"money\">ETB 1,700.00<"),
        "{cart}"
    );
    assert!(cart.contains("Sign in to place your order"), "{cart}");
    let res = post_form(
        &shopper,
        &app,
        "/cart/checkout",
        &[("currency", "ETB"), ("csrf_token", "x")],
    )
    .await;
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    assert_eq!(location(&res), "/login?next=%2Fcart%2F");

    // Signing in keeps the cart; from now on forms carry the CSRF token.
    app.register("tigist").await;
    let res = post_form(
        &shopper,
        &app,
        "/login",
        &[
            ("username", "tigist"),
            ("password", "correct horse battery"),
            ("next", "/cart/"),
        ],
    )
    .await;
    assert_eq!(location(&res), "/cart/");
    let (_, cart) = page(&shopper, &app, "/cart/").await;
    assert!(cart.contains("id=\"place-order-ETB\""), "{cart}");
    let csrf = csrf_token(&cart);
    let res = post_form(
        &shopper,
        &app,
        "/cart/add",
        &[("product_id", tea_id), ("quantity", "1")],
    )
    .await;
    assert_eq!(res.status(), StatusCode::FORBIDDEN, "no CSRF token");
    let res = post_form(
        &shopper,
        &app,
        "/cart/add",
        &[
            ("product_id", tea_id),
            ("quantity", "1"),
            ("csrf_token", &csrf),
        ],
    )
    .await;
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    let (_, cart) = page(&shopper, &app, "/cart/").await;
    assert!(
        cart.contains("id=\"place-order-ETB\"") && cart.contains("id=\"place-order-NPR\""),
        "one order per currency: {cart}"
    );

    // A bad quantity changes nothing.
    let qty_field = format!("qty_{coffee_id}");
    let res = post_form(
        &shopper,
        &app,
        "/cart/update",
        &[("csrf_token", &csrf), (&qty_field, "lots")],
    )
    .await;
    assert_eq!(res.status(), StatusCode::BAD_REQUEST);
    assert!(res.text().await.unwrap().contains("id=\"cart-error\""));
    let (_, cart) = page(&shopper, &app, "/cart/").await;
    assert!(cart.contains("ETB 1,700.00"), "{cart}");

    // More than is in stock: the cart comes back with the reason, and loses nothing.
    let too_many = (stock + 1).to_string();
    let res = post_form(
        &shopper,
        &app,
        "/cart/update",
        &[("csrf_token", &csrf), (&qty_field, &too_many)],
    )
    .await;
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    let res = post_form(
        &shopper,
        &app,
        "/cart/checkout",
        &[("currency", "ETB"), ("csrf_token", &csrf)],
    )
    .await;
    assert_eq!(res.status(), StatusCode::CONFLICT);
    let html = res.text().await.unwrap();
    assert!(html.contains(&format!("only {stock} of")), "{html}");
    assert!(html.contains(&format!("value=\"{too_many}\"")), "{html}");
    assert_eq!(stock_of(&app, "ETB").await, stock, "nothing reserved");

    // Two bags: the order is placed, its lines leave the cart, the stock is held.
    let res = post_form(
        &shopper,
        &app,
        "/cart/update",
        &[("csrf_token", &csrf), (&qty_field, "2")],
    )
    .await;
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    let res = post_form(
        &shopper,
        &app,
        "/cart/checkout",
        &[("currency", "ETB"), ("csrf_token", &csrf)],
    )
    .await;
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    let order_path = location(&res);
    assert!(order_path.starts_with("/orders/ord_"), "{order_path}");
    assert_eq!(stock_of(&app, "ETB").await, stock - 2);
    let (_, cart) = page(&shopper, &app, "/cart/").await;
    assert!(
        !cart.contains("place-order-ETB") && cart.contains("place-order-NPR"),
        "{cart}"
    );

    // The order's page: its owner's only.
    let (status, order) = page(&shopper, &app, &order_path).await;
    assert_eq!(status, StatusCode::OK);
    assert!(
        order.contains("id=\"order-status\">waiting for payment<"),
        "{order}"
    );
    assert!(order.contains("id=\"pay-chapa\""), "{order}");
    assert!(
        !order.contains("id=\"pay-khalti\""),
        "Khalti takes no ETB: {order}"
    );
    let stranger = app.register("stranger").await;
    let (stranger_browser, _) = app.sign_in_browser(&stranger).await;
    let (status, _) = page(&stranger_browser, &app, &order_path).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let res = client().get(app.url(&order_path)).send().await.unwrap();
    assert_eq!(res.status(), StatusCode::SEE_OTHER, "signed out");

    // Pay with Chapa: to the hosted checkout, pay, and back to the return page.
    let pay_path = format!("{order_path}pay");
    let res = post_form(
        &shopper,
        &app,
        &pay_path,
        &[("gateway", "chapa"), ("csrf_token", "wrong")],
    )
    .await;
    assert_eq!(res.status(), StatusCode::FORBIDDEN);
    let res = post_form(
        &shopper,
        &app,
        &pay_path,
        &[("gateway", "chapa"), ("csrf_token", &csrf)],
    )
    .await;
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    let checkout = location(&res);
    assert!(checkout.contains("/sandbox/chapa/checkout/"), "{checkout}");
    let res = client()
        .post(&checkout)
        .form(&[("action", "pay")])
        .send()
        .await
        .unwrap();
    assert_eq!(
        res.status(),
        StatusCode::SEE_OTHER,
        "Chapa sends the customer back"
    );
    let back = location(&res);
    assert!(back.contains("/payment-success/?tx_ref=pay_"), "{back}");
    let res = shopper.get(&back).send().await.unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    let html = res.text().await.unwrap();
    assert!(
        html.contains("id=\"headline\">Payment successful"),
        "{html}"
    );
    assert!(html.contains(&format!("href=\"{order_path}\"")), "{html}");

    let (_, order) = page(&shopper, &app, &order_path).await;
    assert!(order.contains("id=\"order-status\">paid<"), "{order}");
    assert!(!order.contains("id=\"pay-"), "nothing left to pay: {order}");
    assert_eq!(stock_of(&app, "ETB").await, stock - 2, "taken once");
    let (_, account) = page(&shopper, &app, "/account/").await;
    assert!(
        account.contains(&order_path) && account.contains(">paid<"),
        "{account}"
    );
}

async fn the_admin_page_is_for_admins(db: TestDatabase) {
    let app = TestApp::spawn(db).await;
    let res = client().get(app.url("/admin/")).send().await.unwrap();
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    assert_eq!(location(&res), "/login?next=%2Fadmin%2F");

    let customer = app.register("customer").await;
    let (customer_browser, customer_csrf) = app.sign_in_browser(&customer).await;
    let (status, html) = page(&customer_browser, &app, "/admin/").await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert!(!html.contains("nav-admin"), "{html}");

    app.tijori
        .create_user(
            "operator",
            "operator@example.com",
            "correct horse battery",
            true,
        )
        .await
        .unwrap();
    let admin = browser();
    let res = post_form(
        &admin,
        &app,
        "/login",
        &[
            ("username", "operator"),
            ("password", "correct horse battery"),
            ("next", "/admin/"),
        ],
    )
    .await;
    assert_eq!(location(&res), "/admin/");
    let (status, html) = page(&admin, &app, "/admin/").await;
    assert_eq!(status, StatusCode::OK);
    assert!(html.contains("Nothing needs attention"), "{html}");
    assert!(html.contains("id=\"nav-admin\""), "{html}");
    let csrf = csrf_token(&html);

    app.tijori
        .store()
        .record_operator_event(
            OperatorEventKind::WebhookUnmatched,
            None,
            "a <signed> webhook for no payment",
            app.tijori.now(),
        )
        .await
        .unwrap();
    let events = app.tijori.operator_events(false).await.unwrap();
    let id = events[0].id;
    let (_, html) = page(&admin, &app, "/admin/").await;
    assert!(
        html.contains("a &lt;signed&gt; webhook for no payment"),
        "{html}"
    );
    let resolve = format!("/admin/events/{id}/resolve");
    assert!(html.contains(&format!("action=\"{resolve}\"")), "{html}");

    let res = post_form(
        &customer_browser,
        &app,
        &resolve,
        &[("csrf_token", &customer_csrf)],
    )
    .await;
    assert_eq!(
        res.status(),
        StatusCode::FORBIDDEN,
        "customers cannot resolve"
    );
    let res = post_form(&admin, &app, &resolve, &[("csrf_token", "wrong")]).await;
    assert_eq!(res.status(), StatusCode::FORBIDDEN, "CSRF");
    assert_eq!(app.tijori.operator_events(false).await.unwrap().len(), 1);
    let res = post_form(&admin, &app, &resolve, &[("csrf_token", &csrf)]).await;
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    assert_eq!(location(&res), "/admin/");
    assert!(app.tijori.operator_events(false).await.unwrap().is_empty());
    let (_, html) = page(&admin, &app, "/admin/").await;
    assert!(html.contains("Nothing needs attention"), "{html}");
}

test_both!(
    a_cart_becomes_an_order_paid_with_chapa,
    the_admin_page_is_for_admins,
);
