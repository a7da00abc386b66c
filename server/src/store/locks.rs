//! Taking the database or the key vault for one step of a long job. The server keeps each behind
//! a mutex that every request also needs, so a job such as the retention sweep takes it per step
//! (one recording, one teacher, one file) and never while the object store works; the command
//! line holds its own connection and takes it as it is.

use std::ops::Deref;
use std::sync::{Mutex, MutexGuard};

/// Something a `T` can be had from for one step.
pub trait Take<T> {
    type Guard<'a>: Deref<Target = T>
    where
        Self: 'a;
    fn take(&self) -> anyhow::Result<Self::Guard<'_>>;
}

/// A value held outright (the command line's own connection).
impl<T> Take<T> for T {
    type Guard<'a>
        = &'a T
    where
        T: 'a;
    fn take(&self) -> anyhow::Result<&T> {
        Ok(self)
    }
}

/// The server's shared value, locked for the step.
impl<T> Take<T> for Mutex<T> {
    type Guard<'a>
        = MutexGuard<'a, T>
    where
        T: 'a;
    fn take(&self) -> anyhow::Result<MutexGuard<'_, T>> {
        self.lock()
            .map_err(|_| anyhow::anyhow!("a lock was poisoned by a panic; restart the server"))
    }
}
