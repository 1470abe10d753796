//! `POST /orders` and `GET /orders/{id}`.

use poem_openapi::payload::Json;
use poem_openapi::{ApiResponse, Object};
use serde::Deserialize;
use std::collections::{BTreeMap, VecDeque};
use std::sync::{Arc, Mutex};
use telltale::{
    AppCounter, AppHistogram, Empty, ErrorBody, Handler, Input, NoOptions, Setup, SetupError,
    StatusCode,
};

/// The most orders kept in memory; the oldest is dropped first.
const MAX_ORDERS: usize = 10_000;

/// An order as the client sends it.
#[derive(Object, Debug, Clone)]
pub struct NewOrder {
    /// A product id from the catalogue (`options.products` of `POST /orders`).
    pub product_id: u64,
    /// How many, 1 to 100.
    #[oai(validator(minimum(value = "1"), maximum(value = "100")))]
    pub quantity: u32,
    /// How it is paid: card, cash or voucher (anything else counts as `other`).
    #[oai(validator(max_length = 32))]
    pub payment: String,
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

fn not_found(message: String) -> Json<ErrorBody> {
    Json(ErrorBody::new(StatusCode::NOT_FOUND, message))
}

#[derive(ApiResponse)]
pub enum CreateResponse {
    /// The order was placed.
    #[oai(status = 201)]
    Created(Json<Order>),
    /// The product is not in the catalogue.
    #[oai(status = 404)]
    UnknownProduct(Json<ErrorBody>),
}

#[derive(ApiResponse)]
pub enum GetResponse {
    #[oai(status = 200)]
    Found(Json<Order>),
    /// No order has this id that the caller placed (another principal's
    /// order is a 404 too, so that ids reveal nothing), or it was dropped,
    /// past the newest 10,000.
    #[oai(status = 404)]
    NotFound(Json<ErrorBody>),
}

/// The orders placed so far, newest last; bounded by [`MAX_ORDERS`].
#[derive(Clone, Default)]
pub struct Store(Arc<Mutex<Orders>>);

#[derive(Default)]
pub struct Orders {
    next_id: u64,
    by_id: VecDeque<Order>,
}

impl Store {
    pub fn insert(&self, mut o: Order) -> Order {
        let mut s = self.0.lock().unwrap_or_else(|e| e.into_inner());
        s.next_id += 1;
        o.id = s.next_id;
        if s.by_id.len() == MAX_ORDERS {
            s.by_id.pop_front();
        }
        s.by_id.push_back(o.clone());
        o
    }
    pub fn get(&self, id: u64) -> Option<Order> {
        let s = self.0.lock().unwrap_or_else(|e| e.into_inner());
        // Ids are consecutive: the newest is at the back.
        let first = s.by_id.front()?.id;
        s.by_id
            .get(usize::try_from(id.checked_sub(first)?).ok()?)
            .cloned()
    }
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
    store: Arc<Store>,
    prices: BTreeMap<u64, f64>,
    placed: AppCounter<1>,
    value: AppHistogram<0>,
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
        Ok(CreateState {
            prices: o.products.iter().map(|p| (p.id, p.price_euros)).collect(),
            placed: ctx.counter("orders_placed_total", ["payment"])?,
            value: ctx.histogram("order_value_euros", [])?,
            // Last: in `validate`, where start hooks do not run, setup ends here.
            store: ctx.resource::<Store>()?,
        })
    }

    async fn handle(&self, st: &CreateState, req: Input<Empty, Empty, NewOrder>) -> CreateResponse {
        let o = req.body;
        let Some(price) = st.prices.get(&o.product_id) else {
            tracing::warn!(product_id = o.product_id, "order for an unknown product");
            return CreateResponse::UnknownProduct(not_found(format!(
                "no product {} in the catalogue",
                o.product_id
            )));
        };
        let total = price * f64::from(o.quantity);
        st.placed.inc([&o.payment]);
        st.value.observe([], total);
        // The endpoint requires a key, so there is always a caller.
        let placed_by = req
            .request
            .caller()
            .map_or_else(String::new, |c| c.principal().to_string());
        // A span of the handler's own: with tracing on, a child span of the
        // request's server span, its fields the span's attributes.
        let order = tracing::info_span!("store.insert", product_id = o.product_id).in_scope(|| {
            st.store.insert(Order {
                id: 0,
                product_id: o.product_id,
                quantity: o.quantity,
                payment: o.payment,
                total_euros: total,
                placed_by,
            })
        });
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
    type State = Arc<Store>;

    fn name(&self) -> &'static str {
        "orders.get"
    }

    fn setup(&self, _: NoOptions, ctx: &mut Setup<'_>) -> Result<Arc<Store>, SetupError> {
        ctx.resource::<Store>()
    }

    async fn handle(&self, store: &Arc<Store>, req: Input<OrderPath, Empty, Empty>) -> GetResponse {
        let caller = req.request.caller().map(|c| c.principal());
        match store.get(req.path.id) {
            Some(o) if Some(o.placed_by.as_str()) == caller => GetResponse::Found(Json(o)),
            _ => GetResponse::NotFound(not_found(format!("no order {}", req.path.id))),
        }
    }
}
