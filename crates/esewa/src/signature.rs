//! eSewa's signature: base64(HMAC-SHA256(secret, "name=value,name=value,…")) (esewa.md
//! §2.1), over the exact text of each value.

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use hmac::{Hmac, Mac};
use sha2::Sha256;
use subtle::ConstantTimeEq;

type HmacSha256 = Hmac<Sha256>;

/// `name=value` for each pair, joined with `,`, in the order given: the order of
/// `signed_field_names` (esewa.md §2.1). Values are used exactly as given; `"110"` and
/// `"110.00"` sign differently (esewa.md §6).
pub(crate) fn message<'a>(pairs: impl IntoIterator<Item = (&'a str, &'a str)>) -> String {
    pairs
        .into_iter()
        .map(|(name, value)| format!("{name}={value}"))
        .collect::<Vec<_>>()
        .join(",")
}

fn mac(secret: &[u8], message: &str) -> [u8; 32] {
    let mut mac = HmacSha256::new_from_slice(secret).expect("HMAC takes keys of any length");
    mac.update(message.as_bytes());
    mac.finalize().into_bytes().into()
}

/// The standard, padded base64 of the HMAC (44 characters).
pub(crate) fn sign(secret: &[u8], message: &str) -> String {
    STANDARD.encode(mac(secret, message))
}

/// Whether `signature` (base64, as received) is the HMAC of `message`, compared in
/// constant time so that timing says nothing about how much of a forgery was right.
pub(crate) fn matches(secret: &[u8], message: &str, signature: &str) -> bool {
    let Ok(received) = STANDARD.decode(signature.trim()) else {
        return false;
    };
    received.ct_eq(&mac(secret, message)).into()
}

#[cfg(test)]
mod tests {
    use super::*;

    const UAT: &[u8] = b"8gBm/:&EnhH.1/q";

    #[test]
    fn the_docs_form_vector_v1() {
        let m = message([
            ("total_amount", "110"),
            ("transaction_uuid", "241028"),
            ("product_code", "EPAYTEST"),
        ]);
        assert_eq!(
            m,
            "total_amount=110,transaction_uuid=241028,product_code=EPAYTEST"
        );
        assert_eq!(
            sign(UAT, &m),
            "i94zsd3oXF6ZsSr/kGqT4sSzYQzjj1W/waxjWyRwaME="
        );
        assert!(matches(
            UAT,
            &m,
            "i94zsd3oXF6ZsSr/kGqT4sSzYQzjj1W/waxjWyRwaME="
        ));
    }

    #[test]
    fn the_docs_stand_alone_example_v3_is_a_doc_bug() {
        // esewa.md §2.2: the docs print 4Ov7… for this input; it computes to 5DZy….
        let m = "total_amount=100,transaction_uuid=11-201-13,product_code=EPAYTEST";
        assert_eq!(sign(UAT, m), "5DZywcrTKD0gia/rsSMcrRHmJl+4Tbol6S+lWgdJ94E=");
        assert!(!matches(
            UAT,
            m,
            "4Ov7pCI1zIOdwtV2BRMUNjz1upIlT/COTxfLhWvVurE="
        ));
    }

    #[test]
    fn the_exact_text_matters() {
        // esewa.md §6: V1 over `110.00`, and the key with the docs' stray `(`.
        let m = "total_amount=110.00,transaction_uuid=241028,product_code=EPAYTEST";
        assert_eq!(sign(UAT, m), "V6+IHlQi69e8F6uP8OH7dQmtXwIP+WhBuD0vL5kiEMA=");
        let v1 = "total_amount=110,transaction_uuid=241028,product_code=EPAYTEST";
        assert_eq!(
            sign(b"8gBm/:&EnhH.1/q(", v1),
            "dq1n0HVj9CxaamJMoHSSPEJcVwhrghq3L469Pmg2sUE="
        );
    }

    #[test]
    fn garbage_signatures_do_not_match() {
        let m = "total_amount=110,transaction_uuid=241028,product_code=EPAYTEST";
        for bad in [
            "",
            "not base64!",
            "aTk0eg==",
            "i94zsd3oXF6ZsSr/kGqT4sSzYQzjj1W/waxjWyRwaMA=",
        ] {
            assert!(!matches(UAT, m, bad), "{bad:?}");
        }
    }
}
