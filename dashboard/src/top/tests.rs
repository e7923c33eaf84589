//! Render tests of every view from hand-built snapshots (no clock, no hostname of this machine)
//! on a `TestBackend` at 100×30 and at 60×20, with committed insta snapshots; and the input
//! handling (views, filter, the flag edit flow, mouse tabs), which needs no terminal.

#![allow(clippy::unwrap_used)]

use glassd::pb::glass::v1::*;
use ratatui::backend::TestBackend;
use ratatui::crossterm::event::{
    KeyCode, KeyEvent, KeyModifiers, MouseButton, MouseEvent, MouseEventKind,
};
use ratatui::Terminal;

use super::app::{Action, App, FlagEdit, MemberInfo, Update, View};
use super::views;
use crate::doctor::rules::{Finding, Severity, Verdict};

const T0: i64 = 1_700_000_000_000;
const ALPHA: u64 = 0x8e9e_05c5_2164_694d;
const BETA: u64 = 0x91bc_3c39_8fb3_c146;

fn layer(name: &str, unit: &str, count: u64, p50: u64, p99: u64, sum: u64) -> LayerWindow {
    LayerWindow {
        name: name.into(),
        unit: unit.into(),
        count,
        p50,
        p90: (p50 + p99) / 2,
        p99,
        max: p99 + p99 / 4,
        sum,
    }
}

