//! `POST /orders` and `GET /orders/{id}`: orders kept in the `orders_db`
//! dependency (SQLite by default, Postgres with `DATABASE_URL`), card
//! payments authorized by the `payments` service.

use poem_openapi::payload::Json;
use poem_openapi::{ApiResponse, Object};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use telltale::sqlx::{self, Row};
use telltale::{
    AppCounter, AppHistogram, DependencyError, Empty, ErrorBody, Handler, HttpClient, Input,
    NoOptions, Setup, SetupError, SqlOperation, StatusCode,
};

/// An order as the client sends it.
#[derive(Object, Debug, Clone)]
pub struct NewOrder {
    /// A product id from the catalogue (`options.products` of `POST /orders`).
    pub product_id: u64,
    /// How many, 1 to 100.
    #[oai(validator(minimum(value = "1"), maximum(value = "100")))]
    pub quantity: u32,
    /// How it is paid: card, cash or voucher (anything else counts as `other`).
    /// A card payment is authorized by the payments service.
    #[oai(validator(max_length = 32))]
    pub payment: String,
    /// The card's last four digits, for a card payment.
    #[oai(validator(pattern = "^[0-9]{4}$"))]
    pub card_last4: Option<String>,
}

/// An accepted order.
#[derive(Object, Debug, Clone)]
pub struct Order {
    pub id: u64,
    pub product_id: u64,
    pub quantity: u32,
    pub payment: String,
    /// Price times quantity, in euros.
    pub total_euros: f64,
    /// The principal whose key placed it; only they can read it back.
    pub placed_by: String,
}

/// The path of `GET /orders/{id}`.
#[derive(Object, Debug)]
pub struct OrderPath {
    /// The id `POST /orders` returned.
    pub id: u64,
}

fn error(status: StatusCode, message: String) -> Json<ErrorBody> {
    Json(ErrorBody::new(status, message))
}

/// A dependency failed: logged, and answered 503 without its details.
fn unavailable(e: &DependencyError) -> Json<ErrorBody> {
    tracing::warn!(
        dependency = e.dependency(),
        outcome = e.outcome().as_str(),
        "{}",
        e.message()
    );
    error(
        StatusCode::SERVICE_UNAVAILABLE,
        format!("{} is unavailable, try again", e.dependency()),
    )
}

#[derive(ApiResponse)]
pub enum CreateResponse {
    /// The order was placed.
    #[oai(status = 201)]
    Created(Json<Order>),
    /// The card payment was declined.
    #[oai(status = 402)]
    Declined(Json<ErrorBody>),
    /// The product is not in the catalogue.
    #[oai(status = 404)]
    UnknownProduct(Json<ErrorBody>),
    /// The database or the payments service did not answer in time.
    #[oai(status = 503)]
    Unavailable(Json<ErrorBody>),
}

#[derive(ApiResponse)]
pub enum GetResponse {
    #[oai(status = 200)]
    Found(Json<Order>),
    /// No order has this id that the caller placed (another principal's
    /// order is a 404 too, so that ids reveal nothing).
    #[oai(status = 404)]
    NotFound(Json<ErrorBody>),
    /// The database did not answer in time.
    #[oai(status = 503)]
    Unavailable(Json<ErrorBody>),
}

/// The migrations of each database the shop runs on, embedded.
pub static POSTGRES: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/postgres");
pub static SQLITE: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/sqlite");

/// The migrations ran (a start hook's resource).
pub struct Migrated;

/// The start hook: the database's migrations, in its own dialect.
pub async fn migrate(s: telltale::StartContext) -> Result<Migrated, String> {
    let db = s.sql("orders_db")?;
    let m = if db.system() == "sqlite" {
        &SQLITE
    } else {
        &POSTGRES
    };
    db.migrate(m).await?;
    Ok(Migrated)
}

/// What payments answers to an authorization.
#[derive(Deserialize)]
struct Authorized {
    status: String,
}

/// The error body of a refusal (telltale's `ErrorBody`, read back).
#[derive(Deserialize)]
struct Refusal {
    message: String,
}

