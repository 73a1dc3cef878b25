//! Initiate request validation (khalti.md §3.1, §3.3, §11).

use serde_json::{json, Map, Value};

use super::drf;
use super::store::NewPayment;

/// Khalti's own minimum-amount message (khalti.md §1.4, §3.3).
pub(crate) const AMOUNT_TOO_SMALL: &str =
    "Amount should be greater than Rs. 10, that is 1000 paisa.";
/// Reported under `amount` (khalti.md §3.3).
pub(crate) const BREAKDOWN_MISMATCH: &str = "Amount Breakdown mismatch.";
/// Smallest accepted amount, in paisa (Rs 10).
pub(crate) const MIN_AMOUNT: i64 = 1000;

/// Field errors in DRF's shape, without `error_key` (added when answering).
pub(crate) type FieldErrors = Map<String, Value>;

fn push(errors: &mut FieldErrors, field: &str, msg: &str) {
    errors.insert(field.to_owned(), json!([msg]));
}

/// DRF's answer when the body is not a JSON object.
pub(crate) fn not_an_object(data: &Value) -> FieldErrors {
    let mut errors = FieldErrors::new();
    push(
        &mut errors,
        "non_field_errors",
        &format!(
            "Invalid data. Expected a dictionary, but got {}.",
            drf::python_type(data)
        ),
    );
    errors
}

/// Validates an initiate body the way a DRF serializer would: every field is checked
/// and all failing fields are reported together; the cross-field check (breakdown sum)
/// runs only when every field is valid. Unknown keys are ignored; `merchant_*` keys
/// are kept.
pub(crate) fn initiate(data: &Value) -> Result<NewPayment, FieldErrors> {
    let Some(obj) = data.as_object() else {
        return Err(not_an_object(data));
    };
    let mut errors = FieldErrors::new();

    let return_url = drf::url_field(obj.get("return_url"), true)
        .map_err(|m| push(&mut errors, "return_url", m))
        .ok()
        .flatten();
    let website_url = drf::url_field(obj.get("website_url"), true)
        .map_err(|m| push(&mut errors, "website_url", m))
        .ok()
        .flatten();
    let amount = match drf::integer_field(obj.get("amount"), true) {
        Ok(Some(a)) if a < MIN_AMOUNT => {
            push(&mut errors, "amount", AMOUNT_TOO_SMALL);
            None
        }
        Ok(a) => a,
        Err(m) => {
            push(&mut errors, "amount", m);
            None
        }
    };
    let purchase_order_id = drf::char_field(obj.get("purchase_order_id"), true)
        .map_err(|m| push(&mut errors, "purchase_order_id", m))
        .ok()
        .flatten();
    let purchase_order_name = drf::char_field(obj.get("purchase_order_name"), true)
        .map_err(|m| push(&mut errors, "purchase_order_name", m))
        .ok()
        .flatten();
    let breakdown = match breakdown(obj.get("amount_breakdown")) {
        Ok(b) => b,
        Err(e) => {
            errors.insert("amount_breakdown".to_owned(), e);
            None
        }
    };

    let (
        Some(return_url),
        Some(website_url),
        Some(amount),
        Some(purchase_order_id),
        Some(purchase_order_name),
        true,
    ) = (
        return_url,
        website_url,
        amount,
        purchase_order_id,
        purchase_order_name,
        errors.is_empty(),
    )
    else {
        return Err(errors);
    };

    // Object-level validation: the breakdown must add up to `amount` (§3.1), reported
    // under `amount` (§3.3). An empty list is treated like an absent one (our choice;
    // khalti.md does not say). Negative entries (discounts) are allowed (§3.1 note).
    if let Some(amounts) = &breakdown {
        let sum: i128 = amounts.iter().map(|&a| i128::from(a)).sum();
        if !amounts.is_empty() && sum != i128::from(amount) {
            push(&mut errors, "amount", BREAKDOWN_MISMATCH);
            return Err(errors);
        }
    }

    let merchant_extra: Map<String, Value> = obj
        .iter()
        .filter(|(k, _)| k.starts_with("merchant_"))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    let present = |key: &str| obj.get(key).filter(|v| !v.is_null()).cloned();
    Ok(NewPayment {
        return_url,
        website_url,
        amount,
        purchase_order_id,
        purchase_order_name,
        // khalti.md §3.1 / §12 q6: customer_info, product_details and modes are stored
        // as sent, without validation (no error is documented for them).
        customer_info: present("customer_info"),
        amount_breakdown: present("amount_breakdown"),
        product_details: present("product_details"),
        modes: present("modes"),
        merchant_extra,
    })
}

