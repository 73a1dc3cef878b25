//! The signed form the payer's browser posts to eSewa (esewa.md §3).

use serde::Serialize;
use url::Url;

use crate::error::Error;
use crate::paisa::Paisa;
use crate::signature;
use crate::transaction_uuid::TransactionUuid;

/// The names eSewa requires to be signed, in the order it requires (esewa.md §2.1: they
/// "should be mandatory and should be in the same order while creating the signature").
pub const FORM_SIGNED_FIELD_NAMES: &str = "total_amount,transaction_uuid,product_code";

/// What the merchant wants paid, before it is turned into eSewa's form.
///
/// Amounts are [`Paisa`]; the form carries them as rupee text ([`Paisa::to_rupees`]).
/// `total_amount` is not given: it is the sum eSewa requires (esewa.md §3.2), computed
/// when the form is built so the two can never disagree.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FormRequest {
    /// The price of what is sold. Must be more than zero.
    pub amount: Paisa,
    /// Tax on it; zero when unused.
    pub tax_amount: Paisa,
    /// The merchant's service charge; zero when unused.
    pub product_service_charge: Paisa,
    /// The merchant's delivery charge; zero when unused.
    pub product_delivery_charge: Paisa,
    /// This attempt's id, new for every attempt (esewa.md §7).
    pub transaction_uuid: TransactionUuid,
    /// Where eSewa sends the browser after a successful payment, with `?data=…` appended
    /// blindly, even to a URL that already has a query (esewa.md §4.2; see
    /// [`callback_data_from_query`](crate::callback_data_from_query)).
    pub success_url: Url,
    /// Where eSewa sends the browser after a failed, cancelled or pending payment, with
    /// nothing signed (esewa.md §4.3): put the merchant's own reference in it.
    pub failure_url: Url,
}

impl FormRequest {
    /// A payment of `amount` with no tax and no charges.
    pub fn new(
        amount: Paisa,
        transaction_uuid: TransactionUuid,
        success_url: Url,
        failure_url: Url,
    ) -> Self {
        FormRequest {
            amount,
            tax_amount: Paisa::ZERO,
            product_service_charge: Paisa::ZERO,
            product_delivery_charge: Paisa::ZERO,
            transaction_uuid,
            success_url,
            failure_url,
        }
    }

    /// `amount + tax_amount + product_service_charge + product_delivery_charge`.
    pub fn total_amount(&self) -> Option<Paisa> {
        [
            self.tax_amount,
            self.product_service_charge,
            self.product_delivery_charge,
        ]
        .iter()
        .try_fold(self.amount.get(), |sum, part| sum.checked_add(part.get()))
        .map(Paisa::new)
    }
}

/// The eleven fields of eSewa's form, every value the exact text to post (esewa.md §3.2).
///
/// Serialized with eSewa's field names, so it can be handed to a client that posts the
/// form itself; [`FormFields::pairs`] gives them in the docs' order for an HTML form.
/// Nothing here is secret: the signature proves the three signed values, not the key.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct FormFields {
    /// Rupee text of [`FormRequest::amount`].
    pub amount: String,
    /// Rupee text of [`FormRequest::tax_amount`] (`"0"` when unused).
    pub tax_amount: String,
    /// Rupee text of [`FormRequest::product_service_charge`].
    pub product_service_charge: String,
    /// Rupee text of [`FormRequest::product_delivery_charge`].
    pub product_delivery_charge: String,
    /// Rupee text of the sum; signed.
    pub total_amount: String,
    /// The attempt's id; signed.
    pub transaction_uuid: String,
    /// The merchant code; signed.
    pub product_code: String,
    /// Where a successful payment returns.
    pub success_url: String,
    /// Where any other outcome returns.
    pub failure_url: String,
    /// Always [`FORM_SIGNED_FIELD_NAMES`].
    pub signed_field_names: String,
    /// base64(HMAC-SHA256(secret, "total_amount=…,transaction_uuid=…,product_code=…")).
    pub signature: String,
}

impl FormFields {
    /// `(name, value)` for every field, in the order of eSewa's sample form.
    pub fn pairs(&self) -> [(&'static str, &str); 11] {
        [
            ("amount", self.amount.as_str()),
            ("tax_amount", self.tax_amount.as_str()),
            ("total_amount", self.total_amount.as_str()),
            ("transaction_uuid", self.transaction_uuid.as_str()),
            ("product_code", self.product_code.as_str()),
            (
                "product_service_charge",
                self.product_service_charge.as_str(),
            ),
            (
                "product_delivery_charge",
                self.product_delivery_charge.as_str(),
            ),
            ("success_url", self.success_url.as_str()),
            ("failure_url", self.failure_url.as_str()),
            ("signed_field_names", self.signed_field_names.as_str()),
            ("signature", self.signature.as_str()),
        ]
    }

    /// The value of the field called `name`, as eSewa would look it up when it checks
    /// `signed_field_names`.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.pairs()
            .into_iter()
            .find(|(field, _)| *field == name)
            .map(|(_, value)| value)
    }
}

