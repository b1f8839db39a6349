//! Token (io_uring `user_data`) encode/decode: on every submitted op and every
//! completion, so it must cost ~nothing.

use criterion::{black_box, criterion_group, criterion_main, Criterion, Throughput};
use ringcore::runtime::token::{OpKind, Token};

fn token(c: &mut Criterion) {
    let mut g = c.benchmark_group("token");
    g.throughput(Throughput::Elements(1024));
    g.bench_function("encode x1024", |b| {
        b.iter(|| {
            let mut acc = 0u64;
            for i in 0..1024u32 {
                acc ^= Token::new(black_box(i), black_box(i.wrapping_mul(7)), OpKind::Recv).raw();
            }
            acc
        })
    });
    let raws: Vec<u64> = (0..1024u32)
        .map(|i| Token::new(i, i * 3, OpKind::Send).raw())
        .collect();
    g.bench_function("decode x1024", |b| {
        b.iter(|| {
            let mut acc = 0u64;
            for &r in black_box(&raws) {
                let t = Token::from_raw(r);
                acc = acc.wrapping_add(t.slot() as u64 + t.generation() as u64);
                if t.kind() == Some(OpKind::Send) {
                    acc += 1;
                }
            }
            acc
        })
    });
    g.bench_function("round trip x1024", |b| {
        b.iter(|| {
            let mut ok = 0u32;
            for i in 0..1024u32 {
                let t = Token::from_raw(Token::new(black_box(i), 5, OpKind::Accept).raw());
                ok += u32::from(t.slot() == i && t.generation() == 5);
            }
            ok
        })
    });
    g.finish();
}

criterion_group!(benches, token);
criterion_main!(benches);
