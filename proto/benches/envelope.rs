//! Seal and open throughput for 1 MiB and 4 MiB segments (issue 2's goal: open >= 1 GB/s on one
//! core). Compare with `openssl speed -evp aes-256-gcm`; `scripts/bench-proto.sh` prints both.

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use lessonlens_proto::envelope::{open, seal, Label, SealParams, DEFAULT_CHUNK_SIZE};
use lessonlens_proto::{RecordingId, SecretKey};
use rand_chacha::rand_core::SeedableRng;
use rand_chacha::ChaCha20Rng;

fn bench(c: &mut Criterion) {
    let mut rng = ChaCha20Rng::seed_from_u64(1);
    let (sk, pk) = SecretKey::generate(&mut rng);
    let label = Label {
        recording: RecordingId::from_random_bytes([1; 16]),
        index: 1,
    };
    let params = SealParams {
        label,
        final_segment: false,
        start_us: 0,
        duration_us: 2_000_000,
        chunk_size: DEFAULT_CHUNK_SIZE,
    };
    let mut group = c.benchmark_group("envelope");
    for mib in [1usize, 4] {
        let plaintext = vec![0x5au8; mib << 20];
        let sealed = seal(&params, &pk, &plaintext, &mut rng).unwrap();
        group.throughput(Throughput::Bytes(plaintext.len() as u64));
        group.bench_with_input(
            BenchmarkId::new("seal", format!("{mib}MiB")),
            &plaintext,
            |b, pt| b.iter(|| seal(&params, &pk, pt, &mut rng).unwrap()),
        );
        group.bench_with_input(
            BenchmarkId::new("open", format!("{mib}MiB")),
            &sealed,
            |b, s| b.iter(|| open(Some(label), &sk, s).unwrap()),
        );
    }
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
