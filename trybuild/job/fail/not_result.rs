use runledger::job;

#[job]
async fn count_users(active: bool) -> Option<u64> {
    active.then_some(1)
}

fn main() {}
