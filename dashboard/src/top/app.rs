//! `glass top`'s state: plain data, changed only by [`App::apply`] (what the collector saw) and
//! [`App::key`] / [`App::mouse`] (what the operator did). Neither does I/O: they return the
//! [`Action`]s the event loop carries out, so render tests build an `App` from fixture snapshots.

use std::collections::{BTreeMap, VecDeque};

use glassd::pb::glass::v1::{Flag, FlagChange, SlowRequest, Snapshot};
use ratatui::crossterm::event::{
    KeyCode, KeyEvent, KeyEventKind, KeyModifiers, MouseButton, MouseEvent, MouseEventKind,
};

use crate::doctor::rules::{self, MemberSamples, Verdict};

/// How much history each member keeps: the sparklines span it, the doctor reads it.
pub const HISTORY_MS: i64 = 10 * 60 * 1000;
/// What the Diagnosis view gives the doctor: the recent past, as `glass doctor` samples it.
pub const DIAGNOSIS_MS: i64 = 2 * 60 * 1000;
/// A bound on the history whatever the interval: 10 minutes at 250 ms and above, 4 minutes at
/// the smallest interval (100 ms).
const HISTORY_MAX: usize = 2400;
/// Flag changes kept for the Flags view.
const CHANGES_MAX: usize = 50;

/// The views, in tab order.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum View {
    Overview,
    Layers,
    Host,
    Slow,
    Flags,
    Diagnosis,
}

impl View {
    pub const ALL: [View; 6] = [
        View::Overview,
        View::Layers,
        View::Host,
        View::Slow,
        View::Flags,
        View::Diagnosis,
    ];

    pub fn title(self) -> &'static str {
        match self {
            View::Overview => "Overview",
            View::Layers => "Layers",
            View::Host => "Host",
            View::Slow => "Slow requests",
            View::Flags => "Flags",
            View::Diagnosis => "Diagnosis",
        }
    }

    fn index(self) -> usize {
        View::ALL.iter().position(|v| *v == self).unwrap_or(0)
    }
}

/// A member as MemberList names it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MemberInfo {
    pub id: u64,
    pub name: String,
    /// The client URL the collector follows.
    pub endpoint: String,
}

/// What the collector reports.
#[derive(Clone, Debug)]
pub enum Update {
    /// The current membership (replaces the previous one).
    Members(Vec<MemberInfo>),
    /// No endpoint answered MemberList.
    DiscoveryError(String),
    Snapshot(u64, Box<Snapshot>),
    /// The member's stream broke or could not be opened; it is retried with backoff.
    Down(u64, String),
    Slow(u64, Vec<SlowRequest>),
    Flags(u64, Result<Vec<Flag>, String>),
    /// A SetFlag's outcome: `NAME: OLD -> NEW`, or the server's message.
    FlagSet(u64, Result<String, String>),
}

/// What the event loop must do after an input.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Action {
    Quit,
    FetchFlags(u64),
    SetFlag {
        member: u64,
        name: String,
        value: String,
    },
}

/// One member's state as seen from here.
#[derive(Clone, Debug, Default)]
pub struct Member {
    pub info: Option<MemberInfo>,
    pub up: bool,
    /// Why it is down (the last error).
    pub error: Option<String>,
    /// Oldest first, [`HISTORY_MS`] at most.
    pub history: VecDeque<Snapshot>,
    /// Newest first, as the member returns them.
    pub slow: Vec<SlowRequest>,
    /// Newest last.
    pub flag_changes: VecDeque<FlagChange>,
    pub flags: Option<Result<Vec<Flag>, String>>,
}

impl Member {
    pub fn name(&self) -> String {
        match (&self.info, self.history.back()) {
            (Some(i), _) if !i.name.is_empty() => i.name.clone(),
            (_, Some(s)) => s.name.clone(),
            (Some(i), None) => i.endpoint.clone(),
            (None, None) => "?".to_string(),
        }
    }

    pub fn latest(&self) -> Option<&Snapshot> {
        self.history.back()
    }
}

/// The Flags view's edit box. `member` is the id of the member the edit was started on: the
/// change goes there whatever is selected when it is confirmed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum FlagEdit {
    None,
    Editing {
        member: u64,
        name: String,
        buf: String,
    },
    Confirm {
        member: u64,
        name: String,
        value: String,
    },
    Pending {
        name: String,
        value: String,
    },
}

