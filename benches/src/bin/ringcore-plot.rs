//! Draws the comparison charts from `benches/compare`'s `summary.json`:
//! `throughput.svg` (echo throughput vs connections, per server),
//! `cpu_per_req.svg` (server CPU µs per request at a fixed rate, per server) and
//! `rss_per_conn.svg` (RSS per idle connection, per server).
//!
//! `ringcore-plot docs/benchmarks/summary.json docs/benchmarks/`

use anyhow::Context;
use plotters::prelude::*;
use serde_json::Value;
use std::path::Path;

const COLORS: [RGBColor; 6] = [
    RGBColor(31, 119, 180),
    RGBColor(255, 127, 14),
    RGBColor(44, 160, 44),
    RGBColor(214, 39, 40),
    RGBColor(148, 103, 189),
    RGBColor(140, 86, 75),
];

fn server_names(scenarios: &[Value]) -> Vec<String> {
    let mut names: Vec<String> = Vec::new();
    for s in scenarios {
        if let Some(obj) = s["servers"].as_object() {
            for k in obj.keys() {
                if !names.contains(k) {
                    names.push(k.clone());
                }
            }
        }
    }
    let order = [
        "ringcore-uring",
        "ringcore-epoll",
        "tokio",
        "monoio",
        "nginx",
    ];
    names.sort_by_key(|n| order.iter().position(|o| o == n).unwrap_or(99));
    names
}

fn color(names: &[String], n: &str) -> RGBColor {
    COLORS[names.iter().position(|x| x == n).unwrap_or(0) % COLORS.len()]
}

type Area<'a> = DrawingArea<SVGBackend<'a>, plotters::coord::Shift>;

/// Lines of req/s against connections (log x) for one scenario group.
fn throughput_panel(
    area: &Area<'_>,
    scenarios: &[Value],
    group: &str,
    names: &[String],
) -> anyhow::Result<()> {
    let mut series: Vec<(String, Vec<(f64, f64)>)> = Vec::new();
    for n in names {
        let mut pts: Vec<(f64, f64)> = scenarios
            .iter()
            .filter(|s| s["group"] == group && s["kind"] == "throughput")
            .filter_map(|s| Some((s["x"].as_f64()?, s["servers"][n.as_str()]["rps"].as_f64()?)))
            .collect();
        pts.sort_by(|a, b| a.0.total_cmp(&b.0));
        if !pts.is_empty() {
            series.push((n.clone(), pts));
        }
    }
    let ymax = series
        .iter()
        .flat_map(|s| s.1.iter().map(|p| p.1))
        .fold(1.0, f64::max)
        * 1.15;
    let mut chart = ChartBuilder::on(area)
        .caption(
            format!("{group}: round trips/s (closed loop)"),
            ("sans-serif", 18),
        )
        .margin(12)
        .x_label_area_size(40)
        .y_label_area_size(70)
        .build_cartesian_2d((0.8f64..800f64).log_scale(), 0f64..ymax)?;
    chart
        .configure_mesh()
        .x_desc("connections")
        .y_desc("requests/s")
        .x_label_formatter(&|x| format!("{x:.0}"))
        .y_label_formatter(&|y| format!("{:.0}k", y / 1000.0))
        .draw()?;
    for (n, pts) in &series {
        let c = color(names, n);
        chart
            .draw_series(LineSeries::new(pts.iter().copied(), c.stroke_width(2)))?
            .label(n.as_str())
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 18, y)], c.stroke_width(2)));
        chart.draw_series(pts.iter().map(|&p| Circle::new(p, 4, c.filled())))?;
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::LowerRight)
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK)
        .draw()?;
    Ok(())
}