/// The `i`th snapshot of a member under a steady put load: latencies grow with `i` so that the
/// trends are not flat.
fn snapshot(name: &str, id: u64, i: u64) -> Snapshot {
    let k = i + 1;
    Snapshot {
        member_id: id,
        cluster_id: 0xcdf8_18194e3a8c32,
        name: name.into(),
        unix_ms: T0 + (i as i64) * 1000,
        window_ms: if i == 0 { 0 } else { 1000 },
        layers: vec![
            layer(
                "api.unary",
                "ns",
                600,
                900_000,
                2_000_000 * k,
                600 * 1_000_000,
            ),
            layer(
                "raft.propose_commit",
                "ns",
                480,
                700_000,
                1_500_000 * k,
                480 * 750_000,
            ),
            layer(
                "wal.fsync",
                "ns",
                120,
                500_000,
                1_200_000 * k,
                120 * 600_000,
            ),
            layer("etcdserver.apply", "ns", 480, 40_000, 90_000, 480 * 45_000),
            layer("mvcc.put", "ns", 480, 12_000, 30_000, 480 * 14_000),
            layer(
                "backend.commit",
                "ns",
                10,
                2_000_000,
                4_000_000,
                10 * 2_200_000,
            ),
            layer("backend.commit_pages", "pages", 10, 12, 40, 150),
            layer("bolt.mmap_remap", "ns", 0, 0, 0, 0),
        ],
        raft: Some(RaftStatus {
            term: 2,
            leader: id,
            is_leader: true,
            commit_index: 1000 + 480 * i,
            applied_index: 1000 + 480 * i,
            ..Default::default()
        }),
        backend: Some(BackendStatus {
            db_size: 24 * 1024 * 1024,
            db_size_in_use: 18 * 1024 * 1024,
            page_size: 4096,
            freelist_type: "map".into(),
            quota_bytes: 2 << 30,
            ..Default::default()
        }),
        mvcc: Some(MvccStatus {
            keys: 1000,
            current_revision: 5000 + 480 * i as i64,
            compact_revision: -1,
            index_keys: 1000,
        }),
        process: Some(ProcessStatus {
            pid: 4242,
            cpu_percent: 37.0,
            rss_bytes: 96 * 1024 * 1024,
            threads: 14,
            open_fds: 42,
            uptime_seconds: 3725.0,
            ..Default::default()
        }),
        host: Some(HostStatus {
            hostname: "node-a".into(),
            cores: 2,
            cpu: Some(CpuWindow {
                name: "cpu".into(),
                user_percent: 30.0,
                system_percent: 10.0,
                iowait_percent: 5.0,
                steal_percent: 0.0,
                idle_percent: 55.0,
            }),
            per_core: vec![
                CpuWindow {
                    name: "cpu0".into(),
                    idle_percent: 40.0,
                    ..Default::default()
                },
                CpuWindow {
                    name: "cpu1".into(),
                    idle_percent: 70.0,
                    ..Default::default()
                },
            ],
            load1: 1.5,
            load5: 1.2,
            load15: 0.9,
            psi_cpu: Some(Pressure {
                available: true,
                some_avg10: 4.5,
                ..Default::default()
            }),
            psi_io: Some(Pressure {
                available: true,
                some_avg10: 12.0,
                full_avg10: 8.0,
                ..Default::default()
            }),
            psi_memory: Some(Pressure::default()),
            memory: Some(Memory {
                total: 8 << 30,
                available: 5 << 30,
                dirty: 12 << 20,
                writeback: 0,
                swap_total: 0,
                swap_free: 0,
                ..Default::default()
            }),
            disks: vec![Disk {
                device: "vda".into(),
                roles: vec!["data".into(), "wal".into()],
                read_iops: 2.0,
                write_iops: 250.0,
                read_bytes_per_s: 8192.0,
                write_bytes_per_s: 3.0 * 1024.0 * 1024.0,
                read_await_ms: 0.4,
                write_await_ms: 1.8,
                util_percent: 35.0,
                in_flight: 1,
                scheduler: "mq-deadline".into(),
                rotational: false,
                write_cache: "write back".into(),
            }],
            network: Some(Network {
                tcp_retrans_segs: 12,
                tcp_out_segs: 90_000,
                retrans_per_s: 0.5,
                ..Default::default()
            }),
            kernel: Some(KernelSettings {
                vm_dirty_ratio: 20,
                vm_dirty_background_ratio: 10,
                vm_dirty_expire_centisecs: 3000,
                vm_dirty_writeback_centisecs: 500,
                vm_swappiness: 60,
                transparent_hugepages: "madvise".into(),
                cpu_governor: String::new(),
                net_core_somaxconn: 4096,
            }),
        }),
        flag_changes: if i == 3 {
            vec![FlagChange {
                name: "backend-batch-interval".into(),
                old_value: "0s".into(),
                new_value: "250ms".into(),
                unix_ms: T0 + 3000,
                persisted: false,
            }]
        } else {
            vec![]
        },
        methods: vec![
            MethodWindow {
                method: "etcdserverpb.KV/Put".into(),
                count: 480,
                errors: 0,
                latency_measured: true,
                p50: 900_000,
                p99: 4_200_000,
                max: 9_000_000,
            },
            MethodWindow {
                method: "etcdserverpb.KV/Range".into(),
                count: 120,
                errors: 2,
                latency_measured: true,
                p50: 120_000,
                p99: 800_000,
                max: 1_100_000,
            },
        ],
        spans_dropped: 0,
        slow_requests: 3,
    }
}

fn slow_request(i: u64) -> SlowRequest {
    SlowRequest {
        method: "etcdserverpb.KV/Put".into(),
        unix_ms: T0 + 5000 - 1500 * i as i64,
        duration_ns: 120_000_000 + 10_000_000 * i,
        code: "OK".into(),
        trace_id: if i == 0 {
            "4bf92f3577b34da6a3ce929d0e0e4736".into()
        } else {
            String::new()
        },
        summary: format!("key=\"bench-{i}\" value=256B"),
        layers: vec![
            LayerTiming {
                layer: "api.unary".into(),
                start_offset_ns: 0,
                duration_ns: 120_000_000,
            },
            LayerTiming {
                layer: "raft.propose_commit".into(),
                start_offset_ns: 2_000_000,
                duration_ns: 100_000_000,
            },
            LayerTiming {
                layer: "wal.fsync".into(),
                start_offset_ns: 10_000_000,
                duration_ns: 85_000_000,
            },
            LayerTiming {
                layer: "etcdserver.apply".into(),
                start_offset_ns: 104_000_000,
                duration_ns: 12_000_000,
            },
        ],
    }
}

fn flag(name: &str, value: &str, default: &str, source: &str, runtime: bool) -> Flag {
    Flag {
        name: name.into(),
        value: value.into(),
        default_value: default.into(),
        source: source.into(),
        runtime,
        description: String::new(),
        aliases: vec![],
    }
}