/// `amount_breakdown`: optional list of `{label, amount}`; returns the amounts. Errors
/// use DRF's nested-list shape: one object per item, `{}` for valid items.
fn breakdown(v: Option<&Value>) -> Result<Option<Vec<i64>>, Value> {
    let items = match v {
        // A null breakdown is treated like an absent one (our choice).
        None | Some(Value::Null) => return Ok(None),
        Some(Value::Array(items)) => items,
        Some(other) => {
            return Err(json!([format!(
                "Expected a list of items but got type \"{}\".",
                drf::python_type(other)
            )]))
        }
    };
    let mut amounts = Vec::with_capacity(items.len());
    let mut item_errors = Vec::with_capacity(items.len());
    let mut failed = false;
    for item in items {
        let mut errors = FieldErrors::new();
        match item.as_object() {
            None => {
                errors = not_an_object(item);
            }
            Some(entry) => {
                if let Err(m) = drf::char_field(entry.get("label"), true) {
                    push(&mut errors, "label", m);
                }
                match drf::integer_field(entry.get("amount"), true) {
                    Ok(Some(a)) => amounts.push(a),
                    Ok(None) => {}
                    Err(m) => push(&mut errors, "amount", m),
                }
            }
        }
        failed |= !errors.is_empty();
        item_errors.push(Value::Object(errors));
    }
    if failed {
        Err(Value::Array(item_errors))
    } else {
        Ok(Some(amounts))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Value {
        json!({
            "return_url": "https://example.com/payment/",
            "website_url": "https://example.com/",
            "amount": 1300,
            "purchase_order_id": "test12",
            "purchase_order_name": "test",
            "customer_info": { "name": "Khalti Bahadur", "email": "example@gmail.com", "phone": "9800000123" },
            "amount_breakdown": [ { "label": "Mark Price", "amount": 1000 }, { "label": "VAT", "amount": 300 } ],
            "product_details": [ { "identity": "1234567890", "name": "Khalti logo", "total_price": 1300, "quantity": 1, "unit_price": 1300 } ],
            "merchant_username": "merchant_name",
            "merchant_extra": "merchant_extra",
            "something_else": 1
        })
    }

    #[test]
    fn accepts_the_documented_sample() {
        let p = initiate(&sample()).unwrap();
        assert_eq!(p.amount, 1300);
        assert_eq!(p.merchant_extra.len(), 2);
        assert!(p.merchant_extra.contains_key("merchant_username"));
    }

    #[test]
    fn reports_all_fields_together() {
        let errors =
            initiate(&json!({"return_url": "", "amount": 10, "purchase_order_name": null}))
                .unwrap_err();
        assert_eq!(
            Value::Object(errors),
            json!({
                "return_url": ["This field may not be blank."],
                "website_url": ["This field is required."],
                "amount": [AMOUNT_TOO_SMALL],
                "purchase_order_id": ["This field is required."],
                "purchase_order_name": ["This field may not be null."],
            })
        );
    }

    #[test]
    fn breakdown_mismatch_only_after_fields_pass() {
        let mut body = sample();
        body["amount_breakdown"][1]["amount"] = json!(301);
        let errors = initiate(&body).unwrap_err();
        assert_eq!(
            Value::Object(errors),
            json!({"amount": [BREAKDOWN_MISMATCH]})
        );

        body["website_url"] = json!("nope");
        let errors = initiate(&body).unwrap_err();
        assert_eq!(
            Value::Object(errors),
            json!({"website_url": ["Enter a valid URL."]})
        );
    }

    #[test]
    fn breakdown_items_are_checked() {
        let mut body = sample();
        body["amount_breakdown"] = json!([{"label": "x", "amount": "a"}, {"amount": 1300}, 5]);
        let errors = initiate(&body).unwrap_err();
        assert_eq!(
            Value::Object(errors),
            json!({"amount_breakdown": [
                {"amount": ["A valid integer is required."]},
                {"label": ["This field is required."]},
                {"non_field_errors": ["Invalid data. Expected a dictionary, but got int."]},
            ]})
        );
    }
}