#[derive(Clone, Debug)]
pub struct App {
    pub view: View,
    /// By member id: the order the views list them in.
    pub members: BTreeMap<u64, Member>,
    /// Index into `members` (the member the per-member views show).
    pub member: usize,
    /// Selected row in the current view's list.
    pub row: usize,
    pub filter: String,
    pub filtering: bool,
    pub help: bool,
    pub edit: FlagEdit,
    /// The last SetFlag's outcome (ok, text).
    pub message: Option<(bool, String)>,
    pub discovery_error: Option<String>,
    pub endpoints: Vec<String>,
    pub interval_ms: u64,
    /// Shown in the status line (`glass demo` puts its child's pid there).
    pub note: Option<String>,
    /// The doctor's last verdict ([`App::refresh_verdict`]).
    pub verdict: Verdict,
    /// How many snapshots that verdict read (shown beside it; counting the live history
    /// instead could disagree with the verdict on screen).
    pub verdict_samples: usize,
    /// Updates applied so far that change what the doctor reads (snapshots, members, a member
    /// down, slow requests), and when the verdict was last computed: the doctor runs again
    /// only when something new arrived.
    generation: u64,
    verdict_at: Option<u64>,
    /// The member whose flags were last asked for.
    flags_asked: Option<u64>,
    /// The terminal's width at the last frame: the tab bar is compact below [`WIDE_TABS`], and
    /// mouse clicks are mapped with the labels drawn.
    pub width: u16,
    /// The terminal's height at the last frame (how far the Host view scrolls).
    pub height: u16,
    /// The first row the last frame's list showed (the table scrolls to keep the selection
    /// in view): a click on screen row `r` of the list is on row `list_offset + r`. Written by
    /// the views while drawing, hence a `Cell`.
    pub list_offset: std::cell::Cell<usize>,
}

impl App {
    pub fn new(endpoints: Vec<String>, interval_ms: u64) -> App {
        App {
            view: View::Overview,
            members: BTreeMap::new(),
            member: 0,
            row: 0,
            filter: String::new(),
            filtering: false,
            help: false,
            edit: FlagEdit::None,
            message: None,
            discovery_error: None,
            endpoints,
            interval_ms,
            note: None,
            verdict: rules::diagnose(&[]),
            verdict_samples: 0,
            generation: 0,
            verdict_at: None,
            flags_asked: None,
            width: u16::MAX,
            height: u16::MAX,
            list_offset: std::cell::Cell::new(0),
        }
    }

    /// The selected member.
    pub fn selected(&self) -> Option<(u64, &Member)> {
        self.members.iter().nth(self.member).map(|(id, m)| (*id, m))
    }

    pub fn apply(&mut self, u: Update) {
        if matches!(
            u,
            Update::Members(_) | Update::Snapshot(..) | Update::Down(..) | Update::Slow(..)
        ) {
            self.generation += 1;
        }
        match u {
            Update::Members(list) => {
                self.discovery_error = None;
                let ids: Vec<u64> = list.iter().map(|m| m.id).collect();
                for info in list {
                    let id = info.id;
                    self.members.entry(id).or_default().info = Some(info);
                }
                // Members removed from the cluster go; ones never listed (none) stay.
                self.members.retain(|id, _| ids.contains(id));
                // An edit of a member that left has nowhere to go.
                if let FlagEdit::Editing { member, .. } | FlagEdit::Confirm { member, .. } =
                    &self.edit
                {
                    if !self.members.contains_key(member) {
                        self.edit = FlagEdit::None;
                    }
                }
                self.clamp();
            }
            Update::DiscoveryError(e) => self.discovery_error = Some(e),
            Update::Snapshot(id, snap) => {
                let m = self.members.entry(id).or_default();
                m.up = true;
                m.error = None;
                for c in &snap.flag_changes {
                    m.flag_changes.push_back(c.clone());
                }
                while m.flag_changes.len() > CHANGES_MAX {
                    m.flag_changes.pop_front();
                }
                let newest = snap.unix_ms;
                m.history.push_back(*snap);
                while m.history.len() > HISTORY_MAX
                    || m.history
                        .front()
                        .is_some_and(|s| newest - s.unix_ms > HISTORY_MS)
                {
                    m.history.pop_front();
                }
            }
            Update::Down(id, e) => {
                let m = self.members.entry(id).or_default();
                m.up = false;
                m.error = Some(e);
            }
            Update::Slow(id, s) => self.members.entry(id).or_default().slow = s,
            Update::Flags(id, f) => self.members.entry(id).or_default().flags = Some(f),
            Update::FlagSet(id, r) => {
                self.edit = FlagEdit::None;
                let who = self
                    .members
                    .get(&id)
                    .map_or_else(|| format!("{id:x}"), Member::name);
                self.message = Some(match r {
                    Ok(t) => (true, format!("{who}: {t}")),
                    Err(e) => (false, format!("{who}: {e}")),
                });
            }
        }
    }

