//! `POST /payments`: approves a payment, or declines it (402) by the rules
//! of the endpoint's `options:`.

use poem_openapi::payload::Json;
use poem_openapi::{ApiResponse, Enum, Object};
use serde::Deserialize;
use std::collections::BTreeSet;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::OnceLock;
use telltale::{
    AppCounter, AppHistogram, Empty, ErrorBody, Handler, Input, Setup, SetupError, StatusCode,
};

/// The largest amount the API accepts at all, in euros (a decline rule's
/// `limit_euros` may not exceed it).
pub const MAX_AMOUNT_EUROS: f64 = 1_000_000.0;

/// A payment as the shop asks for it.
#[derive(Object, Debug, Clone)]
pub struct NewPayment {
    /// The shop's order id this payment is for.
    pub order_id: u64,
    /// How much, in euros: more than 0, at most 1,000,000.
    #[oai(validator(minimum(value = "0", exclusive), maximum(value = "1000000")))]
    pub amount_euros: f64,
    /// How it is paid, e.g. `card` (what the shop sends); 1 to 32 characters.
    #[oai(validator(min_length = 1, max_length = 32))]
    pub method: String,
    /// The card's last four digits, when paid by card.
    #[oai(validator(pattern = r"^[0-9]{4}$"))]
    pub card_last4: Option<String>,
}

/// What an authorized payment is.
#[derive(Enum, Debug, Clone, Copy, PartialEq, Eq)]
#[oai(rename_all = "lowercase")]
pub enum PaymentStatus {
    Approved,
}

/// An approved payment.
#[derive(Object, Debug, Clone)]
pub struct Payment {
    /// This service's id of the payment (unique per process start).
    pub payment_id: String,
    pub status: PaymentStatus,
    pub order_id: u64,
    pub amount_euros: f64,
    pub method: String,
}

#[derive(ApiResponse)]
pub enum AuthorizeResponse {
    /// The payment was approved.
    #[oai(status = 201)]
    Approved(Json<Payment>),
    /// The payment was declined: over the limit (`field`: `amount_euros`)
    /// or a declined card (`field`: `card_last4`).
    #[oai(status = 402)]
    Declined(Json<ErrorBody>),
}

/// `options:` of a `payments.authorize` endpoint: the decline rules.
#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct AuthorizeOptions {
    /// Amounts above this many euros are declined (required).
    pub limit_euros: Option<f64>,
    /// Card endings (4 digits) that are always declined, like test cards.
    #[serde(default)]
    pub declined_cards: Vec<String>,
}

/// `payments.authorize`: applies the decline rules, counts each payment by
/// outcome and observes its amount.
pub struct Authorize;

pub struct AuthorizeState {
    limit_euros: f64,
    declined_cards: BTreeSet<String>,
    total: AppCounter<1>,
    amount: AppHistogram<0>,
}

fn declined(field: &str, message: String) -> AuthorizeResponse {
    let mut body = ErrorBody::new(StatusCode::PAYMENT_REQUIRED, message);
    body.field = Some(field.to_string());
    AuthorizeResponse::Declined(Json(body))
}

/// `pay-<process start, hex seconds>-<n>`: unique within a process and
/// across its restarts (a second apart).
fn next_payment_id() -> String {
    static BOOT: OnceLock<u64> = OnceLock::new();
    static NEXT: AtomicU64 = AtomicU64::new(1);
    let boot = *BOOT.get_or_init(|| {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs())
    });
    format!("pay-{boot:x}-{}", NEXT.fetch_add(1, Ordering::Relaxed))
}

fn is_card_ending(s: &str) -> bool {
    s.len() == 4 && s.bytes().all(|b| b.is_ascii_digit())
}

impl Handler for Authorize {
    type Options = AuthorizeOptions;
    type Path = Empty;
    type Query = Empty;
    type Body = NewPayment;
    type Response = AuthorizeResponse;
    type State = AuthorizeState;

    fn name(&self) -> &'static str {
        "payments.authorize"
    }

    fn setup(
        &self,
        o: AuthorizeOptions,
        ctx: &mut Setup<'_>,
    ) -> Result<AuthorizeState, SetupError> {
        let Some(limit_euros) = o.limit_euros else {
            return Err("options.limit_euros is required: amounts above it are declined".into());
        };
        if !(limit_euros > 0.0 && limit_euros <= MAX_AMOUNT_EUROS) {
            return Err(format!(
                "options.limit_euros must be more than 0 and at most {MAX_AMOUNT_EUROS} euros, not {limit_euros}"
            )
            .into());
        }
        let mut declined_cards = BTreeSet::new();
        for (i, c) in o.declined_cards.iter().enumerate() {
            if !is_card_ending(c) {
                return Err(format!(
                    "options.declined_cards[{i}]: {c:?} is not a card ending (exactly 4 digits, quoted: \"0002\")"
                )
                .into());
            }
            if !declined_cards.insert(c.clone()) {
                return Err(format!("options.declined_cards[{i}]: {c:?} is listed twice").into());
            }
        }
        Ok(AuthorizeState {
            limit_euros,
            declined_cards,
            total: ctx.counter("payments_total", ["outcome"])?,
            amount: ctx.histogram("payment_amount_euros", [])?,
        })
    }

    async fn handle(
        &self,
        st: &AuthorizeState,
        req: Input<Empty, Empty, NewPayment>,
    ) -> AuthorizeResponse {
        let p = req.body;
        st.amount.observe([], p.amount_euros);
        // A span of the handler's own: with tracing on, a child span of the
        // request's server span, its fields the span's attributes.
        let span = tracing::info_span!(
            "authorize",
            order_id = p.order_id,
            method = %p.method,
            outcome = tracing::field::Empty,
        );
        let answer = span.in_scope(|| {
            if p.amount_euros > st.limit_euros {
                return declined(
                    "amount_euros",
                    format!(
                        "declined: {} euros is over the limit of {} euros",
                        p.amount_euros, st.limit_euros
                    ),
                );
            }
            if let Some(card) = p
                .card_last4
                .as_deref()
                .filter(|c| st.declined_cards.contains(*c))
            {
                return declined("card_last4", format!("declined: the card ending {card}"));
            }
            AuthorizeResponse::Approved(Json(Payment {
                payment_id: next_payment_id(),
                status: PaymentStatus::Approved,
                order_id: p.order_id,
                amount_euros: p.amount_euros,
                method: p.method.clone(),
            }))
        });
        match &answer {
            AuthorizeResponse::Approved(Json(pay)) => {
                span.record("outcome", "approved");
                st.total.inc(["approved"]);
                tracing::info!(
                    order_id = p.order_id,
                    outcome = "approved",
                    payment_id = %pay.payment_id,
                    amount_euros = p.amount_euros,
                    "payment approved"
                );
            }
            AuthorizeResponse::Declined(Json(e)) => {
                span.record("outcome", "declined");
                st.total.inc(["declined"]);
                tracing::info!(
                    order_id = p.order_id,
                    outcome = "declined",
                    reason = e.field.as_deref().unwrap_or(""),
                    amount_euros = p.amount_euros,
                    "payment declined"
                );
            }
        }
        answer
    }
}
