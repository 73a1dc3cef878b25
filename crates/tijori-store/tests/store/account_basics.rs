//! Account basics (issue 13, item 7): password reset links, password and e-mail
//! changes, and the customer canceling an unpaid order. Included by `store.rs`, so
//! every test runs on both databases with its harness.

use super::*;

mod resets {
    use super::*;
    use tijori_core::jobs::JobStatus;
    use tijori_core::mail::OutboxMail;

    fn mail(user: &User, body: &str) -> OutboxMail {
        OutboxMail {
            id: format!("mail_{}", &PaymentId::generate().as_str()[4..]),
            user_id: user.id.clone(),
            to: user.email.as_str().to_owned(),
            subject: "Reset your password".into(),
            body: body.into(),
            status: "queued".into(),
            error: None,
            created_at: t0(),
            sent_at: None,
        }
    }

    fn hash(c: char) -> TokenHash {
        TokenHash(c.to_string().repeat(64))
    }

    fn minutes(n: i64) -> Duration {
        Duration::minutes(n)
    }

    async fn password_of(h: &Harness, user: &User) -> Result<String> {
        Ok(h.store
            .user_credentials(&user.username)
            .await?
            .context("credentials")?
            .1
             .0)
    }

    /// A link opens its user's reset until it expires, works once, and using it sets
    /// the password and ends every session and API token of the user. The store is
    /// given only the hash, and keeps only that.
    async fn a_link_works_once_until_it_expires(db: TestDatabase) -> Result<()> {
        let h = Harness::open(&db).await?;
        let sita = h.user("sita").await?;
        let ram = h.user("ram").await?;
        h.store
            .create_session(&sita.id, &hash('s'), "csrf", t0() + days(14), t0())
            .await?;
        h.store
            .create_api_token(&sita.id, &hash('t'), t0() + days(30), t0())
            .await?;
        h.store
            .create_session(&ram.id, &hash('r'), "csrf", t0() + days(14), t0())
            .await?;

        let link = hash('a');
        let m = mail(&sita, "the link");
        h.store
            .create_password_reset(&sita.id, &link, t0() + minutes(30), &m, t0())
            .await?;
        // Kept by its hash, nothing more of the secret.
        ensure!(
            h.scalar(
                "SELECT count(*) FROM password_resets WHERE token_hash = $1",
                &link.0
            )
            .await?
                == 1
        );
        // The mail is in the outbox, with the job that delivers it.
        let outbox = h.store.outbox(10).await?;
        ensure!(outbox.len() == 1 && outbox[0].id == m.id, "{outbox:?}");
        let jobs = h.store.jobs(Some(JobStatus::Queued), 10).await?;
        ensure!(
            jobs.iter().any(|j| j.payload.contains(&m.id)),
            "no delivery job: {jobs:?}"
        );

        let opened = h.store.password_reset(&link, t0() + minutes(29)).await?;
        ensure!(opened.map(|u| u.id) == Some(sita.id.clone()));
        ensure!(
            h.store.password_reset(&hash('b'), t0()).await?.is_none(),
            "a wrong link"
        );
        ensure!(
            h.store
                .password_reset(&link, t0() + minutes(30))
                .await?
                .is_none(),
            "expired at its time"
        );
        let new = PasswordHashString("$argon2id$v=19$new".into());
        ensure!(h
            .store
            .use_password_reset(&link, &new, t0() + minutes(31))
            .await?
            .is_none());
        ensure!(
            password_of(&h, &sita).await? != new.0,
            "an expired link changed it"
        );
        ensure!(h
            .store
            .use_password_reset(&hash('b'), &new, t0())
            .await?
            .is_none());

        let used = h
            .store
            .use_password_reset(&link, &new, t0() + minutes(5))
            .await?
            .context("the link works")?;
        ensure!(used.id == sita.id);
        ensure!(password_of(&h, &sita).await? == new.0);
        ensure!(
            h.store.session(&hash('s'), t0()).await?.is_none(),
            "session ended"
        );
        ensure!(
            h.store.user_by_api_token(&hash('t'), t0()).await?.is_none(),
            "API token ended"
        );
        ensure!(
            h.store.session(&hash('r'), t0()).await?.is_some(),
            "another user's session stays"
        );
        // Once.
        let again = PasswordHashString("$argon2id$v=19$again".into());
        ensure!(h
            .store
            .use_password_reset(&link, &again, t0() + minutes(6))
            .await?
            .is_none());
        ensure!(h
            .store
            .password_reset(&link, t0() + minutes(6))
            .await?
            .is_none());
        ensure!(password_of(&h, &sita).await? == new.0);
        Ok(())
    }

