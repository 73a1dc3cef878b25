//! Products, orders and their stock, opening checkouts for orders, gateway choice, and
//! idempotency keys.

use futures::future::join_all;
use reqwest::StatusCode;
use serde_json::{json, Value};
use tijori_testkit::{test_both, TestDatabase};

use crate::helpers::{client, error_code, TestApp};

async fn an_order_reserves_stock_at_the_price_of_the_day(db: TestDatabase) {
    let app = TestApp::spawn(db).await;
    let user = app.register("abebe").await;
    let coffee = app.new_product("Coffee", "850.50", "ETB", 5).await;
    let pot = app.new_product("Pot", "1200", "ETB", 2).await;

    let (status, order) = app
        .order(
            &user,
            json!([
                {"product_id": coffee, "quantity": 2},
                {"product_id": pot, "quantity": 1},
                {"product_id": coffee, "quantity": 1}
            ]),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{order}");
    assert_eq!(order["status"], "pending");
    assert_eq!(order["currency"], "ETB");
    assert_eq!(order["total"], "3751.50", "3 × 850.50 + 1200");
    assert_eq!(order["items"].as_array().unwrap().len(), 2, "repeats merge");
    assert!(order["expires_at"].is_string());
    assert_eq!(app.product(&coffee).await["stock"], 2);
    assert_eq!(app.product(&pot).await["stock"], 1);

    let id = order["id"].as_str().unwrap();
    assert_eq!(app.order_json(&user, id).await["total"], "3751.50");
    let mine: Vec<Value> = app.get(&user, "/api/orders/").await.json().await.unwrap();
    assert_eq!(mine.len(), 1);

    // Someone else's order is not found, and neither is nonsense.
    let other = app.register("kebede").await;
    let res = app.get(&other, &format!("/api/orders/{id}/")).await;
    assert_eq!(res.status(), StatusCode::NOT_FOUND);
    let res = app.get(&other, "/api/orders/ord_nope/").await;
    assert_eq!(res.status(), StatusCode::NOT_FOUND);
}

async fn short_stock_refuses_the_whole_order(db: TestDatabase) {
    let app = TestApp::spawn(db).await;
    let user = app.register("almaz").await;
    let coffee = app.new_product("Coffee", "850", "ETB", 5).await;
    let pot = app.new_product("Pot", "1200", "ETB", 1).await;
    let (status, body) = app
        .order(
            &user,
            json!([{"product_id": coffee, "quantity": 3}, {"product_id": pot, "quantity": 2}]),
        )
        .await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
    assert_eq!(error_code(&body), "insufficient_stock");
    assert!(body["error"]["detail"].as_str().unwrap().contains("Pot"));
    assert_eq!(
        app.product(&coffee).await["stock"],
        5,
        "nothing is reserved unless everything is"
    );
}

async fn bad_orders_are_refused_clearly(db: TestDatabase) {
    let app = TestApp::spawn(db).await;
    let user = app.register("tigist").await;
    let etb = app.new_product("Coffee", "850", "ETB", 5).await;
    let npr = app.new_product("Tea", "650", "NPR", 5).await;
    for (items, field) in [
        (json!([]), "items"),
        (
            json!([{"product_id": "prod_x", "quantity": 1}]),
            "items[0].product_id",
        ),
        (
            json!([{"product_id": etb, "quantity": 0}]),
            "items[0].quantity",
        ),
        (
            json!([{"product_id": etb, "quantity": -1}]),
            "items[0].quantity",
        ),
        (
            json!([{"product_id": etb, "quantity": 1}, {"product_id": npr, "quantity": 1}]),
            "currencies",
        ),
        (
            json!([{"product_id": "prod_0193a1b2c3d47e5f8a9b0c1d2e3f4a5b", "quantity": 1}]),
            "not for sale",
        ),
    ] {
        let (status, body) = app.order(&user, items.clone()).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{items}: {body}");
        assert!(
            body["error"]["detail"].as_str().unwrap().contains(field),
            "{items}: {body}"
        );
    }
    let res = app
        .post(
            &user,
            "/api/orders/",
            json!({"items": [{"product_id": etb, "quantity": "2"}]}),
        )
        .await;
    assert_eq!(res.status(), StatusCode::BAD_REQUEST);
    assert_eq!(app.product(&etb).await["stock"], 5);
    let res = client()
        .post(app.url("/api/orders/"))
        .json(&json!({"items": [{"product_id": etb, "quantity": 1}]}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
}

async fn fifty_orders_for_ten_in_stock_sell_exactly_ten(db: TestDatabase) {
    let app = TestApp::spawn(db).await;
    let product = app.new_product("Jebena", "1200", "ETB", 10).await;
    let mut users = Vec::new();
    for i in 0..5 {
        users.push(app.register(&format!("buyer{i}")).await);
    }
    let attempts = (0..50).map(|i| {
        let app = &app;
        let user = &users[i % users.len()];
        let product = product.clone();
        async move {
            app.order(user, json!([{"product_id": product, "quantity": 1}]))
                .await
                .0
        }
    });
    let statuses = join_all(attempts).await;
    let created = statuses
        .iter()
        .filter(|s| **s == StatusCode::CREATED)
        .count();
    let refused = statuses
        .iter()
        .filter(|s| **s == StatusCode::CONFLICT)
        .count();
    assert_eq!((created, refused), (10, 40), "{statuses:?}");
    assert_eq!(app.product(&product).await["stock"], 0);
}

async fn initialize_validates_the_order(db: TestDatabase) {
    let app = TestApp::spawn(db).await;
    let owner = app.register("selam").await;
    let other = app.register("dawit").await;
    let coffee = app.product_in("ETB").await;
    let order = app.order_of(&owner, &coffee, 1).await;

    let (status, body) = app.initialize(&other, &order, None).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "not the caller's: {body}");
    let (status, _) = app
        .initialize(&owner, "ord_0193a1b2c3d47e5f8a9b0c1d2e3f4a5b", None)
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, body) = app.initialize(&owner, &order, Some("paypal")).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    // Khalti takes NPR only: a clear 400 that names the way out.
    let (status, body) = app.initialize(&owner, &order, Some("khalti")).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert_eq!(error_code(&body), "unsupported");
    assert!(body["error"]["detail"].as_str().unwrap().contains("chapa"));

    // The default for an ETB order is Chapa; a second click gets the same checkout.
    let (status, first) = app.initialize(&owner, &order, None).await;
    assert_eq!(status, StatusCode::CREATED, "{first}");
    let tx_ref = first["tx_ref"].as_str().unwrap();
    assert!(first["checkout_url"]
        .as_str()
        .unwrap()
        .contains("/sandbox/chapa/checkout/"));
    assert!(first.get("pidx").is_none());
    let (status, second) = app.initialize(&owner, &order, Some("chapa")).await;
    assert_eq!(status, StatusCode::CREATED);
    assert_eq!(second["payment_id"], first["payment_id"]);
    assert_eq!(second["checkout_url"], first["checkout_url"]);
    let payment = app
        .payment(&owner, first["payment_id"].as_str().unwrap())
        .await;
    assert_eq!(payment["purpose"], "order");
    assert_eq!(payment["order_id"], order.as_str());
    assert_eq!(payment["amount"], "850.00");
    assert_eq!(payment["currency"], "ETB");

    // Once paid, the order cannot be paid again.
    app.chapa_settings(|s| s.webhook_url = None);
    app.sandbox().chapa().pay(tx_ref).unwrap();
    app.wait_for_order(&owner, &order, "paid").await;
    let (status, body) = app.initialize(&owner, &order, None).await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
    assert_eq!(error_code(&body), "order_not_pending");
}

async fn an_npr_order_is_paid_with_khalti(db: TestDatabase) {
    let app = TestApp::spawn(db).await;
    let user = app.register("ramesh").await;
    let tea = app.product_in("NPR").await;
    let stock = app.product(&tea).await["stock"].as_u64().unwrap();
    let order = app.order_of(&user, &tea, 2).await;
    let (status, body) = app.initialize(&user, &order, None).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let pidx = body["pidx"].as_str().expect("a Khalti checkout").to_owned();
    let (status, body) = app.initialize(&user, &order, Some("chapa")).await;
    assert_eq!(
        status,
        StatusCode::BAD_REQUEST,
        "Chapa takes no NPR: {body}"
    );

    let (_, first) = app.initialize(&user, &order, Some("khalti")).await;
    app.pay_on_checkout(first["checkout_url"].as_str().unwrap(), "pay")
        .await;
    let (status, verified) = app.verify(&user, &pidx).await;
    assert_eq!(status, StatusCode::OK, "{verified}");
    assert_eq!(verified["status"], "success");
    assert_eq!(verified["order"]["status"], "paid");
    assert!(verified.get("subscription").is_none());
    assert_eq!(
        app.product(&tea).await["stock"].as_u64().unwrap(),
        stock - 2
    );
}

async fn a_subscription_is_paid_with_chapa(db: TestDatabase) {
    let app = TestApp::spawn(db).await;
    let plan = app
        .tijori
        .create_plan(tijori_core::subscription::NewPlan {
            name: "Addis Monthly".into(),
            description: String::new(),
            price: tijori_core::money::Money::parse_major("300", "ETB".parse().unwrap()).unwrap(),
            duration_days: 30,
        })
        .await
        .unwrap();
    let user = app.register("hana").await;
    app.chapa_settings(|s| {
        s.webhook_url = None;
        s.send_callbacks = false;
    });
    let res = app
        .post(
            &user,
            "/api/subscriptions/initiate/",
            json!({"plan_id": plan.id.to_string(), "gateway": "chapa"}),
        )
        .await;
    assert_eq!(res.status(), StatusCode::OK);
    let started: Value = res.json().await.unwrap();
    let tx_ref = started["tx_ref"].as_str().unwrap();
    assert!(started.get("pidx").is_none());

    // Not paid yet: Chapa's verify says so, and so do we.
    let res = app
        .post(
            &user,
            "/api/subscriptions/verify/",
            json!({"tx_ref": tx_ref}),
        )
        .await;
    assert_eq!(res.status(), StatusCode::ACCEPTED);

    app.sandbox().chapa().pay(tx_ref).unwrap();
    let res = app
        .post(
            &user,
            "/api/subscriptions/verify/",
            json!({"tx_ref": tx_ref}),
        )
        .await;
    assert_eq!(res.status(), StatusCode::OK);
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["subscription"]["plan"]["name"], "Addis Monthly");

    // An NPR plan cannot go through Chapa.
    let basic = app.plan_id("Basic").await;
    let res = app
        .post(
            &user,
            "/api/subscriptions/initiate/",
            json!({"plan_id": basic, "gateway": "chapa"}),
        )
        .await;
    assert_eq!(res.status(), StatusCode::BAD_REQUEST);
}