/// Two members: alpha up with six snapshots, slow requests and flags; beta down.
fn fixture() -> App {
    let mut app = App::new(vec!["10.0.0.1:2379".into()], 1000);
    app.apply(Update::Members(vec![
        MemberInfo {
            id: ALPHA,
            name: "alpha".into(),
            endpoint: "http://10.0.0.1:2379".into(),
        },
        MemberInfo {
            id: BETA,
            name: "beta".into(),
            endpoint: "http://10.0.0.2:2379".into(),
        },
    ]));
    for i in 0..6 {
        app.apply(Update::Snapshot(
            ALPHA,
            Box::new(snapshot("alpha", ALPHA, i)),
        ));
    }
    app.apply(Update::Snapshot(BETA, Box::new(snapshot("beta", BETA, 0))));
    app.apply(Update::Down(
        BETA,
        "cannot connect to http://10.0.0.2:2379: connection refused".into(),
    ));
    app.apply(Update::Slow(ALPHA, (0..3).map(slow_request).collect()));
    app.apply(Update::Flags(
        ALPHA,
        Ok(vec![
            flag("backend-batch-interval", "0s", "0s", "default", true),
            flag("backend-batch-limit", "10000", "10000", "default", true),
            flag("data-dir", "/var/lib/glass", "${name}.etcd", "flag", false),
            flag("log-level", "warn", "info", "flag", true),
            flag("name", "alpha", "default", "flag", false),
            flag("quota-backend-bytes", "0", "0", "default", true),
        ]),
    ));
    app
}

fn render(app: &App, w: u16, h: u16) -> Terminal<TestBackend> {
    let mut t = Terminal::new(TestBackend::new(w, h)).unwrap();
    t.draw(|f| views::render(app, f)).unwrap();
    t
}

fn key(app: &mut App, c: KeyCode) -> Option<Action> {
    app.key(KeyEvent::new(c, KeyModifiers::NONE))
}

fn view(v: View) -> App {
    let mut app = fixture();
    app.view = v;
    if v == View::Diagnosis {
        app.refresh_verdict();
    }
    app
}

macro_rules! view_snapshots {
    ($($name:ident => $view:expr;)*) => {$(
        #[test]
        fn $name() {
            let app = view($view);
            insta::assert_snapshot!(concat!(stringify!($name), "_100x30"), render(&app, 100, 30).backend());
            insta::assert_snapshot!(concat!(stringify!($name), "_60x20"), render(&app, 60, 20).backend());
        }
    )*};
}

view_snapshots! {
    overview => View::Overview;
    layers => View::Layers;
    host => View::Host;
    slow => View::Slow;
    flags => View::Flags;
    diagnosis => View::Diagnosis;
}

#[test]
fn overview_of_the_down_member() {
    let mut app = fixture();
    key(&mut app, KeyCode::Char('j'));
    assert_eq!(app.selected().unwrap().0, BETA);
    insta::assert_snapshot!(render(&app, 100, 30).backend());
}

#[test]
fn waiting_for_members() {
    let mut app = App::new(vec!["10.0.0.1:2379".into()], 500);
    app.apply(Update::DiscoveryError(
        "cannot connect to http://10.0.0.1:2379: transport error: Connection refused".into(),
    ));
    insta::assert_snapshot!(render(&app, 100, 30).backend());
    app.view = View::Layers;
    insta::assert_snapshot!("waiting_layers", render(&app, 60, 20).backend());
}

#[test]
fn flags_are_read_once_the_member_is_known() {
    let mut app = App::new(vec!["10.0.0.1:2379".into()], 500);
    assert_eq!(key(&mut app, KeyCode::Char('5')), None);
    assert_eq!(app.pending_fetch(), None);
    app.apply(Update::Members(vec![MemberInfo {
        id: ALPHA,
        name: "alpha".into(),
        endpoint: "http://10.0.0.1:2379".into(),
    }]));
    assert_eq!(app.pending_fetch(), Some(Action::FetchFlags(ALPHA)));
    // Asked once, not at every event.
    assert_eq!(app.pending_fetch(), None);
}