    /// Only the newest link works; a password change ends every open link, every
    /// API token and every session but the one that asked.
    async fn a_new_link_or_a_password_change_ends_the_old_links(db: TestDatabase) -> Result<()> {
        let h = Harness::open(&db).await?;
        let sita = h.user("sita").await?;
        h.store
            .create_password_reset(
                &sita.id,
                &hash('a'),
                t0() + minutes(30),
                &mail(&sita, "a"),
                t0(),
            )
            .await?;
        h.store
            .create_password_reset(
                &sita.id,
                &hash('b'),
                t0() + minutes(30),
                &mail(&sita, "b"),
                t0(),
            )
            .await?;
        ensure!(h.store.password_reset(&hash('a'), t0()).await?.is_none());
        ensure!(h.store.password_reset(&hash('b'), t0()).await?.is_some());

        for s in ['1', '2', '3'] {
            h.store
                .create_session(&sita.id, &hash(s), "csrf", t0() + days(14), t0())
                .await?;
        }
        h.store
            .create_api_token(&sita.id, &hash('t'), t0() + days(30), t0())
            .await?;
        let new = PasswordHashString("$argon2id$v=19$changed".into());
        h.store
            .change_password(&sita.id, &new, Some(&hash('2')))
            .await?;
        ensure!(password_of(&h, &sita).await? == new.0);
        ensure!(h.store.session(&hash('1'), t0()).await?.is_none());
        ensure!(h.store.session(&hash('2'), t0()).await?.is_some(), "kept");
        ensure!(h.store.session(&hash('3'), t0()).await?.is_none());
        ensure!(h.store.user_by_api_token(&hash('t'), t0()).await?.is_none());
        ensure!(
            h.store.password_reset(&hash('b'), t0()).await?.is_none(),
            "a link asked for before the change cannot undo it"
        );
        assert_not_found(
            h.store
                .change_password(&UserId::generate(), &new, None)
                .await,
            "change_password for an unknown user",
        );
        Ok(())
    }

    /// Two uses of one link at once: one sets its password, the other finds it used.
    async fn concurrent_uses_of_a_link_set_one_password(db: TestDatabase) -> Result<()> {
        let h = Harness::open(&db).await?;
        let sita = h.user("sita").await?;
        let link = hash('a');
        h.store
            .create_password_reset(&sita.id, &link, t0() + minutes(30), &mail(&sita, "a"), t0())
            .await?;
        let barrier = Arc::new(Barrier::new(4));
        let tasks: Vec<_> = (0..4)
            .map(|i| {
                let (store, barrier, link) = (h.store.clone(), barrier.clone(), link.clone());
                tokio::spawn(async move {
                    barrier.wait().await;
                    let new = PasswordHashString(format!("$argon2id$v=19$racer{i}"));
                    store
                        .use_password_reset(&link, &new, t0() + minutes(1))
                        .await
                        .map(|u| u.map(|_| new.0))
                })
            })
            .collect();
        let mut winners = Vec::new();
        for t in tasks {
            if let Some(w) = t.await?? {
                winners.push(w);
            }
        }
        ensure!(winners.len() == 1, "{winners:?}");
        ensure!(password_of(&h, &sita).await? == winners[0]);
        Ok(())
    }

    async fn emails_are_looked_up_and_changed_uniquely(db: TestDatabase) -> Result<()> {
        let h = Harness::open(&db).await?;
        let sita = h.user("sita").await?;
        let ram = h.user("ram").await?;
        let found = h
            .store
            .user_by_email(&Email::parse("SITA@example.com")?)
            .await?;
        ensure!(found.map(|u| u.id) == Some(sita.id.clone()));
        ensure!(h
            .store
            .user_by_email(&Email::parse("nobody@example.com")?)
            .await?
            .is_none());
        assert_conflict(
            h.store
                .set_email(&sita.id, &Email::parse("ram@example.com")?)
                .await,
            "an address another account has",
        );
        h.store
            .set_email(&sita.id, &Email::parse("sita@new.example")?)
            .await?;
        let sita = h.store.user(&sita.id).await?.context("user")?;
        ensure!(sita.email.as_str() == "sita@new.example");
        ensure!(h.store.user(&ram.id).await?.context("user")?.email.as_str() == "ram@example.com");
        Ok(())
    }