async fn an_idempotency_key_replays_the_first_answer(db: TestDatabase) {
    let app = TestApp::spawn(db).await;
    let user = app.register("yonas").await;
    let coffee = app.new_product("Coffee", "850", "ETB", 10).await;
    let send = |key: &'static str, quantity: i64| {
        let app = &app;
        let user = &user;
        let coffee = coffee.clone();
        async move {
            app.post_keyed(
                user,
                "/api/orders/",
                key,
                json!({"items": [{"product_id": coffee, "quantity": quantity}]}),
            )
            .await
        }
    };
    let first = send("order-1", 2).await;
    assert_eq!(first.status(), StatusCode::CREATED);
    assert!(first.headers().get("idempotent-replayed").is_none());
    let first: Value = first.json().await.unwrap();

    let again = send("order-1", 2).await;
    assert_eq!(again.status(), StatusCode::CREATED);
    assert_eq!(again.headers()["idempotent-replayed"], "true");
    let again: Value = again.json().await.unwrap();
    assert_eq!(again, first, "the same answer, byte for byte");
    assert_eq!(app.product(&coffee).await["stock"], 8, "reserved once");

    let reused = send("order-1", 3).await;
    assert_eq!(reused.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let reused: Value = reused.json().await.unwrap();
    assert_eq!(error_code(&reused), "idempotency_key_reused");

    // Another user's identical key is another request.
    let other = app.register("meron").await;
    let res = app
        .post_keyed(
            &other,
            "/api/orders/",
            "order-1",
            json!({"items": [{"product_id": coffee, "quantity": 2}]}),
        )
        .await;
    assert_eq!(res.status(), StatusCode::CREATED);
    let theirs: Value = res.json().await.unwrap();
    assert_ne!(theirs["id"], first["id"]);
    assert_eq!(app.product(&coffee).await["stock"], 6);

    // Concurrent retries of one key: one order, whatever the interleaving.
    let burst = join_all((0..8).map(|_| send("order-2", 1))).await;
    let mut ids = Vec::new();
    for res in burst {
        match res.status() {
            StatusCode::CREATED => {
                ids.push(res.json::<Value>().await.unwrap()["id"].clone());
            }
            StatusCode::CONFLICT => {
                let body: Value = res.json().await.unwrap();
                assert_eq!(error_code(&body), "idempotency_in_progress");
            }
            other => panic!("unexpected {other}"),
        }
    }
    ids.dedup();
    assert_eq!(ids.len(), 1, "{ids:?}");
    assert_eq!(app.product(&coffee).await["stock"], 5);

    // Initialize and initiate honour keys too; a malformed key is refused.
    let order = first["id"].as_str().unwrap();
    let init = |key: &'static str| {
        let app = &app;
        let user = &user;
        async move {
            let res = app
                .post_keyed(
                    user,
                    "/api/payments/initialize/",
                    key,
                    json!({"order_id": order}),
                )
                .await;
            let status = res.status();
            (status, res.json::<Value>().await.unwrap())
        }
    };
    let (s1, b1) = init("pay-1").await;
    let (s2, b2) = init("pay-1").await;
    assert_eq!((s1, s2), (StatusCode::CREATED, StatusCode::CREATED));
    assert_eq!(b1, b2);
    let plan = app.plan_id("Basic").await;
    let initiate = || async {
        app.post_keyed(
            &user,
            "/api/subscriptions/initiate/",
            "sub-1",
            json!({"plan_id": plan}),
        )
        .await
        .json::<Value>()
        .await
        .unwrap()
    };
    let (a, b) = (initiate().await, initiate().await);
    assert_eq!(a["payment_id"], b["payment_id"], "one payment for one key");
    let res = app
        .post_keyed(
            &user,
            "/api/orders/",
            "has spaces",
            json!({"items": [{"product_id": coffee, "quantity": 1}]}),
        )
        .await;
    assert_eq!(res.status(), StatusCode::BAD_REQUEST);
    assert_eq!(app.product(&coffee).await["stock"], 5);
}

async fn one_account_cannot_hold_the_whole_shop(db: TestDatabase) {
    let app = TestApp::spawn(db).await;
    let user = app.register("hoarder").await;
    let coffee = app.new_product("Coffee", "850", "ETB", 100).await;
    for _ in 0..5 {
        app.order_of(&user, &coffee, 1).await;
    }
    let (status, body) = app
        .order(&user, json!([{"product_id": coffee, "quantity": 1}]))
        .await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
    assert_eq!(error_code(&body), "too_many_pending_orders");
    assert_eq!(app.product(&coffee).await["stock"], 95);
}

test_both!(
    one_account_cannot_hold_the_whole_shop,
    an_order_reserves_stock_at_the_price_of_the_day,
    short_stock_refuses_the_whole_order,
    bad_orders_are_refused_clearly,
    fifty_orders_for_ten_in_stock_sell_exactly_ten,
    initialize_validates_the_order,
    an_npr_order_is_paid_with_khalti,
    a_subscription_is_paid_with_chapa,
    an_idempotency_key_replays_the_first_answer,
);