#[test]
fn host_scrolls_to_its_last_line() {
    let mut app = view(View::Host);
    app.height = 20;
    for _ in 0..100 {
        key(&mut app, KeyCode::Char('j'));
    }
    // 21 lines in 15 visible rows: 6 lines scrolled off, then one `k` scrolls back.
    assert_eq!(app.row, 6);
    key(&mut app, KeyCode::Char('k'));
    assert_eq!(app.row, 5);
    insta::assert_snapshot!("host_scrolled", render(&app, 60, 20).backend());
}

#[test]
fn too_small() {
    insta::assert_snapshot!(render(&fixture(), 40, 10).backend());
}

#[test]
fn help_overlay() {
    let mut app = fixture();
    key(&mut app, KeyCode::Char('?'));
    assert!(app.help);
    insta::assert_snapshot!(render(&app, 100, 30).backend());
    // Any key closes it and does nothing else.
    assert_eq!(key(&mut app, KeyCode::Char('q')), None);
    assert!(!app.help);
}

#[test]
fn findings_with_evidence() {
    let verdict = Verdict {
        severity: Severity::Bottleneck,
        headline: "alpha: WAL fsync p99 12.00ms is above 10ms".into(),
        findings: vec![
            Finding {
                rule: "slow-wal-fsync",
                severity: Severity::Bottleneck,
                member: "alpha".into(),
                layer: Some("wal.fsync"),
                summary: "the WAL's fsyncs are slow".into(),
                evidence: vec![
                    "wal.fsync p99 12.00ms > 10ms over 5 windows".into(),
                    "vda util 95% > 80%".into(),
                ],
                recommendation: "put the WAL on a dedicated SSD".into(),
            },
            Finding {
                rule: "swappiness",
                severity: Severity::Warning,
                member: "alpha".into(),
                layer: None,
                summary: "vm.swappiness is 60".into(),
                evidence: vec!["vm.swappiness 60 > 10".into()],
                recommendation: "sysctl vm.swappiness=1".into(),
            },
        ],
    };
    let mut t = Terminal::new(TestBackend::new(100, 30)).unwrap();
    t.draw(|f| views::render_verdict(&verdict, 1, 6, f, f.area()))
        .unwrap();
    insta::assert_snapshot!(t.backend());
}

#[test]
fn tabs_and_numbers_switch_views() {
    let mut app = fixture();
    let mut seen = vec![app.view];
    for _ in 0..6 {
        key(&mut app, KeyCode::Tab);
        seen.push(app.view);
    }
    assert_eq!(&seen[..6], &View::ALL);
    assert_eq!(seen[6], View::Overview);
    key(&mut app, KeyCode::BackTab);
    assert_eq!(app.view, View::Diagnosis);
    assert_eq!(
        key(&mut app, KeyCode::Char('5')),
        Some(Action::FetchFlags(ALPHA))
    );
    assert_eq!(app.view, View::Flags);
    key(&mut app, KeyCode::Char('2'));
    assert_eq!(app.view, View::Layers);
    assert_eq!(key(&mut app, KeyCode::Char('q')), Some(Action::Quit));
    assert_eq!(
        app.key(KeyEvent::new(KeyCode::Char('c'), KeyModifiers::CONTROL)),
        Some(Action::Quit)
    );
}

#[test]
fn mouse_clicks_a_tab() {
    let mut app = fixture();
    // " glass top " then " 1 Overview " " 2 Layers " ...: column 25 is in " 2 Layers ".
    let click = |column| MouseEvent {
        kind: MouseEventKind::Down(MouseButton::Left),
        column,
        row: 0,
        modifiers: KeyModifiers::NONE,
    };
    app.mouse(click(25));
    assert_eq!(app.view, View::Layers);
    let screen = format!("{}", render(&app, 100, 30).backend());
    let first = screen.lines().next().unwrap();
    // The backend quotes each line: column 25 is character 26.
    assert_eq!(first.find("2 Layers"), Some(26), "{first}");
}