/// A form ready for the browser: where to post it, and what.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct SignedForm {
    /// `<base_url>api/epay/main/v2/form`; the browser POSTs there, as
    /// `application/x-www-form-urlencoded` (an HTML form, esewa.md §3.2).
    pub action: Url,
    /// The fields to post.
    pub fields: FormFields,
}

/// Builds and signs the form; `product_code` and `secret` come from the client.
pub(crate) fn sign_form(
    request: &FormRequest,
    action: Url,
    product_code: &str,
    secret: &[u8],
) -> Result<SignedForm, Error> {
    let invalid = |reason: String| Error::InvalidInput { reason };
    if request.amount == Paisa::ZERO {
        // Open question (esewa.md §1.4, §14.10): no minimum is documented; a zero amount
        // cannot be a payment, and one SDK refuses a zero total.
        return Err(invalid("the amount must be greater than zero".into()));
    }
    let total = request
        .total_amount()
        .ok_or_else(|| invalid("the total amount is too large".into()))?;
    for (name, url) in [
        ("success_url", &request.success_url),
        ("failure_url", &request.failure_url),
    ] {
        if !matches!(url.scheme(), "http" | "https") {
            return Err(invalid(format!("{name} must be an http(s) URL, got {url}")));
        }
    }
    let total_amount = total.to_rupees();
    let transaction_uuid = request.transaction_uuid.as_str().to_string();
    let message = signature::message([
        ("total_amount", total_amount.as_str()),
        ("transaction_uuid", transaction_uuid.as_str()),
        ("product_code", product_code),
    ]);
    let signature = signature::sign(secret, &message);
    Ok(SignedForm {
        action,
        fields: FormFields {
            amount: request.amount.to_rupees(),
            tax_amount: request.tax_amount.to_rupees(),
            product_service_charge: request.product_service_charge.to_rupees(),
            product_delivery_charge: request.product_delivery_charge.to_rupees(),
            total_amount,
            transaction_uuid,
            product_code: product_code.to_string(),
            success_url: request.success_url.to_string(),
            failure_url: request.failure_url.to_string(),
            signed_field_names: FORM_SIGNED_FIELD_NAMES.to_string(),
            signature,
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const UAT: &[u8] = b"8gBm/:&EnhH.1/q";

    fn action() -> Url {
        "https://rc-epay.esewa.com.np/api/epay/main/v2/form"
            .parse()
            .unwrap()
    }

    fn request(amount: u64, tax: u64, uuid: &str) -> FormRequest {
        let mut r = FormRequest::new(
            Paisa::new(amount),
            TransactionUuid::new(uuid).unwrap(),
            "https://developer.esewa.com.np/success".parse().unwrap(),
            "https://developer.esewa.com.np/failure".parse().unwrap(),
        );
        r.tax_amount = Paisa::new(tax);
        r
    }

    /// eSewa's check of a posted form, as the reference describes it (esewa.md §2.1):
    /// the names listed in `signed_field_names`, their posted values, the HMAC.
    fn verifies(fields: &FormFields, secret: &[u8]) -> bool {
        let names: Vec<&str> = fields.signed_field_names.split(',').collect();
        let pairs: Option<Vec<(&str, &str)>> = names
            .iter()
            .map(|name| fields.get(name).map(|value| (*name, value)))
            .collect();
        pairs.is_some_and(|pairs| {
            signature::matches(secret, &signature::message(pairs), &fields.signature)
        })
    }

    #[test]
    fn the_docs_sample_form() {
        // esewa.md §3.2: amount 100, tax 10, total 110, uuid 241028, EPAYTEST (V1).
        let form = sign_form(&request(10000, 1000, "241028"), action(), "EPAYTEST", UAT).unwrap();
        let f = &form.fields;
        assert_eq!(f.amount, "100");
        assert_eq!(f.tax_amount, "10");
        assert_eq!(f.total_amount, "110");
        assert_eq!(f.product_service_charge, "0");
        assert_eq!(f.product_delivery_charge, "0");
        assert_eq!(f.transaction_uuid, "241028");
        assert_eq!(f.product_code, "EPAYTEST");
        assert_eq!(f.success_url, "https://developer.esewa.com.np/success");
        assert_eq!(f.failure_url, "https://developer.esewa.com.np/failure");
        assert_eq!(
            f.signed_field_names,
            "total_amount,transaction_uuid,product_code"
        );
        assert_eq!(f.signature, "i94zsd3oXF6ZsSr/kGqT4sSzYQzjj1W/waxjWyRwaME=");
        assert_eq!(form.action, action());
        assert!(verifies(f, UAT));
        assert_eq!(f.get("total_amount"), Some("110"));
        assert_eq!(f.get("secret"), None);
        let json = serde_json::to_value(&form).unwrap();
        assert_eq!(json["fields"]["total_amount"], "110");
        assert_eq!(
            json["action"],
            "https://rc-epay.esewa.com.np/api/epay/main/v2/form"
        );
    }

    #[test]
    fn the_total_is_the_sum_of_the_parts() {
        let mut r = request(10050, 1305, "t-1");
        r.product_service_charge = Paisa::new(100);
        r.product_delivery_charge = Paisa::new(5);
        let form = sign_form(&r, action(), "EPAYTEST", UAT).unwrap();
        assert_eq!(form.fields.total_amount, "114.6");
        assert_eq!(form.fields.amount, "100.5");
        assert_eq!(form.fields.tax_amount, "13.05");
        assert_eq!(form.fields.product_service_charge, "1");
        assert_eq!(form.fields.product_delivery_charge, "0.05");
    }

    #[test]
    fn unusable_requests_are_refused() {
        let zero = sign_form(&request(0, 1000, "t"), action(), "EPAYTEST", UAT);
        assert!(matches!(zero, Err(Error::InvalidInput { .. })), "{zero:?}");
        let huge = sign_form(&request(u64::MAX, 1, "t"), action(), "EPAYTEST", UAT);
        assert!(matches!(huge, Err(Error::InvalidInput { .. })), "{huge:?}");
        let mut ftp = request(100, 0, "t");
        ftp.failure_url = "ftp://shop.example/failed".parse().unwrap();
        let ftp = sign_form(&ftp, action(), "EPAYTEST", UAT);
        assert!(matches!(ftp, Err(Error::InvalidInput { .. })), "{ftp:?}");
    }

    fn uuid() -> impl Strategy<Value = String> {
        "[A-Za-z0-9-]{1,40}"
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(1_000))]

        /// A form's signature verifies with its own fields, and with nobody else's: a
        /// signed field taken from another form (another total, uuid or merchant) breaks
        /// it unless the text is the same.
        #[test]
        fn a_signature_verifies_only_with_its_own_fields(
            a_amount in 1u64..10_000_000_000, a_tax in 0u64..1_000_000, a_uuid in uuid(),
            b_amount in 1u64..10_000_000_000, b_tax in 0u64..1_000_000, b_uuid in uuid(),
            a_code in "[A-Z]{3,10}", b_code in "[A-Z]{3,10}",
        ) {
            let a = sign_form(&request(a_amount, a_tax, &a_uuid), action(), &a_code, UAT).unwrap();
            let b = sign_form(&request(b_amount, b_tax, &b_uuid), action(), &b_code, UAT).unwrap();
            prop_assert!(verifies(&a.fields, UAT));
            prop_assert!(verifies(&b.fields, UAT));
            prop_assert!(!verifies(&a.fields, b"another merchant's key"));

            let mut swapped = a.fields.clone();
            swapped.total_amount = b.fields.total_amount.clone();
            prop_assert_eq!(verifies(&swapped, UAT), a.fields.total_amount == b.fields.total_amount);

            let mut swapped = a.fields.clone();
            swapped.transaction_uuid = b.fields.transaction_uuid.clone();
            prop_assert_eq!(verifies(&swapped, UAT), a_uuid == b_uuid);

            let mut swapped = a.fields.clone();
            swapped.product_code = b.fields.product_code.clone();
            prop_assert_eq!(verifies(&swapped, UAT), a_code == b_code);

            let mut swapped = a.fields.clone();
            swapped.signature = b.fields.signature.clone();
            prop_assert_eq!(verifies(&swapped, UAT), a.fields.signature == b.fields.signature);

            // Unsigned fields do not take part, as eSewa's docs say.
            let mut unsigned = a.fields.clone();
            unsigned.amount = b.fields.amount.clone();
            prop_assert!(verifies(&unsigned, UAT));
        }
    }
}