/// What the shop asks payments.
#[derive(Serialize)]
struct Authorize<'a> {
    order_id: u64,
    amount_euros: f64,
    method: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    card_last4: Option<&'a str>,
}

/// A card payment's verdict.
enum Verdict {
    Approved,
    Declined(String),
}

async fn authorize(
    payments: &HttpClient,
    order: &Order,
    card_last4: Option<&str>,
) -> Result<Verdict, DependencyError> {
    let r = payments
        .post("/payments")
        .json(&Authorize {
            order_id: order.id,
            amount_euros: order.total_euros,
            method: &order.payment,
            card_last4,
        })
        .send()
        .await?;
    match r.status() {
        StatusCode::PAYMENT_REQUIRED => {
            let why = r
                .json::<Refusal>()
                .map(|b| b.message)
                .unwrap_or_else(|_| "declined".into());
            Ok(Verdict::Declined(why))
        }
        s if s.is_success() && r.json::<Authorized>()?.status == "approved" => {
            Ok(Verdict::Approved)
        }
        s => Ok(Verdict::Declined(format!("payments answered {s}"))),
    }
}

fn order_of(row: &telltale::sqlx::any::AnyRow) -> Result<Order, sqlx::Error> {
    Ok(Order {
        id: row.try_get::<i64, _>("id")? as u64,
        product_id: row.try_get::<i64, _>("product_id")? as u64,
        quantity: row.try_get::<i64, _>("quantity")? as u32,
        payment: row.try_get("payment")?,
        total_euros: row.try_get("total_euros")?,
        placed_by: row.try_get("placed_by")?,
    })
}

/// `options:` of an `orders.create` endpoint: the catalogue's prices.
#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct CreateOptions {
    pub products: Vec<Product>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Product {
    pub id: u64,
    pub price_euros: f64,
}

/// `orders.create`: validates the order, counts it by payment and observes its value.
pub struct Create;

pub struct CreateState {
    prices: BTreeMap<u64, f64>,
    placed: AppCounter<1>,
    value: AppHistogram<0>,
    insert: SqlOperation,
    delete: SqlOperation,
    payments: HttpClient,
}

impl Handler for Create {
    type Options = CreateOptions;
    type Path = Empty;
    type Query = Empty;
    type Body = NewOrder;
    type Response = CreateResponse;
    type State = CreateState;