#[test]
fn edit_a_flag_with_filter_and_confirm() {
    let mut app = fixture();
    key(&mut app, KeyCode::Char('5'));
    key(&mut app, KeyCode::Char('/'));
    for c in "batch-int".chars() {
        key(&mut app, KeyCode::Char(c));
    }
    key(&mut app, KeyCode::Enter);
    assert!(!app.filtering);
    key(&mut app, KeyCode::Enter);
    assert_eq!(
        app.edit,
        FlagEdit::Editing {
            member: ALPHA,
            name: "backend-batch-interval".into(),
            buf: "0s".into()
        }
    );
    key(&mut app, KeyCode::Backspace);
    key(&mut app, KeyCode::Backspace);
    for c in "250ms".chars() {
        key(&mut app, KeyCode::Char(c));
    }
    insta::assert_snapshot!("flag_edit_box", render(&app, 100, 30).backend());
    key(&mut app, KeyCode::Enter);
    insta::assert_snapshot!("flag_confirm", render(&app, 60, 20).backend());
    assert_eq!(
        key(&mut app, KeyCode::Char('y')),
        Some(Action::SetFlag {
            member: ALPHA,
            name: "backend-batch-interval".into(),
            value: "250ms".into()
        })
    );
    app.apply(Update::FlagSet(
        ALPHA,
        Ok("backend-batch-interval: 0s -> 250ms (applied, until restart)".into()),
    ));
    assert_eq!(app.edit, FlagEdit::None);
    assert!(app.message.as_ref().unwrap().0);

    // A flag that cannot change while running is refused here, not sent.
    key(&mut app, KeyCode::Esc);
    key(&mut app, KeyCode::Char('/'));
    for c in "data-dir".chars() {
        key(&mut app, KeyCode::Char(c));
    }
    key(&mut app, KeyCode::Enter);
    assert_eq!(key(&mut app, KeyCode::Enter), None);
    assert_eq!(app.edit, FlagEdit::None);
    assert!(!app.message.as_ref().unwrap().0);
}

#[test]
fn membership_is_followed() {
    let mut app = fixture();
    key(&mut app, KeyCode::Char('l'));
    assert_eq!(app.selected().unwrap().0, BETA);
    // beta leaves the cluster: its state goes and the selection stays in range.
    app.apply(Update::Members(vec![MemberInfo {
        id: ALPHA,
        name: "alpha".into(),
        endpoint: "http://10.0.0.1:2379".into(),
    }]));
    assert_eq!(app.members.len(), 1);
    assert_eq!(app.selected().unwrap().0, ALPHA);
    // A stream that comes back marks the member up again.
    app.apply(Update::Down(ALPHA, "stream ended".into()));
    assert!(!app.members[&ALPHA].up);
    app.apply(Update::Snapshot(
        ALPHA,
        Box::new(snapshot("alpha", ALPHA, 9)),
    ));
    assert!(app.members[&ALPHA].up);
}

#[test]
fn history_is_bounded_by_time() {
    let mut app = fixture();
    let far = super::app::HISTORY_MS as u64 / 1000 + 10;
    app.apply(Update::Snapshot(
        ALPHA,
        Box::new(snapshot("alpha", ALPHA, far)),
    ));
    // Everything older than HISTORY_MS before the newest went.
    assert_eq!(app.members[&ALPHA].history.len(), 1);
}

#[test]
fn intervals_parse() {
    use std::time::Duration;
    assert_eq!(
        super::parse_interval("500ms"),
        Ok(Duration::from_millis(500))
    );
    assert_eq!(super::parse_interval("2s"), Ok(Duration::from_secs(2)));
    assert!(super::parse_interval("250").is_err(), "a unit is required");
    assert!(super::parse_interval("5ms").is_err());
    assert!(super::parse_interval("fast").is_err());
}

