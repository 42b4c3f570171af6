//! The JSON of generated payload and input structs: the same shape serde's derive gives a struct
//! with named fields (a map out; a map or a sequence in; unknown keys skipped; a duplicate key
//! refused; a missing `Option` field read as `None`), with errors that name the job.

use runledger::{JobError, job, workflow};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
/// A nested serde type.
pub struct Address {
    street: String,
}

#[job]
async fn ship(
    order_id: i64,
    r#type: String,
    address: Address,
    note: Option<String>,
) -> Result<(), JobError> {
    let _ = (order_id, r#type, address, note);
    Ok(())
}

#[job]
async fn ping() -> Result<(), JobError> {
    Ok(())
}

#[workflow]
fn deliver(order_id: i64, note: Option<String>) {
    ship(
        order_id,
        "parcel".to_owned(),
        Address {
            street: "Main".to_owned(),
        },
        note,
    )
}

fn sample() -> Ship {
    Ship {
        order_id: 7,
        r#type: "parcel".into(),
        address: Address {
            street: "Main".into(),
        },
        note: Some("fragile".into()),
    }
}

#[test]
fn writes_a_map_in_field_order_with_raw_names_unraw() {
    let json = serde_json::to_string(&sample()).unwrap();
    assert_eq!(
        json,
        r#"{"order_id":7,"type":"parcel","address":{"street":"Main"},"note":"fragile"}"#
    );
    assert_eq!(serde_json::to_string(&Ping {}).unwrap(), "{}");
}

#[test]
fn reads_maps_and_sequences() {
    let ship: Ship = serde_json::from_str(
        r#"{"note":"fragile","address":{"street":"Main"},"type":"parcel","order_id":7}"#,
    )
    .unwrap();
    assert_eq!(ship.order_id, 7);
    assert_eq!(ship.note.as_deref(), Some("fragile"));
    let ship: Ship = serde_json::from_str(r#"[7,"parcel",{"street":"Main"},"fragile"]"#).unwrap();
    assert_eq!(ship.address, sample().address);
    let _: Ping = serde_json::from_str("{}").unwrap();
    let _: Ping = serde_json::from_str(r#"{"left_over":1}"#).unwrap();
}

#[test]
fn skips_unknown_keys_and_reads_a_missing_option_as_none() {
    let ship: Ship = serde_json::from_str(
        r#"{"order_id":7,"type":"parcel","address":{"street":"Main"},"added_later":[1,2]}"#,
    )
    .unwrap();
    assert_eq!(ship.note, None);
    let run: Deliver = serde_json::from_str(r#"{"order_id":3}"#).unwrap();
    assert_eq!((run.order_id, run.note), (3, None));
}

#[test]
fn refuses_missing_duplicate_and_mistyped_fields_naming_the_job() {
    let error = serde_json::from_str::<Ship>(r#"{"order_id":7,"type":"parcel"}"#).unwrap_err();
    assert_eq!(
        error.to_string(),
        "missing field `address` at line 1 column 30"
    );
    let error = serde_json::from_str::<Ship>(r#"{"order_id":7,"order_id":8}"#).unwrap_err();
    assert!(
        error.to_string().starts_with("duplicate field `order_id`"),
        "{error}"
    );
    let error = serde_json::from_str::<Ship>("42").unwrap_err();
    assert!(
        error
            .to_string()
            .starts_with("invalid type: integer `42`, expected the payload of job `ship`"),
        "{error}"
    );
    let error = serde_json::from_str::<Ship>("[7]").unwrap_err();
    assert!(
        error
            .to_string()
            .starts_with("invalid length 1, expected the payload of job `ship`"),
        "{error}"
    );
    let error = serde_json::from_str::<Deliver>("true").unwrap_err();
    assert!(
        error
            .to_string()
            .contains("expected the input of workflow `deliver`"),
        "{error}"
    );
}
