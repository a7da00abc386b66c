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

    /// Records an attempt for `key`, unless it already used up its window: then returns how many
    /// seconds it must wait. Counting before the (slow) check means parallel guesses cannot slip
    /// past the limit; a successful attempt is taken back with [`FailureWindow::forgive_last`].
    pub fn attempt(&self, key: &K, now: i64) -> Result<(), i64> {
        let mut map = self.failures.lock().expect("limits lock");
        // Forget keys whose failures have all left the window, so the map cannot grow without end.
        map.retain(|_, times| {
            times.retain(|t| now - t < self.window_secs);
            !times.is_empty()
        });
        let recent = map.entry(key.clone()).or_default();
        if recent.len() >= self.max {
            return Err(recent
                .first()
                .map_or(self.window_secs, |t| t + self.window_secs - now));
        }
        recent.push(now);
        Ok(())
    }

    /// The last attempt succeeded: it is not a failure after all.
    pub fn forgive_last(&self, key: &K) {
        if let Some(times) = self.failures.lock().expect("limits lock").get_mut(key) {
            times.pop();
        }
    }

    /// Forgets every failure of `key` (an account that signed in successfully).
    pub fn clear(&self, key: &K) {
        self.failures.lock().expect("limits lock").remove(key);
    }
}

#[cfg(test)]
mod tests {
    use super::FailureWindow;

    #[test]
    fn counts_attempts_until_max_then_waits_for_the_window() {
        let w = FailureWindow::new(3, 60);
        for t in 0..3 {
            assert_eq!(w.attempt(&"k", t), Ok(()));
        }
        assert_eq!(w.attempt(&"k", 10), Err(50));
        assert_eq!(w.attempt(&"other", 10), Ok(()), "keys are counted apart");
        assert_eq!(
            w.attempt(&"k", 61),
            Ok(()),
            "the oldest attempt left the window"
        );
        w.forgive_last(&"k");
        assert_eq!(
            w.attempt(&"k", 62),
            Ok(()),
            "a forgiven success does not count"
        );
        w.clear(&"k");
        for t in 63..66 {
            assert_eq!(w.attempt(&"k", t), Ok(()));
        }
        assert!(w.attempt(&"k", 66).is_err());
        // Keys with nothing left in the window are dropped.
        w.attempt(&"late", 1000).unwrap();
        assert_eq!(w.failures.lock().unwrap().len(), 1);
    }
}
