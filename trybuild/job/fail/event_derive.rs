//! Rejected: an event without a name, and one whose key is not a field.

use runledger::durable::Event;
use serde::{Deserialize, Serialize};

#[derive(Serialize, Deserialize, Event)]
#[event(key = order_id)]
struct Unnamed {
    order_id: i64,
}

#[derive(Serialize, Deserialize, Event)]
#[event(name = "orders.packed", key = order)]
struct WrongKey {
    order_id: i64,
}

fn main() {}
