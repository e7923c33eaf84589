//! `glass top`: a live terminal dashboard of a Glass cluster.
//!
//! Layout: `app.rs` (state and input handling, no I/O), `collect.rs` (the tasks that talk to
//! the members), `views/` (one render function per view, from `&App` to a frame), this file
//! (the terminal and the event loop).
//!
//! The terminal is restored on every exit path: `q`/Ctrl-C, SIGTERM/SIGINT (the loop ends),
//! the future being dropped (the [`TerminalGuard`]'s `Drop`) and panics (ratatui's panic hook,
//! wrapped here to also release the mouse).

mod app;
mod collect;
mod views;

#[cfg(test)]
mod tests;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use ratatui::crossterm::event::{self, DisableMouseCapture, EnableMouseCapture, Event};
use ratatui::crossterm::execute;
use ratatui::DefaultTerminal;
use tokio::signal::unix::{signal, SignalKind};
use tokio::sync::mpsc;

use app::{Action, App, View};
use collect::Collector;

pub struct Options {
    pub endpoints: Vec<String>,
    pub interval: Duration,
    /// Shown in the status line.
    pub note: Option<String>,
}

/// Raw mode, the alternate screen and mouse capture for as long as it lives.
struct TerminalGuard {
    terminal: DefaultTerminal,
}

impl TerminalGuard {
    fn new() -> anyhow::Result<Self> {
        // ratatui's hook restores the terminal on a panic; ours first releases the mouse.
        let terminal = ratatui::try_init().context("cannot set up the terminal")?;
        let hook = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            let _ = execute!(std::io::stdout(), DisableMouseCapture);
            hook(info);
        }));
        let _ = execute!(std::io::stdout(), EnableMouseCapture);
        Ok(TerminalGuard { terminal })
    }
}

impl Drop for TerminalGuard {
    fn drop(&mut self) {
        let _ = execute!(std::io::stdout(), DisableMouseCapture);
        ratatui::restore();
    }
}

/// Reads terminal events on a thread of its own (crossterm's reads block) until `stop`.
fn spawn_input(stop: Arc<AtomicBool>) -> mpsc::UnboundedReceiver<std::io::Result<Event>> {
    let (tx, rx) = mpsc::unbounded_channel();
    std::thread::spawn(move || {
        while !stop.load(Ordering::Relaxed) {
            match event::poll(Duration::from_millis(100)) {
                Ok(false) => {}
                Ok(true) => {
                    let ev = event::read();
                    let failed = ev.is_err();
                    if tx.send(ev).is_err() || failed {
                        return;
                    }
                }
                Err(e) => {
                    let _ = tx.send(Err(e));
                    return;
                }
            }
        }
    });
    rx
}

/// Runs the dashboard until the operator quits or a termination signal arrives.
pub async fn run(opts: Options) -> anyhow::Result<()> {
    let interval_ms = u64::try_from(opts.interval.as_millis()).unwrap_or(1000);
    let mut app = App::new(opts.endpoints.clone(), interval_ms);
    app.note = opts.note;
    let (tx, mut updates) = mpsc::unbounded_channel();
    let collector = Collector::start(opts.endpoints, opts.interval, tx);
    let mut sigterm = signal(SignalKind::terminate()).context("SIGTERM handler")?;
    let mut sigint = signal(SignalKind::interrupt()).context("SIGINT handler")?;
    let mut term = TerminalGuard::new()?;
    let stop = Arc::new(AtomicBool::new(false));
    // Stops the input thread on every way out of this function.
    struct Stop(Arc<AtomicBool>);
    impl Drop for Stop {
        fn drop(&mut self) {
            self.0.store(true, Ordering::Relaxed);
        }
    }
    let _stop = Stop(stop.clone());
    let mut input = spawn_input(stop);
    // Redraws now and then so a quiet cluster's screen still moves (and a resize is picked up).
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    // A test hook: the tmux test checks that a panic leaves the terminal restored.
    let panic_for_test = std::env::var_os("GLASS_TOP_TEST_PANIC").is_some();
    loop {
        term.terminal
            .draw(|f| {
                app.width = f.area().width;
                app.height = f.area().height;
                views::render(&app, f)
            })
            .context("drawing")?;
        if panic_for_test && !app.members.is_empty() {
            panic!("GLASS_TOP_TEST_PANIC is set");
        }
        let action = tokio::select! {
            u = updates.recv() => {
                let Some(u) = u else { break };
                app.apply(u);
                // Everything already queued, then one frame.
                while let Ok(u) = updates.try_recv() {
                    app.apply(u);
                }
                None
            }
            ev = input.recv() => match ev {
                Some(Ok(Event::Key(k))) => app.key(k),
                Some(Ok(Event::Mouse(m))) => app.mouse(m),
                Some(Ok(_)) => None,
                Some(Err(e)) => return Err(e).context("reading the terminal"),
                None => Some(Action::Quit),
            },
            _ = sigterm.recv() => Some(Action::Quit),
            _ = sigint.recv() => Some(Action::Quit),
            _ = tick.tick() => None,
        };
        if app.view == View::Diagnosis {
            // The doctor runs only while its view is open (it reads the whole history).
            app.refresh_verdict();
        }
        match action.or_else(|| app.pending_fetch()) {
            None => {}
            Some(Action::Quit) => break,
            Some(Action::FetchFlags(id)) => collector.fetch_flags(id),
            Some(Action::SetFlag {
                member,
                name,
                value,
            }) => collector.set_flag(member, name, value),
        }
    }
    drop(term);
    Ok(())
}

/// `500ms`, `1s`, `2m` (as every duration of `glass`), from 100ms to 60s.
pub fn parse_interval(s: &str) -> Result<Duration, String> {
    let d = crate::parse_duration(s)?;
    if !(Duration::from_millis(100)..=Duration::from_secs(60)).contains(&d) {
        return Err(format!("interval {} out of range (100ms to 60s)", s.trim()));
    }
    Ok(d)
}