#[test]
fn a_flag_edit_goes_to_the_member_it_was_started_on() {
    let mut app = fixture();
    key(&mut app, KeyCode::Char('5'));
    key(&mut app, KeyCode::Enter);
    assert!(matches!(app.edit, FlagEdit::Editing { member: ALPHA, .. }));
    key(&mut app, KeyCode::Enter);
    // Clicks while the box is open change nothing (here: the Overview tab).
    let click = MouseEvent {
        kind: MouseEventKind::Down(MouseButton::Left),
        column: 13,
        row: 0,
        modifiers: KeyModifiers::NONE,
    };
    assert_eq!(app.mouse(click), None);
    assert_eq!(app.view, View::Flags);
    // Even if the selection moved under it (a membership change renumbers the list), the
    // change goes to the member the edit started on.
    app.member = 1;
    assert_eq!(
        key(&mut app, KeyCode::Char('y')),
        Some(Action::SetFlag {
            member: ALPHA,
            name: "backend-batch-interval".into(),
            value: "0s".into()
        })
    );
}

#[test]
fn a_flag_edit_of_a_member_that_left_is_cancelled() {
    let mut app = fixture();
    key(&mut app, KeyCode::Char('5'));
    key(&mut app, KeyCode::Enter);
    key(&mut app, KeyCode::Enter);
    assert!(matches!(app.edit, FlagEdit::Confirm { member: ALPHA, .. }));
    app.apply(Update::Members(vec![MemberInfo {
        id: BETA,
        name: "beta".into(),
        endpoint: "http://10.0.0.2:2379".into(),
    }]));
    assert_eq!(app.edit, FlagEdit::None);
    assert_eq!(key(&mut app, KeyCode::Char('y')), None);
}

#[test]
fn ctrl_keys_do_not_type_into_the_edit_box() {
    let mut app = fixture();
    key(&mut app, KeyCode::Char('5'));
    key(&mut app, KeyCode::Enter);
    app.key(KeyEvent::new(KeyCode::Char('u'), KeyModifiers::CONTROL));
    assert!(matches!(&app.edit, FlagEdit::Editing { buf, .. } if buf == "0s"));
}

/// A single-member app with `n` snapshots of alpha.
fn single(n: u64) -> App {
    let mut app = App::new(vec!["10.0.0.1:2379".into()], 1000);
    app.apply(Update::Members(vec![MemberInfo {
        id: ALPHA,
        name: "alpha".into(),
        endpoint: "http://10.0.0.1:2379".into(),
    }]));
    for i in 0..n {
        app.apply(Update::Snapshot(
            ALPHA,
            Box::new(snapshot("alpha", ALPHA, i)),
        ));
    }
    app
}

#[test]
fn the_diagnosis_follows_a_member_going_down_and_up() {
    let mut app = single(4);
    app.view = View::Diagnosis;
    app.refresh_verdict();
    let has_down = |app: &App| app.verdict.findings.iter().any(|f| f.rule == "member-down");
    assert!(!has_down(&app));
    // No snapshot arrives while it is down: the verdict must change anyway.
    app.apply(Update::Down(ALPHA, "stream ended".into()));
    app.refresh_verdict();
    assert!(has_down(&app));
    app.apply(Update::Snapshot(
        ALPHA,
        Box::new(snapshot("alpha", ALPHA, 4)),
    ));
    app.refresh_verdict();
    assert!(!has_down(&app));
}

#[test]
fn the_diagnosis_reads_only_slow_requests_of_its_window() {
    let mut app = single(4);
    let large = |unix_ms| SlowRequest {
        method: "etcdserverpb.KV/Range".into(),
        unix_ms,
        duration_ns: 900_000_000,
        summary: "key=\"a\" keys=20000 count=20000".into(),
        ..SlowRequest::default()
    };
    let expensive = |app: &App| {
        app.verdict
            .findings
            .iter()
            .any(|f| f.rule == "expensive-requests")
    };
    // Two large ranges from an hour ago, still in the member's ring: not judged now.
    let old = T0 - 3_600_000;
    app.apply(Update::Slow(ALPHA, vec![large(old), large(old - 1)]));
    app.refresh_verdict();
    assert!(!expensive(&app));
    // The same within the window are.
    app.apply(Update::Slow(
        ALPHA,
        vec![large(T0 + 2000), large(T0 + 1000)],
    ));
    app.refresh_verdict();
    assert!(expensive(&app));
}