    fn name(&self) -> &'static str {
        "orders.create"
    }

    fn setup(&self, o: CreateOptions, ctx: &mut Setup<'_>) -> Result<CreateState, SetupError> {
        if o.products.is_empty() {
            return Err("options.products must list at least one product".into());
        }
        if let Some(p) = o
            .products
            .iter()
            .find(|p| p.price_euros.is_nan() || p.price_euros <= 0.0)
        {
            return Err(format!("product {} has no positive price_euros", p.id).into());
        }
        let placed = ctx.counter("orders_placed_total", ["payment"])?;
        let value = ctx.histogram("order_value_euros", [])?;
        // Clients last, all asked for before the first `?`: in `validate`,
        // where dependencies are not started, setup ends there, and every
        // name and operation has been checked.
        let insert = ctx.sql_operation("orders_db", "insert_order");
        let delete = ctx.sql_operation("orders_db", "delete_order");
        let payments = ctx.http("payments");
        Ok(CreateState {
            prices: o.products.iter().map(|p| (p.id, p.price_euros)).collect(),
            placed,
            value,
            insert: insert?,
            delete: delete?,
            payments: payments?,
        })
    }

    async fn handle(&self, st: &CreateState, req: Input<Empty, Empty, NewOrder>) -> CreateResponse {
        use tracing::Instrument;
        let o = req.body;
        let Some(price) = st.prices.get(&o.product_id) else {
            tracing::warn!(product_id = o.product_id, "order for an unknown product");
            return CreateResponse::UnknownProduct(error(
                StatusCode::NOT_FOUND,
                format!("no product {} in the catalogue", o.product_id),
            ));
        };
        let total = price * f64::from(o.quantity);
        // The endpoint requires a key, so there is always a caller.
        let placed_by = req
            .request
            .caller()
            .map_or_else(String::new, |c| c.principal().to_string());
        // A span of the handler's own: with tracing on, a child span of the
        // request's server span; the database call inside it is its child.
        let inserted = st
            .insert
            .fetch_one(
                sqlx::query(
                    "INSERT INTO orders (product_id, quantity, payment, total_euros, placed_by) \
                     VALUES ($1, $2, $3, $4, $5) RETURNING id",
                )
                .bind(o.product_id as i64)
                .bind(i64::from(o.quantity))
                .bind(o.payment.clone())
                .bind(total)
                .bind(placed_by.clone()),
            )
            .instrument(tracing::info_span!(
                "store.insert",
                product_id = o.product_id
            ))
            .await;
        let id = match inserted.map(|row| row.try_get::<i64, _>("id")) {
            Ok(Ok(id)) => id,
            Ok(Err(e)) => {
                tracing::error!("the new order's id could not be read: {e}");
                return CreateResponse::Unavailable(error(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "the order could not be stored".into(),
                ));
            }
            Err(e) => return CreateResponse::Unavailable(unavailable(&e)),
        };
        let order = Order {
            id: id as u64,
            product_id: o.product_id,
            quantity: o.quantity,
            payment: o.payment,
            total_euros: total,
            placed_by,
        };
        if order.payment == "card" {
            let verdict = authorize(&st.payments, &order, o.card_last4.as_deref()).await;
            let refused = match verdict {
                Ok(Verdict::Approved) => None,
                Ok(Verdict::Declined(why)) => Some(CreateResponse::Declined(error(
                    StatusCode::PAYMENT_REQUIRED,
                    format!("the card payment was declined: {why}"),
                ))),
                Err(e) => Some(CreateResponse::Unavailable(unavailable(&e))),
            };
            if let Some(response) = refused {
                // Not placed: the order goes again.
                let q = sqlx::query("DELETE FROM orders WHERE id = $1").bind(id);
                if let Err(e) = st.delete.execute(q).await {
                    tracing::error!(order_id = id, "an unpaid order could not be removed: {e}");
                }
                tracing::info!(order_id = id, "order not placed: payment refused");
                return response;
            }
        }
        st.placed.inc([&order.payment]);
        st.value.observe([], total);
        tracing::info!(order_id = order.id, total_euros = total, "order placed");
        CreateResponse::Created(Json(order))
    }
}

/// `orders.get`: one order by id, 404 JSON when absent or placed by
/// another principal.
pub struct Get;

impl Handler for Get {
    type Options = NoOptions;
    type Path = OrderPath;
    type Query = Empty;
    type Body = Empty;
    type Response = GetResponse;
    type State = SqlOperation;

    fn name(&self) -> &'static str {
        "orders.get"
    }

    fn setup(&self, _: NoOptions, ctx: &mut Setup<'_>) -> Result<SqlOperation, SetupError> {
        ctx.sql_operation("orders_db", "get_order")
    }

    async fn handle(&self, get: &SqlOperation, req: Input<OrderPath, Empty, Empty>) -> GetResponse {
        let caller = req.request.caller().map(|c| c.principal().to_string());
        let not_found = || {
            GetResponse::NotFound(error(
                StatusCode::NOT_FOUND,
                format!("no order {}", req.path.id),
            ))
        };
        let Ok(id) = i64::try_from(req.path.id) else {
            return not_found();
        };
        let q = sqlx::query(
            "SELECT id, product_id, quantity, payment, total_euros, placed_by FROM orders WHERE id = $1",
        )
        .bind(id);
        match get.fetch_optional(q).await {
            Err(e) => GetResponse::Unavailable(unavailable(&e)),
            Ok(None) => not_found(),
            Ok(Some(row)) => match order_of(&row) {
                Ok(o) if Some(&o.placed_by) == caller.as_ref() => GetResponse::Found(Json(o)),
                Ok(_) => not_found(),
                Err(e) => {
                    tracing::error!(order_id = id, "order {id} could not be read: {e}");
                    GetResponse::Unavailable(error(
                        StatusCode::SERVICE_UNAVAILABLE,
                        "the order could not be read".into(),
                    ))
                }
            },
        }
    }
}
