//! The HTML report: one file, no scripts, no network; the Markdown tables as HTML and,
//! per load, three inline SVG charts (latency p50/p99/max, throughput, error rate)
//! over scenario time with the fault windows shaded.

use std::fmt::Write as _;

use crate::assertions::Status;
use crate::report::{LoadReport, Report};

const W: f64 = 760.0;
const H: f64 = 170.0;
const LEFT: f64 = 60.0;
const TOP: f64 = 22.0;
const BOTTOM: f64 = 26.0;

/// Escapes text for HTML.
fn esc(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// One line of a chart.
struct Line<'a> {
    label: &'a str,
    color: &'a str,
    points: Vec<(f64, f64)>,
}

/// A line chart over `0..duration` seconds with `faults` shaded.
fn chart(
    title: &str,
    unit: &str,
    lines: &[Line<'_>],
    faults: &[(String, f64, f64)],
    duration: f64,
) -> String {
    let ymax = lines
        .iter()
        .flat_map(|l| l.points.iter().map(|p| p.1))
        .fold(0.0f64, f64::max)
        .max(1.0)
        * 1.1;
    let pw = W - LEFT - 10.0;
    let ph = H - TOP - BOTTOM;
    let x = |t: f64| LEFT + (t / duration.max(1e-9)) * pw;
    let y = |v: f64| TOP + ph - (v / ymax) * ph;
    let mut s = String::new();
    let _ = write!(
        s,
        r##"<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{H}" viewBox="0 0 {W} {H}" role="img" aria-label="{t}"><rect width="100%" height="100%" fill="#fff"/><text x="4" y="14" font-size="12" font-weight="bold">{t}</text>"##,
        t = esc(title)
    );
    // Labels of neighbouring windows alternate between two lines, so that a name
    // longer than its window does not run into the next one's.
    for (i, (name, from, to)) in faults.iter().enumerate() {
        let _ = write!(
            s,
            r##"<rect x="{:.1}" y="{TOP}" width="{:.1}" height="{ph}" fill="#f4a6a6" fill-opacity="0.35"/><text x="{:.1}" y="{:.1}" font-size="10" fill="#a33">{}</text>"##,
            x(*from),
            (x(*to) - x(*from)).max(1.0),
            x(*from) + 2.0,
            TOP + 10.0 + 11.0 * (i % 2) as f64,
            esc(name)
        );
    }
    for i in 0..=4 {
        let v = ymax * f64::from(i) / 4.0;
        let _ = write!(
            s,
            r##"<line x1="{LEFT}" x2="{:.1}" y1="{yy:.1}" y2="{yy:.1}" stroke="#ddd"/><text x="{:.1}" y="{:.1}" font-size="10" text-anchor="end">{}</text>"##,
            LEFT + pw,
            LEFT - 4.0,
            y(v) + 3.0,
            short(v),
            yy = y(v)
        );
    }
    let steps = duration.ceil().max(1.0) as u64;
    let every = (steps / 10).max(1);
    for t in (0..=steps).step_by(every as usize) {
        let _ = write!(
            s,
            r##"<text x="{:.1}" y="{:.1}" font-size="10" text-anchor="middle">{t}s</text>"##,
            x(t as f64),
            H - 8.0
        );
    }
    let _ = write!(
        s,
        r##"<text x="4" y="{:.1}" font-size="10">{}</text>"##,
        TOP + 10.0,
        esc(unit)
    );
    // The legend on the right of the title line.
    let mut legend = W - 10.0 - 80.0 * lines.len() as f64;
    for l in lines {
        let pts: Vec<String> = l
            .points
            .iter()
            .map(|(t, v)| format!("{:.1},{:.1}", x(*t), y(*v)))
            .collect();
        let _ = write!(
            s,
            r##"<polyline fill="none" stroke="{c}" stroke-width="1.5" points="{}"/><rect x="{legend:.1}" y="6" width="10" height="10" fill="{c}"/><text x="{:.1}" y="15" font-size="11">{}</text>"##,
            pts.join(" "),
            legend + 13.0,
            esc(l.label),
            c = l.color
        );
        legend += 80.0;
    }
    s.push_str("</svg>");
    s
}

fn short(v: f64) -> String {
    if v >= 1000.0 {
        format!("{:.1}k", v / 1000.0)
    } else if v >= 10.0 {
        format!("{v:.0}")
    } else {
        format!("{v:.2}")
    }
}

fn charts(load: &LoadReport, faults: &[(String, f64, f64)], duration: f64) -> String {
    let per_s = 1.0 / crate::load::BUCKET.as_secs_f64();
    let mid = |t: f64| t + crate::load::BUCKET.as_secs_f64() / 2.0;
    let pts = |f: &dyn Fn(&crate::report::Point) -> Option<f64>| -> Vec<(f64, f64)> {
        load.timeline
            .iter()
            .filter_map(|p| f(p).map(|v| (mid(p.t_s), v)))
            .collect()
    };
    let ended = |p: &crate::report::Point| p.counts.ok + p.counts.failed + p.counts.timed_out;
    let latency_from = if load.from_intended_time {
        "from the intended send time"
    } else {
        "from the actual send"
    };
    let mut out = String::new();
    out.push_str(&chart(
        &format!("`{}` latency per 250 ms ({latency_from})", load.name),
        "ms",
        &[
            Line {
                label: "p50",
                color: "#1f77b4",
                points: pts(&|p| (ended(p) > 0).then_some(p.p50_ms)),
            },
            Line {
                label: "p99",
                color: "#ff7f0e",
                points: pts(&|p| (ended(p) > 0).then_some(p.p99_ms)),
            },
            Line {
                label: "max",
                color: "#d62728",
                points: pts(&|p| (ended(p) > 0).then_some(p.max_ms)),
            },
        ],
        faults,
        duration,
    ));
    out.push_str(&chart(
        &format!("`{}` throughput", load.name),
        "req/s",
        &[
            Line {
                label: "due",
                color: "#7f7f7f",
                points: pts(&|p| Some(p.counts.due as f64 * per_s)),
            },
            Line {
                label: "ok",
                color: "#2ca02c",
                points: pts(&|p| Some(p.counts.ok as f64 * per_s)),
            },
            Line {
                label: "failed",
                color: "#d62728",
                points: pts(&|p| Some(p.counts.failed as f64 * per_s)),
            },
            Line {
                label: "timed out",
                color: "#9467bd",
                points: pts(&|p| Some(p.counts.timed_out as f64 * per_s)),
            },
        ],
        faults,
        duration,
    ));
    out.push_str(&chart(
        &format!("`{}` error rate (failed + timed out)", load.name),
        "%",
        &[Line {
            label: "errors",
            color: "#d62728",
            points: pts(&|p| {
                let n = ended(p);
                (n > 0).then(|| 100.0 * (p.counts.failed + p.counts.timed_out) as f64 / n as f64)
            }),
        }],
        faults,
        duration,
    ));
    out
}

/// Markdown tables, made HTML: headings, paragraphs and pipe tables only.
fn markdown_to_html(md: &str) -> String {
    let mut html = String::new();
    let mut in_table = false;
    for line in md.lines() {
        let inline = |t: &str| {
            let mut out = String::new();
            for (i, part) in esc(t).split('`').enumerate() {
                if i % 2 == 1 {
                    let _ = write!(out, "<code>{part}</code>");
                } else {
                    out.push_str(part);
                }
            }
            let mut bolded = String::new();
            for (i, part) in out.split("**").enumerate() {
                if i % 2 == 1 {
                    let _ = write!(bolded, "<strong>{part}</strong>");
                } else {
                    bolded.push_str(part);
                }
            }
            bolded
        };
        if let Some(row) = line.strip_prefix('|') {
            let cells: Vec<&str> = row
                .trim_end_matches('|')
                .split(" | ")
                .map(str::trim)
                .collect();
            if cells
                .iter()
                .all(|c| c.trim_matches(|ch| ch == '-' || ch == ':').is_empty())
            {
                continue;
            }
            let tag = if in_table { "td" } else { "th" };
            if !in_table {
                html.push_str("<table>");
                in_table = true;
            }
            html.push_str("<tr>");
            for c in cells {
                let class = match c {
                    "pass" => " class=\"pass\"",
                    "**FAIL**" => " class=\"fail\"",
                    _ => "",
                };
                let _ = write!(html, "<{tag}{class}>{}</{tag}>", inline(c));
            }
            html.push_str("</tr>\n");
            continue;
        }
        if in_table {
            html.push_str("</table>\n");
            in_table = false;
        }
        if let Some(h) = line.strip_prefix("## ") {
            let _ = writeln!(html, "<h2>{}</h2>", inline(h));
        } else if let Some(h) = line.strip_prefix("# ") {
            let _ = writeln!(html, "<h1>{}</h1>", inline(h));
        } else if let Some(item) = line.strip_prefix("- ") {
            let _ = writeln!(html, "<p>• {}</p>", inline(item));
        } else if !line.trim().is_empty() {
            let _ = writeln!(html, "<p>{}</p>", inline(line));
        }
    }
    if in_table {
        html.push_str("</table>\n");
    }
    html
}

/// The report as one HTML file.
pub fn render(report: &Report) -> String {
    let faults: Vec<(String, f64, f64)> = report
        .faults
        .iter()
        .filter_map(|f| Some((f.name.clone(), f.applied_at_s?, f.lifted_at_s?)))
        .collect();
    let mut body = markdown_to_html(&report.to_markdown());
    body.push_str("<h2>Charts</h2><p>Shaded: fault windows, as applied. Points are 250 ms buckets by intended send time.</p>");
    for load in &report.loads {
        body.push_str("<div class=\"charts\">");
        body.push_str(&charts(load, &faults, report.duration_s));
        body.push_str("</div>");
    }
    let failed = report.assertions.iter().any(|a| a.status == Status::Fail);
    format!(
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>plexus validate {}: {}</title><style>\
body{{font-family:system-ui,sans-serif;margin:24px;max-width:1200px;color:#222}}\
table{{border-collapse:collapse;margin:8px 0;font-size:13px}}td,th{{border:1px solid #ccc;padding:3px 6px;text-align:left}}\
th{{background:#f3f3f3}}.pass{{color:#1a7f37;font-weight:bold}}.fail{{color:#c00;font-weight:bold}}\
code{{background:#f3f3f3;padding:0 3px}}.charts svg{{display:block;margin:6px 0;border:1px solid #eee}}\
h1{{color:{}}}</style></head><body>\n{body}</body></html>\n",
        esc(&report.scenario),
        if failed { "FAILED" } else { "PASSED" },
        if failed { "#c00" } else { "#1a7f37" },
    )
}