#[test]
fn a_reconnected_streams_first_snapshot_shows_no_now_figures() {
    let mut app = single(4);
    assert!(views::overview::load(&app.members[&ALPHA]).1.is_some());
    // The stream reconnects: its first snapshot covers the process's life.
    let mut first = snapshot("alpha", ALPHA, 4);
    first.window_ms = 0;
    app.apply(Update::Snapshot(ALPHA, Box::new(first)));
    assert_eq!(views::overview::load(&app.members[&ALPHA]), (None, None));
    app.view = View::Layers;
    let screen = format!("{}", render(&app, 100, 30).backend());
    let row = screen
        .lines()
        .find(|l| l.contains("api.unary"))
        .unwrap_or_default()
        .to_string();
    assert!(
        !row.contains("ms"),
        "lifetime quantiles shown as now: {row}"
    );
    // Nor the host's rates (since boot).
    app.view = View::Host;
    let screen = format!("{}", render(&app, 100, 30).backend());
    assert!(screen.contains("waiting for the first window"), "{screen}");
    // Nor the per-method latencies of the Overview.
    app.view = View::Overview;
    let screen = format!("{}", render(&app, 100, 30).backend());
    let put = screen
        .lines()
        .find(|l| l.contains("KV/Put"))
        .unwrap_or_default()
        .to_string();
    assert!(
        put.contains('–') && !put.contains("ms") && !put.contains("µs"),
        "lifetime per-method quantiles shown as now: {put}"
    );
}

#[test]
fn share_is_time_per_pass_over_the_mean_request() {
    use views::layers::share;
    const MS: u64 = 1_000_000;
    // Four closed-loop writers, 20 ms fsyncs each serving four puts of about 21 ms: a put
    // waits for a whole fsync, so the share is 20 / 21, not the fsyncs' sum over the puts' sum
    // (about 24 %).
    let request = Some((4 * 48, 4 * 48 * 21 * MS));
    assert_eq!(share("wal.fsync", "ns", 48, 48 * 20 * MS, request), "95%");
    // A per-request layer: half the request.
    assert_eq!(
        share("mvcc.range", "ns", 10, 10 * 21 * MS / 2, request),
        "50%"
    );
    // Off the request path, whatever its figures.
    assert_eq!(share("backend.commit", "ns", 10, 10 * MS, request), "bg");
    assert_eq!(share("mvcc.compaction", "ns", 1, MS, request), "bg");
    // Not a time, or nothing to compare with.
    assert_eq!(share("raft.ready", "bytes", 10, 10, request), "–");
    assert_eq!(share("raft.ready", "ns", 10, 10 * MS, None), "–");
    assert_eq!(share("raft.ready", "ns", 0, 0, request), "–");
}

#[test]
fn a_click_in_a_scrolled_list_selects_the_row_under_it() {
    let mut app = fixture();
    // More flags than the list shows at this size.
    app.apply(Update::Flags(
        ALPHA,
        Ok((0..30)
            .map(|i| flag(&format!("flag-{i:02}"), "1", "1", "default", true))
            .collect()),
    ));
    key(&mut app, KeyCode::Char('5'));
    key(&mut app, KeyCode::Char('G'));
    let last = app.row;
    let before = format!("{}", render(&app, 60, 14).backend());
    let offset = app.list_offset.get();
    assert!(
        offset > 0,
        "row {last} of a 60x14 Flags list is scrolled into view\n{before}"
    );
    app.mouse(MouseEvent {
        kind: MouseEventKind::Down(MouseButton::Left),
        column: 5,
        row: super::app::LIST_TOP + 1,
        modifiers: KeyModifiers::NONE,
    });
    assert_eq!(app.row, offset + 1);
    // The row now selected is the one that was drawn where the click landed.
    let clicked = before
        .lines()
        .nth(usize::from(super::app::LIST_TOP) + 1)
        .unwrap();
    let after = format!("{}", render(&app, 60, 14).backend());
    assert_eq!(app.list_offset.get(), offset, "the list did not move");
    let selected = after
        .lines()
        .nth(usize::from(super::app::LIST_TOP) + 1)
        .unwrap();
    assert_eq!(clicked, selected);
    assert_ne!(app.row, last);
}
