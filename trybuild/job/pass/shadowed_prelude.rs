//! The expansion names only absolute paths: it compiles in modules that shadow the prelude.

#![allow(dead_code, non_camel_case_types, unused_macros)]

mod structs {
    use runledger::{JobContext, JobError, job};

    pub struct Result;
    pub struct Option;
    pub struct Ok;
    pub struct Err;
    pub struct Some;
    pub struct None;
    pub struct Box;
    pub struct Vec;
    pub struct String;
    pub trait Send {}
    pub trait Sync {}
    pub trait Clone {}
    pub trait Debug {}
    pub trait Default {}
    pub trait Future {}
    pub trait Into<T> {}
    pub trait From<T> {}
    pub trait Serialize {}
    pub trait Deserialize {}
    pub mod core {}
    pub mod std {}
    pub mod serde {}
    pub mod inventory {}
    macro_rules! vec {
        ($($t:tt)*) => {
            compile_error!("the shadowing `vec!` was used")
        };
    }

    pub struct Mailer;

    /// A job in hostile territory.
    #[runledger::job(unique(by = [name]), backoff(factor = 3.0), timeout = "1m")]
    pub async fn shadowed(
        ctx: &JobContext,
        mailer: runledger::State<Mailer>,
        name: ::std::string::String,
        count: u32,
    ) -> ::core::result::Result<::std::vec::Vec<u8>, JobError> {
        let _ = (ctx, mailer, count);
        ::core::result::Result::Ok(name.into_bytes())
    }

    #[job(unique)]
    pub async fn shadowed_plain() -> ::std::result::Result<(), JobError> {
        ::core::result::Result::Ok(())
    }
}

mod aliases {
    use runledger::job;

    #[derive(Debug)]
    pub struct Failure;

    impl ::std::fmt::Display for Failure {
        fn fmt(&self, f: &mut ::std::fmt::Formatter<'_>) -> ::std::fmt::Result {
            f.write_str("failure")
        }
    }

    impl ::std::error::Error for Failure {}

    pub type Result<T> = ::core::result::Result<T, Failure>;
    pub type Option<T> = ::core::option::Option<T>;
    pub type String = ::std::string::String;
    pub type Vec = ::std::vec::Vec<u8>;
    pub type Box<T> = ::std::boxed::Box<T>;

    // A one-argument `Result` alias: the error type comes from the alias.
    #[job]
    pub async fn aliased(
        name: String,
        bytes: Vec,
        boxed: Box<u32>,
        maybe: Option<i8>,
    ) -> Result<Vec> {
        let _ = (name, boxed, maybe);
        Ok(bytes)
    }
}

fn main() {
    use runledger::Job;
    let job = structs::Shadowed {
        name: "x".into(),
        count: 1,
    };
    assert_eq!(job.unique_key().as_deref(), Some(r#"shadowed:["x"]"#));
    assert_eq!(structs::Shadowed::required_state().len(), 1);
    assert_eq!(
        structs::ShadowedPlain {}.unique_key().as_deref(),
        Some("shadowed_plain:{}")
    );
    let aliased = aliases::Aliased {
        name: "n".into(),
        bytes: vec![1],
        boxed: Box::new(2),
        maybe: None,
    };
    assert_eq!(
        serde_json::to_string(&aliased).unwrap(),
        r#"{"name":"n","bytes":[1],"boxed":2,"maybe":null}"#
    );
    let _: fn(<aliases::Aliased as Job>::Output) -> Vec<u8> = |bytes| bytes;
}
