//! Alert floods: the same (rule, container, item) alerts once per cooldown,
//! and a container raises at most a few alerts a second; what is held back
//! is counted and said in one summary alert. Memory stays bounded.

use std::collections::{BTreeSet, HashMap};
use std::time::{Duration, Instant};

use super::alert::Severity;

/// Cooldown entries kept at most; past it the oldest half goes (an alert
/// may then come again before its cooldown ends, never be lost).
pub const MAX_COOLDOWNS: usize = 65_536;

/// Limits of the alert stream.
#[derive(Clone, Copy, Debug)]
pub struct Limits {
    /// The same (rule, container, item) alerts once per this long.
    pub cooldown: Duration,
    /// Alerts per container per second before they are held back.
    pub per_second: u32,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            cooldown: Duration::from_secs(3600),
            per_second: 10,
        }
    }
}

/// Alerts held back in one container's current second.
#[derive(Debug, Default)]
pub struct Held {
    /// How many.
    pub count: u64,
    /// Their rules.
    pub rules: BTreeSet<String>,
    /// The highest severity among them.
    pub severity: Option<Severity>,
}

#[derive(Debug)]
struct Window {
    started: Instant,
    sent: u32,
    held: Held,
}

/// What the limiter says of one alert.
#[derive(Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Send it.
    Send,
    /// Alerted already within the cooldown.
    Cooling,
    /// Over the container's rate: counted for its summary.
    Held,
}

/// The cooldowns and per-container rate windows.
#[derive(Debug, Default)]
pub struct Limiter {
    limits: Limits,
    cooldowns: HashMap<(String, u64, String), Instant>,
    windows: HashMap<u64, Window>,
    /// Windows with alerts held back (asked of every event: counted, not
    /// searched for).
    holding: usize,
    /// Alerts silenced by a cooldown.
    pub cooled: u64,
    /// Alerts held back by the rate limit.
    pub held: u64,
}

impl Limiter {
    /// A limiter with these limits.
    pub fn new(limits: Limits) -> Limiter {
        Limiter {
            limits,
            ..Limiter::default()
        }
    }

    /// Judges an alert of `rule` about `key` in `container` at `now`.
    pub fn judge(
        &mut self,
        rule: &str,
        severity: Severity,
        container: u64,
        key: &str,
        now: Instant,
    ) -> Verdict {
        let id = (rule.to_string(), container, key.to_string());
        if let Some(last) = self.cooldowns.get(&id)
            && now.duration_since(*last) < self.limits.cooldown
        {
            self.cooled += 1;
            return Verdict::Cooling;
        }
        let window = self.windows.entry(container).or_insert(Window {
            started: now,
            sent: 0,
            held: Held::default(),
        });
        if now.duration_since(window.started) >= Duration::from_secs(1) && window.held.count == 0 {
            window.started = now;
            window.sent = 0;
        }
        if window.sent >= self.limits.per_second || window.held.count > 0 {
            if window.held.count == 0 {
                self.holding += 1;
            }
            window.held.count += 1;
            window.held.rules.insert(rule.to_string());
            window.held.severity = window.held.severity.max(Some(severity));
            self.held += 1;
            // Held back, not cooled: the same item may alert once the
            // flood is over.
            return Verdict::Held;
        }
        window.sent += 1;
        if self.cooldowns.len() >= MAX_COOLDOWNS {
            self.forget_oldest_cooldowns();
        }
        self.cooldowns.insert(id, now);
        Verdict::Send
    }

    /// The summaries due at `now`: per container whose second with held
    /// alerts is over, what was held back (the window starts again).
    pub fn due(&mut self, now: Instant) -> Vec<(u64, Held)> {
        let mut due = Vec::new();
        self.windows.retain(|container, window| {
            if now.duration_since(window.started) < Duration::from_secs(1) {
                return true;
            }
            if window.held.count > 0 {
                due.push((*container, std::mem::take(&mut window.held)));
            }
            false
        });
        self.holding -= due.len();
        due
    }