    test_both!(
        a_link_works_once_until_it_expires,
        a_new_link_or_a_password_change_ends_the_old_links,
        concurrent_uses_of_a_link_set_one_password,
        emails_are_looked_up_and_changed_uniquely,
    );
}

mod cancel {
    use super::*;
    use tijori_core::events::EventType;
    use tijori_core::id::{OrderId, ProductId};
    use tijori_core::shop::{NewProduct, Order, OrderCaps, OrderRequest, OrderStatus};

    const STOCK: u32 = 10;

    fn etb(minor: i64) -> Money {
        Money::from_minor(minor, Currency::Etb).unwrap()
    }

    async fn product(h: &Harness, name: &str, stock: u32) -> Result<ProductId> {
        Ok(h.store
            .create_product(
                NewProduct {
                    name: name.into(),
                    description: String::new(),
                    price: etb(85_000),
                    stock,
                },
                t0(),
            )
            .await?
            .id)
    }

    async fn order(h: &Harness, user: &User, product: &ProductId, quantity: i64) -> Result<Order> {
        let request = OrderRequest::parse([(product.as_str(), quantity)])?;
        h.store
            .create_order(
                &OrderId::generate(),
                &user.id,
                &request,
                &OrderCaps::UNLIMITED,
                t0() + Duration::minutes(30),
                t0(),
            )
            .await?
            .map_err(|e| anyhow::anyhow!("{e}"))
    }

    /// A Chapa payment for the order, its checkout open.
    async fn payment(h: &Harness, user: &User, order: &Order) -> Result<Payment> {
        let payment = Payment {
            id: PaymentId::generate(),
            user_id: user.id.clone(),
            gateway: GatewayKind::Chapa,
            purpose: Purpose::Order {
                order_id: order.id.clone(),
            },
            amount: order.total,
            status: PaymentStatus::Initiated,
            checkout: CheckoutKind::Hosted,
            provider_ref: None,
            provider_txn_id: None,
            payment_url: None,
            expires_at: None,
            status_reason: None,
            created_at: t0(),
            updated_at: t0(),
        };
        h.store.insert_payment(&payment).await?;
        Ok(h.store
            .record_checkout(
                &payment.id,
                payment.id.as_str(),
                "https://checkout.chapa.co/checkout/payment/x",
                None,
                &RawAnswer {
                    http_status: 200,
                    body: "{}".into(),
                },
                t0(),
            )
            .await?)
    }

    fn paid(order: &Order) -> GatewayAnswer {
        GatewayAnswer {
            status: GatewayStatus::Paid,
            amount_minor: order.total.minor(),
            currency: Some(Currency::Etb),
            transaction_id: Some("APref".into()),
            raw: RawAnswer {
                http_status: 200,
                body: "{\"status\":\"success\"}".into(),
            },
        }
    }

    async fn stock(h: &Harness, id: &ProductId) -> Result<u32> {
        Ok(h.store.product(id).await?.context("product")?.stock)
    }

    async fn status(h: &Harness, order: &Order) -> Result<OrderStatus> {
        Ok(h.store.order(&order.id).await?.context("order")?.status)
    }

