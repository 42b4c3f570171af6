use runledger::job;

#[job]
async fn send_email(to: String) -> Result<(), String> {
    Err(to)
}

fn main() {}