    /// Whether any container has alerts held back (a summary to come).
    pub fn holding(&self) -> bool {
        self.holding > 0
    }

    /// Forgets what is kept of a container that is gone.
    pub fn forget(&mut self, container: u64) {
        if self
            .windows
            .remove(&container)
            .is_some_and(|w| w.held.count > 0)
        {
            self.holding -= 1;
        }
        self.cooldowns.retain(|(_, c, _), _| *c != container);
    }

    fn forget_oldest_cooldowns(&mut self) {
        let mut times: Vec<Instant> = self.cooldowns.values().copied().collect();
        times.sort_unstable();
        let cut = times[times.len() / 2];
        self.cooldowns.retain(|_, t| *t > cut);
    }

    /// Cooldown entries kept.
    pub fn cooldowns(&self) -> usize {
        self.cooldowns.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_same_item_alerts_once_per_cooldown() {
        let mut l = Limiter::new(Limits::default());
        let t = Instant::now();
        assert_eq!(l.judge("r", Severity::High, 1, "k", t), Verdict::Send);
        assert_eq!(
            l.judge("r", Severity::High, 1, "k", t + Duration::from_secs(5)),
            Verdict::Cooling
        );
        // Another container, another item, another rule: their own.
        assert_eq!(l.judge("r", Severity::High, 2, "k", t), Verdict::Send);
        assert_eq!(l.judge("r", Severity::High, 1, "j", t), Verdict::Send);
        assert_eq!(l.judge("q", Severity::High, 1, "k", t), Verdict::Send);
        let later = t + Duration::from_secs(3601);
        assert_eq!(l.judge("r", Severity::High, 1, "k", later), Verdict::Send);
    }

    #[test]
    fn a_flood_sends_ten_then_one_summary_with_the_count() {
        let mut l = Limiter::new(Limits::default());
        let t = Instant::now();
        let verdicts: Vec<Verdict> = (0..1000)
            .map(|i| l.judge("unexpected-exec", Severity::Medium, 7, &format!("/x{i}"), t))
            .collect();
        assert_eq!(verdicts.iter().filter(|v| **v == Verdict::Send).count(), 10);
        assert!(
            l.due(t + Duration::from_millis(500)).is_empty(),
            "not before the second ends"
        );
        let due = l.due(t + Duration::from_secs(1));
        assert_eq!(due.len(), 1);
        assert_eq!(due[0].0, 7);
        assert_eq!(due[0].1.count, 990);
        assert_eq!(due[0].1.severity, Some(Severity::Medium));
        // The next second starts afresh.
        let next = t + Duration::from_secs(2);
        assert_eq!(
            l.judge("unexpected-exec", Severity::Medium, 7, "/y", next),
            Verdict::Send
        );
        assert!(!l.holding());
    }

    #[test]
    fn holding_counts_the_windows_with_alerts_held_back() {
        let mut l = Limiter::new(Limits::default());
        let t = Instant::now();
        for container in [1, 2] {
            for i in 0..11 {
                l.judge(
                    "unexpected-exec",
                    Severity::Low,
                    container,
                    &format!("/x{i}"),
                    t,
                );
            }
        }
        assert!(l.holding());
        l.forget(1);
        assert!(l.holding(), "container 2 still holds");
        assert_eq!(l.due(t + Duration::from_secs(1)).len(), 1);
        assert!(!l.holding());
    }

    #[test]
    fn cooldowns_stay_bounded() {
        let mut l = Limiter::new(Limits {
            per_second: u32::MAX,
            ..Limits::default()
        });
        let t = Instant::now();
        for i in 0..(MAX_COOLDOWNS + 10) {
            l.judge(
                "r",
                Severity::Low,
                1,
                &i.to_string(),
                t + Duration::from_micros(i as u64),
            );
        }
        assert!(l.cooldowns() <= MAX_COOLDOWNS);
    }
}
