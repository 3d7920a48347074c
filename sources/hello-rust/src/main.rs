//! hello-rust: proves the Rust runtime works in an empty image — threads (std::thread, mpsc),
//! heap allocation (Vec, String, BTreeMap) and formatting (std::fmt and the itoa crate). The output
//! is the same on every platform and every run.

use std::collections::BTreeMap;
use std::sync::mpsc;
use std::thread;

const WORKERS: u64 = 4;
const PER_WORKER: u64 = 250_000;

fn main() {
    let (sender, receiver) = mpsc::channel();
    let workers: Vec<_> = (0..WORKERS)
        .map(|id| {
            let sender = sender.clone();
            thread::Builder::new()
                .name(format!("worker-{id}"))
                .spawn(move || {
                    let values: Vec<u64> =
                        (id * PER_WORKER..(id + 1) * PER_WORKER).map(|n| n * n % 1_000_003).collect();
                    let name = thread::current().name().unwrap_or("?").to_string();
                    sender.send((id, name, values.len(), values.iter().sum::<u64>())).unwrap();
                })
                .expect("spawn a thread")
        })
        .collect();
    drop(sender);
    for worker in workers {
        worker.join().expect("a worker panicked");
    }
    let results: BTreeMap<u64, (String, usize, u64)> =
        receiver.iter().map(|(id, name, len, sum)| (id, (name, len, sum))).collect();

    let mut number = itoa::Buffer::new();
    println!("Hello from OS-less container (Rust edition)");
    for (name, len, sum) in results.values() {
        println!("{name}: {len} values, sum {}", number.format(*sum));
    }
    let total: u64 = results.values().map(|(_, _, sum)| sum).sum();
    println!("total {} | {:>9.4} | {:#x} | {:?}", number.format(total), 2.0f64.sqrt(), 48879, "ok");
}
