//! Fast-path feature switches for every example: `--features name=value,...` or the
//! `RINGCORE_FEATURES` environment variable (the flag wins), each entry mapped to a
//! `Builder` call. The ablation harness (`benches/ablate`) runs the examples with one
//! feature flipped at a time through this.
//!
//! ```text
//! RINGCORE_FEATURES=sqpoll=on,splice=ring target/release/examples/echo --workers 1
//! target/release/examples/http --features pool_trim=off
//! target/release/examples/echo --features help      # lists the switches and exits
//! target/release/examples/echo --features list      # name, default, ablate: for scripts
//! ```
//!
//! Values: `on`/`off` (also `1`/`0`, `true`/`false`, `yes`/`no`) for every switch,
//! and a switch-specific value where one makes sense (`splice=drain`,
//! `pool_trim=500ms`). An unknown name or value is an error naming the known ones.
//! Environment overrides the runtime reads itself (`RINGCORE_SPLICE`,
//! `RINGCORE_POOL_TRIM_MS`, `RINGCORE_MALLOC_TRIM`) are applied after these and so
//! win over them; the harness never sets both.
//!
//! **Adding a switch** (a new `Builder` option): add one [`Feature`] row to
//! [`FEATURES`] with its name, its default, the values it takes and an `apply`
//! function that calls the `Builder` setter. Nothing else is needed: the examples,
//! the `help` listing and `benches/ablate` pick it up (the harness flips every
//! switch whose `ablate` field is set, from its default to the opposite).

use anyhow::{bail, Context};
use ringcore::runtime::SpliceMode;
use ringcore::Builder;
use std::time::Duration;

/// One switch: a name, what it does, and how it becomes a `Builder` call.
pub struct Feature {
    /// The name used in `name=value`.
    pub name: &'static str,
    /// One line for `--features help`: what `on` means.
    pub doc: &'static str,
    /// The library default, as a value `apply` accepts (shown in the listing and the
    /// start-up line; a switch that is not named is not applied, so the library's
    /// own default is what runs).
    pub default: &'static str,
    /// The values `apply` accepts besides on/off, for `help` and error messages.
    pub values: &'static str,
    /// Whether `benches/ablate` flips this switch by default (off for switches that
    /// are not about speed per request, like memory trimming).
    pub ablate: bool,
    /// Which benchmark protocols the switch can change (`all`, or some of
    /// `echo,http,file`): `benches/ablate` runs the flipped switch only there.
    pub scope: &'static str,
    /// Turns a value into a `Builder` call; `Err` names what was expected.
    pub apply: fn(Builder, &str) -> Result<Builder, String>,
}

/// Every switch the examples understand. Add a row here for a new `Builder` option.
pub const FEATURES: &[Feature] = &[
    Feature {
        name: "sqpoll",
        doc: "SQPOLL: a kernel thread polls the submission queue (100 ms idle); io_uring only",
        default: "off",
        values: "on|off",
        ablate: true,
        scope: "all",
        apply: |b, v| {
            Ok(if on_off(v)? {
                b.sqpoll(Duration::from_millis(100), None)
            } else {
                b
            })
        },
    },
    Feature {
        name: "splice",
        doc: "file/proxy splices run inline on the worker (on = inline, off = ring: every splice on io-wq)",
        default: "inline",
        values: "on|off|inline|drain|ring",
        ablate: true,
        scope: "file",
        apply: |b, v| {
            let mode = SpliceMode::parse(v)
                .ok_or_else(|| format!("{v:?}: expected on, off, inline, drain or ring"))?;
            Ok(b.splice_mode(mode))
        },
    },
    Feature {
        name: "pool_trim",
        doc: "idle worker pools are shrunk every interval (on = 5 s)",
        default: "on",
        values: "on|off|DURATION (e.g. 500ms)",
        ablate: false,
        scope: "all",
        apply: |b, v| {
            let every = match on_off(v) {
                Ok(true) => Some(Duration::from_secs(5)),
                Ok(false) => None,
                Err(_) => {
                    let d = super::parse_duration(v)?;
                    (!d.is_zero()).then_some(d)
                }
            };
            Ok(b.pool_trim(every))
        },
    },
    Feature {
        name: "malloc_trim",
        doc: "after a pool trim freed memory, glibc's malloc_trim(0) returns free heap pages",
        default: "on",
        values: "on|off",
        ablate: false,
        scope: "all",
        apply: |b, v| Ok(b.malloc_trim(on_off(v)?)),
    },
];