/// Grouped bars: one group per scenario, one bar per server.
fn bars(
    path: &Path,
    title: &str,
    ylabel: &str,
    groups: &[(String, Vec<(String, f64)>)],
    names: &[String],
) -> anyhow::Result<()> {
    let root = SVGBackend::new(path, (900, 480)).into_drawing_area();
    root.fill(&WHITE)?;
    if groups.is_empty() {
        root.titled(&format!("{title}: no data"), ("sans-serif", 18))?;
        root.present()?;
        return Ok(());
    }
    let ymax = groups
        .iter()
        .flat_map(|g| g.1.iter().map(|b| b.1))
        .fold(0.0, f64::max)
        .max(1e-9)
        * 1.2;
    let width = names.len() as f64 + 1.0;
    let xmax = groups.len() as f64 * width;
    let mut chart = ChartBuilder::on(&root)
        .caption(title, ("sans-serif", 18))
        .margin(12)
        .x_label_area_size(40)
        .y_label_area_size(70)
        .build_cartesian_2d(0f64..xmax, 0f64..ymax)?;
    let labels: Vec<String> = groups.iter().map(|g| g.0.clone()).collect();
    chart
        .configure_mesh()
        .disable_x_mesh()
        .y_desc(ylabel)
        .x_labels(groups.len() * 2 + 1)
        .x_label_formatter(&|x| {
            let i = (x / width).floor() as usize;
            let mid = i as f64 * width + width / 2.0;
            if (x - mid).abs() < 0.6 {
                labels.get(i).cloned().unwrap_or_default()
            } else {
                String::new()
            }
        })
        .draw()?;
    for n in names {
        let c = color(names, n);
        let k = names.iter().position(|x| x == n).unwrap_or(0) as f64;
        let rects: Vec<_> = groups
            .iter()
            .enumerate()
            .filter_map(|(i, g)| {
                let v = g.1.iter().find(|b| &b.0 == n)?.1;
                let x0 = i as f64 * width + 0.5 + k;
                Some(Rectangle::new([(x0, 0.0), (x0 + 0.9, v)], c.filled()))
            })
            .collect();
        if rects.is_empty() {
            continue;
        }
        chart
            .draw_series(rects)?
            .label(n.as_str())
            .legend(move |(x, y)| Rectangle::new([(x, y - 5), (x + 14, y + 5)], c.filled()));
        // Value labels on top of the bars.
        chart.draw_series(groups.iter().enumerate().filter_map(|(i, g)| {
            let v = g.1.iter().find(|b| &b.0 == n)?.1;
            let x0 = i as f64 * width + 0.5 + k;
            Some(Text::new(
                format!("{v:.2}"),
                (x0, v + ymax * 0.01),
                ("sans-serif", 11),
            ))
        }))?;
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperRight)
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK)
        .draw()?;
    root.present()?;
    Ok(())
}

fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let input = args
        .next()
        .unwrap_or_else(|| "docs/benchmarks/summary.json".into());
    let out = args.next().unwrap_or_else(|| "docs/benchmarks".into());
    let text = std::fs::read_to_string(&input).with_context(|| format!("cannot read {input}"))?;
    let v: Value = serde_json::from_str(&text).context("summary.json is not valid JSON")?;
    let scenarios = v["scenarios"].as_array().cloned().unwrap_or_default();
    let names = server_names(&scenarios);
    let out = Path::new(&out);
    std::fs::create_dir_all(out)?;

    // Throughput vs connections: one panel per echo size.
    let groups: Vec<String> = {
        let mut g: Vec<String> = Vec::new();
        for s in &scenarios {
            if s["kind"] == "throughput"
                && s["scenario"]
                    .as_str()
                    .is_some_and(|n| n.starts_with("echo"))
            {
                let name = s["group"].as_str().unwrap_or("").to_string();
                if !g.contains(&name) {
                    g.push(name);
                }
            }
        }
        g
    };
    {
        let path = out.join("throughput.svg");
        let root =
            SVGBackend::new(&path, (900, 420 * groups.len().max(1) as u32)).into_drawing_area();
        root.fill(&WHITE)?;
        let panels = root.split_evenly((groups.len().max(1), 1));
        for (g, area) in groups.iter().zip(panels.iter()) {
            throughput_panel(area, &scenarios, g, &names)?;
        }
        root.present()?;
    }

    // Server CPU per request: fixed-rate scenarios (and HTTP throughput runs).
    let per = |kind: &str, key: &str| -> Vec<(String, Vec<(String, f64)>)> {
        scenarios
            .iter()
            .filter(|s| s["kind"] == kind)
            .map(|s| {
                let bars = names
                    .iter()
                    .filter_map(|n| Some((n.clone(), s["servers"][n.as_str()][key].as_f64()?)))
                    .collect();
                (s["group"].as_str().unwrap_or("").to_string(), bars)
            })
            .filter(|g: &(String, Vec<(String, f64)>)| !g.1.is_empty())
            .collect()
    };
    bars(
        &out.join("cpu_per_req.svg"),
        "Server CPU per request at a fixed rate (server core busy time, /proc/stat)",
        "µs per request",
        &per("fixed", "server_us_per_req"),
        &names,
    )?;
    bars(
        &out.join("rss_per_conn.svg"),
        "RSS per idle connection",
        "kB per connection",
        &per("hold", "rss_per_conn_kb"),
        &names,
    )?;
    eprintln!(
        "ringcore-plot: wrote throughput.svg, cpu_per_req.svg, rss_per_conn.svg to {}",
        out.display()
    );
    Ok(())
}
