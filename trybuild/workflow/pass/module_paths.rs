//! Jobs named through module paths.

use runledger::{Workflow, workflow};

mod jobs {
    use runledger::{JobError, job};

    #[job]
    pub async fn fetch(url: std::string::String) -> Result<Page, JobError> {
        Ok(Page { body: url })
    }

    #[derive(serde::Serialize, serde::Deserialize)]
    pub struct Page {
        pub body: std::string::String,
    }

    #[job]
    pub async fn index(body: std::string::String) -> Result<usize, JobError> {
        Ok(body.len())
    }
}

#[workflow]
fn crawl(url: String) {
    let page = jobs::fetch(url.to_lowercase());
    jobs::index(page.body)
}

fn main() {
    assert_eq!(Crawl::SHAPE.output, Some("index"));
}