    /// Canceling gives the stock back once: not again on a second cancel, nor from
    /// the expiry job later; someone else, a paid order and an expired one cannot.
    async fn canceling_gives_the_stock_back_once(db: TestDatabase) -> Result<()> {
        let h = Harness::open(&db).await?;
        let almaz = h.user("almaz").await?;
        let dawit = h.user("dawit").await?;
        let coffee = product(&h, "Coffee", STOCK).await?;
        let o = order(&h, &almaz, &coffee, 3).await?;
        ensure!(stock(&h, &coffee).await? == STOCK - 3);

        ensure!(
            !h.store.cancel_order(&o.id, &dawit.id, t0()).await?,
            "not theirs"
        );
        ensure!(status(&h, &o).await? == OrderStatus::Pending);
        ensure!(
            h.store
                .cancel_order(&o.id, &almaz.id, t0() + days(0))
                .await?
        );
        ensure!(status(&h, &o).await? == OrderStatus::Canceled);
        ensure!(stock(&h, &coffee).await? == STOCK);
        ensure!(
            !h.store.cancel_order(&o.id, &almaz.id, t0()).await?,
            "twice"
        );
        let later = t0() + Duration::minutes(31);
        ensure!(h.store.expire_orders(later, 10).await?.is_empty());
        ensure!(stock(&h, &coffee).await? == STOCK, "returned once");
        let events: Vec<EventType> = h
            .store
            .events_since(t0(), 100)
            .await?
            .into_iter()
            .filter(|e| e.order.as_ref() == Some(&o.id))
            .map(|e| e.kind)
            .collect();
        ensure!(events == vec![EventType::OrderCanceled], "{events:?}");

        // Paid: not canceled.
        let p = order(&h, &almaz, &coffee, 2).await?;
        let pay = payment(&h, &almaz, &p).await?;
        h.settle(&pay, &paid(&p), t0()).await?;
        ensure!(status(&h, &p).await? == OrderStatus::Paid);
        ensure!(!h.store.cancel_order(&p.id, &almaz.id, t0()).await?);
        ensure!(status(&h, &p).await? == OrderStatus::Paid);
        ensure!(stock(&h, &coffee).await? == STOCK - 2);

        // Past its time (before the expiry job has run): the job gives it back.
        let e = order(&h, &almaz, &coffee, 1).await?;
        ensure!(!h.store.cancel_order(&e.id, &almaz.id, later).await?);
        ensure!(status(&h, &e).await? == OrderStatus::Pending);
        ensure!(h.store.expire_orders(later, 10).await? == vec![e.id.clone()]);
        ensure!(stock(&h, &coffee).await? == STOCK - 2);
        Ok(())
    }

    /// Money that arrives after the customer canceled takes the stock again if it is
    /// there (the late-payment rule), or is held for a refund.
    async fn money_after_a_cancel_takes_the_stock_again_or_is_held(db: TestDatabase) -> Result<()> {
        let h = Harness::open(&db).await?;
        let almaz = h.user("almaz").await?;
        let coffee = product(&h, "Coffee", 3).await?;
        let o = order(&h, &almaz, &coffee, 2).await?;
        let pay = payment(&h, &almaz, &o).await?;
        ensure!(h.store.cancel_order(&o.id, &almaz.id, t0()).await?);
        ensure!(stock(&h, &coffee).await? == 3);
        let late = h.settle(&pay, &paid(&o), t0()).await?;
        ensure!(late.payment.status == PaymentStatus::Completed, "{late:?}");
        ensure!(status(&h, &o).await? == OrderStatus::Paid);
        ensure!(stock(&h, &coffee).await? == 1, "taken again");

        // This time the stock is gone by the time the money arrives.
        let o2 = order(&h, &almaz, &coffee, 1).await?;
        let pay2 = payment(&h, &almaz, &o2).await?;
        ensure!(h.store.cancel_order(&o2.id, &almaz.id, t0()).await?);
        let other = order(&h, &almaz, &coffee, 1).await?;
        ensure!(stock(&h, &coffee).await? == 0, "{other:?}");
        let held = h.settle(&pay2, &paid(&o2), t0()).await?;
        ensure!(
            held.payment.status == PaymentStatus::NeedsReview,
            "{held:?}"
        );
        ensure!(status(&h, &o2).await? == OrderStatus::Canceled);
        ensure!(stock(&h, &coffee).await? == 0);
        Ok(())
    }

    /// A cancel, the payment settling and the expiry job, all at once, many times:
    /// whichever moves the order first decides, and the shelf holds what it should.
    async fn a_cancel_racing_a_payment_and_the_expiry_job_counts_stock_once(
        db: TestDatabase,
    ) -> Result<()> {
        let h = Harness::open(&db).await?;
        let almaz = h.user("almaz").await?;
        let coffee = product(&h, "Coffee", 1_000).await?;
        for round in 0..8 {
            let o = order(&h, &almaz, &coffee, 2).await?;
            let pay = payment(&h, &almaz, &o).await?;
            let before = stock(&h, &coffee).await? + 2;
            // The expiry job runs "late" every other round, so it may take the order.
            let expire_at = if round % 2 == 0 {
                t0() + Duration::minutes(31)
            } else {
                t0()
            };
            let barrier = Arc::new(Barrier::new(3));
            let cancel = {
                let (store, barrier, id, user) = (
                    h.store.clone(),
                    barrier.clone(),
                    o.id.clone(),
                    almaz.id.clone(),
                );
                tokio::spawn(async move {
                    barrier.wait().await;
                    store.cancel_order(&id, &user, t0()).await
                })
            };
            let settle = {
                let (store, barrier, pay, answer) =
                    (h.store.clone(), barrier.clone(), pay.clone(), paid(&o));
                tokio::spawn(async move {
                    barrier.wait().await;
                    super::super::settle(&*store, &pay, &answer, t0()).await
                })
            };
            let expire = {
                let (store, barrier) = (h.store.clone(), barrier.clone());
                tokio::spawn(async move {
                    barrier.wait().await;
                    store.expire_orders(expire_at, 10).await
                })
            };
            let canceled = cancel.await??;
            let settled = settle.await??;
            let expired = expire.await??;
            let now = status(&h, &o).await?;
            let left = stock(&h, &coffee).await?;
            let held_by_order = if now == OrderStatus::Paid { 2 } else { 0 };
            ensure!(
                left + held_by_order == before,
                "round {round}: {now:?}, {left} left of {before} (canceled {canceled}, \
                 expired {expired:?}, payment {:?})",
                settled.payment.status
            );
            ensure!(
                settled.payment.status == PaymentStatus::Completed
                    || settled.payment.status == PaymentStatus::NeedsReview,
                "{settled:?}"
            );
        }
        Ok(())
    }

