//! The watch-ordering property against the etcd backend, with seeded random plans.
mod support;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use support::history::{check, Step, WatchPoint};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watches_see_exactly_the_committed_history() {
    let harness = support::etcd().await;
    let mut rng = StdRng::seed_from_u64(0x5eed);
    for round in 0..6 {
        let writers = (0..rng.random_range(1..6))
            .map(|_| {
                (0..rng.random_range(5..40))
                    .map(|_| {
                        let key = rng.random_range(0..6);
                        match rng.random_range(0..3) {
                            0 => Step::Create(key),
                            1 => Step::Update(key),
                            _ => Step::Delete(key),
                        }
                    })
                    .collect()
            })
            .collect();
        let points = (0..rng.random_range(1..6))
            .map(|_| WatchPoint {
                delay_ms: rng.random_range(0..15),
                fraction: rng.random_range(0.0..=1.0),
            })
            .collect();
        check(
            harness.store.clone(),
            &format!("/round{round}/"),
            writers,
            points,
            true,
        )
        .await;
    }
}