/// Parses an on/off value.
pub fn on_off(v: &str) -> Result<bool, String> {
    match v.trim().to_ascii_lowercase().as_str() {
        "on" | "1" | "true" | "yes" => Ok(true),
        "off" | "0" | "false" | "no" => Ok(false),
        _ => Err(format!("{v:?}: expected on or off")),
    }
}

/// `name=value` pairs of a `--features`/`RINGCORE_FEATURES` string, checked against
/// [`FEATURES`] (names and values both), in order. Empty entries are skipped.
pub fn parse(spec: &str) -> anyhow::Result<Vec<(&'static Feature, String)>> {
    let mut out: Vec<(&'static Feature, String)> = Vec::new();
    for item in spec.split(',').map(str::trim).filter(|s| !s.is_empty()) {
        let (name, value) = item
            .split_once('=')
            .with_context(|| format!("{item:?}: expected name=value, e.g. sqpoll=on"))?;
        let (name, value) = (name.trim(), value.trim());
        let Some(f) = FEATURES.iter().find(|f| f.name == name) else {
            bail!(
                "unknown feature {name:?}; known: {} (`--features help` describes them)",
                names()
            );
        };
        // Check the value now, on a throwaway builder, so a typo fails at start-up
        // with the feature's name in the message.
        (f.apply)(Builder::default(), value).map_err(|e| anyhow::anyhow!("feature {name}: {e}"))?;
        out.retain(|(g, _)| g.name != name); // the last mention wins
        out.push((f, value.to_string()));
    }
    Ok(out)
}

/// Applies `spec` (the `--features` flag, else `RINGCORE_FEATURES`) to `b`, and
/// returns the builder with a summary (`sqpoll=on splice=inline ...`: every switch,
/// defaults included) for the start-up line.
pub fn apply(mut b: Builder, flag: Option<&str>) -> anyhow::Result<(Builder, String)> {
    let env = std::env::var("RINGCORE_FEATURES").ok();
    let (spec, source) = match (flag, env.as_deref()) {
        (Some(f), Some(e)) => {
            if f != e {
                tracing::info!("--features {f} overrides RINGCORE_FEATURES={e}");
            }
            (f, "--features")
        }
        (Some(f), None) => (f, "--features"),
        (None, Some(e)) => (e, "RINGCORE_FEATURES"),
        (None, None) => ("", ""),
    };
    match spec.trim() {
        "help" => {
            print_help();
            std::process::exit(0);
        }
        "list" => {
            print_table();
            std::process::exit(0);
        }
        _ => {}
    }
    let chosen = parse(spec).with_context(|| format!("bad {source}"))?;
    let mut summary = Vec::new();
    for f in FEATURES {
        // Only switches that were named call the `Builder`: the others keep the
        // library's own default (which `default` mirrors for the listing).
        let value = match chosen.iter().find(|(g, _)| g.name == f.name) {
            Some((_, v)) => {
                b = (f.apply)(b, v).map_err(|e| anyhow::anyhow!("feature {}: {e}", f.name))?;
                v.as_str()
            }
            None => f.default,
        };
        summary.push(format!("{}={value}", f.name));
    }
    Ok((b, summary.join(" ")))
}

/// The switch names, comma-separated.
pub fn names() -> String {
    FEATURES
        .iter()
        .map(|f| f.name)
        .collect::<Vec<_>>()
        .join(", ")
}

/// `--features help`: one line per switch.
pub fn print_help() {
    println!("fast-path switches (--features name=value,... or RINGCORE_FEATURES):");
    for f in FEATURES {
        println!(
            "  {:<12} default {:<7} values {:<28} {}",
            f.name, f.default, f.values, f.doc
        );
    }
}

/// `--features list`: a machine-readable listing for `benches/ablate`:
/// `name<TAB>default<TAB>ablate(0|1)<TAB>scope` per line.
pub fn print_table() {
    for f in FEATURES {
        println!(
            "{}\t{}\t{}\t{}",
            f.name,
            f.default,
            u8::from(f.ablate),
            f.scope
        );
    }
}