    /// The stock invariant, over any sequence of orders, cancels, expiries and
    /// (possibly late) payments: what is on the shelf plus what pending and paid
    /// orders hold is what the shelf started with.
    async fn stock_plus_what_orders_hold_is_conserved(db: TestDatabase) -> Result<()> {
        use proptest::prelude::*;
        use proptest::strategy::ValueTree as _;
        use proptest::test_runner::TestRunner;

        #[derive(Clone, Copy, Debug)]
        enum Step {
            Order(i64),
            Cancel(usize),
            Pay(usize),
            Expire,
        }
        let step = prop_oneof![
            (1i64..=4).prop_map(Step::Order),
            (0usize..6).prop_map(Step::Cancel),
            (0usize..6).prop_map(Step::Pay),
            Just(Step::Expire),
        ];
        let runs = proptest::collection::vec(step, 1..12);
        let mut runner = TestRunner::deterministic();

        let h = Harness::open(&db).await?;
        let almaz = h.user("almaz").await?;
        for _ in 0..12 {
            let steps = runs
                .new_tree(&mut runner)
                .map_err(|e| anyhow::anyhow!("{e}"))?
                .current();
            let coffee = product(&h, "Coffee", 6).await?;
            let mut orders: Vec<(Order, Payment)> = Vec::new();
            // Each step a minute on; orders live 30 minutes from t0(), so the late
            // steps of a long run find them expired.
            for (i, step) in steps.iter().enumerate() {
                let now = t0() + Duration::minutes(3 * i64::try_from(i)?);
                match *step {
                    Step::Order(n) => {
                        let request = OrderRequest::parse([(coffee.as_str(), n)])?;
                        let made = h
                            .store
                            .create_order(
                                &OrderId::generate(),
                                &almaz.id,
                                &request,
                                &OrderCaps::UNLIMITED,
                                t0() + Duration::minutes(30),
                                now,
                            )
                            .await?;
                        if let Ok(o) = made {
                            let p = payment(&h, &almaz, &o).await?;
                            orders.push((o, p));
                        }
                    }
                    Step::Cancel(k) => {
                        if let Some((o, _)) = orders.get(k) {
                            h.store.cancel_order(&o.id, &almaz.id, now).await?;
                        }
                    }
                    Step::Pay(k) => {
                        if let Some((o, p)) = orders.get(k) {
                            let p = h.store.payment(&p.id).await?.context("payment")?;
                            h.settle(&p, &paid(o), now).await?;
                        }
                    }
                    Step::Expire => {
                        h.store.expire_orders(now, 100).await?;
                    }
                }
                let mut held = 0;
                for (o, _) in &orders {
                    let s = status(&h, o).await?;
                    if matches!(s, OrderStatus::Pending | OrderStatus::Paid) {
                        held += o.items.iter().map(|i| i.quantity).sum::<u32>();
                    }
                }
                let left = stock(&h, &coffee).await?;
                ensure!(
                    left + held == 6,
                    "{steps:?} at {i}: {left} on the shelf, {held} held by orders"
                );
            }
        }
        Ok(())
    }

    test_both!(
        canceling_gives_the_stock_back_once,
        money_after_a_cancel_takes_the_stock_again_or_is_held,
        a_cancel_racing_a_payment_and_the_expiry_job_counts_stock_once,
        stock_plus_what_orders_hold_is_conserved,
    );
}