    /// Runs the doctor over the members' last [`DIAGNOSIS_MS`] of history, when snapshots
    /// arrived since it last ran (pure, but not free: the event loop calls it while the
    /// Diagnosis view is open).
    pub fn refresh_verdict(&mut self) {
        if self.verdict_at == Some(self.generation) {
            return;
        }
        self.verdict_at = Some(self.generation);
        let samples: Vec<MemberSamples> = self
            .members
            .iter()
            .map(|(id, m)| {
                let snapshots: Vec<Snapshot> = diagnosed(m).cloned().collect();
                // Only the requests that started within the diagnosed window (as `glass doctor`
                // keeps those of its period).
                let slow_requests = m
                    .slow
                    .iter()
                    .filter(|r| rules::started_in_period(&snapshots, r))
                    .cloned()
                    .collect();
                MemberSamples {
                    name: m.name(),
                    id: *id,
                    endpoint: m
                        .info
                        .as_ref()
                        .map(|i| i.endpoint.clone())
                        .unwrap_or_default(),
                    snapshots,
                    slow_requests,
                    up: m.up,
                    down_reason: m.error.clone(),
                }
            })
            .collect();
        self.verdict = rules::diagnose(&samples);
        self.verdict_samples = samples.iter().map(|m| m.snapshots.len()).sum();
    }

    fn clamp(&mut self) {
        self.member = self.member.min(self.members.len().saturating_sub(1));
    }

    /// Rows the current view lists (for j/k bounds).
    pub fn rows(&self) -> usize {
        let m = self.selected().map(|(_, m)| m);
        match self.view {
            View::Overview => self.members.len(),
            View::Layers => m.map_or(0, |m| self.layer_rows(m).len()),
            // The Host view scrolls as a whole: j/k move its first line, as far as the last
            // line reaching the bottom of the frame (tabs, member line, borders, status: 5).
            View::Host => m
                .and_then(|m| m.latest())
                .and_then(|s| s.host.as_ref().map(|h| (s, h)))
                .map_or(0, |(s, h)| {
                    let visible = usize::from(self.height.saturating_sub(5));
                    crate::top::views::host_lines(h, s.process.as_ref()).saturating_sub(visible) + 1
                }),
            View::Slow => m.map_or(0, |m| self.slow_rows(m).len()),
            View::Flags => m.map_or(0, |m| self.flag_rows(m).len()),
            View::Diagnosis => self.verdict.findings.len(),
        }
    }

    pub(crate) fn matches(&self, s: &str) -> bool {
        self.filter.is_empty() || s.to_lowercase().contains(&self.filter.to_lowercase())
    }

