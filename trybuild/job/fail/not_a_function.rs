use runledger::job;

#[job]
pub struct SendEmail {
    pub to: String,
}

fn main() {}
