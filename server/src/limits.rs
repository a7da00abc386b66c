//! Counting recent failures per key (an account, an address, a device) so that guessing
//! passwords or device codes is slowed down. In memory: a restart forgets, which only ever helps
//! a person locked out by mistake.

use std::collections::HashMap;
use std::hash::Hash;
use std::sync::Mutex;

pub struct FailureWindow<K> {
    /// How many failures a key may have within `window_secs` before it is refused.
    max: usize,
    window_secs: i64,
    failures: Mutex<HashMap<K, Vec<i64>>>,
}

impl<K: Eq + Hash + Clone> FailureWindow<K> {
    pub fn new(max: usize, window_secs: i64) -> Self {
        FailureWindow {
            max,
            window_secs,
            failures: Mutex::new(HashMap::new()),
        }
    }

    /// Seconds until `key` may try again, or `None` if it may try now.
    pub fn blocked_for(&self, key: &K, now: i64) -> Option<i64> {
        let mut map = self.failures.lock().expect("limits lock");
        let recent = map.entry(key.clone()).or_default();
        recent.retain(|t| now - t < self.window_secs);
        (recent.len() >= self.max).then(|| {
            recent
                .first()
                .map_or(self.window_secs, |t| t + self.window_secs - now)
        })
    }

    pub fn fail(&self, key: &K, now: i64) {
        self.failures
            .lock()
            .expect("limits lock")
            .entry(key.clone())
            .or_default()
            .push(now);
    }

    pub fn clear(&self, key: &K) {
        self.failures.lock().expect("limits lock").remove(key);
    }
}

#[cfg(test)]
mod tests {
    use super::FailureWindow;

    #[test]
    fn blocks_after_max_failures_until_the_window_passes() {
        let w = FailureWindow::new(3, 60);
        for t in 0..3 {
            assert_eq!(w.blocked_for(&"k", t), None);
            w.fail(&"k", t);
        }
        assert_eq!(w.blocked_for(&"k", 10), Some(50));
        assert_eq!(w.blocked_for(&"other", 10), None, "keys are counted apart");
        assert_eq!(
            w.blocked_for(&"k", 61),
            None,
            "the oldest failure left the window"
        );
        w.fail(&"k", 62);
        w.clear(&"k");
        assert_eq!(w.blocked_for(&"k", 62), None);
    }
}