    /// The latest snapshot's measurements that pass the filter: the whole request
    /// (`api.unary`) first, then the member's order (layer by layer).
    pub fn layer_rows<'a>(&self, m: &'a Member) -> Vec<&'a str> {
        let mut rows: Vec<&str> = m.latest().map_or_else(Vec::new, |s| {
            s.layers
                .iter()
                .map(|l| l.name.as_str())
                .filter(|n| self.matches(n))
                .collect()
        });
        rows.sort_by_key(|n| *n != "api.unary");
        rows
    }

    pub fn slow_rows<'a>(&self, m: &'a Member) -> Vec<&'a SlowRequest> {
        m.slow
            .iter()
            .filter(|r| self.matches(&r.method) || self.matches(&r.summary))
            .collect()
    }

    pub fn flag_rows<'a>(&self, m: &'a Member) -> Vec<&'a Flag> {
        match &m.flags {
            Some(Ok(f)) => f.iter().filter(|f| self.matches(&f.name)).collect(),
            _ => Vec::new(),
        }
    }

    fn switch(&mut self, v: View) -> Option<Action> {
        if self.view == v {
            return None;
        }
        self.view = v;
        self.row = 0;
        self.list_offset.set(0);
        // The last SetFlag's outcome belongs to the Flags view.
        self.message = None;
        self.filter.clear();
        self.filtering = false;
        self.on_enter()
    }

    /// The Flags view reads the member's flags each time it is opened or its member changes.
    fn on_enter(&mut self) -> Option<Action> {
        match (self.view, self.selected()) {
            (View::Flags, Some((id, _))) => {
                self.flags_asked = Some(id);
                Some(Action::FetchFlags(id))
            }
            _ => None,
        }
    }

    /// The Flags view opened before its member was known (or before it answered): asks once
    /// for the member's flags when the view shows a member whose flags were never read.
    pub fn pending_fetch(&mut self) -> Option<Action> {
        let (id, m) = self.selected()?;
        (self.view == View::Flags && m.flags.is_none() && self.flags_asked != Some(id))
            .then(|| self.on_enter())
            .flatten()
    }

    pub fn key(&mut self, k: KeyEvent) -> Option<Action> {
        if k.kind == KeyEventKind::Release {
            return None;
        }
        let ctrl = k.modifiers.contains(KeyModifiers::CONTROL);
        if ctrl && matches!(k.code, KeyCode::Char('c')) {
            return Some(Action::Quit);
        }
        if self.help {
            self.help = false;
            return None;
        }
        match self.edit.clone() {
            FlagEdit::Editing {
                member,
                name,
                mut buf,
            } => {
                match k.code {
                    KeyCode::Esc => self.edit = FlagEdit::None,
                    KeyCode::Enter => {
                        self.edit = FlagEdit::Confirm {
                            member,
                            name,
                            value: buf,
                        }
                    }
                    KeyCode::Backspace => {
                        buf.pop();
                        self.edit = FlagEdit::Editing { member, name, buf };
                    }
                    KeyCode::Char(c) if !ctrl => {
                        buf.push(c);
                        self.edit = FlagEdit::Editing { member, name, buf };
                    }
                    _ => {}
                }
                return None;
            }
            FlagEdit::Confirm {
                member,
                name,
                value,
            } => {
                match k.code {
                    KeyCode::Char('y') | KeyCode::Char('Y') => {
                        if self.members.contains_key(&member) {
                            self.edit = FlagEdit::Pending {
                                name: name.clone(),
                                value: value.clone(),
                            };
                            self.message = None;
                            return Some(Action::SetFlag {
                                member,
                                name,
                                value,
                            });
                        }
                        self.edit = FlagEdit::None;
                    }
                    KeyCode::Char('n') | KeyCode::Char('N') | KeyCode::Esc => {
                        self.edit = FlagEdit::None
                    }
                    _ => {}
                }
                return None;
            }
            FlagEdit::Pending { .. } | FlagEdit::None => {}
        }
        if self.filtering {
            match k.code {
                KeyCode::Esc => {
                    self.filter.clear();
                    self.filtering = false;
                }
                KeyCode::Enter => self.filtering = false,
                KeyCode::Backspace => {
                    self.filter.pop();
                }
                KeyCode::Char(c) => self.filter.push(c),
                _ => {}
            }
            self.row = 0;
            self.list_offset.set(0);
            return None;
        }
        match k.code {
            KeyCode::Char('q') => return Some(Action::Quit),
            KeyCode::Char('?') => self.help = true,
            KeyCode::Char('/') => {
                self.filtering = true;
                self.row = 0;
                self.list_offset.set(0);
            }
            KeyCode::Esc => self.filter.clear(),
            KeyCode::Tab => {
                return self.switch(View::ALL[(self.view.index() + 1) % View::ALL.len()]);
            }
            KeyCode::BackTab => {
                let n = View::ALL.len();
                return self.switch(View::ALL[(self.view.index() + n - 1) % n]);
            }
            KeyCode::Char(c @ '1'..='6') => {
                return self.switch(View::ALL[(c as usize) - ('1' as usize)]);
            }
            KeyCode::Down | KeyCode::Char('j') => self.move_row(1),
            KeyCode::Up | KeyCode::Char('k') => self.move_row(-1),
            KeyCode::PageDown => self.move_row(10),
            KeyCode::PageUp => self.move_row(-10),
            KeyCode::Home | KeyCode::Char('g') => self.row = 0,
            KeyCode::End | KeyCode::Char('G') => self.row = self.rows().saturating_sub(1),
            KeyCode::Right | KeyCode::Char('l') => return self.move_member(1),
            KeyCode::Left | KeyCode::Char('h') => return self.move_member(-1),
            KeyCode::Char('r') if self.view == View::Flags => return self.on_enter(),
            KeyCode::Enter if self.view == View::Flags => self.start_edit(),
            _ => {}
        }
        None
    }

    fn move_row(&mut self, by: isize) {
        let n = self.rows();
        if n == 0 {
            self.row = 0;
            self.list_offset.set(0);
            return;
        }
        self.row = self.row.saturating_add_signed(by).min(n - 1);
        if self.view == View::Overview {
            self.member = self.row;
        }
    }

    fn move_member(&mut self, by: isize) -> Option<Action> {
        let n = self.members.len();
        if n == 0 {
            return None;
        }
        let before = self.member;
        self.member = self.member.saturating_add_signed(by).min(n - 1);
        if self.view == View::Overview {
            self.row = self.member;
        }
        (before != self.member).then(|| self.on_enter()).flatten()
    }

    fn start_edit(&mut self) {
        let Some((id, m)) = self.selected() else {
            return;
        };
        let rows = self.flag_rows(m);
        let Some(f) = rows.get(self.row) else {
            return;
        };
        if f.runtime {
            self.edit = FlagEdit::Editing {
                member: id,
                name: f.name.clone(),
                buf: f.value.clone(),
            };
        } else {
            self.message = Some((false, format!("{} cannot change while glassd runs", f.name)));
        }
    }

    /// Clicks on the tab bar switch views; clicks in a list select the row; the wheel scrolls.
    /// Row positions follow the views' layout: lists start at [`LIST_TOP`] (tab bar, member line,
    /// block border and header above).
    pub fn mouse(&mut self, m: MouseEvent) -> Option<Action> {
        // An open edit box owns the input: a click must not change the view or the member
        // under it (the edit goes to the member it was started on anyway).
        if matches!(
            self.edit,
            FlagEdit::Editing { .. } | FlagEdit::Confirm { .. }
        ) {
            return None;
        }
        match m.kind {
            MouseEventKind::ScrollDown => self.move_row(1),
            MouseEventKind::ScrollUp => self.move_row(-1),
            MouseEventKind::Down(MouseButton::Left) if m.row == 0 => {
                let mut x = TAB_START;
                for v in View::ALL {
                    let w = tab_label(v, self.view, self.width).chars().count() as u16;
                    if m.column >= x && m.column < x + w {
                        return self.switch(v);
                    }
                    x += w + 1;
                }
            }
            MouseEventKind::Down(MouseButton::Left) if m.row >= LIST_TOP => {
                let r = usize::from(m.row - LIST_TOP) + self.list_offset.get();
                if r < self.rows() && matches!(self.view, View::Overview | View::Flags | View::Slow)
                {
                    self.row = r;
                    if self.view == View::Overview {
                        self.member = r;
                    }
                }
            }
            _ => {}
        }
        None
    }
}

/// The snapshots the Diagnosis reads: the member's last [`DIAGNOSIS_MS`] of history.
fn diagnosed(m: &Member) -> impl Iterator<Item = &Snapshot> {
    let newest = m.latest().map_or(0, |s| s.unix_ms);
    m.history
        .iter()
        .filter(move |s| newest - s.unix_ms <= DIAGNOSIS_MS)
}

/// Where the tab labels start on the first line (after the program's name).
pub const TAB_START: u16 = 11;
/// The first list row on screen in Overview, Slow and Flags.
pub const LIST_TOP: u16 = 4;

/// Below this width only the current view's tab has its title.
pub const WIDE_TABS: u16 = 86;

pub fn tab_label(v: View, current: View, width: u16) -> String {
    if width >= WIDE_TABS || v == current {
        format!(" {} {} ", v.index() + 1, v.title())
    } else {
        format!(" {} ", v.index() + 1)
    }
}
